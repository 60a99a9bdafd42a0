"""`python -m hub_tools.server --host 127.0.0.1 --port 8090 --data DIR [--token TOKEN ...]`."""
from __future__ import annotations

import argparse

from . import serve


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(prog="python -m hub_tools.server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8090, help="port (default 8090)")
    parser.add_argument("--data", required=True, help="folder holding blobs and the metadata database")
    parser.add_argument(
        "--token",
        action="append",
        default=[],
        help="accepted bearer token (repeatable); without any, anonymous writes are accepted",
    )
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.data, args.token)


if __name__ == "__main__":
    main()

"""`python -m hub_tools`: push and pull FaceReg models, push face datasets, run the local Hub server.

Tokens come from --token, HF_TOKEN or the stored `hf auth login`, and are never printed. Errors end the command
with a one-line message on stderr and exit status 1 (2 for bad arguments).
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from hub_tools.errors import HubError


def cmd_push_model(args: argparse.Namespace) -> None:
    """Publish a FaceReg model folder."""
    from hub_tools.models import push_model

    print(push_model(args.dir, args.repo, private=args.private, token=args.token, commit_message=args.message))


def cmd_pull_model(args: argparse.Namespace) -> None:
    """Download a FaceReg model repo and print its folder."""
    from hub_tools.models import pull_model

    print(pull_model(args.repo, args.revision, token=args.token, local_dir=args.out))


def cmd_push_dataset(args: argparse.Namespace) -> None:
    """Add a local folder of anchor/positive/negative images to a dataset repo."""
    from hub_tools.faces_dataset import push_dataset

    def report(fraction: float, message: str) -> None:
        print(f"{fraction:4.0%} {message}", file=sys.stderr)

    url = push_dataset(
        args.dir,
        args.repo,
        private=not args.public,
        token=args.token,
        person=args.person,
        session=args.session,
        progress=report,
    )
    print(url)


def cmd_serve(args: argparse.Namespace) -> None:
    """Run the local Hub server until interrupted."""
    from hub_tools.server import serve

    serve(args.host, args.port, args.data, args.token or [])


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser of `python -m hub_tools`."""
    prog = "facereg-hub" if Path(sys.argv[0]).name == "facereg-hub" else "python -m hub_tools"  # installed command
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    token_help = "Hub token (default: HF_TOKEN, then the stored `hf auth login`)"

    push = commands.add_parser("push-model", help="publish a FaceReg model folder")
    push.add_argument("dir", type=Path, help="model folder (model.keras, facereg.json)")
    push.add_argument("repo", help="model repo id, e.g. me/facereg")
    push.add_argument("--private", action="store_true", help="create the repo private")
    push.add_argument("--message", help="commit message")
    push.add_argument("--token", help=token_help)
    push.set_defaults(run=cmd_push_model)

    pull = commands.add_parser("pull-model", help="download a FaceReg model repo")
    pull.add_argument("repo", help="model repo id")
    pull.add_argument("--revision", help="branch, tag or commit (default: main)")
    pull.add_argument("--out", type=Path, help="folder to download into (default: the Hub cache)")
    pull.add_argument("--token", help=token_help)
    pull.set_defaults(run=cmd_pull_model)

    data = commands.add_parser("push-dataset", help="add a folder of anchor/, positive/, negative/ images")
    data.add_argument("dir", type=Path, help="folder with anchor/, positive/, negative/ image folders")
    data.add_argument("repo", help="dataset repo id, e.g. me/faces")
    data.add_argument("--public", action="store_true", help="create the repo public (default: private)")
    data.add_argument("--person", help="person column for the new images")
    data.add_argument("--session", help="session column for the new images")
    data.add_argument("--token", help=token_help)
    data.set_defaults(run=cmd_push_dataset)

    serve = commands.add_parser("serve", help="run the local Hub server")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    serve.add_argument("--port", type=int, default=8090, help="port (default: %(default)s)")
    serve.add_argument("--data", type=Path, required=True, help="folder holding the repos")
    serve.add_argument("--token", action="append", help="a token the server accepts (repeatable)")
    serve.set_defaults(run=cmd_serve)
    return parser


def run_command(command: Callable[[argparse.Namespace], None], args: argparse.Namespace) -> int:
    """Run a command; return its exit status, reporting a failure as one line on stderr (never a traceback)."""
    try:
        command(args)
    except (HubError, OSError) as exc:  # HubError messages are user-facing and never hold a token
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run one command; return the exit status."""
    args = build_parser().parse_args(argv)
    return run_command(args.run, args)

"""A local Hugging Face Hub-compatible server: what `huggingface_hub` and `datasets` need for models, datasets
and Spaces (their files and metadata; the server does not run Spaces).

Blobs are content-addressed files on disk (`blobs.py`); repos, commits and refs live in SQLite (`repos.py`).
Without tokens the server runs in single-user local mode: anonymous writes are accepted and private
repos are visible to every caller. With tokens, writes and private repos need `Authorization: Bearer <token>`.
"""
from __future__ import annotations

import signal
import threading
from pathlib import Path

from .app import create_app

__all__ = ["create_app", "serve"]

GRACEFUL_SHUTDOWN_S = 5


class _Stop(Exception):
    """Raised by our SIGINT/SIGTERM handler once uvicorn has shut down."""


def _stop(signum: int, frame: object) -> None:
    raise _Stop(signum)


def serve(host: str, port: int, data_dir: str | Path, tokens: list[str] | None = None) -> None:
    """Serve the Hub API on host:port until SIGINT/SIGTERM, storing repos under `data_dir`."""
    import uvicorn

    data_dir = Path(data_dir)
    app = create_app(data_dir, tokens)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    server = uvicorn.Server(config)
    mode = "writes need a token" if tokens else "no token configured: anonymous writes accepted (single-user mode)"
    print(f"FaceReg local Hub on http://{host}:{port}, data in {data_dir.resolve()} ({mode})")
    print(f"Use it with: FACEREG_HUB_ENDPOINT=http://{host}:{port} (sets HF_HUB_DISABLE_XET=1 too), or")
    print(f"HF_ENDPOINT=http://{host}:{port}", flush=True)
    # uvicorn shuts down gracefully on these signals, then re-raises them: turn that into a clean return.
    handled = (signal.SIGINT, signal.SIGTERM)
    in_main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, _stop) for sig in handled} if in_main else {}
    try:
        server.run()
    except _Stop:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("FaceReg local Hub stopped", flush=True)

"""Run the app in this process on a free port, for tests and benchmarks."""
from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from space.app import build_app, launch
from space.capture import CaptureStore
from space.state import ModelHolder, ModelSource


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningApp:
    """A launched app: its URL and the state behind it."""

    url: str
    holder: ModelHolder
    store: CaptureStore
    runs_dir: Path


@contextlib.contextmanager
def running_app(work_dir: Path, source: ModelSource | None = None) -> Iterator[RunningApp]:
    """Launch the app in a background thread (captures and runs under work_dir); close it on exit."""
    holder = ModelHolder(source)
    store = CaptureStore(work_dir / "captures")
    runs = work_dir / "runs"
    demo = build_app(holder, store, runs)
    port = free_port()
    launch(demo, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield RunningApp(f"http://127.0.0.1:{port}/", holder, store, runs)
    finally:
        demo.close()

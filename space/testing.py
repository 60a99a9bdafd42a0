"""Run the app in this process on a free port, for tests and benchmarks."""
from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from space.app import build_app, launch
from space.models import Models, ModelSource
from space.workspace import Limits, Workspaces


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_stack(pid: int) -> str:
    """The event loop and HTTP parser a running app's uvicorn uses, read from the libraries its process has loaded:
    uvloop and httptools when installed (requirements.txt), else pure-Python asyncio and h11."""
    libraries = Path(f"/proc/{pid}/maps").read_text()
    loop = "uvloop" if "/uvloop/" in libraries else "asyncio"
    parser = "httptools" if "/httptools/" in libraries else "h11"
    return f"{loop} + {parser}"


def process_tree(pid: int) -> list[int]:
    """A process and its descendants alive now (Linux /proc): `python -m space` and its inference process."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            todo += [int(child) for task in Path(f"/proc/{current}/task").iterdir()
                     for child in (task / "children").read_text().split()]
        except OSError:
            continue  # it ended meanwhile
    return found


@dataclass
class RunningApp:
    """A launched app: its URL, its models and its visitors' workspaces."""

    url: str
    models: Models
    workspaces: Workspaces


@contextlib.contextmanager
def running_app(
    work_dir: Path, source: ModelSource | None = None, limits: Limits | None = None, models: Models | None = None
) -> Iterator[RunningApp]:
    """Launch the app in a background thread (workspaces under work_dir); close it on exit."""
    models = models or Models(source)
    workspaces = Workspaces(work_dir / "workspaces", limits)
    demo = build_app(models, workspaces)
    port = free_port()
    launch(demo, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield RunningApp(f"http://127.0.0.1:{port}/", models, workspaces)
    finally:
        workspaces.stop()
        demo.close()

"""Pytest plugin: a real local Hub server (`python -m hub_tools.server`) for tests that talk to the Hub.

Loaded from tests/conftest.py (`pytest_plugins = ["tests.hub_fixture"]`). When this module is imported, before any
test module imports `huggingface_hub`, it picks a free port, points the Hub clients at it (FACEREG_HUB_ENDPOINT,
then `hub_tools.config.use_local_hub`) and sets HF_HOME to a temp folder, so no real token or cache is ever used.

Fixtures:
    hub_server   (session) a running server: .endpoint, .token (valid write token), .data_dir, .port,
                 .start(), .stop(), .restart(), .kill() (SIGKILL), .running
    hub_repo_id  (function) a fresh repo id, `facereg/test-<8 hex>`
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 15


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


HUB_PORT = _free_port()
HUB_ENDPOINT = f"http://127.0.0.1:{HUB_PORT}"
_HF_HOME = tempfile.mkdtemp(prefix="facereg-hf-home-")

os.environ["HF_HOME"] = _HF_HOME
os.environ.pop("HF_TOKEN", None)
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["FACEREG_HUB_ENDPOINT"] = HUB_ENDPOINT  # `import hub_tools` applies it first thing

from hub_tools.config import use_local_hub  # noqa: E402

use_local_hub(HUB_ENDPOINT)


class HubServer:
    """A `python -m hub_tools.server` subprocess on a fixed port and data folder."""

    def __init__(self, port: int, data_dir: Path, token: str, log_path: Path) -> None:
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        self.data_dir = data_dir
        self.token = token
        self.log_path = log_path
        self._process: subprocess.Popen | None = None

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """Process id of the running server."""
        return self._process.pid if self.running else None

    def start(self) -> None:
        """Start the server (no-op if running) and wait until it answers."""
        if self.running:
            return
        command = [sys.executable, "-m", "hub_tools.server", "--host", "127.0.0.1", "--port", str(self.port),
                   "--data", str(self.data_dir), "--token", self.token]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"Hub server exited with {self._process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/health", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"Hub server did not answer within {START_TIMEOUT_S}s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Stop the server with SIGTERM (graceful), SIGKILL if it does not exit in time."""
        if not self.running:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """Kill the server with SIGKILL, as a crash would."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def restart(self) -> None:
        """Stop (gracefully) and start again on the same port and data."""
        self.stop()
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's output."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="session")
def hub_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    """A running local Hub server with a valid write token; stopped at the end of the session."""
    root = tmp_path_factory.mktemp("hub-server")
    server = HubServer(HUB_PORT, root / "data", f"hf_test_{uuid.uuid4().hex}", root / "server.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def hub_repo_id() -> str:
    """A repo id no other test uses."""
    return f"facereg/test-{uuid.uuid4().hex[:8]}"

"""`python -m space` as a Space starts it: visitors who arrive while the model is still loading get correct answers."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from gradio_client import Client

from space.models import DEFAULT_HEAD_FILE
from space.testing import free_port, http_stack, process_tree
from tests.app_helpers import lfw
from tests.conftest import needs_lfw
from tests.test_inference_process import alive

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def fresh_app(tmp_path: Path):
    """A `python -m space` process just started (its warm-up still running), its URL and its log file."""
    port, log = free_port(), tmp_path / "server.log"
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf-home"), "GRADIO_ANALYTICS_ENABLED": "False"}
    with open(log, "wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "space", "--port", str(port), "--data-dir",
                                   str(tmp_path / "workspaces")], cwd=REPO, env=env, stdout=out,
                                  stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}/", server, log
    finally:
        server.terminate()
        server.wait(timeout=60)


def first_clients(url: str, server: subprocess.Popen, log: Path, count: int) -> list[Client]:
    """`count` clients of the app, connected at the first moment it answers at all."""
    deadline = time.monotonic() + 300
    while True:
        assert server.poll() is None, log.read_text()[-2000:]
        try:
            return [Client(url, verbose=False, ssl_verify=False) for _ in range(count)]
        except Exception:  # noqa: BLE001 - not listening yet
            assert time.monotonic() < deadline, "the app did not start"
            time.sleep(0.1)


@needs_lfw
def test_visitors_arriving_during_the_warm_up_get_correct_answers(fresh_app) -> None:
    url, server, log = fresh_app
    clients = first_clients(url, server, log, 3)  # its model is still loading in the background
    answers: dict[str, object] = {}

    def ask(name: str, client: Client, *args, api_name: str) -> None:
        try:
            answers[name] = client.predict(*args, api_name=api_name)
        except Exception as exc:  # noqa: BLE001 - checked below
            answers[name] = exc

    threshold = json.loads(DEFAULT_HEAD_FILE.read_text())["threshold"]
    calls = [
        threading.Thread(target=ask, args=("same", clients[0], lfw("Colin_Powell", 1), lfw("Colin_Powell", 2),
                                           threshold), kwargs={"api_name": "/verify"}),
        threading.Thread(target=ask, args=("different", clients[1], lfw("Colin_Powell", 1), lfw("Tony_Blair", 1),
                                           threshold), kwargs={"api_name": "/verify"}),
        threading.Thread(target=ask, args=("model", clients[2]), kwargs={"api_name": "/model_info"}),
    ]
    for call in calls:
        call.start()
    for call in calls:
        call.join(timeout=300)
    assert not any(isinstance(answer, Exception) for answer in answers.values()), (answers, log.read_text()[-4000:])
    assert answers["same"][-1]["is_match"] and not answers["different"][-1]["is_match"]
    assert answers["model"]["backbone"] == "dlib_resnet"
    text = log.read_text()
    assert "model not loaded at start" not in text and "Traceback" not in text, text[-3000:]
    # The default model's verifications were answered by the app's inference process, which goes with the app.
    inference = int(re.search(r"inference process ready \(pid (\d+)\)", text).group(1))
    assert inference in process_tree(server.pid)
    server.terminate()
    server.wait(timeout=60)
    deadline = time.monotonic() + 30
    while alive(inference) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(inference)


def test_the_app_serves_http_on_uvloop_and_httptools(fresh_app) -> None:
    """uvicorn picks the C event loop and HTTP parser of requirements.txt when they are installed (it falls back to
    pure-Python asyncio and h11 without a word): the running app has both loaded."""
    url, server, log = fresh_app
    first_clients(url, server, log, 1)
    assert http_stack(server.pid) == "uvloop + httptools"

"""`python -m hub_tools` end to end, in subprocesses against the local Hub server."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from huggingface_hub import HfApi
from PIL import Image

from tests.conftest import REPO_ROOT

WRONG_TOKEN = "hf_CliWrongTokenThatMustNeverBeShown987"


def free_port() -> int:
    """A local port nothing listens on (right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_cli(*args: str, endpoint: str, home: Path, token: str | None = None) -> subprocess.CompletedProcess:
    """Run `python -m hub_tools ARGS` pointed at `endpoint`, with an empty HF_HOME and HF_TOKEN=token."""
    env = {key: value for key, value in os.environ.items() if key not in ("HF_TOKEN", "HF_ENDPOINT")}
    env.update(FACEREG_HUB_ENDPOINT=endpoint, HF_HOME=str(home), PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    if token:
        env["HF_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "hub_tools", *args], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    """The command failed with a single `error:` line on stderr holding every needle, and no traceback."""
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr and lines[-1].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[-1]
    return lines[-1]


@pytest.fixture()
def model_dir(tmp_path: Path) -> Path:
    """A model folder: the CLI only moves files, so model.keras need not be a real model here."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.keras").write_bytes(b"PK\x03\x04 not inspected by the CLI")
    (folder / "facereg.json").write_text(json.dumps({"backbone": "classic", "threshold": 0.5, "input_size": 100}))
    return folder


@pytest.fixture()
def faces_dir(tmp_path: Path) -> Path:
    """A FaceReg folder with one image per label."""
    folder = tmp_path / "faces"
    for shade, label in enumerate(("anchor", "positive", "negative")):
        (folder / label).mkdir(parents=True)
        Image.new("RGB", (16, 16), (shade * 80, 10, 10)).save(folder / label / "face.png")
    return folder


def test_push_and_pull_a_model(model_dir: Path, hub_server, hub_repo_id: str, tmp_path: Path) -> None:
    pushed = run_cli("push-model", str(model_dir), hub_repo_id, "--private", "--token", hub_server.token,
                     endpoint=hub_server.endpoint, home=tmp_path / "home")
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stdout.strip() == f"{hub_server.endpoint}/{hub_repo_id}"
    out = tmp_path / "pulled"
    pulled = run_cli("pull-model", hub_repo_id, "--revision", "main", "--out", str(out),
                     endpoint=hub_server.endpoint, home=tmp_path / "home", token=hub_server.token)
    assert pulled.returncode == 0, pulled.stderr
    assert Path(pulled.stdout.strip()) == out
    assert (out / "model.keras").read_bytes() == (model_dir / "model.keras").read_bytes()
    assert "library_name: keras" in (out / "README.md").read_text()
    assert hub_server.token not in pushed.stdout + pushed.stderr + pulled.stdout + pulled.stderr


def test_push_dataset_private_then_again(faces_dir: Path, hub_server, hub_repo_id: str, tmp_path: Path) -> None:
    for _ in range(2):
        result = run_cli("push-dataset", str(faces_dir), hub_repo_id, "--person", "ada",
                         endpoint=hub_server.endpoint, home=tmp_path / "home", token=hub_server.token)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"{hub_server.endpoint}/datasets/{hub_repo_id}"
    assert "no new images" in result.stderr
    api = HfApi(token=hub_server.token)
    assert api.repo_info(hub_repo_id, repo_type="dataset").private
    assert len([f for f in api.list_repo_files(hub_repo_id, repo_type="dataset") if f.endswith(".png")]) == 3


def test_missing_token(model_dir: Path, hub_server, hub_repo_id: str, tmp_path: Path) -> None:
    result = run_cli("push-model", str(model_dir), hub_repo_id, endpoint=hub_server.endpoint, home=tmp_path)
    assert_one_line_error(result, "--token", "HF_TOKEN", "hf auth login")


def test_wrong_token_is_never_echoed(model_dir: Path, hub_server, hub_repo_id: str, tmp_path: Path) -> None:
    result = run_cli("push-model", str(model_dir), hub_repo_id, "--token", WRONG_TOKEN,
                     endpoint=hub_server.endpoint, home=tmp_path)
    assert_one_line_error(result, "token")
    assert WRONG_TOKEN not in result.stdout + result.stderr


def test_repo_not_found(hub_server, hub_repo_id: str, tmp_path: Path) -> None:
    result = run_cli("pull-model", hub_repo_id, endpoint=hub_server.endpoint, home=tmp_path, token=hub_server.token)
    assert_one_line_error(result, hub_repo_id, "not found")


def test_unreachable_hub(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    result = run_cli("pull-model", "someone/model", endpoint=endpoint, home=tmp_path, token=WRONG_TOKEN)
    assert_one_line_error(result, endpoint)
    assert WRONG_TOKEN not in result.stderr


def test_invalid_model_folder(tmp_path: Path) -> None:
    result = run_cli("push-model", str(tmp_path), "someone/model", "--token", "t",
                     endpoint="http://127.0.0.1:9", home=tmp_path)
    assert_one_line_error(result, "model.keras")


def test_serve(model_dir: Path, tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{(port := free_port())}"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    server = subprocess.Popen(
        [sys.executable, "-m", "hub_tools", "serve", "--port", str(port), "--data", str(tmp_path / "data"),
         "--token", "serve-token"],
        env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, server.stdout.read()
                time.sleep(0.2)
        result = run_cli("push-model", str(model_dir), "user/served", "--token", "serve-token",
                         endpoint=endpoint, home=tmp_path / "home")
        assert result.returncode == 0, result.stderr
    finally:
        server.terminate()
        server.wait(timeout=15)
    assert server.returncode == 0
    assert (tmp_path / "data").is_dir()

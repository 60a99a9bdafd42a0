"""`python -m space deploy`: deploy to the local Hub server, download the Space, start it as a Space would, verify.

The Space is deployed from a copy of this checkout to which files that must stay behind were added (tests,
benchmarks, data, runs, bytecode, type stubs, a hidden folder), then downloaded with `snapshot_download` into a
temporary folder and started the way the Space builder starts it: `python <app_file>` from the repo's root, with
`PYTHONPATH` not pointing at this checkout, and the variables a Space sets (`SYSTEM=spaces`, `SPACE_ID`, and the
OAuth ones, whose provider is the local Hub server: the login is never exercised, Gradio only needs them at start).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import HfApi, metadata_load, snapshot_download

from tests.conftest import REPO_ROOT, lfw_image, needs_lfw
from tests.hub_fixture import HubServer

PACKAGES = ("facereg", "trainer", "hub_tools", "space")
# Files that a deploy must leave behind, planted in the copy of the checkout.
JUNK = (
    "tests/test_x.py",
    "benchmarks/bench_x.py",
    "data/captures/anchor/face.png",
    "runs/run-1/model.keras",
    "trainer/__pycache__/faces.cpython-311.pyc",
    "space/components.pyi",
    "space/.cache/state.json",
    "notes.txt",
)
APP_START_TIMEOUT_S = 240


def space_id() -> str:
    """A Space repo id no other test uses."""
    return f"facereg/space-{uuid.uuid4().hex[:8]}"


def run_deploy(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """`python -m space deploy ARGS` in `cwd`, with the test environment (local Hub, empty HF_HOME) plus `env`."""
    return subprocess.run([sys.executable, "-m", "space", "deploy", *args], cwd=cwd, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[str]]:
    """A copy of the checkout's deployable sources plus junk, and the Space files expected from it."""
    root = tmp_path_factory.mktemp("checkout")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyi", ".*")
    for package in PACKAGES:
        shutil.copytree(REPO_ROOT / package, root / package, ignore=ignore)
    for name in ("requirements.txt", "pyproject.toml"):
        shutil.copy2(REPO_ROOT / name, root / name)
    sources = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    expected = (sources - {"space/README.md", "space/testing.py"}) | {"README.md", ".gitattributes"}
    for junk in JUNK:
        (root / junk).parent.mkdir(parents=True, exist_ok=True)
        (root / junk).write_bytes(b"not for the Space")
    return root, expected


@pytest.fixture(scope="module")
def deployed(hub_server: HubServer, checkout: tuple[Path, set[str]]) -> Iterator[tuple[str, str]]:
    """A Space deployed with the command over an earlier deploy's leftover file: (repo id, printed URL)."""
    root, _ = checkout
    repo_id = space_id()
    api = HfApi(token=hub_server.token)
    api.create_repo(repo_id, repo_type="space", space_sdk="gradio")
    api.upload_file(path_or_fileobj=b"old", path_in_repo="trainer/removed_module.py", repo_id=repo_id,
                    repo_type="space")
    result = run_deploy([repo_id, "--token", hub_server.token], root)
    assert result.returncode == 0, result.stderr
    yield repo_id, result.stdout.strip()
    api.delete_repo(repo_id, repo_type="space")


def test_deploy_uploads_exactly_the_app(hub_server: HubServer, checkout: tuple[Path, set[str]],
                                        deployed: tuple[str, str]) -> None:
    root, expected = checkout
    repo_id, url = deployed
    assert url == f"{hub_server.endpoint}/spaces/{repo_id}"
    api = HfApi(token=hub_server.token)
    files = set(api.list_repo_files(repo_id, repo_type="space"))
    assert files == expected
    assert {"trainer/default_model/head.json", "space/app.py", "hub_tools/auth.py", "requirements.txt"} <= files
    assert not {f for f in files if f.startswith(("tests/", "benchmarks/", "data/", "runs/"))}
    assert not {f for f in files if "__pycache__" in f or f.endswith((".pyc", ".pyi"))}

    info = api.space_info(repo_id)
    assert info.sdk == "gradio" and not info.private
    assert info.card_data.app_file == "space/app.py" and info.card_data.hf_oauth is True
    assert [c.title for c in api.list_repo_commits(repo_id, repo_type="space")][0] == "Deploy FaceReg"

    again = run_deploy([repo_id, "--token", hub_server.token], root)  # deploying again is fine
    assert again.returncode == 0 and again.stdout.strip() == url, again.stderr
    assert set(api.list_repo_files(repo_id, repo_type="space")) == expected


@needs_lfw
def test_the_deployed_space_starts_and_verifies(hub_server: HubServer, checkout: tuple[Path, set[str]],
                                                deployed: tuple[str, str], tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    from space.testing import free_port

    _, expected = checkout
    repo_id, _ = deployed
    space = Path(snapshot_download(repo_id, repo_type="space", local_dir=tmp_path / "space", token=hub_server.token))
    downloaded = {p.relative_to(space).as_posix() for p in space.rglob("*") if p.is_file()}
    assert {f for f in downloaded if not f.startswith(".cache/")} == expected
    card = metadata_load(space / "README.md")
    assert (space / "README.md").read_bytes() == (REPO_ROOT / "space" / "README.md").read_bytes()
    assert "gradio[oauth]>=6.0,<7" in (space / "requirements.txt").read_text().splitlines()  # Space mode needs it

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(
        GRADIO_SERVER_NAME="127.0.0.1",
        GRADIO_SERVER_PORT=str(port),
        GRADIO_ANALYTICS_ENABLED="False",
        SYSTEM="spaces",
        SPACE_ID=repo_id,
        SPACE_HOST=f"127.0.0.1:{port}",
        OAUTH_CLIENT_ID=uuid.uuid4().hex,
        OAUTH_CLIENT_SECRET=uuid.uuid4().hex,
        OAUTH_SCOPES=" ".join(["openid", "profile", *card["hf_oauth_scopes"]]),
        OPENID_PROVIDER_URL=hub_server.endpoint,
    )
    log = tmp_path / "space.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, card["app_file"]], cwd=space, env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for(url, process, log)
        client = Client(url, verbose=False)
        assert client.config["space_id"] == repo_id  # Gradio runs in Space mode (OAuth routes, login button)
        threshold = json.loads((space / "trainer" / "default_model" / "head.json").read_text())["threshold"]
        colin_1 = handle_file(str(lfw_image("Colin_Powell", 1)))
        genuine = client.predict(colin_1, handle_file(str(lfw_image("Colin_Powell", 2))), threshold,
                                 api_name="/verify")[-1]
        impostor = client.predict(colin_1, handle_file(str(lfw_image("Tony_Blair", 1))), threshold,
                                  api_name="/verify")[-1]
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert genuine["is_match"] and not impostor["is_match"]
    assert genuine["score"] >= threshold > impostor["score"]
    assert genuine["threshold"] == pytest.approx(threshold)
    assert "inference process ready" in log.read_text()  # the Space's own copy of trainer answered, in its process


def wait_for(url: str, process: subprocess.Popen, log: Path) -> None:
    """Wait until the app answers at `url`; fail with its log if it exits or takes too long."""
    deadline = time.monotonic() + APP_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-4000:]
            pytest.fail(f"the Space's app exited with {process.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    tail = log.read_text(errors="replace")[-4000:]
    pytest.fail(f"the Space's app did not answer within {APP_START_TIMEOUT_S}s:\n{tail}")


def test_deploy_without_a_token_says_so(checkout: tuple[Path, set[str]], hub_server: HubServer) -> None:
    root, _ = checkout
    repo_id = space_id()
    result = run_deploy([repo_id], root, HF_TOKEN="")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip() == (
        "error: deploying a Space needs a Hugging Face token: pass --token (token= in Python), set HF_TOKEN, "
        "or run `hf auth login`"
    )
    assert not HfApi(token=hub_server.token).repo_exists(repo_id, repo_type="space")


def test_deploy_with_a_refused_token_says_so_without_the_token(checkout: tuple[Path, set[str]]) -> None:
    root, _ = checkout
    secret = f"hf_wrong_{uuid.uuid4().hex}"
    result = run_deploy([space_id(), "--token", secret], root)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("error: the Hub at ") and "refused the token" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert secret not in result.stderr


def test_deploy_to_an_invalid_repo_id_says_so(checkout: tuple[Path, set[str]], hub_server: HubServer) -> None:
    root, _ = checkout
    result = run_deploy(["me/not a name", "--token", hub_server.token], root)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("error: invalid repo id 'me/not a name'")
    assert len(result.stderr.strip().splitlines()) == 1 and hub_server.token not in result.stderr


def test_a_space_card_that_would_not_run_is_refused_before_any_upload(checkout: tuple[Path, set[str]],
                                                                       hub_server: HubServer, tmp_path: Path) -> None:
    from space.deploy import SpaceFilesError, deploy_space

    root = tmp_path / "checkout"
    shutil.copytree(checkout[0], root)
    card = root / "space" / "README.md"
    card.write_text(card.read_text().replace("app_file: space/app.py", "app_file: app.py"))
    repo_id = space_id()
    with pytest.raises(SpaceFilesError, match="app_file 'app.py' is not among the files deployed"):
        deploy_space(repo_id, token=hub_server.token, root=root)
    (root / "requirements.txt").unlink()
    with pytest.raises(SpaceFilesError, match="requirements.txt is missing"):
        deploy_space(repo_id, token=hub_server.token, root=root)
    assert not HfApi(token=hub_server.token).repo_exists(repo_id, repo_type="space")

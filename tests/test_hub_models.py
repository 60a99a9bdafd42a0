"""hub_tools model repos and Hub errors, with the real `huggingface_hub` client against the local Hub server."""
from __future__ import annotations

import json
import socket
import traceback
from pathlib import Path

import httpx2
import numpy as np
import pytest
from huggingface_hub import HfApi, constants, snapshot_download
from huggingface_hub.utils import hf_raise_for_status

import hub_tools
from hub_tools import (
    HubUnreachableError,
    InvalidTokenError,
    MissingTokenError,
    ModelFolderError,
    RepoNotFoundError,
    hub_errors,
)

CONFIG = {
    "format": 1,
    "backbone": "classic",
    "input_size": 100,
    "threshold": 0.37,
    "flip": True,
    "detector": "mtcnn",
    "metrics": {"accuracy": 0.91, "f1": 0.9, "roc_auc": 0.95, "eer": 0.1},
    "dataset": "someone/faces",
}
WRONG_TOKEN = "hf_WrongTokenThatMustNeverBeShown0123456789"


def closed_port_endpoint() -> str:
    """An http endpoint on a local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def assert_secret_free(exc: BaseException, secret: str) -> None:
    """Neither the message nor the whole chained traceback shows the secret."""
    assert secret not in str(exc)
    assert secret not in "".join(traceback.format_exception(exc))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A FaceReg model folder with a tiny real Keras model."""
    import keras

    folder = tmp_path_factory.mktemp("model")
    inputs = keras.Input((6,))
    outputs = keras.layers.Dense(1, activation="sigmoid", name="head")(keras.layers.Dense(4, name="hidden")(inputs))
    keras.Model(inputs, outputs).save(folder / "model.keras")
    (folder / "facereg.json").write_text(json.dumps(CONFIG))
    return folder


@pytest.fixture()
def no_stored_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No HF_TOKEN and no stored login."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "token"))


def test_push_then_pull_gives_the_same_model(model_dir: Path, hub_server, hub_repo_id: str) -> None:
    import keras

    url = hub_tools.push_model(model_dir, hub_repo_id, token=hub_server.token)
    assert url.startswith(hub_server.endpoint) and url.endswith(hub_repo_id)
    pulled = hub_tools.pull_model(hub_repo_id, token=hub_server.token)
    assert json.loads((pulled / "facereg.json").read_text()) == CONFIG
    x = np.random.default_rng(0).normal(size=(5, 6)).astype("float32")
    original = keras.saving.load_model(model_dir / "model.keras").predict(x, verbose=0)
    np.testing.assert_array_equal(keras.saving.load_model(pulled / "model.keras").predict(x, verbose=0), original)
    assert not (pulled / "config.json").exists()


def test_model_card_has_metadata_and_metrics(model_dir: Path, hub_server, hub_repo_id: str) -> None:
    hub_tools.push_model(model_dir, hub_repo_id, token=hub_server.token, private=True)
    card = hub_tools.read_model_card(hub_repo_id, token=hub_server.token)
    pulled = hub_tools.pull_model(hub_repo_id, token=hub_server.token)
    assert card == hub_tools.read_model_card(pulled)
    assert not (model_dir / "README.md").exists()
    assert card["library_name"] == "keras"
    assert {"facereg", "face-verification", "classic"} <= set(card["tags"])
    assert card["datasets"] == ["someone/faces"]
    metrics = {m["type"]: m["value"] for m in card["model-index"][0]["results"][0]["metrics"]}
    assert metrics == {"accuracy": 0.91, "f1": 0.9, "roc_auc": 0.95, "eer": 0.1}  # the threshold is no metric
    readme = (pulled / "README.md").read_text()
    assert f'Verifier.from_hub("{hub_repo_id}")' in readme and hub_server.token not in readme


def test_pull_into_a_folder_at_a_revision(model_dir: Path, hub_server, hub_repo_id: str, tmp_path: Path) -> None:
    hub_tools.push_model(model_dir, hub_repo_id, token=hub_server.token)
    out = hub_tools.pull_model(hub_repo_id, "main", token=hub_server.token, local_dir=tmp_path / "out")
    assert out == tmp_path / "out" and (out / "model.keras").is_file()


@pytest.mark.parametrize(
    ("broken", "named"),
    [
        ({"model.keras": None}, "model.keras"),
        ({"facereg.json": None}, "facereg.json"),
        ({"facereg.json": {"backbone": "classic"}}, "threshold"),
        ({"facereg.json": {"threshold": 0.5}}, "backbone"),
        ({"facereg.json": "{not json"}, "JSON"),
    ],
)
def test_invalid_model_folder_is_refused(model_dir: Path, tmp_path: Path, broken: dict, named: str) -> None:
    for name in ("model.keras", "facereg.json"):
        (tmp_path / name).write_bytes((model_dir / name).read_bytes())
    for name, content in broken.items():
        if content is None:
            (tmp_path / name).unlink()
        else:
            (tmp_path / name).write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(ModelFolderError, match=named):
        hub_tools.push_model(tmp_path, "someone/never-pushed", token="unused")


def test_pulling_a_repo_that_is_not_a_facereg_model(hub_server, hub_repo_id: str) -> None:
    api = HfApi(token=hub_server.token)
    api.create_repo(hub_repo_id)
    api.upload_file(path_or_fileobj=b"# just a readme\n", path_in_repo="README.md", repo_id=hub_repo_id)
    with pytest.raises(ModelFolderError, match="model.keras"):
        hub_tools.pull_model(hub_repo_id, token=hub_server.token)


def test_missing_token_says_how_to_provide_one(model_dir: Path, hub_repo_id: str, no_stored_token: None) -> None:
    with pytest.raises(MissingTokenError, match="HF_TOKEN") as caught:
        hub_tools.push_model(model_dir, hub_repo_id)
    assert "--token" in str(caught.value) and "hf auth login" in str(caught.value)


def test_token_from_hf_token_env(model_dir: Path, hub_server, hub_repo_id: str, no_stored_token, monkeypatch) -> None:
    monkeypatch.setenv("HF_TOKEN", hub_server.token)
    hub_tools.push_model(model_dir, hub_repo_id)
    assert (hub_tools.pull_model(hub_repo_id) / "model.keras").is_file()


def test_wrong_token_is_named_and_never_shown(model_dir: Path, hub_server, hub_repo_id: str) -> None:
    with pytest.raises(InvalidTokenError, match="token") as caught:
        hub_tools.push_model(model_dir, hub_repo_id, token=WRONG_TOKEN)
    assert_secret_free(caught.value, WRONG_TOKEN)


def test_repo_not_found_names_the_repo(hub_server, hub_repo_id: str) -> None:
    with pytest.raises(RepoNotFoundError, match=hub_repo_id) as caught:
        hub_tools.pull_model(hub_repo_id, token=hub_server.token)
    assert caught.value.repo_id == hub_repo_id
    assert_secret_free(caught.value, hub_server.token)


def test_private_repo_needs_a_token(model_dir: Path, hub_server, hub_repo_id: str, no_stored_token) -> None:
    hub_tools.push_model(model_dir, hub_repo_id, token=hub_server.token, private=True)
    with pytest.raises((RepoNotFoundError, MissingTokenError), match=hub_repo_id):
        hub_tools.pull_model(hub_repo_id)


def test_server_text_is_masked_and_kept_on_one_line() -> None:
    request = httpx2.Request("POST", "http://127.0.0.1:1/api/repos/create")
    response = httpx2.Response(500, request=request, headers={"X-Error-Message": f"boom\n{WRONG_TOKEN} rejected"})
    with pytest.raises(hub_tools.HubError, match="HTTP 500") as caught:
        with hub_errors("someone/model", token=WRONG_TOKEN):
            hf_raise_for_status(response)
    assert "\n" not in str(caught.value) and "*** rejected" in str(caught.value)
    assert WRONG_TOKEN not in str(caught.value)


def test_unreachable_endpoint_is_named() -> None:
    endpoint = closed_port_endpoint()
    with pytest.raises(HubUnreachableError, match=endpoint) as caught:
        with hub_errors("someone/model", token=WRONG_TOKEN):
            HfApi(endpoint=endpoint, token=WRONG_TOKEN).model_info("someone/model")
    assert caught.value.endpoint == endpoint
    assert_secret_free(caught.value, WRONG_TOKEN)
    with pytest.raises(HubUnreachableError, match=endpoint):
        with hub_errors("someone/model", token=None):
            snapshot_download("someone/model", endpoint=endpoint, token=False, etag_timeout=2)


def test_a_generated_card_is_rebuilt_for_the_repo_and_a_hand_written_one_is_kept(
    model_dir: Path, hub_server, tmp_path: Path
) -> None:
    folder = tmp_path / "run-20261129-121817-b8f908"
    for name in ("model.keras", "facereg.json"):
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_bytes((model_dir / name).read_bytes())
    hub_tools.build_model_card(CONFIG).save(folder / "README.md")  # as the trainer writes it, before publishing
    hub_tools.push_model(folder, "alice/rebuilt", token=hub_server.token)
    card = (hub_tools.pull_model("alice/rebuilt", token=hub_server.token) / "README.md").read_text()
    assert "# alice/rebuilt\n" in card and folder.name not in card and "USER/MODEL" not in card
    (folder / "README.md").write_text("# My own card\n")
    hub_tools.push_model(folder, "alice/kept", token=hub_server.token)
    assert (hub_tools.pull_model("alice/kept", token=hub_server.token) / "README.md").read_text() == "# My own card\n"


def test_an_older_facereg_json_gets_an_interval_from_its_number_of_pairs() -> None:
    config = {**CONFIG, "metrics": {"accuracy": 1.0, "f1": 1.0, "validation_pairs": 108}}
    card = hub_tools.build_model_card(config, "alice/facereg")
    assert {m["type"] for m in card.data.to_dict()["model-index"][0]["results"][0]["metrics"]} == {"accuracy", "f1"}
    assert "| accuracy | 1.0000 | 0.9657 - 1.0000 | 108 of 108 pairs decided right |" in str(card)


def test_a_card_written_in_a_space_names_that_space(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPACE_ID", "alice/facereg-app")  # what Hugging Face sets in a running Space
    monkeypatch.delenv("FACEREG_SOURCE_URL", raising=False)
    card = str(hub_tools.build_model_card(CONFIG, "alice/facereg"))
    assert 'Client("alice/facereg-app")' in card
    assert f'pip install "git+{constants.ENDPOINT}/spaces/alice/facereg-app"' in card
    monkeypatch.setenv("FACEREG_SOURCE_URL", "https://example.org/facereg.git")
    assert 'pip install "git+https://example.org/facereg.git"' in str(hub_tools.build_model_card(CONFIG, "alice/x"))

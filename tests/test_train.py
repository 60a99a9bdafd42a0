"""Training end to end on a tiny LFW dataset: both backbones, the Hub round trip, resume after SIGKILL, errors."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.conftest import REPO_ROOT, lfw_image, needs_lfw
from trainer.cli import main
from trainer.errors import DatasetError, UnknownBackboneError
from trainer.train import checkpoint_dir_for, train
from trainer.verify import Verifier

pytestmark = needs_lfw

USER = "Colin_Powell"
OTHERS = ["Tony_Blair", "Donald_Rumsfeld", "Gerhard_Schroeder", "Ariel_Sharon", "Hugo_Chavez", "Jean_Chretien"]
MODEL_FILES = {"model.keras", "facereg.json", "metrics.json", "README.md", "roc.png", "scores.png", "saved_model"}


def make_dataset(folder: Path, anchors: int = 6, positives: int = 6, negatives: int = 6) -> Path:
    """A FaceReg folder: the user's anchors and positives, one image each of other people as negatives."""
    for label in ("anchor", "positive", "negative"):
        (folder / label).mkdir(parents=True, exist_ok=True)
    for n in range(1, anchors + 1):
        shutil.copy(lfw_image(USER, n), folder / "anchor")
    for n in range(anchors + 1, anchors + positives + 1):
        shutil.copy(lfw_image(USER, n), folder / "positive")
    for name in OTHERS[:negatives]:
        shutil.copy(lfw_image(name, 1), folder / "negative")
    return folder


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """The session's face cache, shared with test_data through the base temp folder."""
    return tmp_path_factory.getbasetemp() / "face-cache"


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory) -> Path:
    """18 faces, plus an image without a face and a corrupt one (both must be skipped and counted)."""
    import cv2

    folder = make_dataset(tmp_path_factory.mktemp("faces"))
    cv2.imwrite(str(folder / "negative" / "blank.png"), np.full((200, 200, 3), 90, np.uint8))
    (folder / "negative" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    return folder


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory) -> Path:
    """9 faces (2 of each label to train on, 1 to validate): classic epochs of 8 pairs keep the resume test short."""
    return make_dataset(tmp_path_factory.mktemp("small"), 3, 3, 3)


def weights_of(folder: Path) -> list[np.ndarray]:
    """The weights of a saved model folder's model.keras."""
    return keras.saving.load_model(folder / "model.keras").get_weights()


def test_dlib_head_on_a_private_hub_dataset_is_published_and_pulled_back(hub_server, dataset_dir, cache_dir, tmp_path):
    import hub_tools

    data_repo, model_repo = "facereg/train-faces", "facereg/train-model"
    hub_tools.push_dataset(dataset_dir, data_repo, private=True, token=hub_server.token)
    steps: list[tuple[float, str]] = []
    output = tmp_path / "model"
    started = datetime.now(timezone.utc).replace(microsecond=0)
    result = train(data_repo, "dlib_resnet", 3, output, push_to=model_repo, token=hub_server.token,
                   progress=lambda fraction, message: steps.append((fraction, message)), cache_dir=cache_dir, verbose=0)

    assert {p.name for p in output.iterdir()} == MODEL_FILES
    assert len(result.no_face) == 1 and len(result.corrupt) == 1
    assert result.faces == {"train": {"anchor": 4, "positive": 4, "negative": 4},
                            "validation": {"anchor": 2, "positive": 2, "negative": 2}}
    config = json.loads((output / "facereg.json").read_text())
    assert config["threshold"] == result.threshold and 0 < result.threshold < 1
    assert config["backbone"] == "dlib_resnet" and config["dataset"] == data_repo
    assert datetime.fromisoformat(config["created"]) >= started  # made now, not the default head's date
    assert set(config["metrics"]) >= {"accuracy", "f1", "precision", "recall", "roc_auc", "eer"}
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["data"]["images"] == 20 and metrics["validation"]["pairs"] == 8
    assert metrics["training"]["mode"] == "head" and metrics["threshold_rule"] == "best F1"
    fractions = [f for f, _ in steps]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any(m.startswith("epoch 3/3") for _, m in steps)

    pulled = hub_tools.pull_model(model_repo, token=hub_server.token)
    assert MODEL_FILES <= {p.name for p in pulled.iterdir()}
    verifier = Verifier.from_dir(pulled)
    assert verifier.threshold == pytest.approx(result.threshold)
    same = verifier.verify(lfw_image(USER, 20), lfw_image(USER, 21))
    other = verifier.verify(lfw_image(USER, 20), lfw_image("George_W_Bush", 1))
    assert same["is_match"] and not other["is_match"]


def test_classic_resumes_after_sigkill_with_the_weights_of_an_uninterrupted_run(small_dir, cache_dir, tmp_path):
    reference = train(small_dir, "classic", 3, tmp_path / "reference", checkpoint_every=1, cache_dir=cache_dir,
                      verbose=0)
    assert reference.resumed_from == 0 and len(reference.history["loss"]) == 3
    assert {p.name for p in (tmp_path / "reference").iterdir()} == MODEL_FILES

    output = tmp_path / "killed"
    state = checkpoint_dir_for(output) / "state.json"
    command = [sys.executable, "-m", "trainer", "train", "--dataset", str(small_dir), "--backbone", "classic",
               "--epochs", "3", "--checkpoint-every", "1", "--output", str(output), "--cache-dir", str(cache_dir)]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not (state.is_file() and json.loads(state.read_text())["epoch"] >= 1):
            assert process.poll() is None and time.monotonic() < deadline, "training ended before a checkpoint"
            time.sleep(0.05)
        process.kill()  # SIGKILL: no handler, no clean-up
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -9 and not (output / "model.keras").exists()
    checkpoint_epoch = json.loads(state.read_text())["epoch"]

    resumed = train(small_dir, "classic", 3, output, resume=True, checkpoint_every=1, cache_dir=cache_dir,
                    verbose=0)
    assert resumed.resumed_from == checkpoint_epoch < 3
    # The killed run is the CLI, which sizes TensorFlow's threads (configure_cpu); the reference ran in this process.
    # Sums then add up in another order: on an AVX-512 machine one weight of 19,200 differed by 1.02e-6. A resume
    # that does not restore even the dropout RNG's state differs by 1.7e-4 (tried as a mutation of _restore).
    for a, b in zip(weights_of(output), weights_of(tmp_path / "reference"), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    assert resumed.threshold == pytest.approx(reference.threshold, abs=1e-6)


def test_cli_unfreeze_fine_tunes_only_the_last_block_and_meets_a_target_far(small_dir, cache_dir, tmp_path, capsys):
    from trainer.default_model import load_default_model

    output = tmp_path / "model"
    assert main(["train", "--dataset", str(small_dir), "--backbone", "dlib_resnet", "--epochs", "1", "--unfreeze", "1",
                 "--output", str(output), "--target-far", "0.01", "--cache-dir", str(cache_dir)]) == 0
    assert f"wrote {output}: threshold" in capsys.readouterr().out
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["training"]["mode"] == "unfreeze"
    assert metrics["threshold_rule"] == "lowest threshold with FAR <= 0.01"
    validation = metrics["validation"]
    assert validation["recall"] == 0 or validation["precision"] == 1.0  # no impostor pair is accepted

    before = load_default_model()[0].get_layer("embedding")
    after = keras.saving.load_model(output / "model.keras").get_layer("embedding")
    changed = {layer.name for layer in before.layers
               if any(not np.array_equal(w0, w1)
                      for w0, w1 in zip(layer.get_weights(), after.get_layer(layer.name).get_weights()))}
    assert "fc" in changed and any(name.startswith("stage5_block1_") for name in changed)
    assert all(name == "fc" or name.startswith("stage5_block1_") for name in changed)


@pytest.fixture(scope="module")
def bad_datasets(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """Datasets that must be refused before training, with the message each must give."""
    root = tmp_path_factory.mktemp("bad")
    no_anchor = make_dataset(root / "no_anchor")
    shutil.rmtree(no_anchor / "anchor")
    too_few = make_dataset(root / "too_few", anchors=1, positives=2, negatives=2)
    wrong_schema = make_dataset(root / "wrong_schema", 2, 2, 2)
    (wrong_schema / "friends").mkdir()
    return {
        "no anchor": (no_anchor, "has no anchor images"),
        "too few": (too_few, "too few faces to split"),
        "wrong schema": (wrong_schema, "'friends' is not a label"),
    }


@pytest.mark.parametrize("case", ["no anchor", "too few", "wrong schema"])
def test_unusable_datasets_are_refused_before_training(bad_datasets, case, cache_dir, tmp_path, capsys):
    folder, message = bad_datasets[case]
    with pytest.raises(DatasetError, match=message):
        train(folder, "dlib_resnet", 1, tmp_path / "model", cache_dir=cache_dir)
    assert main(["train", "--dataset", str(folder), "--backbone", "classic", "--epochs", "1",
                 "--output", str(tmp_path / "cli"), "--cache-dir", str(cache_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not any(tmp_path.iterdir())  # nothing written, no checkpoint


def test_unknown_backbone_and_missing_token_are_refused_first(dataset_dir, tmp_path, capsys, monkeypatch):
    from hub_tools import MissingTokenError

    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(UnknownBackboneError, match="choose one of: classic, dlib_resnet"):
        train(tmp_path / "no such dataset", "resnet50", 1, tmp_path / "model")
    with pytest.raises(MissingTokenError, match="needs a Hugging Face token"):
        train(dataset_dir, "dlib_resnet", 1, tmp_path / "model", push_to="me/model")
    for args in (["--backbone", "resnet50"], ["--backbone", "dlib_resnet", "--push-to", "me/model"]):
        code = main(["train", "--dataset", str(dataset_dir), "--epochs", "1", "--output", str(tmp_path / "m"), *args])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert not any(tmp_path.iterdir())

"""hub_tools face datasets, with the real `huggingface_hub` and `datasets` clients against the local Hub server."""
from __future__ import annotations

import io
import json
import shutil
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pytest
from huggingface_hub import HfApi, constants
from PIL import Image

import hub_tools
from hub_tools import DatasetSchemaError, RepoNotFoundError
from tests.conftest import lfw_image

COUNTS = {"anchor": 2, "positive": 3, "negative": 2}


def write_faces(folder: Path, counts: dict[str, int], seed: int) -> dict[str, list[bytes]]:
    """Small distinct face-like PNGs in label folders; returns each label's pixel bytes."""
    rng = np.random.default_rng(seed)
    pixels: dict[str, list[bytes]] = {}
    for label, count in counts.items():
        (folder / label).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            array = rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)
            Image.fromarray(array).save(folder / label / f"{seed}_{i}.png")
            pixels.setdefault(label, []).append(array.tobytes())
    return pixels


def pixels_by_label(dataset: datasets.Dataset) -> dict[str, list[bytes]]:
    """Each label's decoded pixel bytes."""
    names = dataset.features["label"].names
    found: dict[str, list[bytes]] = {}
    for row in dataset:
        found.setdefault(names[row["label"]], []).append(np.asarray(row["image"].convert("RGB")).tobytes())
    return found


def same_pixels(a: dict[str, list[bytes]], b: dict[str, list[bytes]]) -> bool:
    """Same images under each label, in any order."""
    return {k: sorted(v) for k, v in a.items()} == {k: sorted(v) for k, v in b.items()}


@pytest.fixture()
def faces(tmp_path: Path) -> tuple[Path, dict[str, list[bytes]]]:
    """A local FaceReg folder and its images' pixels."""
    folder = tmp_path / "faces"
    return folder, write_faces(folder, COUNTS, seed=1)


def test_local_folder_loads_with_the_faces_schema(faces) -> None:
    folder, pixels = faces
    dataset = hub_tools.load_faces(folder)
    assert dataset.features == hub_tools.faces_features()
    assert dataset.features["label"].names == ["anchor", "positive", "negative"]
    assert same_pixels(pixels_by_label(dataset), pixels)


def test_push_then_load_gives_the_rows_and_labels(faces, hub_server, hub_repo_id: str) -> None:
    folder, pixels = faces
    url = hub_tools.push_dataset(folder, hub_repo_id, token=hub_server.token, person="ada", session="s1")
    assert url.endswith(f"datasets/{hub_repo_id}")
    dataset = hub_tools.load_faces(hub_repo_id, token=hub_server.token)
    assert dataset.features == hub_tools.faces_features()
    assert same_pixels(pixels_by_label(dataset), pixels)
    assert set(dataset["person"]) == {"ada"} and set(dataset["session"]) == {"s1"}
    plain = datasets.load_dataset(hub_repo_id, split="train", token=hub_server.token)
    assert plain.features == hub_tools.faces_features()


def test_datasets_of_faces_are_private_by_default(faces, hub_server, hub_repo_id: str, monkeypatch, tmp_path) -> None:
    hub_tools.push_dataset(faces[0], hub_repo_id, token=hub_server.token)
    assert HfApi(token=hub_server.token).repo_info(hub_repo_id, repo_type="dataset").private
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-stored-token"))
    with pytest.raises(RepoNotFoundError, match="HF_TOKEN"):
        hub_tools.load_faces(hub_repo_id)


def test_public_when_asked(faces, hub_server, hub_repo_id: str) -> None:
    hub_tools.push_dataset(faces[0], hub_repo_id, token=hub_server.token, private=False)
    assert not HfApi(token=hub_server.token).repo_info(hub_repo_id, repo_type="dataset").private


def test_pushing_again_adds_only_new_images(faces, hub_server, hub_repo_id: str) -> None:
    folder, pixels = faces
    progress: list[tuple[float, str]] = []
    hub_tools.push_dataset(folder, hub_repo_id, token=hub_server.token)
    api = HfApi(token=hub_server.token)
    first_files = set(api.list_repo_files(hub_repo_id, repo_type="dataset"))
    first_commit = api.dataset_info(hub_repo_id).sha
    hub_tools.push_dataset(folder, hub_repo_id, token=hub_server.token)
    assert api.dataset_info(hub_repo_id).sha == first_commit  # nothing new, no commit

    added = write_faces(folder, {"positive": 1, "negative": 2}, seed=2)
    shutil.copy(folder / "anchor" / "1_0.png", folder / "anchor" / "copy_of_1_0.png")
    hub_tools.push_dataset(folder, hub_repo_id, token=hub_server.token, progress=lambda f, m: progress.append((f, m)))
    new_files = set(api.list_repo_files(hub_repo_id, repo_type="dataset")) - first_files
    assert len(new_files) == 3 and all(name.endswith(".png") for name in new_files)
    assert progress[-1] == (1.0, "added 3 new images")
    dataset = hub_tools.load_faces(hub_repo_id, token=hub_server.token)
    assert len(dataset) == sum(COUNTS.values()) + 3
    expected = {label: pixels.get(label, []) + added.get(label, []) for label in COUNTS}
    assert same_pixels(pixels_by_label(dataset), expected)


def test_metadata_travels_with_a_downloaded_dataset(faces, hub_server, hub_repo_id: str, tmp_path: Path) -> None:
    hub_tools.push_dataset(faces[0], hub_repo_id, token=hub_server.token, person="ada")
    local = HfApi(token=hub_server.token).snapshot_download(hub_repo_id, repo_type="dataset", local_dir=tmp_path / "dl")
    dataset = hub_tools.load_faces(local)
    assert Counter(dataset["label"]) == {0: 2, 1: 3, 2: 2} and set(dataset["person"]) == {"ada"}


def test_wrong_schema_names_the_column(hub_server, hub_repo_id: str) -> None:
    api = HfApi(token=hub_server.token)
    api.create_repo(hub_repo_id, repo_type="dataset")
    csv = b"text,label\nhello,1\n"
    api.upload_file(path_or_fileobj=csv, path_in_repo="data.csv", repo_id=hub_repo_id, repo_type="dataset")
    with pytest.raises(DatasetSchemaError, match="'image'") as caught:
        hub_tools.load_faces(hub_repo_id, token=hub_server.token)
    assert caught.value.column == "image"


def test_labels_other_than_anchor_positive_negative_name_the_label_column(hub_server, hub_repo_id: str) -> None:
    api = HfApi(token=hub_server.token)
    api.create_repo(hub_repo_id, repo_type="dataset")
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, format="PNG")
    api.upload_file(path_or_fileobj=png.getvalue(), path_in_repo="a.png", repo_id=hub_repo_id, repo_type="dataset")
    metadata = json.dumps({"file_name": "a.png", "label": "cat"}).encode()
    api.upload_file(path_or_fileobj=metadata, path_in_repo="metadata.jsonl", repo_id=hub_repo_id, repo_type="dataset")
    with pytest.raises(DatasetSchemaError, match="cat") as caught:
        hub_tools.load_faces(hub_repo_id, token=hub_server.token)
    assert caught.value.column == "label"


def test_local_folder_with_an_unknown_label_folder(faces) -> None:
    folder, _ = faces
    (folder / "cats").mkdir()
    with pytest.raises(DatasetSchemaError, match="cats") as caught:
        hub_tools.load_faces(folder)
    assert caught.value.column == "label"


def test_missing_dataset_names_the_repo(hub_server, hub_repo_id: str) -> None:
    with pytest.raises(RepoNotFoundError, match=hub_repo_id):
        hub_tools.load_faces(hub_repo_id, token=hub_server.token)


def test_lfw_faces_round_trip_privately(lfw_dir: Path, hub_server, hub_repo_id: str, tmp_path: Path) -> None:
    for label, (name, n) in {"anchor": ("Aaron_Peirsol", 1), "positive": ("Aaron_Peirsol", 2),
                             "negative": ("Abdullah_Gul", 1)}.items():
        (tmp_path / label).mkdir()
        shutil.copy(lfw_image(name, n), tmp_path / label)
    hub_tools.push_dataset(tmp_path, hub_repo_id, token=hub_server.token)  # LFW never goes public
    dataset = hub_tools.load_faces(hub_repo_id, token=hub_server.token)
    assert sorted(dataset["label"]) == [0, 1, 2] and dataset[0]["image"].size == (250, 250)


def test_dataset_card_says_what_it_holds_and_its_load_snippet_works_outside_the_repo(
    faces, hub_server, hub_repo_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import re
    import subprocess
    import sys

    hub_tools.push_dataset(faces[0], hub_repo_id, token=hub_server.token)
    api = HfApi(token=hub_server.token)
    card = Path(api.hf_hub_download(hub_repo_id, "README.md", repo_type="dataset")).read_text()
    for text in ("consent", "private", "biometric", "anchor", "negative", "load_dataset", "hub_tools.load_faces"):
        assert text in card, text
    assert hub_server.token not in card
    snippets = re.findall(r"```python\n(.*?)```", card, flags=re.S)
    load_dataset_snippet = next(s for s in snippets if "load_dataset" in s)
    assert f'load_dataset("{hub_repo_id}", split="train")' in load_dataset_snippet
    # A stranger's process: outside the repository, no FaceReg on the path, the Hub and the token from the
    # environment as `hf auth login` or HF_TOKEN would give them (the endpoint is the local Hub server's).
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FACEREG_HUB_ENDPOINT")}
    env.update(HF_ENDPOINT=hub_server.endpoint, HF_HUB_DISABLE_XET="1", HF_TOKEN=hub_server.token,
               HF_HOME=str(tmp_path / "hf-home"))
    done = subprocess.run([sys.executable, "-c", load_dataset_snippet], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == f"['anchor', 'positive', 'negative'] {sum(COUNTS.values())}"
    load_faces_snippet = next(s for s in snippets if "hub_tools.load_faces" in s)
    monkeypatch.setenv("HF_TOKEN", hub_server.token)
    scope: dict = {}
    exec(load_faces_snippet, scope)  # as written on the card
    assert len(scope["faces"]) == sum(COUNTS.values())

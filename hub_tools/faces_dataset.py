"""FaceReg datasets: push a folder of `anchor/`, `positive/`, `negative/` images, load one back with its schema.

On the Hub a FaceReg dataset is an image folder that `datasets.load_dataset` reads as it is:
`<label>/<sha256 of the bytes><ext>` for every image, and `metadata.jsonl` with one row per image
(`file_name`, `label`, `person`, `session`). The content-hash names make pushing again incremental: the repo's
file list says which images are already there, so only new ones are uploaded (no image is downloaded to compare),
and the same image under the same label is never stored twice. Each push is one commit of the new images plus
the updated `metadata.jsonl`.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huggingface_hub import CommitOperationAdd, DatasetCard, DatasetCardData, HfApi, constants, hf_hub_download

from hub_tools.auth import resolve_token
from hub_tools.errors import DatasetSchemaError, HubError, hub_errors, repo_not_found, translate

if TYPE_CHECKING:
    import datasets

LABELS = ("anchor", "positive", "negative")
METADATA_FILE = "metadata.jsonl"
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
OPTIONAL_COLUMNS = ("person", "session")
Progress = Callable[[float, str], Any]
"""Called as progress(fraction_done, message); a `gradio.Progress` fits."""


def faces_features() -> datasets.Features:
    """The features of a FaceReg dataset."""
    import datasets

    return datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=list(LABELS)),
            "person": datasets.Value("string"),
            "session": datasets.Value("string"),
        }
    )


@dataclass(frozen=True)
class FaceFile:
    """One image of a local FaceReg folder, with its label and optional person and session."""

    path: Path
    label: str
    person: str | None
    session: str | None

    def repo_path(self) -> str:
        """Its path in a dataset repo: label folder, content hash, original extension."""
        digest = hashlib.sha256(self.path.read_bytes()).hexdigest()
        return f"{self.label}/{digest}{self.path.suffix.lower()}"

    def metadata(self, file_name: str) -> dict[str, str | None]:
        """Its row of `metadata.jsonl`."""
        return {"file_name": file_name, "label": self.label, "person": self.person, "session": self.session}


def _read_metadata(path: Path) -> dict[str, dict[str, Any]]:
    """Rows of a `metadata.jsonl` by file name."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {row["file_name"]: row for row in rows if "file_name" in row}


def scan_folder(folder: str | Path, *, person: str | None = None, session: str | None = None) -> list[FaceFile]:
    """The images of a local FaceReg folder; `metadata.jsonl` there, else `person`/`session`, give their columns."""
    root = Path(folder)
    if not root.is_dir():
        raise HubError(f"{root} is not a folder")
    folders = (path.name for path in root.iterdir() if path.is_dir() and not path.name.startswith("."))
    unknown = sorted(name for name in folders if name not in LABELS)
    if unknown:
        raise DatasetSchemaError(
            f"{root}: folder {unknown[0]!r} is not a label; images go in anchor/, positive/ or negative/", "label"
        )
    metadata = _read_metadata(root / METADATA_FILE) if (root / METADATA_FILE).is_file() else {}
    files = []
    for label in LABELS:
        if not (root / label).is_dir():
            continue
        for path in sorted((root / label).iterdir()):
            if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
                row = metadata.get(f"{label}/{path.name}", {})
                files.append(FaceFile(path, label, row.get("person", person), row.get("session", session)))
    if not files:
        raise DatasetSchemaError(f"{root} has no images in anchor/, positive/ or negative/", "image")
    return files


DATASET_CARD_BODY = """A FaceReg face-verification dataset: photos of faces, captured with a webcam in the FaceReg app
or added from a folder with `python -m hub_tools push-dataset`, to fine-tune and check a FaceReg model.

## What the images are

| column | what it holds |
|---|---|
| `image` | one face: a 250 x 250 crop around it from the app or `facereg collect`, or a photo pushed from a folder |
| `label` | `anchor` and `positive`: the enrolled person; `negative`: other people |
| `person` | who is pictured, when the uploader gave a name (may be empty) |
| `session` | the capture session (may be empty) |

Files are stored as `<label>/<sha256 of the image>.<ext>`, with one row per image in `metadata.jsonl`.

## Consent and privacy

Faces are biometric data. Every image here must show a person who agreed to be photographed for this purpose and to
have the photos stored in this repository; whoever pushes an image is responsible for that consent, and anyone
pictured may ask for their images to be removed. FaceReg creates face datasets **private**: only their owner (and
people they grant access) can read them. Keep it so unless everyone pictured agreed to publication. Use the images
only to train and check face verification for the people who consented, never to identify or track anyone.

## Load it

With `datasets` (for a private repo, run `hf auth login` first or set `HF_TOKEN`):

```python
from datasets import load_dataset

faces = load_dataset("{repo_id}", split="train")
print(faces.features["label"].names, len(faces))
```

With FaceReg (`pip install "git+{source_url}"`), which checks the schema:

```python
import hub_tools

faces = hub_tools.load_faces("{repo_id}")
```

Fine-tune a model on it: `facereg train --dataset {repo_id} --backbone dlib_resnet --epochs 30 --output model`.
"""


def _dataset_card(repo_id: str) -> DatasetCard:
    """The card of a new FaceReg dataset repo; its `configs` entry makes `load_dataset` give the FaceReg features."""
    features = [
        {"name": "image", "dtype": "image"},
        {"name": "label", "dtype": {"class_label": {"names": dict(enumerate(LABELS))}}},
        *({"name": column, "dtype": "string"} for column in OPTIONAL_COLUMNS),
    ]
    data_files = [{"split": "train", "path": [f"{label}/*" for label in LABELS] + [METADATA_FILE]}]
    data = DatasetCardData(
        tags=["facereg", "face-verification", "faces"],
        task_categories=["image-classification"],
        pretty_name=repo_id.split("/")[-1],
        configs=[{"config_name": "default", "data_files": data_files, "features": features}],
    )
    from hub_tools.models import source_url

    body = DATASET_CARD_BODY.format(repo_id=repo_id, source_url=source_url())
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n\n# {data.pretty_name}\n\n{body}\n")


def push_dataset(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool = True,
    token: str | None = None,
    person: str | None = None,
    session: str | None = None,
    progress: Progress | None = None,
) -> str:
    """Add a local FaceReg folder's new images to a dataset repo (created private unless asked); return its URL."""
    report = progress or (lambda fraction, message: None)
    files = scan_folder(folder, person=person, session=session)
    token = resolve_token(token, required=True, action="pushing a dataset")
    with hub_errors(repo_id, token=token, repo_type="dataset"):
        api = HfApi(token=token)
        repo_url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        repo_id = repo_url.repo_id
        head = api.dataset_info(repo_id).sha  # every read and the commit below work on this one revision
        existing = set(api.list_repo_files(repo_id, repo_type="dataset", revision=head))
        report(0.1, f"hashing {len(files)} images")
        new = {path: face for face in files if (path := face.repo_path()) not in existing}
        if not new:
            report(1.0, "no new images")
            return str(repo_url)
        rows = {}
        if METADATA_FILE in existing:
            downloaded = hf_hub_download(repo_id, METADATA_FILE, repo_type="dataset", revision=head, token=token)
            rows = _read_metadata(Path(downloaded))
        rows.update({path: face.metadata(path) for path, face in new.items()})
        operations = [CommitOperationAdd(path, face.path) for path, face in new.items()]
        metadata = "".join(json.dumps(row) + "\n" for row in rows.values()).encode()
        operations.append(CommitOperationAdd(METADATA_FILE, metadata))
        if "README.md" not in existing:
            operations.append(CommitOperationAdd("README.md", str(_dataset_card(repo_id)).encode()))
        report(0.3, f"uploading {len(new)} new images")
        api.create_commit(
            repo_id,
            operations,
            repo_type="dataset",
            commit_message=f"Add {len(new)} face images",
            parent_commit=head,  # a concurrent push fails instead of losing metadata rows
        )
    report(1.0, f"added {len(new)} new images")
    return str(repo_url)


def _conform(dataset: datasets.Dataset, source: str) -> datasets.Dataset:
    """The dataset with exactly the FaceReg features; DatasetSchemaError names the first column that does not fit."""
    import datasets

    features = dataset.features
    if not isinstance(features.get("image"), datasets.Image):
        found = "no 'image' column" if "image" not in features else f"'image' is {features['image']}"
        raise DatasetSchemaError(f"{source} is not a FaceReg dataset: {found}, need datasets.Image", "image")
    label = features.get("label")
    expected = f"labels {', '.join(LABELS)}"
    if label is None:
        raise DatasetSchemaError(f"{source} is not a FaceReg dataset: no 'label' column ({expected})", "label")
    if isinstance(label, datasets.ClassLabel):
        if sorted(label.names) != sorted(LABELS):
            raise DatasetSchemaError(f"{source}: column 'label' has classes {label.names}, need {expected}", "label")
        if label.names != list(LABELS):
            dataset = dataset.align_labels_with_mapping({name: i for i, name in enumerate(LABELS)}, "label")
    elif label == datasets.Value("string"):
        unknown = sorted(set(dataset.unique("label")) - set(LABELS), key=str)
        if unknown:
            raise DatasetSchemaError(f"{source}: column 'label' holds {unknown[:3]}, need {expected}", "label")
    else:
        raise DatasetSchemaError(f"{source}: column 'label' is {label}, need {expected}", "label")
    for column in OPTIONAL_COLUMNS:
        if column not in features:
            dataset = dataset.add_column(column, [None] * len(dataset))
    dataset = dataset.select_columns(list(faces_features()))
    return dataset if dataset.features == faces_features() else dataset.cast(faces_features())


def load_faces(
    repo_id_or_folder: str | Path,
    *,
    token: str | bool | None = None,
    revision: str | None = None,
    allow_folder: bool = True,
) -> datasets.Dataset:
    """A FaceReg dataset (image, label, person, session) from a local folder or a dataset repo's train split.

    allow_folder=False reads only a dataset repo, even where a folder of that name exists (a public app must not
    let a visitor name a folder of the server's disk).
    """
    import datasets

    folder = Path(repo_id_or_folder)
    if allow_folder and folder.is_dir():
        files = scan_folder(folder)
        columns = {
            "image": [str(face.path) for face in files],
            "label": [face.label for face in files],
            "person": [face.person for face in files],
            "session": [face.session for face in files],
        }
        return datasets.Dataset.from_dict(columns, features=faces_features())
    repo_id = str(repo_id_or_folder)
    token = resolve_token(token, required=False)
    with hub_errors(repo_id, token=token, repo_type="dataset"):
        if not constants.HF_HUB_OFFLINE:  # pin the commit, and fail fast with a precise error
            revision = HfApi(token=token).dataset_info(repo_id, revision=revision).sha
        try:
            dataset = datasets.load_dataset(repo_id, split="train", token=token, revision=revision)
        except datasets.exceptions.DatasetNotFoundError as exc:
            error = translate(exc, repo_id=repo_id, token=token, repo_type="dataset")
            raise error or repo_not_found(repo_id, token=token, repo_type="dataset") from exc
    return _conform(dataset, f"dataset {repo_id!r}")

"""FaceReg model repos: validate a model folder, write its model card, push it, pull it, read its card.

A FaceReg model folder holds `model.keras`, `facereg.json` (threshold, backbone, input size, metrics) and a
`README.md` model card (built from `facereg.json` on push when the folder has none). The threshold stays in
`facereg.json`: Keras' own `hf://` saving rewrites `config.json` and `README.md`, so nothing FaceReg needs
may live there.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from huggingface_hub import CommitOperationAdd, EvalResult, HfApi, ModelCard, ModelCardData, snapshot_download

from hub_tools.auth import resolve_token
from hub_tools.errors import ModelFolderError, hub_errors

MODEL_FILE = "model.keras"
CONFIG_FILE = "facereg.json"
CARD_FILE = "README.md"
TAGS = ["facereg", "face-verification", "siamese", "keras"]

CARD_TEMPLATE = """---
{{ card_data }}
---

# {{ model_name }}

A FaceReg face-verification model: a Siamese network with the `{{ backbone }}` backbone that scores whether
two face images show the same person. Pairs scoring at or above the decision threshold are the same person.

| setting | value |
|---|---|
| backbone | `{{ backbone }}` |
| input size | {{ input_size }} x {{ input_size }} |
| decision threshold | {{ threshold }} |
{% for name, value in metrics.items() %}| {{ name }} | {{ "%.4f" | format(value) }} |
{% endfor %}
{% if dataset %}Trained on the dataset [`{{ dataset }}`](/datasets/{{ dataset }}).
{% endif %}
## Usage

```python
from trainer.verify import Verifier

verifier = Verifier.from_hub("{{ repo_id }}")
verifier.verify("a.jpg", "b.jpg")
```

`model.keras` loads with `keras.saving.load_model`; the threshold, backbone and metrics are in `facereg.json`.
"""


def read_config(model_dir: str | Path) -> dict[str, Any]:
    """The validated `facereg.json` of a FaceReg model folder; ModelFolderError says what is wrong."""
    folder = Path(model_dir)
    if not folder.is_dir():
        raise ModelFolderError(f"{folder} is not a folder")
    for name in (MODEL_FILE, CONFIG_FILE):
        if not (folder / name).is_file():
            raise ModelFolderError(f"{folder} is not a FaceReg model folder: {name} is missing")
    try:
        config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFolderError(f"{folder / CONFIG_FILE} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise ModelFolderError(f"{folder / CONFIG_FILE} must hold a JSON object")
    threshold = config.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise ModelFolderError(f"{folder / CONFIG_FILE} needs a numeric 'threshold' between 0 and 1")
    if not isinstance(config.get("backbone"), str) or not config["backbone"]:
        raise ModelFolderError(f"{folder / CONFIG_FILE} needs a 'backbone' name")
    if not isinstance(config.get("metrics", {}), dict):
        raise ModelFolderError(f"{folder / CONFIG_FILE}: 'metrics' must be an object of name: number")
    return config


def build_model_card(config: dict[str, Any], repo_id: str) -> ModelCard:
    """The model card (YAML metadata with a model-index of the metrics and threshold) for a `facereg.json`."""
    model_name = repo_id.split("/")[-1]
    dataset = config.get("dataset")
    metrics = {name: value for name, value in config.get("metrics", {}).items() if isinstance(value, (int, float))}
    results = [
        EvalResult(
            task_type="image-classification",
            task_name="Face verification",
            dataset_type=dataset or "unspecified",
            dataset_name=dataset or "unspecified",
            metric_type=metric_type,
            metric_value=value,
        )
        for metric_type, value in {**metrics, "threshold": config["threshold"]}.items()
    ]
    card_data = ModelCardData(
        library_name="keras",
        tags=TAGS + [config["backbone"]],
        datasets=[dataset] if dataset else None,
        metrics=list(metrics),
        model_name=model_name,
        eval_results=results,
    )
    return ModelCard.from_template(
        card_data,
        template_str=CARD_TEMPLATE,
        model_name=model_name,
        repo_id=repo_id,
        backbone=config["backbone"],
        input_size=config.get("input_size", "?"),
        threshold=config["threshold"],
        metrics=metrics,
        dataset=dataset,
    )


def _folder_operations(folder: Path) -> list[CommitOperationAdd]:
    """An upload of every file in the folder but hidden ones (.git, .cache, ...)."""
    files = (path for path in sorted(folder.rglob("*")) if path.is_file())
    return [
        CommitOperationAdd(path.relative_to(folder).as_posix(), path)
        for path in files
        if not any(part.startswith(".") for part in path.relative_to(folder).parts)
    ]


def push_model(
    model_dir: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Publish a FaceReg model folder in one commit (with a model card built when it has none); return the repo URL."""
    folder = Path(model_dir)
    config = read_config(folder)
    token = resolve_token(token, required=True, action="pushing a model")
    operations = _folder_operations(folder)
    with hub_errors(repo_id, token=token):
        api = HfApi(token=token)
        repo_url = api.create_repo(repo_id, private=private, exist_ok=True)
        if not (folder / CARD_FILE).is_file():
            card = build_model_card(config, repo_url.repo_id)
            operations.append(CommitOperationAdd(CARD_FILE, str(card).encode()))
        api.create_commit(
            repo_url.repo_id,
            operations,
            commit_message=commit_message or f"Upload FaceReg model ({config['backbone']})",
        )
    return str(repo_url)


def pull_model(
    repo_id: str, revision: str | None = None, *, token: str | None = None, local_dir: str | Path | None = None
) -> Path:
    """Download a FaceReg model repo (into the Hub cache, or `local_dir`) and return its validated folder."""
    token = resolve_token(token, required=False)
    with hub_errors(repo_id, token=token):
        path = Path(snapshot_download(repo_id, revision=revision, token=token, local_dir=local_dir))
    try:
        read_config(path)
    except ModelFolderError as exc:
        raise ModelFolderError(f"model repo {repo_id!r} is not a FaceReg model: {exc}") from exc
    return path


def read_model_card(repo_id_or_dir: str | Path, *, token: str | None = None) -> dict[str, Any]:
    """The YAML metadata of a model card, from a local model folder or a model repo."""
    folder = Path(repo_id_or_dir)
    if folder.is_dir():
        if not (folder / CARD_FILE).is_file():
            raise ModelFolderError(f"{folder} has no {CARD_FILE}")
        return ModelCard.load(folder / CARD_FILE).data.to_dict()
    repo_id = str(repo_id_or_dir)
    token = resolve_token(token, required=False)
    with hub_errors(repo_id, token=token):
        return ModelCard.load(repo_id, token=token).data.to_dict()


"""FaceReg model repos: validate a model folder, write its model card, push it, pull it, read its card.

A FaceReg model folder holds `model.keras`, `facereg.json` (threshold, backbone, input size, metrics, the counts
they were measured on), `saved_model/` (a TensorFlow-only export) and a `README.md` model card: built from
`facereg.json` for the repo id it is pushed to, unless the folder holds a card that FaceReg did not write.
The threshold stays in `facereg.json`: Keras' own `hf://` saving rewrites `config.json` and `README.md`, so
nothing FaceReg needs may live there.
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

from huggingface_hub import (
    CommitOperationAdd,
    EvalResult,
    HfApi,
    ModelCard,
    ModelCardData,
    constants,
    snapshot_download,
)

from hub_tools.auth import resolve_token
from hub_tools.errors import ModelFolderError, hub_errors

MODEL_FILE = "model.keras"
CONFIG_FILE = "facereg.json"
CARD_FILE = "README.md"
TAGS = ["facereg", "face-verification", "siamese", "keras"]

GENERATED_MARK = "<!-- Written by FaceReg from facereg.json; rebuilt on every push. -->"
# Keys of facereg.json's "metrics" that are settings or counts, not metrics: never in the card's model-index.
NOT_METRICS = frozenset({"threshold", "validation_pairs", "pairs"})
Z_95 = 1.959963984540054  # two-sided 95 % normal quantile, for Wilson intervals
SPACE_ENV, SOURCE_ENV = "SPACE_ID", "FACEREG_SOURCE_URL"  # SPACE_ID is set by Hugging Face in a running Space
# What a card says about each backbone's pretrained weights; hub_tools knows backbones only by name.
BACKBONES = {
    "dlib_resnet": {
        "license": "cc0-1.0",
        "weights": (
            "The embedding network is dlib's `dlib_face_recognition_resnet_model_v1` by Davis King, rebuilt in "
            "Keras with its weights unchanged. Its author released the weights into the public domain (CC0). By "
            "his account it was trained on about 3 million faces of 7,485 people, from the FaceScrub and VGG face "
            "datasets and images he collected from the web, with no identity of LFW among them. The demographics "
            "of those faces (age, sex, skin tone, ethnicity) are not reported, so how well it works for groups "
            "that were rare in them is not known."
        ),
    },
    "classic": {
        "license": None,
        "weights": (
            "The `classic` embedding network was trained from scratch by whoever published this model, on the "
            "dataset named above only; it has no pretrained weights, and its licence is theirs to state."
        ),
    },
}

CARD_TEMPLATE = """---
{{ card_data }}
---

{{ mark }}

# {{ card_title }}

A FaceReg face-verification model: given two face photos, it says whether they show the same person. A Siamese
network embeds each aligned face with the `{{ backbone }}` backbone, takes the L1 distance of the two embeddings,
and a dense sigmoid head turns it into a similarity score in [0, 1]; pairs scoring at or above the decision
threshold **{{ "%.4f" | format(threshold) }}** are called the same person.

| setting | value |
|---|---|
| backbone | `{{ backbone }}` |
| face chip | {{ input_size }} x {{ input_size }} RGB, aligned on five landmarks found by `{{ detector }}` |
| test-time flip | {{ "yes (each face is embedded with its mirror image)" if flip else "no" }} |
| decision threshold | {{ "%.4f" | format(threshold) }} |
{% if dataset %}| trained on | {% if dataset_is_repo %}[`{{ dataset }}`](/datasets/{{ dataset }}){% else %}{{ dataset }}{% endif %} |
{% endif %}
## Use it

Install FaceReg (Python 3.11; TensorFlow, Keras 3 and the rest come as dependencies):

```bash
pip install "git+{{ source_url }}"
```

{% if private_hint %}If `{{ repo_id }}` is private, log in first (`hf auth login`) or set `HF_TOKEN`.

{% endif %}**Python API**: detection, alignment, test-time flip and the threshold, as the model was evaluated:

```python
from facereg import Verifier

verifier = Verifier.from_hub("{{ repo_id }}")
result = verifier.verify("a.jpg", "b.jpg")
print(result["is_match"], result["score"], result["threshold"])
```

**Command line**:

```bash
facereg verify a.jpg b.jpg --model "$(facereg-hub pull-model {{ repo_id }})"
```

**In a FaceReg Space**, through `gradio_client` (the Space switches to this model, then verifies a pair at its
threshold):

```python
from gradio_client import Client, handle_file

client = Client("{{ space_id }}")
client.predict("{{ repo_id }}", "", api_name="/load_model")
chips, verdict, score, elapsed_ms, details = client.predict(
    handle_file("a.jpg"), handle_file("b.jpg"), {{ "%.4f" | format(threshold) }}, api_name="/verify")
```

**Keras**: `model.keras` is the Siamese model (inputs: two batches of aligned chips, float32 0..255 RGB; output:
the score). Its custom layers register when `facereg` is imported:

```python
import facereg  # noqa: F401  (registers FaceReg's Keras layers)
import keras
from huggingface_hub import snapshot_download

folder = snapshot_download("{{ repo_id }}")
model = keras.saving.load_model(f"{folder}/model.keras")
```

**TensorFlow only**, no FaceReg code: `saved_model/` has an `embed` signature (aligned chips, N x {{ input_size }} x
{{ input_size }} x 3 RGB float32 0..255, to embeddings, test-time flip included) and a `score` signature (two
embedding batches to scores). Faces must be aligned as FaceReg aligns them (`trainer.extract_face`).

```python
import numpy as np
import tensorflow as tf
from huggingface_hub import snapshot_download

model = tf.saved_model.load(snapshot_download("{{ repo_id }}") + "/saved_model")
chips = np.zeros((2, {{ input_size }}, {{ input_size }}, 3), np.float32)  # your two aligned faces
embeddings = model.embed(chips)["embeddings"]
score = float(model.score(embeddings[:1], embeddings[1:])["scores"][0])  # same person if >= {{ "%.4f" | format(threshold) }}
```

`facereg.json` holds the threshold, backbone, chip size, test-time flip and the metrics below.

## How good it is

{% if evaluation %}Measured on **{{ evaluation.pairs }} pairs**{% if evaluation.genuine_pairs is defined %}
({{ evaluation.genuine_pairs }} of the same person, {{ evaluation.impostor_pairs }} of different people){% endif %}
at the threshold above{% if evaluation.data %}: {{ evaluation.data }}{% endif %}. The 95 % intervals (Wilson score
intervals on those counts) say how much so few pairs can tell: the true rate on more faces like these could be
anywhere in them, and on other people, cameras or light it may be lower still.
{% else %}This folder's `facereg.json` does not record how many pairs the metrics were measured on, so no interval
can be given: treat them as indicative only.
{% endif %}
| metric | value | 95 % interval (Wilson) | counted on |
|---|---|---|---|
{% for row in metric_rows %}| {{ row.name }} | {{ row.value }} | {{ row.interval }} | {{ row.counts }} |
{% endfor %}
{% for bench in benchmarks %}
### Context: {{ bench.name }}

{{ bench.note }} Protocol: {{ bench.protocol }}. From `{{ bench.command }}` in FaceReg's repository.

| {{ bench.columns | join(" | ") }} |
|{% for c in bench.columns %}---|{% endfor %}
{% for row in bench.rows %}| {{ row | join(" | ") }} |
{% endfor %}{% endfor %}
## Intended use

Checking, with their consent, that two photos show the same person: for example unlocking something for its
owner, or a demo of face verification. Use the score with the threshold above, or a threshold you tuned on your own
pairs for the false-accept rate you can accept.

## Out of scope

- Identifying people, or searching for a person among photos of others, without the consent of everyone pictured.
  Faces are biometric data: in many places processing them needs a legal basis and the person's consent.
- Any high-stakes decision (law enforcement, access to money, housing, work, healthcare, borders, or anything
  else where a wrong match harms someone) without a human who checks and can overrule it.
- Surveillance, tracking people across cameras, or inferring age, sex, ethnicity, emotion or anything else from a face.

## Known limits

- Pose: made for faces seen roughly from the front; profiles, strong tilt and faces partly hidden (masks, hands,
  hair, sunglasses) score less reliably, by an amount no FaceReg benchmark has measured.
- Image quality: small faces, blur, strong compression, poor or coloured light and over-exposure lower the score
  of true matches and raise errors; the detector may miss faces, and then nothing is verified.
- Look-alikes, twins and close relatives may be accepted; the same person years apart may be rejected.
- {{ weights_note }}
- The metrics above come from {{ evaluation.pairs if evaluation else "an unknown number of" }} pairs; the threshold
  is only as good as those pairs are like the faces and cameras where the model is used.

## Licence of the weights

{% if license == "cc0-1.0" %}The pretrained backbone's weights are in the public domain (CC0 1.0) by their author's
release, and FaceReg marks the whole model with the same terms (`license: cc0-1.0` above); the small head and the
threshold were trained by whoever published this model. The images it was trained on keep their own terms.
{% else %}Not stated by FaceReg: ask whoever published this model.
{% endif %}
"""


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95 % by default); (0, 1) when there are no trials."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    low, high = max(0.0, centre - half), min(1.0, centre + half)
    return (0.0 if successes == 0 else low), (1.0 if successes == trials else high)  # exact where rounding is not


def _metric_rows(metrics: dict[str, float], evaluation: dict[str, Any]) -> list[dict[str, str]]:
    """The card's metric table: value, and for rates counted on pairs, the Wilson interval and the counts."""
    counted: dict[str, tuple[int, int, str]] = {}
    if "pairs" in evaluation and "accuracy" in metrics:  # older facereg.json: only the number of pairs
        pairs = int(evaluation["pairs"])
        counted["accuracy"] = (round(metrics["accuracy"] * pairs), pairs, "pairs decided right")
    if {"pairs", "genuine_pairs", "impostor_pairs", "true_accepts", "false_accepts"} <= set(evaluation):
        ta, fa = int(evaluation["true_accepts"]), int(evaluation["false_accepts"])
        genuine, impostor = int(evaluation["genuine_pairs"]), int(evaluation["impostor_pairs"])
        correct = ta + impostor - fa
        counted = {
            "accuracy": (correct, genuine + impostor, "pairs decided right"),
            "precision": (ta, ta + fa, "accepted pairs that are the same person"),
            "recall": (ta, genuine, "same-person pairs accepted"),
        }
    rows = []
    for name, value in metrics.items():
        row = {"name": name, "value": f"{value:.4f}", "interval": "", "counts": ""}
        if name in counted:
            k, n, what = counted[name]
            low, high = wilson_interval(k, n)
            row.update(interval=f"{low:.4f} - {high:.4f}", counts=f"{k} of {n} {what}")
        rows.append(row)
    return rows


def _space_id() -> str:
    """The Space to show in the gradio_client snippet: the one running this code, else a placeholder."""
    return os.environ.get(SPACE_ENV) or "USER/SPACE"


def source_url() -> str:
    """Where `pip install git+...` gets FaceReg: FACEREG_SOURCE_URL, else the Space running this code."""
    if os.environ.get(SOURCE_ENV):
        return os.environ[SOURCE_ENV]
    space = os.environ.get(SPACE_ENV)
    return f"{constants.ENDPOINT}/spaces/{space}" if space else "<URL of FaceReg's repository or Space>"


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


def _is_repo_id(name: str | None) -> bool:
    """Whether a dataset name looks like a Hub repo id (user/name), not a description or a local path."""
    return bool(name) and re.fullmatch(r"[\w.-]+/[\w.-]+", name) is not None and not Path(name).exists()


def build_model_card(config: dict[str, Any], repo_id: str | None = None) -> ModelCard:
    """The model card of a `facereg.json`: YAML metadata with a model-index, usage, metrics with 95 % intervals,
    context figures, intended and out-of-scope use, known limits and licence. `repo_id` None: not yet published."""
    published = repo_id or "USER/MODEL"
    dataset = config.get("dataset")
    evaluation = config.get("evaluation") or {}
    if not evaluation and isinstance(config.get("metrics", {}).get("validation_pairs"), int):
        evaluation = {"pairs": config["metrics"]["validation_pairs"]}  # written before FaceReg kept the counts
    metrics = {
        name: value
        for name, value in config.get("metrics", {}).items()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and name not in NOT_METRICS
    }
    backbone = BACKBONES.get(config["backbone"], {"license": None, "weights": "The backbone's origin is not known."})
    evaluated_on = evaluation.get("data") or dataset or "unspecified"
    results = [
        EvalResult(
            task_type="image-classification",
            task_name="Face verification",
            dataset_type=dataset if _is_repo_id(dataset) else "custom",
            dataset_name=evaluated_on,
            metric_type=metric_type,
            metric_value=value,
        )
        for metric_type, value in metrics.items()
    ]
    card_data = ModelCardData(
        library_name="keras",
        license=backbone["license"],
        tags=TAGS + [config["backbone"]],
        datasets=[dataset] if _is_repo_id(dataset) else None,
        metrics=list(metrics),
        model_name=published,
        eval_results=results or None,
    )
    return ModelCard.from_template(
        card_data,
        template_str=CARD_TEMPLATE,
        mark=GENERATED_MARK,
        card_title=repo_id or "FaceReg model (not yet published)",
        repo_id=published,
        private_hint=True,
        backbone=config["backbone"],
        input_size=config.get("input_size", "?"),
        detector=config.get("detector", "mtcnn"),
        flip=bool(config.get("flip")),
        threshold=float(config["threshold"]),
        dataset=dataset,
        dataset_is_repo=_is_repo_id(dataset),
        evaluation=evaluation if "pairs" in evaluation else None,
        metric_rows=_metric_rows(metrics, evaluation),
        benchmarks=config.get("benchmarks") or [],
        weights_note=backbone["weights"],
        license=backbone["license"],
        space_id=_space_id(),
        source_url=source_url(),
    )


def _card_is_generated(path: Path) -> bool:
    """Whether a folder's README.md is a card FaceReg wrote (so it is rebuilt for the repo it is pushed to)."""
    return path.is_file() and GENERATED_MARK in path.read_text(encoding="utf-8", errors="replace")


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
    card_file = folder / CARD_FILE
    rebuild = not card_file.is_file() or _card_is_generated(card_file)  # a hand-written card is kept as it is
    operations = [op for op in _folder_operations(folder) if not (rebuild and op.path_in_repo == CARD_FILE)]
    with hub_errors(repo_id, token=token):
        api = HfApi(token=token)
        repo_url = api.create_repo(repo_id, private=private, exist_ok=True)
        if rebuild:
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


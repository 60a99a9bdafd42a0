"""A FaceReg model folder: `model.keras`, `facereg.json` (threshold, backbone, metrics) and `saved_model/`.

`saved_model/` is a TensorFlow SavedModel of the same network that loads with `tf.saved_model.load` and needs no
FaceReg code: its `embed` signature maps aligned face chips (N x S x S x 3, RGB, float32 0..255) to embeddings,
with the model's test-time flip, and its `score` signature maps two embedding batches to similarity scores.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras

from .errors import ModelFormatError
from .networks import backbone_spec

MODEL_FILE = "model.keras"
CONFIG_FILE = "facereg.json"
EXPORT_DIR = "saved_model"
FORMAT_VERSION = 1


def utc_now() -> str:
    """The time now in UTC, ISO 8601 to the second: what `ModelConfig.created` holds."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class ModelConfig:
    """What `facereg.json` holds: how to feed the model and where to cut its score."""

    backbone: str
    threshold: float = 0.5
    flip: bool = False
    detector: str = "mtcnn"
    metrics: dict[str, Any] = field(default_factory=dict)
    # How the metrics were measured: "data" (what the pairs are), "pairs", "genuine_pairs", "impostor_pairs",
    # "true_accepts", "false_accepts" (at the threshold): what the card's confidence intervals need.
    evaluation: dict[str, Any] = field(default_factory=dict)
    # Published figures that put the model in context, e.g. its backbone on LFW View 2 (rows of lfw_view2.json).
    benchmarks: list[dict[str, Any]] = field(default_factory=list)
    dataset: str | None = None
    source: str | None = None  # where the model was loaded from, e.g. "embedded default" or a repo id
    created: str | None = field(default_factory=utc_now)  # when the model was made (trained or fitted)

    @property
    def input_size(self) -> int:
        """Side of the square face chip the backbone takes."""
        return backbone_spec(self.backbone).input_size

    def to_json(self) -> dict[str, Any]:
        """The JSON object written to facereg.json."""
        data = dataclasses.asdict(self)
        data.pop("source")
        return {"format": FORMAT_VERSION, **data, "input_size": self.input_size}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ModelConfig":
        """Read facereg.json's object, ignoring keys this version does not know."""
        if "backbone" not in data or "threshold" not in data:
            raise ModelFormatError(f"{CONFIG_FILE} must name a 'backbone' and a 'threshold'")
        names = {f.name for f in dataclasses.fields(cls)} - {"source"}
        config = cls(**{k: v for k, v in data.items() if k in names})
        backbone_spec(config.backbone)
        return config


def save_model_dir(model: keras.Model, config: ModelConfig, path: str | Path, export: bool = True) -> Path:
    """Write a FaceReg model folder (model.keras, facereg.json and, unless export=False, saved_model/)."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / MODEL_FILE)
    (folder / CONFIG_FILE).write_text(json.dumps(config.to_json(), indent=2) + "\n")
    if export:
        export_saved_model(model, config, folder / EXPORT_DIR)
    return folder


def export_saved_model(model: keras.Model, config: ModelConfig, path: str | Path) -> Path:
    """Write a TensorFlow SavedModel with `embed` (chips -> embeddings) and `score` (embeddings -> scores)."""
    import tensorflow as tf

    from .verify import Verifier  # its compiled functions are what the export serves

    verifier = Verifier(model, config, precision="float32")  # runs anywhere: bfloat16 is slow without bf16 instructions
    spec, size = verifier.spec, verifier.spec.input_size
    archive = keras.export.ExportArchive()
    # No archive.track(model): the endpoints' variables are tracked anyway, and tracking the model as well
    # stores every weight twice (Keras 3.15: 44 MB instead of 22 MB for dlib_resnet).
    archive.add_endpoint(
        "embed",
        lambda chips: {"embeddings": verifier._embed_fn(chips * spec.pixel_scale)},
        input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32, name="chips")],
    )
    archive.add_endpoint(
        "score",
        lambda a, b: {"scores": verifier._score_fn(a, b)},
        input_signature=[tf.TensorSpec([None, spec.embedding_dim], tf.float32, name=n) for n in ("a", "b")],
    )
    archive.write_out(str(path), verbose=False)
    return Path(path)


def load_model_config(path: str | Path) -> ModelConfig:
    """Read facereg.json of a FaceReg model folder."""
    file = Path(path) / CONFIG_FILE
    try:
        return ModelConfig.from_json(json.loads(file.read_text()))
    except FileNotFoundError:
        raise ModelFormatError(f"{path} is not a FaceReg model folder: {CONFIG_FILE} is missing") from None
    except json.JSONDecodeError as exc:
        raise ModelFormatError(f"{file} is not valid JSON: {exc}") from None


def load_model_dir(path: str | Path) -> tuple[keras.Model, ModelConfig]:
    """Load a FaceReg model folder: the Siamese model and its config."""
    config = load_model_config(path)
    file = Path(path) / MODEL_FILE
    if not file.is_file():
        raise ModelFormatError(f"{path} is not a FaceReg model folder: {MODEL_FILE} is missing")
    config.source = str(path)
    from . import dlib_resnet  # noqa: F401  (registers its custom layers, which model.keras may use)

    return keras.saving.load_model(file), config

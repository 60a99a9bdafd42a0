"""A FaceReg model folder: `model.keras` plus `facereg.json` (threshold, backbone, metrics)."""
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
FORMAT_VERSION = 1


@dataclass
class ModelConfig:
    """What `facereg.json` holds: how to feed the model and where to cut its score."""

    backbone: str
    threshold: float = 0.5
    flip: bool = False
    detector: str = "mtcnn"
    metrics: dict[str, Any] = field(default_factory=dict)
    dataset: str | None = None
    source: str | None = None  # where the model was loaded from, e.g. "embedded default" or a repo id
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

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


def save_model_dir(model: keras.Model, config: ModelConfig, path: str | Path) -> Path:
    """Write a FaceReg model folder (model.keras and facereg.json)."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / MODEL_FILE)
    (folder / CONFIG_FILE).write_text(json.dumps(config.to_json(), indent=2) + "\n")
    return folder


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

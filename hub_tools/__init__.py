"""FaceReg's Hugging Face Hub side: publish and fetch models and face datasets, and a local Hub server.

    import hub_tools
    hub_tools.push_model("runs/best", "me/facereg")
    verifier_dir = hub_tools.pull_model("me/facereg")
    hub_tools.push_dataset("my_faces", "me/faces")          # private unless private=False
    faces = hub_tools.load_faces("me/faces")                # image, label, person, session

`FACEREG_HUB_ENDPOINT` (applied here, before `huggingface_hub` is imported) points everything at a local server.
"""
from __future__ import annotations

from hub_tools.config import apply_env

apply_env()

from hub_tools.auth import resolve_token  # noqa: E402
from hub_tools.errors import (  # noqa: E402
    DatasetSchemaError,
    HubError,
    HubUnreachableError,
    InvalidTokenError,
    MissingTokenError,
    ModelFolderError,
    RepoNotFoundError,
    hub_errors,
)
from hub_tools.faces_dataset import LABELS, faces_features, load_faces, push_dataset, scan_folder  # noqa: E402
from hub_tools.models import build_model_card, pull_model, push_model, read_config, read_model_card  # noqa: E402

__all__ = [
    "LABELS",
    "DatasetSchemaError",
    "HubError",
    "HubUnreachableError",
    "InvalidTokenError",
    "MissingTokenError",
    "ModelFolderError",
    "RepoNotFoundError",
    "build_model_card",
    "faces_features",
    "hub_errors",
    "load_faces",
    "pull_model",
    "push_dataset",
    "push_model",
    "read_config",
    "read_model_card",
    "resolve_token",
    "scan_folder",
]

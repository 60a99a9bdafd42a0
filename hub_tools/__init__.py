"""FaceReg's Hugging Face Hub side: publish and fetch models and face datasets, and a local Hub server.

    import hub_tools
    hub_tools.push_model("runs/best", "me/facereg")
    verifier_dir = hub_tools.pull_model("me/facereg")
    hub_tools.push_dataset("my_faces", "me/faces")          # private unless private=False
    faces = hub_tools.load_faces("me/faces")                # image, label, person, session

`FACEREG_HUB_ENDPOINT` (applied here, before `huggingface_hub` is imported) points everything at a local server.
"""
from __future__ import annotations

import importlib

from hub_tools.config import apply_env

apply_env()

# The public API is imported lazily, so that `hub_tools.config.use_local_hub()` can still run before
# anything imports `huggingface_hub` (which reads HF_ENDPOINT once, at import).
_EXPORTS = {
    "auth": ["resolve_token"],
    "errors": ["DatasetSchemaError", "HubError", "HubUnreachableError", "InvalidTokenError", "MissingTokenError",
               "ModelFolderError", "RepoNotFoundError", "hub_errors"],
    "faces_dataset": ["LABELS", "faces_features", "load_faces", "push_dataset", "scan_folder"],
    "models": ["build_model_card", "pull_model", "push_model", "read_config", "read_model_card"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'hub_tools' has no attribute {name!r}")
    return getattr(importlib.import_module(f"hub_tools.{_WHERE[name]}"), name)


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

"""FaceReg's model side: faces, networks, verification, evaluation and training.

The flat public API is imported lazily, so `import trainer` stays light until a name is used:

    from trainer import Verifier, load_image, face_locations
    Verifier.default().verify("a.jpg", "b.jpg")
"""
from __future__ import annotations

import importlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_EXPORTS = {
    "errors": ["FaceRegError", "ImageDecodeError", "NoFaceError", "MultipleFacesError",
               "UnknownBackboneError", "ModelFormatError", "DatasetError"],
    "images": ["load_image"],
    "faces": ["Face", "FaceChip", "face_locations", "face_locations_batch", "align_face", "pick_face", "extract_face"],
    "networks": ["BACKBONES", "backbone_spec", "build_classic_embedding", "build_embedding", "build_siamese",
                 "L1Distance"],
    "model_io": ["ModelConfig", "load_model_dir", "save_model_dir", "export_saved_model"],
    "default_model": ["export_default"],
    "verify": ["Verifier", "AnchorSet"],
    "serving": ["BatchedVerifier", "configure_cpu"],
    "evaluate": ["read_pairs_tsv", "read_lfw_pairs", "verification_report", "threshold_sweep"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'trainer' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)

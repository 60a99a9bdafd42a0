"""FaceReg, installed: `import facereg` registers FaceReg's Keras layers, so that a FaceReg `model.keras` loads
with plain `keras.saving.load_model` anywhere, and gives the Python API:

    import facereg, keras
    model = keras.saving.load_model("model.keras")          # the Siamese model of a FaceReg model folder
    verifier = facereg.Verifier.from_hub("user/facereg")    # or facereg.Verifier.default(), .from_dir(path)
    verifier.verify("a.jpg", "b.jpg")
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from trainer.dlib_resnet import ZeroPadAdd  # noqa: E402  (importing these registers them with Keras)
from trainer.networks import L1Distance  # noqa: E402
from trainer.verify import Verifier  # noqa: E402

CUSTOM_LAYERS = {"facereg>ZeroPadAdd": ZeroPadAdd, "facereg>L1Distance": L1Distance}

__all__ = ["CUSTOM_LAYERS", "L1Distance", "Verifier", "ZeroPadAdd"]

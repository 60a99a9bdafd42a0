"""Named errors of the verification core, each with a message a user can act on."""


class FaceRegError(Exception):
    """Base class of every error FaceReg raises on purpose."""


class ImageDecodeError(FaceRegError):
    """The input could not be read as an image (empty, truncated, not an image, too small)."""


class NoFaceError(FaceRegError):
    """No face was found in an image."""


class MultipleFacesError(FaceRegError):
    """Several faces were found where exactly one was required (only with on_multiple='error')."""


class UnknownBackboneError(FaceRegError):
    """A backbone name that FaceReg does not know."""


class ModelFormatError(FaceRegError):
    """A model folder or weights file that is not a valid FaceReg / dlib model."""


class DatasetError(FaceRegError):
    """A dataset that cannot be used: wrong schema, a missing category, too few faces."""

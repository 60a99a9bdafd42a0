"""Decode any supported image source into an H x W x 3 uint8 RGB array.

Choices:
- Transparency (RGBA, LA, palette with a transparent colour) is composited on white, so a cut-out
  face on a transparent background looks like a studio photo instead of a face on black.
- EXIF orientation is applied (`ImageOps.exif_transpose`), so phone photos come out upright.
- Colour and grey JPEGs are decoded by OpenCV, which gives PIL's pixels faster; other images by PIL.
- 16-bit images (PNG, PGM) are scaled to 8 bits; float arrays in [0, 1] are scaled by 255, other float
  arrays are taken as 0..255.
- Images smaller than `MIN_SIDE` px on the short side are refused: no detector can find a face in them.
- Large images load at full resolution (a 6000 x 6000 photo is fine); `trainer.faces` detects on a
  downscaled copy. Only images over `MAX_PIXELS` are refused, as likely decompression bombs.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO, Union

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from trainer.errors import ImageDecodeError

MIN_SIDE = 20
MAX_PIXELS = 8192 * 8192

ImageSource = Union[str, Path, bytes, bytearray, memoryview, BinaryIO, Image.Image, np.ndarray]


def load_image(source: ImageSource, name: str | None = None) -> np.ndarray:
    """Load a path, bytes, file-like, PIL image or array as an H x W x 3 uint8 RGB array."""
    if isinstance(source, np.ndarray):
        label = name or "<array>"
        return _checked(_array_to_rgb(source, label), label)
    if isinstance(source, Image.Image):
        label = name or "<image>"
        return _checked(_pil_to_rgb(source, label), label)
    if isinstance(source, (str, Path)):
        label = name or str(source)
        data = _read_file(Path(source), label)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        label = name or "<bytes>"
        data = bytes(source)
    elif hasattr(source, "read"):
        label = name or str(getattr(source, "name", "<file>"))
        data = source.read()
    else:
        raise ImageDecodeError(f"{name or '<input>'}: cannot read an image from a {type(source).__name__}")
    return _checked(_decode(data, label), label)


def _read_file(path: Path, label: str) -> bytes:
    """The bytes of an image file, with a clear error when it is missing or not a file."""
    if not path.exists():
        raise ImageDecodeError(f"{label}: no such file")
    if not path.is_file():
        raise ImageDecodeError(f"{label}: not a file")
    return path.read_bytes()


def _decode(data: bytes, label: str) -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, WebP, PGM, ...) with PIL."""
    if not data:
        raise ImageDecodeError(f"{label}: the file is empty (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data))
        _check_pixels(image, label)
        if image.format == "JPEG" and image.mode in ("RGB", "L") and data.endswith(b"\xff\xd9"):
            pixels = _decode_jpeg(data)
            if pixels is not None:
                return pixels
        image.load()
    except UnidentifiedImageError:
        raise ImageDecodeError(f"{label}: not an image that can be read (use a JPEG, PNG or WebP photo)") from None
    except Image.DecompressionBombError as error:
        raise ImageDecodeError(f"{label}: not a readable image ({error})") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageDecodeError(f"{label}: the image data is corrupt or truncated ({error})") from error
    return _pil_to_rgb(image, label, own=True)


def _decode_jpeg(data: bytes) -> np.ndarray | None:
    """A whole colour or grey JPEG decoded by OpenCV (None if it cannot): the pixels PIL gives, EXIF orientation
    applied, faster than PIL (both decode with libjpeg-turbo; tests/test_images.py compares them)."""
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _check_pixels(image: Image.Image, label: str) -> None:
    """Refuse images so large they are probably decompression bombs."""
    if image.width * image.height > MAX_PIXELS:
        raise ImageDecodeError(
            f"{label}: {image.width}x{image.height} px exceeds the limit of {MAX_PIXELS} pixels"
        )


def _pil_to_rgb(image: Image.Image, label: str, own: bool = False) -> np.ndarray:
    """Upright RGB array of a PIL image; transparency composited on white, 16-bit scaled to 8. An image this module
    decoded (`own`) is turned upright in place; a caller's image is left as it is."""
    _check_pixels(image, label)
    if own:
        ImageOps.exif_transpose(image, in_place=True)
    else:
        image = ImageOps.exif_transpose(image)
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        return _array_to_rgb(np.asarray(image).astype(np.uint16), label)
    if image.mode == "F":
        return _array_to_rgb(np.asarray(image), label)
    mode = "RGBA" if "A" in image.getbands() or "transparency" in image.info else "RGB"
    return _array_to_rgb(np.asarray(image if image.mode == mode else image.convert(mode)), label)


def _array_to_rgb(array: np.ndarray, label: str) -> np.ndarray:
    """Convert a grayscale, RGB or RGBA array of any numeric dtype to uint8 RGB."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ImageDecodeError(
            f"{label}: expected H x W, H x W x 3 or H x W x 4 pixels, got shape {array.shape}"
        )
    pixels = _to_uint8(array, label)
    if pixels.shape[2] == 3:
        return np.ascontiguousarray(pixels)
    rgb, alpha = pixels[:, :, :3].astype(np.uint16), pixels[:, :, 3:].astype(np.uint16)
    return ((rgb * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)


def _to_uint8(array: np.ndarray, label: str) -> np.ndarray:
    """Pixel values as uint8, by dtype: uint8, uint16, bool, floats in [0, 1] or 0..255, other ints."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        return np.rint(array / 257.0).astype(np.uint8)
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ImageDecodeError(f"{label}: unsupported pixel type {array.dtype}")
    if array.size and not np.isfinite(array).all():
        raise ImageDecodeError(f"{label}: the pixel values contain NaN or infinity")
    if np.issubdtype(array.dtype, np.floating) and array.size and array.max() <= 1.0:
        array = array * 255.0
    return np.rint(np.clip(array, 0, 255)).astype(np.uint8)


def _checked(image: np.ndarray, label: str) -> np.ndarray:
    """Refuse images too small to hold a detectable face."""
    height, width = image.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise ImageDecodeError(
            f"{label}: the image is {width}x{height} px; a face needs at least {MIN_SIDE} px on the short side"
        )
    return image

"""load_image: every source kind, every common format, and every bad input named in its error."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from tests.conftest import lfw_image
from trainer.errors import ImageDecodeError
from trainer.images import MAX_PIXELS, MIN_SIDE, load_image


@pytest.fixture(scope="module")
def face_path(lfw_dir: Path) -> Path:
    """One LFW JPEG."""
    return lfw_image("Aaron_Eckhart", 1)


@pytest.fixture(scope="module")
def face(face_path: Path) -> np.ndarray:
    """That JPEG as decoded by PIL directly."""
    return np.asarray(Image.open(face_path).convert("RGB"))


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    """A PIL image encoded in memory."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def test_every_source_kind_gives_the_same_rgb_uint8(face_path: Path, face: np.ndarray) -> None:
    data = face_path.read_bytes()
    for source in (face_path, str(face_path), data, bytearray(data), io.BytesIO(data), Image.open(face_path), face):
        image = load_image(source)
        assert image.dtype == np.uint8 and image.shape == (250, 250, 3)
        np.testing.assert_array_equal(image, face)


def test_array_dtypes_and_channels(face: np.ndarray) -> None:
    np.testing.assert_array_equal(load_image(face / 255.0), face)
    np.testing.assert_array_equal(load_image(face.astype(np.float32)), face)
    np.testing.assert_array_equal(load_image(face.astype(np.uint16) * 257), face)
    gray = face[:, :, 0]
    for array in (gray, gray[:, :, None]):
        image = load_image(array)
        assert image.shape == (250, 250, 3)
        np.testing.assert_array_equal(image[:, :, 2], gray)


def test_rgba_is_composited_on_white(face: np.ndarray) -> None:
    alpha = np.full((250, 250, 1), 255, np.uint8)
    alpha[:, :100] = 0
    rgba = np.concatenate([face, alpha], axis=-1)
    for source in (rgba, encode(Image.fromarray(rgba), "PNG")):
        image = load_image(source)
        assert (image[:, :100] == 255).all()
        np.testing.assert_array_equal(image[:, 100:], face[:, 100:])


def test_grayscale_pgm_webp_and_png_files(tmp_path: Path, face: np.ndarray) -> None:
    gray = Image.fromarray(face).convert("L")
    (tmp_path / "gray.pgm").write_bytes(encode(gray, "PPM"))
    (tmp_path / "gray.jpg").write_bytes(encode(gray, "JPEG", quality=95))
    (tmp_path / "face.webp").write_bytes(encode(Image.fromarray(face), "WEBP", lossless=True))
    (tmp_path / "face.png").write_bytes(encode(Image.fromarray(face), "PNG"))
    np.testing.assert_array_equal(load_image(tmp_path / "gray.pgm")[:, :, 1], np.asarray(gray))
    jpeg = load_image(tmp_path / "gray.jpg")
    assert jpeg.shape == (250, 250, 3) and (jpeg[:, :, 0] == jpeg[:, :, 2]).all()
    np.testing.assert_array_equal(load_image(tmp_path / "face.webp"), face)
    np.testing.assert_array_equal(load_image(tmp_path / "face.png"), face)


def test_16_bit_png_is_scaled_to_8_bits() -> None:
    ramp = np.tile(np.arange(0, 65536, 256, dtype=np.uint16), (30, 1))
    image = load_image(encode(Image.fromarray(ramp), "PNG"))
    np.testing.assert_array_equal(image[0, :, 0], np.rint(ramp[0] / 257).astype(np.uint8))


def exif_rotated_jpeg(face: np.ndarray) -> bytes:
    """The face stored turned 90 degrees counter-clockwise, with EXIF orientation 6 (rotate 90 clockwise)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(Image.fromarray(face).transpose(Image.Transpose.ROTATE_90), "JPEG", quality=95, exif=exif)


def test_exif_orientation_is_applied(face: np.ndarray) -> None:
    image = load_image(exif_rotated_jpeg(face))
    assert image.shape == face.shape
    assert np.abs(image.astype(int) - face).mean() < 3


def test_a_callers_pil_image_is_left_as_it_was(face: np.ndarray) -> None:
    image = Image.open(io.BytesIO(exif_rotated_jpeg(face)))
    assert load_image(image).shape == face.shape
    assert image.size == (face.shape[0], face.shape[1]) and image.getexif()[0x0112] == 6


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("mode, options", [("RGB", {}), ("L", {}), ("RGB", {"progressive": True}), ("CMYK", {})])
def test_jpegs_decode_to_the_pixels_pil_gives(orientation: int, mode: str, options: dict) -> None:
    """JPEGs are decoded by OpenCV where it gives PIL's pixels exactly (colour and grey); CMYK goes through PIL."""
    rng = np.random.default_rng(orientation)
    smooth = np.kron(rng.integers(0, 256, (12, 8, 3), dtype=np.uint8), np.ones((10, 10, 1), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(Image.fromarray(smooth).convert(mode), "JPEG", quality=90, exif=exif, **options)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    assert expected.shape[:2] == ((80, 120) if orientation >= 5 else (120, 80))
    np.testing.assert_array_equal(load_image(data), expected)


def test_lfw_jpegs_decode_to_the_pixels_pil_gives(lfw_dir: Path) -> None:
    """Every 25th LFW image: the accuracy figures, measured when PIL decoded every image, stand."""
    paths = sorted((lfw_dir / "images").glob("*/*.jpg"))[::25]
    assert len(paths) > 500
    for path in paths:
        np.testing.assert_array_equal(load_image(path), np.asarray(Image.open(path).convert("RGB")), err_msg=str(path))


def test_large_image_loads_at_full_resolution() -> None:
    image = load_image(encode(Image.new("RGB", (6000, 6000), (90, 120, 150)), "PNG", compress_level=1))
    assert image.shape == (6000, 6000, 3)


@pytest.mark.parametrize(
    ("source", "label", "message"),
    [
        (b"", "<bytes>", "empty"),
        (b"\x00\x01 random bytes", "<bytes>", "not an image that can be read"),
        (b"\xff\xd8\xff\xe0 a JPEG header, then junk", "<bytes>", "corrupt or truncated"),
        (encode(Image.new("RGB", (1, 1)), "PNG"), "<bytes>", f"at least {MIN_SIDE} px"),
        (np.zeros((1, 1, 3), np.uint8), "<array>", "1x1"),
        (np.zeros((40, 40, 2), np.uint8), "<array>", "shape"),
        (np.full((40, 40), np.nan), "<array>", "NaN"),
        (encode(Image.new("1", (9000, 9000)), "PNG"), "<bytes>", str(MAX_PIXELS)),
        (42, "<input>", "int"),
    ],
)
def test_bad_inputs_raise_a_named_decode_error(source: object, label: str, message: str) -> None:
    with pytest.raises(ImageDecodeError, match=message) as error:
        load_image(source)
    assert label in str(error.value)


def test_bad_files_are_named(tmp_path: Path, face_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not an image\n")
    (tmp_path / "half.jpg").write_bytes(face_path.read_bytes()[:4000])
    cases = {"missing.jpg": "no such file", "empty.jpg": "empty", "notes.txt": "not an image that can be read",
             "half.jpg": "truncated", ".": "not a file"}
    for file, message in cases.items():
        with pytest.raises(ImageDecodeError, match=message) as error:
            load_image(tmp_path / file)
        assert str(tmp_path / file) in str(error.value)
    with pytest.raises(ImageDecodeError, match="upload.png"):
        load_image(b"garbage", name="upload.png")

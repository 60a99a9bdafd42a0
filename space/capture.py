"""A capture folder: face crops saved at once as `anchor/`, `positive/`, `negative/` images (a FaceReg dataset)."""
from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

CATEGORIES = ("anchor", "positive", "negative")
CROP_SIZE = 250  # the original design's 250 x 250 crops; the trainer re-detects and aligns them
CROP_MARGIN = 0.4  # fraction of the face box added on each side, so a detector finds the face again


@dataclass(frozen=True)
class Saved:
    """One saved capture: its file, how many faces the frame held, and whether the face was below the detector's bar."""

    path: Path
    faces_found: int
    low_confidence: bool = False


def check_category(category: str) -> str:
    """The category, or ValueError naming the valid ones."""
    if category not in CATEGORIES:
        raise ValueError(f"category must be one of {', '.join(CATEGORIES)}, not {category!r}")
    return category


def face_crop(image: np.ndarray, box: tuple[int, int, int, int], size: int = CROP_SIZE) -> np.ndarray:
    """A square size x size crop around a face box, with a margin; outside the image is black."""
    import cv2

    x, y, w, h = box
    side = max(w, h) * (1 + 2 * CROP_MARGIN)
    zoom = size / side
    matrix = np.array([[zoom, 0, size / 2 - zoom * (x + w / 2)], [0, zoom, size / 2 - zoom * (y + h / 2)]], np.float64)
    interpolation = cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(image, matrix, (size, size), flags=interpolation, borderMode=cv2.BORDER_CONSTANT)


class CaptureStore:
    """A folder of captured face crops by category; every write lands whole (temp file + rename)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()

    def save_face(
        self, image: Any, category: str, detector: str = "mtcnn", name: str = "capture", stem: str | None = None
    ) -> Saved:
        """Detect the largest face of an image, crop it and save it under the category; NoFaceError if none.

        stem: the file's name without extension (default: time and a random part); saving the same stem again keeps
        the first file.
        """
        from trainer import face_locations, load_image
        from trainer.errors import NoFaceError

        check_category(category)
        pixels = load_image(image, name=name)
        faces = face_locations(pixels, detector=detector)
        if not faces:
            raise NoFaceError(f"{name}: no face found; face the camera in good light, or upload a clear photo")
        return Saved(self.save_crop(face_crop(pixels, faces[0].box), category, stem), len(faces),
                     faces[0].low_confidence)

    def save_crop(self, crop: np.ndarray, category: str, stem: str | None = None) -> Path:
        """Write a crop as JPEG into the category folder, atomically; return its path."""
        from PIL import Image

        folder = self.root / check_category(category)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{stem or time.strftime('%Y%m%d-%H%M%S') + '-' + uuid.uuid4().hex[:8]}.jpg"
        if stem and path.exists():
            return path
        partial = path.with_suffix(".jpg.part")
        Image.fromarray(crop).save(partial, format="JPEG", quality=95)
        with open(partial, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(partial, path)
        return path

    def files(self, category: str | None = None) -> list[Path]:
        """Saved images, newest first, of one category or all."""
        categories = CATEGORIES if category in (None, "all") else (check_category(category),)
        found = [p for c in categories if (self.root / c).is_dir() for p in (self.root / c).glob("*.jpg")]
        return sorted(found, key=lambda p: p.stat().st_mtime_ns, reverse=True)

    def counts(self) -> dict[str, int]:
        """Number of saved images per category."""
        return {c: len(list((self.root / c).glob("*.jpg"))) if (self.root / c).is_dir() else 0 for c in CATEGORIES}

    def total(self) -> int:
        """Number of saved images in all categories."""
        return sum(self.counts().values())

    def delete(self, path: str | Path, before: Callable[[list[Path]], None] | None = None) -> bool:
        """Delete one saved image; only files inside this store's category folders can be deleted.

        before: called with the file just before it goes (the app forgets the copy Gradio's cache shows of it).
        """
        target = Path(path).resolve()
        allowed = {(self.root / c).resolve() for c in CATEGORIES}
        if target.parent not in allowed or target.suffix != ".jpg":
            raise ValueError(f"{Path(path).name} is not a capture of this app")
        with self._lock:
            if not target.exists():
                return False
            if before is not None:
                before([target])
            target.unlink()
            return True

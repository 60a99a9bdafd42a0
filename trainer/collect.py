"""Collecting dataset images without a browser: face crops from a camera or a video file, one every N seconds."""
from __future__ import annotations

import datetime as _dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2

from .data import LABELS
from .errors import FaceRegError
from .faces import BOX_MARGIN, Face, align_face, face_locations

CROP_SIZE = 250  # saved crops are 250 x 250, like LFW's images
CROP_CONTEXT = 2.0  # a crop's side is this many times the face box's longer side


@dataclass
class CollectResult:
    """The crops written, how many frames were sampled, and how many of those held no face."""

    saved: list[Path] = field(default_factory=list)
    frames: int = 0
    no_face: int = 0


def face_crop(frame: Any, face: Face, size: int = CROP_SIZE) -> Any:
    """A size x size crop around a face with context (CROP_CONTEXT x the box), upright, zero-padded at edges."""
    x, y, w, h = face.box
    # align_face crops a landmark-less box widened by BOX_MARGIN on each side: pass the box that widens to ours.
    side = CROP_CONTEXT * max(w, h) / (1.0 + 2.0 * BOX_MARGIN)
    box = (round(x + w / 2 - side / 2), round(y + h / 2 - side / 2), round(side), round(side))
    return align_face(frame, Face(box=box, landmarks=None, confidence=face.confidence), size)


def _open(source: str | int) -> tuple[cv2.VideoCapture, bool, str]:
    """The capture, whether it is a camera, and the prefix of the files its crops get."""
    camera = isinstance(source, int) or str(source).isdigit()
    if camera:
        capture = cv2.VideoCapture(int(source))
        prefix = f"cam{int(source)}_{_dt.datetime.now():%Y%m%d-%H%M%S}"
    else:
        if not Path(source).is_file():
            raise FaceRegError(f"video file {source} not found")
        capture = cv2.VideoCapture(str(source))
        prefix = Path(source).stem
    if not capture.isOpened():
        raise FaceRegError(f"cannot open {'camera' if camera else 'video'} {source}")
    return capture, camera, prefix


def collect(
    source: str | int,
    label: str,
    out: str | Path,
    *,
    every: float = 1.0,
    max_faces: int | None = None,
    detector: str = "mtcnn",
    progress: Callable[[str], Any] | None = None,
) -> CollectResult:
    """Sample a frame every `every` seconds of a camera (index) or video file, save its largest face to out/label/.

    Frames without a face are skipped; collection stops after `max_faces` crops, at the end of the video, or
    (camera) on Ctrl-C. Video time comes from the frame rate, camera time from the clock.
    """
    if label not in LABELS:
        raise FaceRegError(f"label must be one of {', '.join(LABELS)}, not {label!r}")
    if every <= 0:
        raise ValueError(f"every must be a positive number of seconds, got {every}")
    capture, camera, prefix = _open(source)
    folder = Path(out) / label
    folder.mkdir(parents=True, exist_ok=True)
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    result = CollectResult()
    started, next_time, index = time.monotonic(), 0.0, -1
    try:
        while max_faces is None or len(result.saved) < max_faces:
            if not capture.grab():
                break
            index += 1
            now = time.monotonic() - started if camera else index / fps
            if now < next_time:
                continue
            next_time = now + every
            ok, frame = capture.retrieve()
            if not ok:
                break
            result.frames += 1
            faces = face_locations(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), detector)
            if not faces:
                result.no_face += 1
                continue
            path = folder / f"{prefix}_{index:06d}.jpg"
            cv2.imwrite(str(path), face_crop(frame, faces[0]))
            result.saved.append(path)
            if progress is not None:
                progress(f"saved {path.name} ({len(result.saved)}{f'/{max_faces}' if max_faces else ''})")
    except KeyboardInterrupt:
        pass
    finally:
        capture.release()
    return result

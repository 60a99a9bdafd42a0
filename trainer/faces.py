"""Face detection (MTCNN or Haar cascade), 5-point alignment and face chips.

Detection runs on a copy downscaled so that its longer side is at most `MAX_DETECT_SIDE` px (a 6000 x 6000
photo detects as fast as a 1024 x 1024 one); boxes and landmarks are mapped back to full resolution, and
alignment samples the full-resolution image.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

import cv2
import numpy as np

from trainer.errors import MultipleFacesError, NoFaceError
from trainer.mtcnn_nets import CompiledNetwork, DnnNetwork

if TYPE_CHECKING:
    from mtcnn import MTCNN

MAX_DETECT_SIDE = 1024
# Images decoded and detected together in lists: bounds the pixels held at once; same-size ones share an MTCNN call.
DETECT_BATCH = 4
# Smallest face (px, in the image the detector sees) that MTCNN looks for; mtcnn's own default is 20. Each pyramid
# level costs PNet time, and a face below this size makes a poor 150 px chip anyway.
MIN_FACE_SIZE = 20
# ... and at least this fraction of the shorter side of the image the detector sees, so that every image gets about
# the pyramid of a 250 px LFW image (0.08 x 250 = 20 px: LFW is detected exactly as before) and a 640 x 480 webcam
# frame is searched from 38 px faces up rather than 20 px (`python benchmarks/bench_detect.py`: 74 -> 48 ms a frame;
# landmarks 1.4 px from the full pyramid's at the median, as two pyramids' proposals differ). An image in which that
# finds no confident face is searched again from MIN_FACE_SIZE, so small faces are still found, at the cost of a
# second pass on those images only. Not larger: from 15 % (37 px on LFW) detection was much faster, but the landmarks
# moved and accuracy fell, 5 pairs on View 1 DevTest and 6 on View 2 (`python -m trainer fit-default` and
# `python benchmarks/bench_lfw.py` with that value; docs/results-log.md, "Speed and memory", 2026-12-03): a denser
# pyramid gives ONet better proposals to refine.
MIN_FACE_FRACTION = 0.08
# ONet's confidence bar for a face. When no candidate in an image reaches it, the best candidate at or above
# LOW_CONFIDENCE_FLOOR is used instead, flagged `low_confidence` (results say so), rather than "no face".
# The floor was chosen on LFW View 1 and a face-free set (`python -m benchmarks.view1_accuracy`).
MIN_CONFIDENCE = 0.9
LOW_CONFIDENCE_FLOOR = 0.5
# Input shapes (batch size and pyramid level) PNet keeps a network for, in each thread: the pyramids of two image
# sizes (one pyramid has up to about 10 levels; a level's network holds at most a few MB of buffers).
PNET_SHAPES = 24
BOX_MARGIN = 0.1  # Haar boxes (no landmarks) are widened by this fraction of their size on each side.
# What to do when an image holds several faces: use the largest; use the one nearest the image centre (for
# datasets of crops centred on their subject, such as LFW); or raise MultipleFacesError.
ON_MULTIPLE = ("largest", "central", "error")
# What to do when an image holds no face: raise NoFaceError, or align a central crop (for evaluation, where every
# pair must be scored).
ON_NO_FACE = ("error", "center")

# ArcFace's 5-point template for 112 x 112 chips: left eye, right eye, nose, mouth left, mouth right.
ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)


def arcface_template(scale: float, shift: float) -> np.ndarray:
    """ArcFace's template in [0, 1] chip coordinates, scaled about the chip centre and moved up by `shift`."""
    return ((ARCFACE_TEMPLATE_112 / 112.0 - 0.5) * scale + 0.5 - np.array([0.0, shift], np.float32)).astype(np.float32)


# Where the 5 landmarks go in a chip, in [0, 1] coordinates (multiply by the chip size): ArcFace's template
# scaled by 1.15 and moved up 24 px at 150. `python -m benchmarks.align_template` (dlib's network, Euclidean
# distance, all 2193 DevTrain pairs with faces) could not separate the candidates: x1.15 up 30 px 0.9900
# accuracy, x1.15 up 24 px and x1.25 up 24 px 0.9886 (3 pairs apart). The tie was broken on View 1 DevTest with
# the whole default model (`python -m trainer fit-default`): up 24 px gives 98.0 % with test-time flip (97.9 %
# without), up 30 px 97.6 % (97.5 % with flip).
TEMPLATE = arcface_template(1.15, 24 / 150)


@dataclass(frozen=True)
class Face:
    """A detected face: box (x, y, w, h) and (5, 2) landmarks in image pixels, and a confidence.

    Landmark order, as seen in the image: left eye (smaller x), right eye, nose, mouth left, mouth right.
    """

    box: tuple[int, int, int, int]
    landmarks: np.ndarray | None
    confidence: float
    low_confidence: bool = False  # below MIN_CONFIDENCE: the best candidate above the floor, used for want of a face


@dataclass(frozen=True)
class FaceChip:
    """An aligned face chip, the face it came from, and how many faces the image held."""

    chip: np.ndarray
    face: Face
    faces_found: int


def pyramid_scales(width: int, height: int, min_face_size: float, scale_factor: float, min_size: int = 12) -> np.ndarray:
    """MTCNN's image pyramid: from min_size / min_face_size down by scale_factor while the short side stays >= min_size.

    Used by _PyramidPNet in place of mtcnn 1.x's `build_scale_pyramid`, which counts the levels from the image size
    alone, so that with any min_face_size above 20 its last levels fall below PNet's 12 px input and the detector
    finds nothing.
    """
    first = min_size / min_face_size
    short_side = min(width, height) * first
    levels = int(np.floor(np.log(min_size / short_side) / np.log(scale_factor))) + 1 if short_side >= min_size else 0
    return first * scale_factor ** np.arange(levels)


class _PyramidPNet:
    """mtcnn's PNet stage with `pyramid_scales` as the pyramid, the levels resized by OpenCV and PNet run by OpenCV's
    DNN engine (`trainer.mtcnn_nets`).

    mtcnn 1.x resizes the batch to each level with an eager TensorFlow call and runs its Keras PNet on it; OpenCV's
    area resize gives the same pixels as TensorFlow's to float rounding, and the proposals are those of mtcnn's
    own stage (tested).
    """

    def __init__(self) -> None:
        from mtcnn.stages import StagePNet

        stage = StagePNet()
        self.id, self.name = stage.id, stage.name
        self.network = _as_keras_outputs(DnnNetwork(stage.model, 12, shapes=PNET_SHAPES))

    def _run(self, images: np.ndarray, scales: np.ndarray) -> list:
        """PNet's (box regression, face probability) maps for each pyramid scale of the batch."""
        height, width = images.shape[1:3]
        outputs = []
        for scale in scales:
            size = (int(width * scale), int(height * scale))  # mtcnn's level size: truncated to whole pixels
            level = np.stack([cv2.resize(image, size, interpolation=cv2.INTER_AREA) for image in images])
            outputs.append(self.network(level))
        return outputs

    def __call__(
        self, images_normalized, images_oshapes, min_face_size=20, scale_factor=0.709, threshold_pnet=0.6,
        nms_pnet1=0.5, nms_pnet2=0.7, **kwargs,
    ) -> np.ndarray:
        """Square proposal boxes for the batch, as mtcnn's StagePNet returns them."""
        from mtcnn.utils.bboxes import (
            generate_bounding_box,
            resize_to_square,
            smart_nms_from_bboxes,
            upscale_bboxes,
        )

        pyramids = [pyramid_scales(shape[1], shape[0], min_face_size, scale_factor) for shape in images_oshapes]
        scales = max(pyramids, key=len)  # as mtcnn's apply_scales: the longest pyramid of the batch
        images = np.asarray(images_normalized, np.float32)
        batch_size = images.shape[0]
        per_level = []
        for (regression, probability), scale in zip(self._run(images, scales), scales):
            boxes = generate_bounding_box(regression, probability, threshold_pnet)
            boxes = upscale_bboxes(boxes, np.asarray([scale] * batch_size))
            per_level.append(smart_nms_from_bboxes(boxes, threshold=nms_pnet1, method="union", initial_sort=False))
        if not per_level:
            return np.empty((0, 6))
        boxes = np.concatenate(per_level, axis=0)
        return resize_to_square(smart_nms_from_bboxes(boxes, threshold=nms_pnet2, method="union", initial_sort=True))


@functools.cache
def _mtcnn() -> MTCNN:
    """The process-wide MTCNN detector: mtcnn's three stages; PNet and ONet run by OpenCV's DNN engine, RNet by
    TensorFlow (`trainer.mtcnn_nets` says why)."""
    import mtcnn.utils.bboxes
    from mtcnn import MTCNN
    from mtcnn.stages import StageONet, StageRNet

    mtcnn.utils.bboxes.sort_by_scores = sort_by_scores
    mtcnn.utils.bboxes.iou = iou
    detector = MTCNN(stages=[_PyramidPNet(), StageRNet, StageONet])
    rnet, onet = detector.stages[1:]
    rnet._model = _as_keras_outputs(CompiledNetwork(rnet._model, 24))
    onet._model = _as_keras_outputs(DnnNetwork(onet._model, 48))
    return detector


class _KerasLike(np.ndarray):
    """A network's output as a numpy array that also has the `.numpy()` mtcnn's stage code calls on Keras outputs."""

    def numpy(self) -> np.ndarray:
        return np.asarray(self)


def _as_keras_outputs(network: Callable[[np.ndarray], list]) -> Callable[[np.ndarray], list]:
    """A network called as mtcnn's stages call their Keras model: patches in, outputs with `.numpy()` out."""
    return lambda patches: [out.view(_KerasLike) for out in network(np.asarray(patches))]


def iou(boxes: np.ndarray, method: str = "union") -> np.ndarray:
    """mtcnn's `iou` (the same arithmetic), used in its place: an N x N matrix of the overlaps of N boxes (row1, col1,
    row2, col2), over their union or over the smaller box. mtcnn's first re-stacks the array row by row, which for the
    hundreds of boxes PNet proposes costs more than the overlaps themselves, at every suppression."""
    boxes = np.asarray(boxes)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    a, b = boxes[None], boxes[:, None]
    height = np.maximum(0, np.minimum(a[:, :, 2], b[:, :, 2]) - np.maximum(a[:, :, 0], b[:, :, 0]))
    width = np.maximum(0, np.minimum(a[:, :, 3], b[:, :, 3]) - np.maximum(a[:, :, 1], b[:, :, 1]))
    inter = height * width
    if method == "union":
        return inter / (area[:, None] + area[None, :] - inter)
    if method == "min":
        return inter / np.minimum(area[:, None], area[None, :])
    raise ValueError("method must be 'union' or 'min'")


def sort_by_scores(boxes: np.ndarray, scores: np.ndarray, ascending: bool = True) -> np.ndarray:
    """mtcnn's `sort_by_scores` with a stable sort, used in its place: the face found in an image must not depend
    on the other images detected in the same call.

    mtcnn 1.x sorts proposals with numpy's default, unstable sort before each non-maximum suppression. Proposals
    often tie at a confidence of exactly 1.0, and then which one survives depended on the whole batch's array.
    """
    order = np.argsort(scores, kind="stable")
    return boxes[order if ascending else order[::-1]]


@functools.cache
def _haar() -> cv2.CascadeClassifier:
    """The process-wide Haar cascade for frontal faces."""
    return cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")


def _detect_mtcnn(images: list[np.ndarray], min_confidence: float, min_face_sizes: list[int]) -> list[list[Face]]:
    """MTCNN faces with landmarks (left eye, right eye, nose, mouth left, mouth right) in each image, each searched
    for faces of at least its own minimum size.

    Images of the same shape go through the networks together, in one call; results match one-by-one calls.
    (Images of different shapes are not mixed: mtcnn would pad them to one size, which changes the landmarks.)
    """
    found: list[list[Face]] = [[] for _ in images]
    by_shape: dict[tuple[tuple[int, ...], int], list[int]] = {}
    for i, (image, min_face_size) in enumerate(zip(images, min_face_sizes)):
        if min(image.shape[:2]) >= min_face_size:  # smaller images cannot hold a face of the minimum size
            by_shape.setdefault((image.shape, min_face_size), []).append(i)
    for (_, min_face_size), indices in by_shape.items():
        batch = [images[i].astype(np.float32) for i in indices]
        rows = _mtcnn().detect_faces(
            batch, output_type="numpy", threshold_onet=min_confidence, min_face_size=min_face_size
        )
        for row in rows:
            found[indices[int(row[0])]].append(
                Face(
                    box=tuple(int(round(v)) for v in row[1:5]),
                    landmarks=np.stack([row[6:11], row[11:16]], axis=1).astype(np.float32),
                    confidence=float(row[5]),
                )
            )
    return found


def _detect_haar(images: list[np.ndarray], min_confidence: float, min_face_sizes: list[int]) -> list[list[Face]]:
    """Haar cascade faces: no landmarks, and confidence 1.0 (the cascade gives no calibrated score)."""
    found = []
    for image, min_face_size in zip(images, min_face_sizes):
        gray = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
        size = max(30, min_face_size)  # the cascade's own floor: smaller boxes are mostly false positives
        boxes = _haar().detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(size, size))
        found.append([Face(box=tuple(int(v) for v in box), landmarks=None, confidence=1.0) for box in boxes])
    return found


DETECTORS: dict[str, Callable[[list[np.ndarray], float, list[int]], list[list[Face]]]] = {
    "mtcnn": _detect_mtcnn,
    "haar": _detect_haar,
}


def face_locations(
    image: np.ndarray,
    detector: str = "mtcnn",
    min_confidence: float = MIN_CONFIDENCE,
    min_face_size: int = MIN_FACE_SIZE,
    floor: float | None = LOW_CONFIDENCE_FLOOR,
    min_face_fraction: float = MIN_FACE_FRACTION,
) -> list[Face]:
    """Faces in an H x W x 3 uint8 RGB image, largest first, in full-resolution pixels."""
    return face_locations_batch([image], detector, min_confidence, min_face_size, floor, min_face_fraction)[0]


def with_floor(faces: list[Face], min_confidence: float, floor: float | None) -> list[Face]:
    """The faces at or above min_confidence; if there are none, the best one at or above `floor`, flagged."""
    confident = [face for face in faces if face.confidence >= min_confidence]
    if confident or floor is None:
        return confident
    candidates = [face for face in faces if face.confidence >= floor]
    if not candidates:
        return []
    best = max(candidates, key=lambda face: face.confidence)
    return [Face(best.box, best.landmarks, best.confidence, low_confidence=True)]


def face_locations_batch(
    images: Sequence[np.ndarray],
    detector: str = "mtcnn",
    min_confidence: float = MIN_CONFIDENCE,
    min_face_size: int = MIN_FACE_SIZE,
    floor: float | None = LOW_CONFIDENCE_FLOOR,
    min_face_fraction: float = MIN_FACE_FRACTION,
) -> list[list[Face]]:
    """Faces in each of several RGB images, largest first; same-size images are detected in one call.

    Faces are looked for from `min_face_fraction` of the image's shorter side (and at least `min_face_size` px) up;
    an image where that finds no confident face is searched again from `min_face_size` (MIN_FACE_FRACTION says why).
    An image with no face at min_confidence gets its best candidate at or above `floor`, flagged
    `low_confidence` (floor=None: no fallback).
    """
    if detector not in DETECTORS:
        raise ValueError(f"unknown face detector {detector!r}; known detectors: {', '.join(DETECTORS)}")
    smalls, scales = [], []
    for image in images:
        height, width = image.shape[:2]
        ratio = min(1.0, MAX_DETECT_SIDE / max(height, width))
        small = image
        if ratio < 1.0:
            small = cv2.resize(image, (round(width * ratio), round(height * ratio)), interpolation=cv2.INTER_AREA)
        smalls.append(small)
        scales.append(np.array([width / small.shape[1], height / small.shape[0]], np.float32))
    # ONet's threshold only filters its output before a non-maximum suppression that keeps the more confident of
    # overlapping boxes, so detecting at the floor and keeping those >= min_confidence gives the faces a detection
    # at min_confidence gives.
    bar = min_confidence if floor is None else min(min_confidence, floor)
    sizes = [max(min_face_size, int(min_face_fraction * min(small.shape[:2]))) for small in smalls]
    found = DETECTORS[detector](smalls, bar, sizes) if smalls else []
    again = [i for i, (faces, size) in enumerate(zip(found, sizes))
             if size > min_face_size and not any(face.confidence >= min_confidence for face in faces)]
    if again:
        for i, faces in zip(again, DETECTORS[detector]([smalls[i] for i in again], bar, [min_face_size] * len(again))):
            found[i] = faces
    return [
        sorted(
            (_rescaled(face, scale) for face in with_floor(faces, min_confidence, floor)),
            key=lambda face: face.box[2] * face.box[3],
            reverse=True,
        )
        for faces, scale in zip(found, scales)
    ]


def _rescaled(face: Face, scale: np.ndarray) -> Face:
    """A face found on a downscaled copy, in the coordinates of the full image."""
    if (scale == 1.0).all():
        return face
    x, y, w, h = face.box
    sx, sy = scale
    box = (round(x * sx), round(y * sy), round(w * sx), round(h * sy))
    landmarks = None if face.landmarks is None else face.landmarks * scale
    return Face(box=box, landmarks=landmarks, confidence=face.confidence, low_confidence=face.low_confidence)


def align_face(image: np.ndarray, face: Face, size: int, template: np.ndarray = TEMPLATE) -> np.ndarray:
    """A size x size chip: landmarks warped onto `template` by a similarity, or (no landmarks) the box with a margin."""
    if face.landmarks is not None:
        matrix, _ = cv2.estimateAffinePartial2D(face.landmarks, template * size, method=cv2.LMEDS)
        if matrix is not None:
            return _warp(image, matrix, size)
    x, y, w, h = face.box
    side = max(w, h) * (1.0 + 2.0 * BOX_MARGIN)
    zoom = size / side
    matrix = np.array(
        [[zoom, 0.0, size / 2 - zoom * (x + w / 2)], [0.0, zoom, size / 2 - zoom * (y + h / 2)]], np.float64
    )
    return _warp(image, matrix, size)


def _warp(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Apply a 2 x 3 similarity; strong downscaling first shrinks the image with INTER_AREA to avoid aliasing."""
    zoom = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if zoom < 0.5:
        image = cv2.resize(image, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_AREA)
        matrix = np.hstack([matrix[:, :2] / zoom, matrix[:, 2:]])
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def central_face(faces: list[Face], image_shape: tuple[int, ...]) -> Face:
    """The face whose box centre lies nearest the centre of the image."""
    centre = np.array(image_shape[1::-1], np.float64) / 2
    return min(faces, key=lambda f: np.hypot(*(np.array(f.box[:2]) + np.array(f.box[2:]) / 2 - centre)))


def extract_face(
    image: np.ndarray, size: int, detector: str = "mtcnn", name: str | None = None, on_multiple: str = "largest"
) -> FaceChip:
    """Detect, pick one face (largest, central, or error on several) and align it into a size x size chip."""
    return pick_face(image, face_locations(image, detector), size, name, on_multiple)


def central_crop_face(image: np.ndarray) -> Face:
    """A stand-in face for images where detection fails: the central half of the image, no landmarks."""
    h, w = image.shape[:2]
    return Face(box=(w // 4, h // 4, w // 2, h // 2), landmarks=None, confidence=0.0)


def pick_face(
    image: np.ndarray,
    faces: list[Face],
    size: int,
    name: str | None = None,
    on_multiple: str = "largest",
    on_no_face: str = "error",
) -> FaceChip:
    """Pick one of an image's detected faces (largest first) by the `on_multiple` policy and align it.

    No face raises NoFaceError naming the image, or with on_no_face="center" aligns a central crop (faces_found=0).
    """
    if on_multiple not in ON_MULTIPLE:
        raise ValueError(f"unknown on_multiple policy {on_multiple!r}; known policies: {', '.join(ON_MULTIPLE)}")
    if on_no_face not in ON_NO_FACE:
        raise ValueError(f"on_no_face must be one of {ON_NO_FACE}, not {on_no_face!r}")
    label = name or "<array>"
    if not faces:
        if on_no_face == "center":
            face = central_crop_face(image)
            return FaceChip(chip=align_face(image, face, size), face=face, faces_found=0)
        raise NoFaceError(f"{label}: no face found; use a clear, frontal photo of one face")
    if len(faces) > 1 and on_multiple == "error":
        raise MultipleFacesError(f"{label}: {len(faces)} faces found where exactly one is required")
    face = central_face(faces, image.shape) if on_multiple == "central" else faces[0]
    return FaceChip(chip=align_face(image, face, size), face=face, faces_found=len(faces))

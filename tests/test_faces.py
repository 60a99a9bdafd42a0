"""Face detection, alignment and extraction on real LFW faces with the real detectors."""
from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.conftest import lfw_image
from tests.test_images import exif_rotated_jpeg
from trainer import faces
from trainer.errors import MultipleFacesError, NoFaceError
from trainer.faces import (
    TEMPLATE,
    Face,
    align_face,
    extract_face,
    face_locations,
    face_locations_batch,
    pyramid_scales,
)
from trainer.images import load_image

PEOPLE = ("Aaron_Eckhart", "AJ_Cook", "Abdullah_Gul", "Angelina_Jolie", "Ariel_Sharon", "Serena_Williams")


@pytest.fixture(scope="module")
def lfw_faces(lfw_dir: Path) -> list[np.ndarray]:
    """Six LFW images, one face each (250 x 250, face near the centre)."""
    return [load_image(lfw_image(name, 1)) for name in PEOPLE]


def assert_plausible(face: Face) -> None:
    """Landmarks inside the box; eyes (smaller x first) above the nose, the nose above the mouth."""
    x, y, w, h = face.box
    points = face.landmarks
    assert points.shape == (5, 2) and points.dtype == np.float32
    assert ((points >= [x, y]) & (points <= [x + w, y + h])).all()
    left_eye, right_eye, nose, mouth_left, mouth_right = points
    assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
    assert face.confidence >= 0.9


def test_mtcnn_finds_one_plausible_face_per_lfw_image(lfw_faces: list[np.ndarray]) -> None:
    for image in lfw_faces:
        found = face_locations(image)
        assert len(found) == 1
        x, y, w, h = found[0].box
        assert abs(x + w / 2 - 125) < 25 and abs(y + h / 2 - 125) < 30 and 60 < w < 130
        assert_plausible(found[0])


def test_detector_finds_what_mtcnns_own_keras_networks_find(lfw_faces: list[np.ndarray]) -> None:
    from mtcnn import MTCNN

    reference = MTCNN()  # the package's own pipeline: Keras networks, run eagerly
    crowded = load_image(lfw_image("Tony_Blair", 1))  # a subject and a bystander
    for image in lfw_faces[:4] + [crowded, cv2.resize(lfw_faces[4], (320, 240))]:
        pixels = image.astype(np.float32)
        ours = faces._mtcnn().detect_faces(pixels, output_type="numpy", threshold_onet=0.5)
        theirs = reference.detect_faces(pixels, output_type="numpy", threshold_onet=0.5)
        assert len(ours) > 0 and ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, atol=1e-2)  # boxes, confidences and landmarks


@pytest.mark.parametrize("size", [150, 100])
def test_alignment_puts_the_landmarks_on_the_template(lfw_faces: list[np.ndarray], size: int) -> None:
    for image in lfw_faces[:3]:
        chip = align_face(image, face_locations(image)[0], size)
        assert chip.shape == (size, size, 3) and chip.dtype == np.uint8
        border = size // 2  # MTCNN needs some context around a tightly cropped face
        framed = cv2.copyMakeBorder(chip, border, border, border, border, cv2.BORDER_CONSTANT)
        found = face_locations(framed)[0].landmarks - border
        error = np.abs(found - TEMPLATE * size)
        assert error[:2].max() < 0.04 * size  # the eyes: within 6 px at 150, 4 px at 100
        assert error.max() < 0.08 * size  # a similarity cannot fit every face's nose and mouth exactly


def test_haar_finds_the_face_without_landmarks(lfw_faces: list[np.ndarray]) -> None:
    image = lfw_faces[0]
    found = face_locations(image, detector="haar")
    assert len(found) == 1 and found[0].landmarks is None
    (x, y, w, h), (mx, my, mw, mh) = found[0].box, face_locations(image)[0].box
    assert abs((x + w / 2) - (mx + mw / 2)) < 15 and abs((y + h / 2) - (my + mh / 2)) < 25
    chip = extract_face(image, 100, detector="haar")
    assert chip.chip.shape == (100, 100, 3) and chip.face.landmarks is None


def test_unknown_detector_and_policy_are_named() -> None:
    image = np.zeros((50, 50, 3), np.uint8)
    with pytest.raises(ValueError, match="'dlib'.*mtcnn, haar"):
        face_locations(image, detector="dlib")
    with pytest.raises(ValueError, match="'first'.*largest, central, error"):
        extract_face(image, 150, on_multiple="first")


def test_huge_image_is_detected_at_full_resolution(lfw_faces: list[np.ndarray]) -> None:
    canvas = np.full((6000, 6000, 3), 200, np.uint8)
    canvas[1000:3000, 3000:5000] = cv2.resize(lfw_faces[0], (2000, 2000), interpolation=cv2.INTER_CUBIC)
    result = extract_face(canvas, 150)
    x, y, w, h = result.face.box
    assert 3000 < x and x + w < 5000 and 1000 < y and y + h < 3000 and w > 500
    assert_plausible(result.face)
    small = extract_face(lfw_faces[0], 150).chip
    assert np.abs(result.chip.astype(int) - small).mean() < 12


def test_exif_rotated_photo_is_found_upright(lfw_faces: list[np.ndarray]) -> None:
    found = face_locations(load_image(exif_rotated_jpeg(lfw_faces[0])))
    assert len(found) == 1
    assert_plausible(found[0])


def test_grayscale_pgm_and_webp_faces_are_found(lfw_faces: list[np.ndarray]) -> None:
    for fmt, mode in (("PPM", "L"), ("WEBP", "RGB")):
        buffer = io.BytesIO()
        Image.fromarray(lfw_faces[1]).convert(mode).save(buffer, fmt)
        assert_plausible(extract_face(load_image(buffer.getvalue()), 150).face)


@pytest.mark.parametrize("detector", ["mtcnn", "haar"])
def test_no_face_raises_naming_the_file(detector: str) -> None:
    gradient = np.repeat(np.linspace(0, 255, 300, dtype=np.uint8)[None, :, None], 200, axis=0).repeat(3, axis=2)
    noise = np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    for image in (gradient, noise):
        with pytest.raises(NoFaceError, match="wall.png: no face found"):
            extract_face(image, 150, detector=detector, name="wall.png")


def test_several_faces_largest_policy_or_error(lfw_faces: list[np.ndarray]) -> None:
    canvas = np.full((400, 650, 3), 255, np.uint8)
    canvas[75:325, :250] = lfw_faces[0]
    canvas[:, 250:] = cv2.resize(lfw_faces[1], (400, 400))
    result = extract_face(canvas, 150)
    assert result.faces_found == 2 and result.face.box[0] > 250
    with pytest.raises(MultipleFacesError, match="group.jpg: 2 faces"):
        extract_face(canvas, 150, name="group.jpg", on_multiple="error")


def test_central_policy_picks_the_face_nearest_the_centre(lfw_faces: list[np.ndarray]) -> None:
    canvas = np.full((400, 1000, 3), 255, np.uint8)
    canvas[75:325, 300:550] = lfw_faces[0]  # small face near the centre (x = 500)
    canvas[:, 600:] = cv2.resize(lfw_faces[1], (400, 400))  # large face off to the right
    assert extract_face(canvas, 150).face.box[0] > 600
    central = extract_face(canvas, 150, on_multiple="central")
    assert central.faces_found == 2 and 300 < central.face.box[0] < 550


def test_batched_detection_matches_one_by_one(lfw_faces: list[np.ndarray]) -> None:
    blank = np.full(lfw_faces[0].shape, 128, np.uint8)
    # two sizes, one without a face, and Tony_Blair 1, whose PNet proposals tie at confidence 1.0 (with mtcnn's
    # unstable sort, which of them survived depended on the other images of the call)
    tied = load_image(lfw_image("Tony_Blair", 1))
    images = [lfw_faces[0], blank, lfw_faces[1], lfw_faces[2][::2, ::2].copy(), tied]
    batched = face_locations_batch(images)
    assert [len(faces) for faces in batched] == [len(face_locations(image)) for image in images]
    assert batched[1] == [] and all(batched[i] for i in (0, 2, 3, 4))
    for image, found in zip(images, batched):
        for one, many in zip(face_locations(image), found):
            assert one.box == many.box
            np.testing.assert_allclose(one.landmarks, many.landmarks, atol=1e-3)


def test_pnet_stage_gives_mtcnns_own_proposals(lfw_faces: list[np.ndarray]) -> None:
    from mtcnn.stages import StagePNet
    from mtcnn.utils.images import standarize_batch

    stage = faces._mtcnn().stages[0]
    reference = StagePNet()  # mtcnn's stage: TensorFlow's resize and the Keras PNet, one eager call per level
    for batch in ([lfw_faces[0], lfw_faces[1]], [cv2.resize(lfw_faces[3], (320, 240))]):
        normalized, shapes, _ = standarize_batch([image.astype(np.float32) for image in batch], normalize=True)
        ours = stage(images_normalized=normalized, images_oshapes=shapes)
        theirs = reference(images_normalized=normalized, images_oshapes=shapes)
        assert len(ours) > 0 and ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, atol=1e-3)


def test_pyramid_matches_mtcnn_and_stays_above_pnet_input() -> None:
    from mtcnn.utils.images import build_scale_pyramid

    for side in (30, 250, 480, 1024):
        np.testing.assert_allclose(pyramid_scales(side, side, 20, 0.709), build_scale_pyramid(side, side, 20, 0.709))
    for min_face in (20, 40, 80):
        scales = pyramid_scales(640, 480, min_face, 0.709)
        assert scales[0] == pytest.approx(12 / min_face)
        assert 480 * scales[-1] >= 12 > 480 * scales[-1] * 0.709  # down to PNet's 12 px input, and no further
    assert len(pyramid_scales(30, 30, 40, 0.709)) == 0


def test_larger_min_face_size_finds_the_same_faces(lfw_faces: list[np.ndarray]) -> None:
    for image in lfw_faces[:3]:
        fine, coarse = face_locations(image, min_face_size=20)[0], face_locations(image, min_face_size=40)[0]
        assert np.abs(fine.landmarks - coarse.landmarks).max() < 6  # same face; landmarks within a few px
    tiny = cv2.resize(lfw_faces[0], (30, 30), interpolation=cv2.INTER_AREA)
    assert face_locations(tiny, min_face_size=40) == []  # smaller than the minimum face: no pyramid, no error


def test_faces_are_looked_for_relative_to_the_image_and_small_ones_still_found(lfw_faces, monkeypatch) -> None:
    searched: list[int] = []  # the minimum face size of each MTCNN pass (a spy: the real detector runs)
    detector = faces._mtcnn()
    real = detector.detect_faces
    monkeypatch.setattr(detector, "detect_faces", lambda *a, **k: searched.append(k["min_face_size"]) or real(*a, **k))
    face_locations(lfw_faces[0])
    assert searched == [20]  # a 250 px LFW image: the pyramid it always had
    searched.clear()
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[90:390, 170:470] = cv2.resize(lfw_faces[0], (300, 300))  # a webcam frame with a face at arm's length
    coarse = face_locations(frame)
    assert searched == [38]  # 0.08 x 480 px: one pass over a quarter of the pyramid
    fine = face_locations(frame, min_face_fraction=0)
    assert len(coarse) == len(fine) == 1 and np.abs(coarse[0].landmarks - fine[0].landmarks).max() < 3
    searched.clear()
    canvas = np.full((1000, 1000, 3), 128, np.uint8)
    canvas[500:570, 300:370] = cv2.resize(lfw_faces[0], (70, 70), interpolation=cv2.INTER_AREA)  # a face of ~25 px
    small = face_locations(canvas)
    assert searched == [80, 20]  # missed from 80 px up, so searched again from 20 px, and found
    assert len(small) == 1 and 300 < small[0].box[0] < 370 and small[0].box[2] < 40


# Princess_Elisabeth 1 (a child's face, tilted) is a clear face that MTCNN's ONet scores about 0.83: below the
# confidence bar, above the floor.
LOW_CONFIDENCE_FACE = ("Princess_Elisabeth", 1)


def test_face_below_the_bar_is_used_and_flagged(lfw_dir: Path) -> None:
    image = load_image(lfw_image(*LOW_CONFIDENCE_FACE))
    assert face_locations(image, floor=None) == []  # what detection gave before the fallback
    found = face_locations(image)
    assert len(found) == 1 and found[0].low_confidence
    assert faces.LOW_CONFIDENCE_FLOOR <= found[0].confidence < faces.MIN_CONFIDENCE
    x, y, w, h = found[0].box
    assert abs(x + w / 2 - 125) < 40 and abs(y + h / 2 - 125) < 40  # LFW's centred subject
    chip = extract_face(image, 150)
    assert chip.faces_found == 1 and chip.face.low_confidence


def test_the_floor_leaves_confident_faces_alone(lfw_faces: list[np.ndarray]) -> None:
    """Detecting at the floor and keeping faces >= the bar gives exactly what detecting at the bar gives."""
    crowded = load_image(lfw_image("Tony_Blair", 1))  # a subject and a bystander
    for image in lfw_faces[:3] + [crowded]:
        with_floor, without = face_locations(image), face_locations(image, floor=None)
        assert len(with_floor) == len(without) >= 1 and not any(f.low_confidence for f in with_floor)
        for a, b in zip(with_floor, without):
            assert a.box == b.box and a.confidence == b.confidence
            np.testing.assert_array_equal(a.landmarks, b.landmarks)


def test_iou_equals_mtcnns_own() -> None:
    import importlib.util

    import mtcnn.utils.bboxes

    faces._mtcnn()  # puts faces.iou in place of mtcnn's: load mtcnn's own afresh from its file
    spec = importlib.util.spec_from_file_location("mtcnn_bboxes_as_shipped", mtcnn.utils.bboxes.__file__)
    shipped = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shipped)
    assert mtcnn.utils.bboxes.iou is faces.iou and shipped.iou is not faces.iou
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 200, (60, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(5, 80, (60, 2))], axis=1)
    boxes[7] = boxes[3]  # a duplicate: overlap 1
    for method in ("union", "min"):
        np.testing.assert_array_equal(faces.iou(boxes, method), shipped.iou(boxes, method))

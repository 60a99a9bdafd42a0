"""Yaw from MTCNN's five landmarks, on real LFW faces whose pose is known (checked by eye)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.conftest import lfw_image, needs_lfw
from trainer.faces import face_locations
from trainer.images import load_image
from trainer.pose import TURNED_YAW, is_turned, yaw_ratio

FRONTAL = [("Aaron_Eckhart", 1), ("Ariel_Sharon", 1), ("Serena_Williams", 1)]
# Faces turned toward the image's left (nose at smaller x) and toward its right.
TURNED_LEFT = [("Tony_Blair", 1), ("Allan_Houston", 1)]
TURNED_RIGHT = [("George_Robertson", 22)]


def landmarks_of(image: np.ndarray) -> np.ndarray:
    """The landmarks of the face nearest the image centre."""
    from trainer.faces import central_face

    return central_face(face_locations(image), image.shape).landmarks


@needs_lfw
def test_frontal_faces_read_as_frontal_and_turned_ones_as_turned() -> None:
    for name, n in FRONTAL:
        landmarks = landmarks_of(load_image(lfw_image(name, n)))
        assert abs(yaw_ratio(landmarks)) < TURNED_YAW / 2 and not is_turned(landmarks)
    for name, n in TURNED_LEFT:
        assert yaw_ratio(landmarks_of(load_image(lfw_image(name, n)))) <= -TURNED_YAW
    for name, n in TURNED_RIGHT:
        landmarks = landmarks_of(load_image(lfw_image(name, n)))
        assert yaw_ratio(landmarks) >= TURNED_YAW and is_turned(landmarks)
    assert not is_turned(None)  # no landmarks (Haar box, central crop): nothing to say


@needs_lfw
def test_mirror_flips_the_sign_and_a_tilted_head_keeps_its_reading() -> None:
    turned, frontal = load_image(lfw_image("Tony_Blair", 1)), load_image(lfw_image("Aaron_Eckhart", 1))
    yaw = yaw_ratio(landmarks_of(turned))
    assert yaw_ratio(landmarks_of(np.ascontiguousarray(turned[:, ::-1]))) == pytest.approx(-yaw, abs=0.1)
    for angle in (-20, 20):  # rolled heads: MTCNN's landmarks move a little, the reading stays on its side
        rolled = [
            cv2.warpAffine(padded, cv2.getRotationMatrix2D((200, 200), angle, 1.0), (400, 400))
            for padded in (cv2.copyMakeBorder(image, 75, 75, 75, 75, cv2.BORDER_CONSTANT) for image in (turned, frontal))
        ]
        assert yaw_ratio(landmarks_of(rolled[0])) <= -TURNED_YAW
        assert abs(yaw_ratio(landmarks_of(rolled[1]))) < TURNED_YAW / 2


def test_yaw_of_synthetic_landmarks() -> None:
    eyes = np.array([[40.0, 50.0], [80.0, 50.0]])
    mouth = np.array([[45.0, 90.0], [75.0, 90.0]])
    frontal = np.vstack([eyes, [[60.0, 70.0]], mouth])
    assert yaw_ratio(frontal) == 0.0
    turned = np.vstack([eyes, [[72.0, 70.0]], mouth])
    assert yaw_ratio(turned) == pytest.approx(0.3)
    angle = np.deg2rad(25)  # roll: the same face rotated in the image plane reads the same
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    assert yaw_ratio((turned - 60) @ rotation.T * 1.7 + 5) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="eye landmarks coincide"):
        yaw_ratio(np.vstack([[[50.0, 50.0]] * 2, frontal[2:]]))

"""Head pose from MTCNN's five landmarks: how far the face is turned (yaw), for the pose check on LFW View 1."""
from __future__ import annotations

import numpy as np

# A face counts as turned when |yaw_ratio| is at least this. Fixed before any accuracy was measured on the turned
# subset (issue 15): a nose tip about 0.4 eye distances in front of the eyes moves sideways by about
# 0.4 * tan(yaw) eye distances, so 0.2 is a turn of roughly 25-30 degrees, where a frontal 5-point template
# starts to be a poor fit.
TURNED_YAW = 0.2


def yaw_ratio(landmarks: np.ndarray) -> float:
    """The nose's offset from the eyes' midpoint along the eye line, in eye distances (0: frontal; sign: side).

    landmarks: (5, 2) as MTCNN gives them (left eye, right eye, nose, mouth left, mouth right) in image pixels.
    Positive when the nose lies toward the right eye in the image (larger x for an upright face). Measured along
    the eye line, so a tilted (rolled) head does not read as turned.
    """
    points = np.asarray(landmarks, np.float64).reshape(5, 2)
    left_eye, right_eye, nose = points[0], points[1], points[2]
    eye_line = right_eye - left_eye
    eye_distance = float(np.hypot(*eye_line))
    if eye_distance == 0.0:
        raise ValueError("the two eye landmarks coincide: no yaw can be read from them")
    return float(np.dot(nose - (left_eye + right_eye) / 2, eye_line) / eye_distance**2)


def is_turned(landmarks: np.ndarray | None, bar: float = TURNED_YAW) -> bool:
    """Whether a face's landmarks imply a turned head (|yaw_ratio| >= bar); False without landmarks."""
    return landmarks is not None and abs(yaw_ratio(landmarks)) >= bar

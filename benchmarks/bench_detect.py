"""Face detection time per image: MTCNN as the `mtcnn` package runs it (eager), with its Keras networks compiled,
and FaceReg's detector (the same networks on OpenCV's DNN engine).

    python benchmarks/bench_detect.py [--images 40]

All detectors run on the same LFW images (250 x 250) in this process, after one warm-up call each; the table
gives medians. Rows: eager; each Keras network compiled with `tf.function` (how FaceReg first sped it up); FaceReg's
detector (`trainer.faces`: the networks translated for `cv2.dnn` by `trainer.mtcnn_nets`); and
that with the two images of a pair in one call, as `Verifier.verify` does.

A second table puts each face, scaled to 300 x 300, into a 640 x 480 frame (a webcam picture at arm's length) and
times `face_locations` with the pyramid from 20 px faces up (min_face_fraction=0) against from 8 % of the frame's
shorter side (the default, MIN_FACE_FRACTION), and how far apart the landmarks of the two are.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from trainer.evaluate import LFW_DIR, read_lfw_pairs  # noqa: E402
from trainer.faces import MIN_FACE_FRACTION, _mtcnn, face_locations  # noqa: E402
from trainer.images import load_image  # noqa: E402



def compiled_keras(detector):
    """The detector with each stage's Keras network wrapped in a tf.function (one trace per network)."""
    import tensorflow as tf

    for stage in detector.stages:
        side = {1: None, 2: 24, 3: 48}[stage.id]
        stage._model = tf.function(
            lambda batch, model=stage._model: model(batch, training=False),
            input_signature=[tf.TensorSpec([None, side, side, 3], tf.float32)],
            autograph=False,
        )
    return detector


def per_image_ms(detector, images: list[np.ndarray], per_call: int = 1) -> float:
    """Median milliseconds per image of `detect_faces` on `per_call` images at a time, after a warm-up."""
    calls = [images[i : i + per_call] for i in range(0, len(images) - per_call + 1, per_call)]
    detector.detect_faces(calls[0], output_type="numpy")
    times = []
    for batch in calls:
        start = time.perf_counter()
        detector.detect_faces(batch, output_type="numpy")
        times.append(1000 * (time.perf_counter() - start) / per_call)
    return statistics.median(times)


def webcam_frames(images: list[np.ndarray]) -> list[np.ndarray]:
    """Each image scaled to 300 x 300 in the middle of a grey 640 x 480 frame."""
    import cv2

    frames = []
    for image in images:
        frame = np.full((480, 640, 3), 90, np.uint8)
        frame[90:390, 170:470] = cv2.resize(image.astype(np.uint8), (300, 300))
        frames.append(frame)
    return frames


def frame_ms(frames: list[np.ndarray], fraction: float) -> tuple[float, list]:
    """Median milliseconds of `face_locations` per frame at this minimum face fraction, and the faces found."""
    face_locations(frames[0], min_face_fraction=fraction)
    times, found = [], []
    for frame in frames:
        start = time.perf_counter()
        found.append(face_locations(frame, min_face_fraction=fraction))
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times), found


def main() -> None:
    """Run the benchmark and print a markdown table."""
    from mtcnn import MTCNN

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, default=LFW_DIR)
    parser.add_argument("--images", type=int, default=40)
    args = parser.parse_args()
    pairs = read_lfw_pairs(args.lfw)[:: 6000 // args.images][: args.images]
    images = [load_image(p.path1).astype(np.float32) for p in pairs]
    eager = per_image_ms(MTCNN(), images)
    compiled = per_image_ms(compiled_keras(MTCNN()), images)
    ours = per_image_ms(_mtcnn(), images)
    paired = per_image_ms(_mtcnn(), images, per_call=2)
    print(f"\n| MTCNN on {len(images)} LFW images (median per image, {os.cpu_count()}-core CPU) | ms |")
    print("|---|---|")
    print(f"| eager, as the `mtcnn` package runs it | {eager:.1f} |")
    print(f"| each Keras network compiled with `tf.function`, PNet once per pyramid level | {compiled:.1f} "
          f"({eager / compiled:.1f}x faster) |")
    print(f"| FaceReg: the networks on OpenCV's DNN engine (trainer.faces) | {ours:.1f} "
          f"({eager / ours:.1f}x faster) |")
    print(f"| FaceReg, the two images of a pair in one call (Verifier.verify) | {paired:.1f} "
          f"({eager / paired:.1f}x faster) |")
    frames = webcam_frames(images)
    fine_ms, fine = frame_ms(frames, 0.0)
    coarse_ms, coarse = frame_ms(frames, MIN_FACE_FRACTION)
    same = [bool(a) and bool(b) for a, b in zip(fine, coarse)]
    shifts = [float(np.abs(a[0].landmarks - b[0].landmarks).max()) for a, b in zip(fine, coarse) if a and b]
    print(f"\n| `face_locations` on {len(frames)} 640 x 480 frames (median per frame) | ms | frames with a face |")
    print("|---|---|---|")
    print(f"| pyramid from 20 px faces up | {fine_ms:.1f} | {sum(map(bool, fine))} |")
    print(f"| from {MIN_FACE_FRACTION:.0%} of the shorter side (38 px), the default | {coarse_ms:.1f} "
          f"({fine_ms / coarse_ms:.1f}x faster) | {sum(map(bool, coarse))} |")
    print(f"\nLandmark shift between the two (the largest of a face's five points), over the {sum(same)} frames "
          f"where both found the face: median {np.median(shifts):.1f} px, 90th percentile "
          f"{np.percentile(shifts, 90):.1f} px, largest {max(shifts):.1f} px")


if __name__ == "__main__":
    main()

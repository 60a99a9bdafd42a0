"""Face detection time per image: MTCNN as the `mtcnn` package runs it (eager), with its Keras networks compiled,
and FaceReg's detector (the same networks: PNet and ONet on OpenCV's DNN engine, RNet compiled by TensorFlow).

    python benchmarks/bench_detect.py [--images 40]

All detectors run on the same LFW images (250 x 250) in this process, after one warm-up call each; the table
gives medians. Rows: eager; each Keras network compiled with `tf.function` (how FaceReg first sped it up); FaceReg's
detector (`trainer.faces`: PNet and ONet translated for `cv2.dnn` by `trainer.mtcnn_nets`, RNet compiled); that
with the two images of a pair in one call, as `Verifier.verify` does; and that with PNet on one network a thread, as
before it kept a network per pyramid level (in turn with the row above, three rounds).

A second table puts each face, scaled to 300 x 300, into a 640 x 480 frame (a webcam picture at arm's length) and
times `face_locations` with the pyramid from 20 px faces up (min_face_fraction=0) against from 8 % of the frame's
shorter side (the default, MIN_FACE_FRACTION), and how far apart the landmarks of the two are.

A third table splits FaceReg's detection of a pair (both images in one call, as `Verifier.verify` runs it) into its
parts: for each of MTCNN's stages, the network, what feeds it (the pyramid's resizes for PNet, the patches cut by
TensorFlow's `crop_and_resize` for RNet and ONet) and mtcnn's box handling around it (proposals, non-maximum
suppression), timed by wrapping each part of a separate detector; then the alignment of the two chips.

A fourth table runs the detector as the app's two inference workers do (`trainer.serving`): two threads at once, each
detecting two pairs a call, against one pair a call alone, with RNet compiled by TensorFlow (FaceReg now) and on
OpenCV's DNN engine (before), three rounds in turn: pairs a second, wall time and the process's CPU time a pair.
"""
from __future__ import annotations

import argparse
import collections
import concurrent.futures
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
from trainer.faces import (  # noqa: E402
    LOW_CONFIDENCE_FLOOR,
    MIN_FACE_FRACTION,
    MIN_FACE_SIZE,
    _mtcnn,
    align_face,
    face_locations,
    face_locations_batch,
)
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


def one_network_a_thread(detector):
    """The detector with PNet on one network a thread, which OpenCV sets up again at each pyramid level (FaceReg's
    PNet before it kept a network per input shape, `trainer.faces.PNET_SHAPES`)."""
    from mtcnn.stages import StagePNet

    from trainer.faces import _as_keras_outputs
    from trainer.mtcnn_nets import DnnNetwork

    detector.stages[0].network = _as_keras_outputs(DnnNetwork(StagePNet().model, 12))
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


class Clock:
    """Wall time of wrapped callables, summed by label."""

    def __init__(self) -> None:
        self.ms: collections.Counter[str] = collections.Counter()

    def wrap(self, label: str, fn):
        """`fn`, timed under `label` at each call."""

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.ms[label] += 1000 * (time.perf_counter() - start)

        return timed


def stage_breakdown(pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[dict[str, float], dict[str, float]]:
    """Mean milliseconds a pair of each part of FaceReg's detection (both images in one call) and alignment, and
    the mean number of patches RNet and ONet see a pair, on a separate, instrumented copy of the detector."""
    import mtcnn.stages.stage_onet
    import mtcnn.stages.stage_rnet

    detector = _mtcnn.__wrapped__()  # not the process-wide one: its parts get timers
    clock = Clock()
    patches: collections.Counter[str] = collections.Counter()
    pnet, rnet, onet = detector.stages
    pnet.network = clock.wrap("PNet: network, all pyramid levels", pnet.network)
    pnet._run = clock.wrap("pnet_run", pnet._run)  # the resizes are _run's time less the network's

    def counted(name: str, network):
        def run(batch):
            patches[name] += len(batch)
            return network(batch)

        return clock.wrap(f"{name}: network", run)

    rnet._model, onet._model = counted("RNet", rnet._model), counted("ONet", onet._model)
    detector._stages = [clock.wrap(name, stage) for name, stage in zip(("PNet", "RNet", "ONet"), detector.stages)]
    cut = {module: module.extract_patches for module in (mtcnn.stages.stage_rnet, mtcnn.stages.stage_onet)}
    for module, extract in cut.items():
        name = "RNet" if module is mtcnn.stages.stage_rnet else "ONet"
        module.extract_patches = clock.wrap(f"{name}: patches (crop_and_resize)", extract)

    def detect(pair: tuple[np.ndarray, np.ndarray]) -> None:
        detect_as_facereg(detector, list(pair))

    try:
        detect(pairs[0])  # warm-up
        clock.ms.clear(), patches.clear()
        for pair in pairs:
            clock.wrap("total", detect)(pair)
    finally:
        for module, extract in cut.items():
            module.extract_patches = extract
    for pair in pairs:  # alignment, on the process-wide detector's faces
        faces = face_locations_batch(list(pair))
        clock.wrap("alignment", lambda: [align_face(image, found[0], 150)
                                         for image, found in zip(pair, faces) if found])()
    ms = {label: value / len(pairs) for label, value in clock.ms.items()}
    parts = {
        "PNet: pyramid resizes (OpenCV's area resize)": ms["pnet_run"] - ms["PNet: network, all pyramid levels"],
        "PNet: network, all pyramid levels": ms["PNet: network, all pyramid levels"],
        "PNet: proposals and non-maximum suppression": ms["PNet"] - ms["pnet_run"],
    }
    for name in ("RNet", "ONet"):
        cutting, network = ms[f"{name}: patches (crop_and_resize)"], ms[f"{name}: network"]
        parts[f"{name}: patches (crop_and_resize)"] = cutting
        parts[f"{name}: network"] = network
        parts[f"{name}: boxes and non-maximum suppression"] = ms[name] - cutting - network
    parts["outside the stages (stacking and normalising the images, final boxes)"] = (
        ms["total"] - ms["PNet"] - ms["RNet"] - ms["ONet"])
    parts["alignment of the two chips (trainer.faces.align_face)"] = ms["alignment"]
    return parts, {name: count / len(pairs) for name, count in patches.items()}


def rnet_on_opencv(detector):
    """The detector with RNet on OpenCV's DNN engine, as FaceReg ran it before `trainer.mtcnn_nets.CompiledNetwork`."""
    from mtcnn.stages import StageRNet

    from trainer.faces import _as_keras_outputs
    from trainer.mtcnn_nets import DnnNetwork

    detector.stages[1]._model = _as_keras_outputs(DnnNetwork(StageRNet().model, 24))
    return detector


def detect_as_facereg(detector, images: list[np.ndarray]) -> list:
    """`detect_faces` on same-size images as face_locations_batch runs it on LFW's 250 x 250 images."""
    size = max(MIN_FACE_SIZE, int(MIN_FACE_FRACTION * min(images[0].shape[:2])))
    return detector.detect_faces([image.astype(np.float32) for image in images], output_type="numpy",
                                 threshold_onet=LOW_CONFIDENCE_FLOOR, min_face_size=size)


def detect_calls(detector, calls: list[list[np.ndarray]], threads: int) -> tuple[float, float]:
    """Wall and CPU seconds of `detect_as_facereg` on every call's images, spread over `threads` threads."""

    def detect(images: list[np.ndarray]) -> None:
        detect_as_facereg(detector, images)

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(detect, calls[:threads]))  # each thread's OpenCV networks are set up on its first call
        wall, cpu = time.perf_counter(), time.process_time()
        list(pool.map(detect, calls))
        return time.perf_counter() - wall, time.process_time() - cpu


def serving_rounds(images: list[np.ndarray], rounds: int = 3) -> dict[str, list[tuple[float, float, float]]]:
    """(pairs a second, wall ms a pair, CPU ms a pair) of each way of running the detector, in turn for each round."""
    detectors = {"RNet compiled by TensorFlow (FaceReg)": _mtcnn.__wrapped__(),
                 "RNet on OpenCV's DNN engine (before)": rnet_on_opencv(_mtcnn.__wrapped__())}
    pairs = len(images) // 2
    ways = {"two threads at once, two pairs a call": (4, 2), "one pair a call, alone": (2, 1)}
    results: dict[str, list[tuple[float, float, float]]] = collections.defaultdict(list)
    for _ in range(rounds):
        for way, (per_call, threads) in ways.items():
            for name, detector in detectors.items():
                calls = [images[i:i + per_call] for i in range(0, len(images) - per_call + 1, per_call)]
                wall, cpu = detect_calls(detector, calls, threads)
                results[f"{way}: {name}"].append((pairs / wall, 1000 * wall / pairs, 1000 * cpu / pairs))
    return results


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
    parser.add_argument("--serving-pairs", type=int, default=120, help="LFW pairs for the fourth table")
    args = parser.parse_args()
    pairs = read_lfw_pairs(args.lfw)[:: 6000 // args.images][: args.images]
    images = [load_image(p.path1).astype(np.float32) for p in pairs]
    eager = per_image_ms(MTCNN(), images)
    compiled = per_image_ms(compiled_keras(MTCNN()), images)
    ours = per_image_ms(_mtcnn(), images)
    single_net = one_network_a_thread(_mtcnn.__wrapped__())
    rounds = [(per_image_ms(_mtcnn(), images, per_call=2), per_image_ms(single_net, images, per_call=2))
              for _ in range(3)]  # in turn, as the machine's speed drifts
    paired, paired_single_net = (statistics.median(times) for times in zip(*rounds))
    same = all(np.array_equal(a, b) for a, b in zip(_mtcnn().detect_faces(images[:8], output_type="numpy"),
                                                    single_net.detect_faces(images[:8], output_type="numpy")))
    print(f"\n| MTCNN on {len(images)} LFW images (median per image, {os.cpu_count()}-core CPU) | ms |")
    print("|---|---|")
    print(f"| eager, as the `mtcnn` package runs it | {eager:.1f} |")
    print(f"| each Keras network compiled with `tf.function`, PNet once per pyramid level | {compiled:.1f} "
          f"({eager / compiled:.1f}x faster) |")
    print(f"| FaceReg: PNet and ONet on OpenCV's DNN engine, RNet compiled (trainer.faces) | {ours:.1f} "
          f"({eager / ours:.1f}x faster) |")
    print(f"| FaceReg, the two images of a pair in one call (Verifier.verify) | {paired:.1f} "
          f"({eager / paired:.1f}x faster) |")
    print(f"| the same, PNet on one network a thread, set up again at each pyramid level (before) | "
          f"{paired_single_net:.1f} ({eager / paired_single_net:.1f}x faster) |")
    print(f"\nFaceReg's rows on a pair: the median of 3 rounds, the two in turn; the same faces both ways on 8 images: "
          f"{'yes' if same else 'NO'}.")
    loaded = [(load_image(p.path1), load_image(p.path2)) for p in pairs]
    parts, patches = stage_breakdown(loaded)
    total = sum(parts.values())
    print(f"\n| FaceReg's detection of a pair, by part ({len(loaded)} LFW pairs, mean a pair) | ms | share |")
    print("|---|---|---|")
    for label, value in parts.items():
        print(f"| {label} | {value:.1f} | {value / total:.0%} |")
    print(f"| **all** | **{total:.1f}** | |")
    print(f"\nPatches a pair: RNet {patches['RNet']:.0f}, ONet {patches['ONet']:.0f} (mean).")
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

    serving_images = [load_image(path).astype(np.float32)
                      for p in read_lfw_pairs(args.lfw)[1 :: 6000 // args.serving_pairs][: args.serving_pairs]
                      for path in (p.path1, p.path2)]
    results = serving_rounds(serving_images)
    print(f"\n| the detector as the app's inference workers run it ({len(serving_images) // 2} LFW pairs; median of 3 "
          "rounds, in turn) | pairs/s | wall ms a pair | CPU ms a pair |")
    print("|---|---|---|---|")
    for label, rows in results.items():
        rate, wall, cpu = (statistics.median(column) for column in zip(*rows))
        print(f"| {label} | {rate:.1f} | {wall:.1f} | {cpu:.1f} |")
    before = rnet_on_opencv(_mtcnn.__wrapped__()).detect_faces(serving_images[:8], output_type="numpy")
    same = all(a.shape == b.shape and np.allclose(a, b, atol=1e-3)
               for a, b in zip(_mtcnn().detect_faces(serving_images[:8], output_type="numpy"), before))
    print(f"\nThe same faces (boxes, confidences and landmarks within 1e-3) with RNet on either engine, on 8 images: "
          f"{'yes' if same else 'NO'}.")


if __name__ == "__main__":
    main()

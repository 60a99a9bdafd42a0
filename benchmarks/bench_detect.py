"""Face detection time per image: MTCNN as the `mtcnn` package runs it (eager) vs FaceReg's compiled networks.

    python benchmarks/bench_detect.py [--images 40]

All detectors run on the same LFW images (250 x 250) in this process, after one warm-up call each; the table
gives medians. Rows: eager; each network compiled, PNet called once per pyramid level as mtcnn does; FaceReg's
detector (PNet over all levels in one call); and that with the two images of a pair in one call, as
`Verifier.verify` does.
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
from trainer.faces import _mtcnn, compile_stages  # noqa: E402
from trainer.images import load_image  # noqa: E402



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
    per_level = per_image_ms(compile_stages(MTCNN()), images)
    compiled = per_image_ms(_mtcnn(), images)
    paired = per_image_ms(_mtcnn(), images, per_call=2)
    print(f"\n| MTCNN on {len(images)} LFW images (median per image, {os.cpu_count()}-core CPU) | ms |")
    print("|---|---|")
    print(f"| eager, as the `mtcnn` package runs it | {eager:.1f} |")
    print(f"| each network compiled with `tf.function`, PNet once per pyramid level | {per_level:.1f} "
          f"({eager / per_level:.1f}x faster) |")
    print(f"| compiled, PNet over all levels in one call (trainer.faces) | {compiled:.1f} "
          f"({eager / compiled:.1f}x faster) |")
    print(f"| compiled, the two images of a pair in one call (Verifier.verify) | {paired:.1f} "
          f"({eager / paired:.1f}x faster) |")


if __name__ == "__main__":
    main()

"""The default model's choices, measured on LFW View 1 only: which face of a crowded image, test-time flip, and
MTCNN's minimum face size.

    python -m benchmarks.view1_choices [--lfw ../shared/data/lfw]

Every View 1 image (DevTrain and DevTest) is detected once per minimum face size; for each face policy (the
largest face, as in verification, or the one nearest the image centre, since LFW's images are crops centred on
their subject), with and without test-time flip, and (central face, flip) for each minimum face size, the table
gives:
- the backbone with Euclidean distance: accuracy and ROC AUC on DevTrain at its best threshold, and on DevTest
  at the threshold chosen on DevTrain;
- a head trained on DevTrain as `python -m trainer fit-default` trains it: DevTest accuracy at the threshold
  chosen on DevTrain, and ROC AUC.
View 2 is not touched. About 10 minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("FACEREG_PRECISION", "float32")  # the float32 network's accuracy (bench_precision: bfloat16)

import numpy as np  # noqa: E402

from trainer.default_model import BACKBONE, HEAD_BATCH_SIZE, HEAD_EPOCHS, HEAD_LEARNING_RATE  # noqa: E402
from trainer.evaluate import (  # noqa: E402
    LFW_DIR,
    AlignedImages,
    best_accuracy_threshold,
    embed_pairs,
    euclidean_scores,
    read_lfw_pairs,
    verification_report,
)
from trainer.faces import DETECT_BATCH, face_locations_batch, pick_face  # noqa: E402
from trainer.head import fit_head  # noqa: E402
from trainer.images import load_image  # noqa: E402
from trainer.model_io import ModelConfig  # noqa: E402
from trainer.networks import build_embedding, build_siamese  # noqa: E402
from trainer.serving import configure_cpu  # noqa: E402
from trainer.verify import Verifier  # noqa: E402

MIN_FACE_SIZES = (20, 40)
# (face used, test-time flip, MTCNN's minimum face size)
VARIANTS = [(policy, flip, 20) for policy in ("largest", "central") for flip in (False, True)] + [("central", True, 40)]


def detect_all(paths: list[Path], min_face_size: int) -> dict[Path, tuple[np.ndarray, list]]:
    """Each image and every face MTCNN finds in it, detected once."""
    found = {}
    for start in range(0, len(paths), DETECT_BATCH):
        chunk = paths[start : start + DETECT_BATCH]
        images = [load_image(p) for p in chunk]
        for path, image, faces in zip(chunk, images, face_locations_batch(images, min_face_size=min_face_size)):
            found[path] = (image, faces)
    return found


def aligned_by(found: dict, paths: list[Path], policy: str, size: int) -> AlignedImages:
    """One aligned chip per image under a face policy (no face: a central crop, as `evaluate` does)."""
    chips = [pick_face(*found[path], size, on_multiple=policy, on_no_face="center") for path in paths]
    return AlignedImages.from_chips(paths, chips, policy)


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lfw", type=Path, default=LFW_DIR)
    args = parser.parse_args()
    configure_cpu()  # TensorFlow's threads as `python -m trainer evaluate` and the app set them

    started = time.perf_counter()
    train = read_lfw_pairs(args.lfw, "pairsDevTrain.txt")
    test = read_lfw_pairs(args.lfw, "pairsDevTest.txt")
    paths = sorted({p for pair in train + test for p in (pair.path1, pair.path2)})
    found, several = {}, {}
    for size in MIN_FACE_SIZES:
        begun = time.perf_counter()
        found[size] = detect_all(paths, size)
        several[size] = sum(len(faces) > 1 for _, faces in found[size].values())
        print(f"min face {size} px: detected {len(paths)} View 1 images ({several[size]} with several faces) in "
              f"{time.perf_counter() - begun:.0f} s", flush=True)

    embedding = build_embedding(BACKBONE)
    n = len(train)
    rows = []
    for policy, flip, size in VARIANTS:
        model = build_siamese(embedding)
        verifier = Verifier(model, ModelConfig(BACKBONE, flip=flip))
        e = embed_pairs(verifier, train + test, aligned_by(found[size], paths, policy, verifier.spec.input_size))
        distance = euclidean_scores(e)
        t = best_accuracy_threshold(distance[:n], e.labels[:n])
        e_train = verification_report(distance[:n], e.labels[:n], threshold=t)
        e_test = verification_report(distance[n:], e.labels[n:], threshold=t)
        fit_head(model, e.a[:n], e.b[:n], e.labels[:n], epochs=HEAD_EPOCHS, batch_size=HEAD_BATCH_SIZE,
                 learning_rate=HEAD_LEARNING_RATE, seed=0, verbose=0)
        scores = verifier.score(e.a, e.b)
        t = best_accuracy_threshold(scores[:n], e.labels[:n])
        h_test = verification_report(scores[n:], e.labels[n:], threshold=t)
        rows.append((policy, flip, size, e_train, e_test, h_test))
        print(f"{policy}, flip={flip}, min face {size}: done ({time.perf_counter() - started:.0f} s)", flush=True)

    print("\n| face used | flip | min face | Euclidean, DevTrain acc. / AUC | Euclidean, DevTest acc. / AUC "
          "| head, DevTest acc. / AUC |")
    print("|---|---|---|---|---|---|")
    for policy, flip, size, e_train, e_test, h_test in rows:
        cells = [f"{100 * r['accuracy_at_threshold']:.2f} % / {r['auc']:.5f}" for r in (e_train, e_test, h_test)]
        print(f"| {policy} | {'yes' if flip else 'no'} | {size} px | " + " | ".join(cells) + " |")
    print(f"\n{len(train)} DevTrain and {len(test)} DevTest pairs; images with several faces: "
          + ", ".join(f"{several[size]} of {len(paths)} at min face {size} px" for size in MIN_FACE_SIZES) + ".")

if __name__ == "__main__":
    main()

"""LFW View 2 accuracy of the default model and of its backbone with plain Euclidean distance.

    python benchmarks/bench_lfw.py [--lfw ../shared/data/lfw] [--json-out results.json] [--write-metrics]

Protocol: all 6,000 pairs of View 2 (`pairs.txt`), 10 folds, accuracy mean +/- std over the folds with the
threshold chosen on the other 9 folds. The default model's head was trained on View 1 DevTrain pairs only
(as LFW's rules allow); the backbone (dlib's ResNet) was trained by dlib's author on data that is not LFW.
Each image is detected and aligned once; both rows score the same chips. In an image with several faces the one
nearest the centre is used, since LFW's images are crops centred on their subject (`evaluate --lfw` does the same).
Besides the 10-fold figure, each score is cut at its shipped threshold (the default model's, chosen on View 1
DevTrain; dlib's own 0.6 for the plain distance): the accuracy, false-accept rate (impostor pairs accepted) and
true-accept rate a user meets. `--write-metrics` adds the default model's View 2 operating point to its
head.json metrics (reporting only: nothing is chosen on View 2).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("FACEREG_PRECISION", "float32")  # the float32 network's accuracy (bench_precision: bfloat16)

import numpy as np  # noqa: E402

from trainer.default_model import HEAD_FILE  # noqa: E402
from trainer.evaluate import (  # noqa: E402
    LFW_DIR,
    align_pair_images,
    embed_pairs,
    euclidean_scores,
    evaluate_embeddings,
    kfold_correct,
    operating_point,
    read_lfw_pairs,
)
from trainer.model_io import ModelConfig  # noqa: E402
from trainer.networks import head_kind  # noqa: E402
from trainer.serving import configure_cpu  # noqa: E402
from trainer.verify import Verifier  # noqa: E402

DLIB_TOLERANCE = 0.6  # dlib's (and face_recognition's) own distance threshold: chosen by dlib's author, not on LFW


def main() -> None:
    """Run the benchmark and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, default=LFW_DIR)
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--write-metrics", action="store_true",
                        help="add the default model's View 2 operating point to trainer/default_model/head.json")
    args = parser.parse_args()
    configure_cpu()  # TensorFlow's threads as `python -m trainer evaluate` and the app set them

    pairs = read_lfw_pairs(args.lfw)
    default = Verifier.default()
    plain = Verifier(default.model, ModelConfig(default.config.backbone, flip=False))
    start = time.perf_counter()
    aligned = align_pair_images(
        default, pairs, progress=lambda i, n: print(f"\raligned {i}/{n}", end="", file=sys.stderr, flush=True),
        on_multiple="central",
    )
    print(f"\naligned {len(aligned.paths)} images in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    embedded = embed_pairs(default, pairs, aligned)
    embedded_plain = embed_pairs(plain, pairs, aligned)
    index = {p: i for i, p in enumerate(aligned.paths)}
    turned = np.array([aligned.turned[index[p.path1]] or aligned.turned[index[p.path2]] for p in pairs])
    head = evaluate_embeddings(default, embedded, "head")
    euclid = evaluate_embeddings(plain, embedded_plain, "euclidean")
    # The backbone's own threshold is dlib's distance tolerance: scores are negated distances.
    euclid.update(threshold=-DLIB_TOLERANCE,
                  accuracy_at_threshold=float(np.mean((euclidean_scores(embedded_plain) >= -DLIB_TOLERANCE)
                                                      == embedded.labels)),
                  **operating_point(euclidean_scores(embedded_plain), embedded.labels, -DLIB_TOLERANCE))
    rows = [
        (f"default model (dlib ResNet + {head_kind(default.model)} head, View 1 DevTrain"
         + (", test-time flip)" if default.config.flip else ")"), head, default.score(embedded.a, embedded.b),
         default.threshold),
        (f"dlib ResNet backbone, Euclidean distance (threshold: dlib's {DLIB_TOLERANCE})", euclid,
         euclidean_scores(embedded_plain), -DLIB_TOLERANCE),
    ]
    labels, folds = embedded.labels, embedded.folds
    print(f"\n| score (LFW View 2, 6,000 pairs) | 10-fold acc. mean +/- std | acc. at the shipped threshold | "
          f"FAR / TAR at it | ROC AUC | EER | TAR @ FAR 1e-3 | turned pairs ({turned.sum()}): 10-fold acc. / "
          f"at the threshold |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r, scores, threshold in rows:
        correct = kfold_correct(scores, labels, folds)
        r["turned_pairs"] = int(turned.sum())
        r["turned_accuracy_kfold"] = float(correct[turned].mean())
        r["turned_accuracy_at_threshold"] = float(np.mean((scores[turned] >= threshold) == labels[turned]))
        print(f"| {name} | {100 * r['accuracy_mean']:.2f} +/- {100 * r['accuracy_std']:.2f} % | "
              f"{100 * r['accuracy_at_threshold']:.2f} % | {100 * r['far_at_threshold']:.2f} % / "
              f"{100 * r['tar_at_threshold']:.2f} % | {r['auc']:.5f} | {100 * r['eer']:.2f} % | "
              f"{100 * r['tar_at_far_1e-3']:.2f} % | {100 * r['turned_accuracy_kfold']:.2f} % / "
              f"{100 * r['turned_accuracy_at_threshold']:.2f} % |")
    print(f"\nImages: {head['images']}; a face below MTCNN's confidence bar was used in {head['low_confidence_faces']} "
          f"(the best candidate above the floor); no face in {head['no_face']} ({head['no_face_policy']}); "
          f"several faces in {head['several_faces']} (the face nearest the image centre is used: LFW images are "
          f"crops centred on their subject). Turned pairs: at least one face with |yaw_ratio| >= the bar of "
          f"trainer/pose.py.")
    if args.json_out:
        args.json_out.write_text(json.dumps({name: r for name, r, _, _ in rows}, indent=1))
    if args.write_metrics:
        saved = json.loads(HEAD_FILE.read_text())
        saved["metrics"].update({
            "lfw_view2_accuracy_10fold": head["accuracy_mean"],
            "lfw_view2_accuracy_at_threshold": head["accuracy_at_threshold"],
            "lfw_view2_far_at_threshold": head["far_at_threshold"],
            "lfw_view2_tar_at_threshold": head["tar_at_threshold"],
            "lfw_view2_impostor_pairs": int((~labels).sum()),
        })
        HEAD_FILE.write_text(json.dumps(saved, indent=1) + "\n")
        print(f"wrote the View 2 operating point into {HEAD_FILE}", file=sys.stderr)


if __name__ == "__main__":
    main()

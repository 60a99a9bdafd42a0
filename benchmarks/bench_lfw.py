"""LFW View 2 accuracy of the default model and of its backbone with plain Euclidean distance.

    python benchmarks/bench_lfw.py [--lfw ../shared/data/lfw] [--json-out results.json]

Protocol: all 6,000 pairs of View 2 (`pairs.txt`), 10 folds, accuracy mean +/- std over the folds with the
threshold chosen on the other 9 folds. The default model's head was trained on View 1 DevTrain pairs only
(as LFW's rules allow); the backbone (dlib's ResNet) was trained by dlib's author on data that is not LFW.
Each image is detected and aligned once; both rows score the same chips. In an image with several faces the one
nearest the centre is used, since LFW's images are crops centred on their subject (`evaluate --lfw` does the same).
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

from trainer.evaluate import LFW_DIR, align_pair_images, embed_pairs, evaluate_embeddings, read_lfw_pairs  # noqa: E402
from trainer.model_io import ModelConfig  # noqa: E402
from trainer.verify import Verifier  # noqa: E402



def main() -> None:
    """Run the benchmark and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, default=LFW_DIR)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()

    pairs = read_lfw_pairs(args.lfw)
    default = Verifier.default()
    plain = Verifier(default.model, ModelConfig(default.config.backbone, flip=False))
    start = time.perf_counter()
    aligned = align_pair_images(
        default, pairs, progress=lambda i, n: print(f"\raligned {i}/{n}", end="", file=sys.stderr, flush=True),
        on_multiple="central",
    )
    print(f"\naligned {len(aligned.paths)} images in {time.perf_counter() - start:.0f} s", file=sys.stderr)

    rows = [
        ("default model (dlib ResNet + head trained on View 1 DevTrain"
         + (", test-time flip)" if default.config.flip else ")"), evaluate_embeddings(default, embed_pairs(default, pairs, aligned), "head")),
        ("dlib ResNet backbone, Euclidean distance", evaluate_embeddings(plain, embed_pairs(plain, pairs, aligned), "euclidean")),
    ]
    print("\n| model (LFW View 2, 6,000 pairs, 10 folds) | accuracy mean +/- std | ROC AUC | EER | TAR @ FAR 1e-3 | acc. at model threshold |")
    print("|---|---|---|---|---|---|")
    for name, r in rows:
        at_threshold = f"{100 * r['accuracy_at_threshold']:.2f} %" if "accuracy_at_threshold" in r else "n/a"
        print(f"| {name} | {100 * r['accuracy_mean']:.2f} +/- {100 * r['accuracy_std']:.2f} % | {r['auc']:.5f} | "
              f"{100 * r['eer']:.2f} % | {100 * r['tar_at_far_1e-3']:.2f} % | {at_threshold} |")
    print(f"\nImages without a detected face: {rows[0][1]['no_face']} of {rows[0][1]['images']} "
          f"({rows[0][1]['no_face_policy']}). Images with several faces: {rows[0][1]['several_faces']} "
          f"(the face nearest the image centre is used: LFW images are crops centred on their subject).")
    if args.json_out:
        args.json_out.write_text(json.dumps({name: r for name, r in rows}, indent=1))


if __name__ == "__main__":
    main()

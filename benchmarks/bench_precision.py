"""The embedding in float32 and in bfloat16, side by side: LFW decisions and speed on this CPU.

    python -m benchmarks.bench_precision [--lfw ../shared/data/lfw] [--repeats 15]

A Verifier embeds in bfloat16 where the CPU has bfloat16 instructions (`trainer.serving.inference_precision`;
FACEREG_PRECISION overrides it). The default model's head and threshold were chosen on float32 embeddings, so this
checks what bfloat16 changes on LFW, scoring each pair with the shipped head: on View 1 DevTest (1,000 pairs) and
View 2 (6,000 pairs), how many decisions at the shipped threshold differ, the accuracy at that threshold, and
View 2's protocol accuracy (10 folds, threshold chosen on the other 9; mean +/- std, and the pairs decided wrong).
Every image is detected and aligned once (the central face, as LFW's protocol has it) and both precisions embed the
same chips. Then the embedding alone (with test-time flip), alternating between the two, at batches of 1, 2, 4 and
32 chips: medians. About 5 minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from trainer.evaluate import (  # noqa: E402
    LFW_DIR,
    align_pair_images,
    embed_pairs,
    kfold_accuracy,
    kfold_correct,
    read_lfw_pairs,
)
from trainer.serving import (  # noqa: E402
    PRECISIONS,
    configure_cpu,
    cpu_has_bfloat16,
)
from trainer.verify import Verifier  # noqa: E402

SETS = (("View 1 DevTest", "pairsDevTest.txt"), ("View 2", "pairs.txt"))
BATCHES = (1, 2, 4, 32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", default=str(LFW_DIR))
    parser.add_argument("--repeats", type=int, default=15, help="timed calls per batch size and precision")
    args = parser.parse_args()
    configure_cpu()
    default = Verifier.default()
    verifiers = {p: Verifier(default.model, default.config, precision=p) for p in PRECISIONS}
    print(f"CPU has bfloat16 instructions: {cpu_has_bfloat16()}; the default model embeds in {default.precision} here; "
          f"shipped threshold {default.threshold:.4f}\n")

    print("| pairs (shipped head) | n | decisions changed | acc. at the threshold: float32 / bfloat16 | "
          "10-fold acc.: float32 / bfloat16 | wrong under 10-fold: float32 / bfloat16 | largest score change |")
    print("|---|---:|---:|---|---|---|---:|")
    for label, pairs_name in SETS:
        pairs = read_lfw_pairs(args.lfw, pairs_name)
        aligned = align_pair_images(default, pairs, on_multiple="central")
        scores, labels, folds = {}, None, None
        for precision, verifier in verifiers.items():
            embedded = embed_pairs(verifier, pairs, aligned)
            scores[precision] = verifier.score(embedded.a, embedded.b)
            labels, folds = embedded.labels, embedded.folds
        accepted = {p: s >= default.threshold for p, s in scores.items()}
        at_threshold = " / ".join(f"{100 * np.mean(accepted[p] == labels):.2f} %" for p in PRECISIONS)
        if len(np.unique(folds)) > 1:
            kfold = " / ".join("{:.2f} +/- {:.2f} %".format(*(100 * np.array(kfold_accuracy(s, labels, folds)[:2])))
                               for s in scores.values())
            wrong = " / ".join(str(int(np.sum(~kfold_correct(scores[p], labels, folds)))) for p in PRECISIONS)
        else:
            kfold = wrong = "(one fold)"
        changed = int(np.sum(accepted["float32"] != accepted["bfloat16"]))
        largest = float(np.abs(scores["float32"] - scores["bfloat16"]).max())
        print(f"| {label} | {len(pairs)} | {changed} | {at_threshold} | {kfold} | {wrong} | {largest:.4f} |")

    chips = aligned.chips[: max(BATCHES)]
    times: dict[tuple[str, int], list[float]] = {(p, b): [] for p in PRECISIONS for b in BATCHES}
    for batch in BATCHES:
        for verifier in verifiers.values():
            verifier.embed_chips(chips[:batch])  # TensorFlow sets up each batch size on its first use
        for _ in range(args.repeats):
            for precision, verifier in verifiers.items():  # alternating, so that the machine's drift hits both
                start = time.perf_counter()
                verifier.embed_chips(chips[:batch])
                times[precision, batch].append(time.perf_counter() - start)
    print("\n| embedding with test-time flip (median ms a call) | float32 | bfloat16 | speed-up |")
    print("|---|---:|---:|---:|")
    for batch in BATCHES:
        f32, bf16 = (1000 * float(np.median(times[p, batch])) for p in PRECISIONS)
        print(f"| batch {batch} | {f32:.1f} | {bf16:.1f} | {f32 / bf16:.2f}x |")


if __name__ == "__main__":
    main()

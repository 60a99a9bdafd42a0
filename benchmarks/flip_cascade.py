"""Could test-time flip run only where it can change a decision? The default model's plain and flipped scores, on
LFW View 1 (the rule) and checked on View 2 (docs/results-log.md, "Speed and memory").

    python -m benchmarks.flip_cascade [--lfw ../shared/data/lfw] [--rule-factor 2]

Test-time flip embeds each face twice (as it is and mirrored) and averages: half of a pair's embedding work. A
cascade would embed the plain faces first and add the mirrored passes only for pairs whose plain score lies within
a margin of the threshold, in logits (the head's pre-sigmoid output, where the scores are not squashed). Outside
that margin the decision cannot change if no pair's flip moves its logit by more than the margin.

The rule, fixed before looking at anything else: margin = `--rule-factor` x the largest logit shift that flip gives
any View 1 DevTrain pair (the pairs the default head was fitted on). Then, for DevTrain, DevTest and View 2, the
table gives: the largest and the 99th percentile shift, how many pairs shift by more than the margin (the only ones
whose decision could differ, at any threshold), how many decisions at the shipped threshold differ from full flip's
under the cascade and with no flip at all, and the share of pairs that would still need the mirrored passes at the
shipped threshold (the cascade's cost: 2 passes a face for the others, 4 for these). Every image is detected and
aligned once (the central face, as LFW's protocol has it); about 4 minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("FACEREG_PRECISION", "float32")  # the float32 network's accuracy (bench_precision: bfloat16)

import numpy as np  # noqa: E402

from trainer.evaluate import LFW_DIR, align_pair_images, read_lfw_pairs  # noqa: E402
from trainer.networks import siamese_parts  # noqa: E402
from trainer.serving import configure_cpu  # noqa: E402
from trainer.verify import BATCH_SIZE, Verifier  # noqa: E402

SETS = (("View 1 DevTrain (the rule)", "pairsDevTrain.txt"), ("View 1 DevTest", "pairsDevTest.txt"),
        ("View 2 (all 6,000 pairs)", "pairs.txt"))


def pass_tables(verifier: Verifier, chips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One forward pass of the embedding on each chip as it is, and on each chip mirrored."""
    import tensorflow as tf

    embedding, _ = siamese_parts(verifier.model)
    one_pass = tf.function(lambda x: embedding(x, training=False))
    tables = []
    for mirrored in (False, True):
        batches = [chips[i : i + BATCH_SIZE] for i in range(0, len(chips), BATCH_SIZE)]
        tables.append(np.concatenate([
            one_pass(verifier.spec.prepare(np.ascontiguousarray(b[:, :, ::-1] if mirrored else b))).numpy()
            for b in batches
        ]))
    return tables[0], tables[1]


def logits(verifier: Verifier, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The head's pre-sigmoid output for paired rows (float64: the scores themselves saturate at 0 and 1)."""
    _, head = siamese_parts(verifier.model)
    distance = verifier.model.get_layer("l1_distance")([a, b]).numpy().astype(np.float64)
    kernel, bias = head.get_weights()
    return distance @ kernel.astype(np.float64)[:, 0] + float(bias[0])


def pair_logits(verifier: Verifier, lfw: str, pairs_name: str) -> tuple[np.ndarray, np.ndarray]:
    """Each pair's logit with plain embeddings and with test-time flip's averaged ones."""
    pairs = read_lfw_pairs(lfw, pairs_name)
    aligned = align_pair_images(verifier, pairs, on_multiple="central")
    plain, mirrored = pass_tables(verifier, aligned.chips)
    flipped = (plain + mirrored) / 2
    index = {path: i for i, path in enumerate(aligned.paths)}
    first = np.array([index[p.path1] for p in pairs])
    second = np.array([index[p.path2] for p in pairs])
    return logits(verifier, plain[first], plain[second]), logits(verifier, flipped[first], flipped[second])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", default=str(LFW_DIR))
    parser.add_argument("--rule-factor", type=float, default=2.0, help="margin = this x DevTrain's largest shift")
    args = parser.parse_args()
    configure_cpu()
    verifier = Verifier.default()
    if not verifier.config.flip:
        raise SystemExit("the default model does not use test-time flip")
    at_threshold = float(np.log(verifier.threshold / (1 - verifier.threshold)))
    margin = None
    rows = []
    for label, pairs_name in SETS:
        plain, flipped = pair_logits(verifier, args.lfw, pairs_name)
        shift = np.abs(plain - flipped)
        if margin is None:
            margin = args.rule_factor * float(shift.max())
        needs_flip = np.abs(plain - at_threshold) < margin
        cascade = np.where(needs_flip, flipped, plain)
        full = flipped >= at_threshold
        rows.append([
            label, str(len(plain)), f"{shift.max():.2f} / {np.percentile(shift, 99):.2f}",
            str(int((shift > margin).sum())),
            str(int(((cascade >= at_threshold) != full).sum())), str(int(((plain >= at_threshold) != full).sum())),
            f"{100 * needs_flip.mean():.1f} %",
        ])
    print(f"Shipped threshold {verifier.threshold:.4f} (logit {at_threshold:.3f}); margin by the rule: "
          f"{args.rule_factor:g} x DevTrain's largest shift = {margin:.2f} logits\n")
    print("| pairs | n | flip's logit shift: max / p99 | pairs shifted beyond the margin | decisions changed: cascade "
          "| decisions changed: no flip | pairs needing the mirrored passes |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()

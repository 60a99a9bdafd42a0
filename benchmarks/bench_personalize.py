"""Personalisation on LFW: true-accept rate at 1 % false accepts on a user's held-out faces, before and after
fine-tuning on that user's dataset, for each backbone.

A user is a LFW View 1 DevTrain identity with many images: 10 of them are anchors, 10 positives, `--heldout` more
are kept for testing. Negatives for training come from 40 other DevTrain identities, held-out impostors from 100
further ones (one image each; the same pools for every user). The test pairs are every anchor against every
held-out image of the user (genuine) and of the impostors. The datasets are symlinks into LFW in a temp folder.

    python -m benchmarks.bench_personalize --lfw ../shared/data/lfw [--users 5] [--epochs-dlib 30] [--epochs-classic 5]

`--skip K` takes the users after the K identities with most images (settings can be chosen on other users than
those they are reported on); `--penalty` overrides the pull of a personal head toward equal weights
(`trainer.default_model.PERSONAL_PENALTY`). The "head spread" column is how far the fine-tuned head's weights are
from equal: their standard deviation over the absolute value of their mean (0: still tied, so it ranks pairs
exactly as before).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from trainer.data import FaceCache
from trainer.evaluate import LFW_DIR, equal_error_rate, tar_at_far
from trainer.model_io import ModelConfig
from trainer.networks import backbone_spec, build_embedding, build_siamese
from trainer.train import train
from trainer.verify import Verifier

os.environ.setdefault("FACEREG_PRECISION", "float32")  # the float32 network's accuracy (bench_precision: bfloat16)

ANCHORS, POSITIVES = 10, 10
TRAIN_NEGATIVES, TEST_IMPOSTORS = 40, 100
FAR = 0.01
STRICT_FAR = 0.001  # a second operating point: TAR at 1 % FAR is often at its ceiling with dlib_resnet


def devtrain_people(lfw: Path) -> list[tuple[str, int]]:
    """(name, image count) of LFW View 1 DevTrain identities."""
    lines = (lfw / "peopleDevTrain.txt").read_text().split("\n")[1:]
    return [(f[0], int(f[1])) for f in (line.split() for line in lines) if len(f) == 2]


def image(lfw: Path, name: str, n: int) -> Path:
    """Path of LFW image n of a person."""
    return lfw / "images" / name / f"{name}_{n:04d}.jpg"


def link_dataset(folder: Path, files: dict[str, list[Path]]) -> Path:
    """A FaceReg dataset folder of symlinks (LFW is never copied)."""
    for label, paths in files.items():
        (folder / label).mkdir(parents=True)
        for path in paths:
            os.symlink(path.resolve(), folder / label / path.name)
    return folder


def chips(cache: FaceCache, paths: list[Path], size: int) -> np.ndarray:
    """Aligned chips of the images where a face is found."""
    found = [cache.chip(p.read_bytes(), size, p.name) for p in paths]
    return np.stack([c for c in found if c is not None])


def test_scores(verifier: Verifier, anchors: np.ndarray, genuine: np.ndarray, impostors: np.ndarray) -> tuple:
    """Scores and labels of every anchor against every held-out genuine and impostor chip."""
    a, g, i = (verifier.embed_chips(x) for x in (anchors, genuine, impostors))
    pa = np.repeat(a, len(g) + len(i), axis=0)
    pb = np.tile(np.concatenate([g, i]), (len(a), 1))
    labels = np.tile(np.r_[np.ones(len(g)), np.zeros(len(i))], len(a)).astype(bool)
    return verifier.score(pa, pb), labels


def untrained(backbone: str, seed: int) -> Verifier:
    """The model before fine-tuning: the embedded default for dlib_resnet, a fresh network for classic."""
    if backbone == "dlib_resnet":
        return Verifier.default()
    import keras

    keras.utils.set_random_seed(seed)
    return Verifier(build_siamese(build_embedding(backbone)), ModelConfig(backbone))


def head_spread(verifier: Verifier) -> float:
    """Standard deviation of the head's weights over the absolute value of their mean (0: equal weights)."""
    from trainer.networks import siamese_parts

    kernel = siamese_parts(verifier.model)[1].get_weights()[0].ravel()
    return float(kernel.std() / max(abs(kernel.mean()), 1e-12))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, default=LFW_DIR)
    parser.add_argument("--users", type=int, default=5)
    parser.add_argument("--heldout", type=int, default=20, help="held-out test images per user")
    parser.add_argument("--backbones", default="dlib_resnet,classic")
    parser.add_argument("--epochs-dlib", type=int, default=30)
    parser.add_argument("--epochs-classic", type=int, default=5)
    parser.add_argument("--learning-rate", type=float, help="override the trainer's default for every backbone")
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", type=int, default=0, help="skip the first K users (most images first)")
    parser.add_argument("--penalty", type=float, help="override PERSONAL_PENALTY (pull toward equal head weights)")
    args = parser.parse_args()
    if args.penalty is not None:
        import trainer.default_model

        trainer.default_model.PERSONAL_PENALTY = args.penalty

    people = devtrain_people(args.lfw)
    users = [name for name, count in sorted(people, key=lambda p: -p[1])[args.skip : args.skip + args.users]]
    others = [name for name, _ in people if name not in users]
    np.random.default_rng(args.seed).shuffle(others)
    negatives = [image(args.lfw, name, 1) for name in others[:TRAIN_NEGATIVES]]
    impostors = [image(args.lfw, name, 1) for name in others[TRAIN_NEGATIVES : TRAIN_NEGATIVES + TEST_IMPOSTORS]]
    cache = FaceCache(args.cache_dir)
    rows, work = [], Path(tempfile.mkdtemp(prefix="facereg-personalize-"))
    for user in users:
        own = [image(args.lfw, user, n) for n in range(1, ANCHORS + POSITIVES + args.heldout + 1)]
        files = {"anchor": own[:ANCHORS], "positive": own[ANCHORS : ANCHORS + POSITIVES], "negative": negatives}
        folder = link_dataset(work / user, files)
        for backbone in args.backbones.split(","):
            size = backbone_spec(backbone).input_size
            test = [chips(cache, files["anchor"], size), chips(cache, own[ANCHORS + POSITIVES :], size),
                    chips(cache, impostors, size)]
            before = test_scores(untrained(backbone, args.seed), *test)
            epochs = args.epochs_dlib if backbone == "dlib_resnet" else args.epochs_classic
            started = time.perf_counter()
            result = train(folder, backbone, epochs, work / f"{user}-{backbone}", cache_dir=args.cache_dir,
                           seed=args.seed, learning_rate=args.learning_rate, verbose=0)
            seconds = time.perf_counter() - started
            tuned = Verifier.from_dir(result.output)
            after = test_scores(tuned, *test)
            rows.append((user, backbone, *(tar_at_far(s, y, FAR) for s, y in (before, after)),
                         *(tar_at_far(s, y, STRICT_FAR) for s, y in (before, after)),
                         *(equal_error_rate(s, y) for s, y in (before, after)), epochs, seconds,
                         int(before[1].sum()), int((~before[1]).sum()), head_spread(tuned)))
            print(f"{user} {backbone}: TAR@1%FAR {rows[-1][2]:.3f} -> {rows[-1][3]:.3f} ({seconds:.0f} s)", flush=True)

    print("\n| user | backbone | TAR @ 1 % FAR before | after | change | TAR @ 0.1 % FAR before | after | "
          "EER before | after | epochs | train s | genuine / impostor pairs | head spread after |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for user, backbone, t0, t1, s0, s1, e0, e1, epochs, seconds, ng, ni, spread in rows:
        print(f"| {user} | {backbone} | {100 * t0:.1f} % | {100 * t1:.1f} % | {100 * (t1 - t0):+.1f} pts | "
              f"{100 * s0:.1f} % | {100 * s1:.1f} % | {100 * e0:.1f} % | {100 * e1:.1f} % | {epochs} | "
              f"{seconds:.0f} | {ng} / {ni} | {spread:.4f} |")
    print("\n| backbone | mean TAR @ 1 % FAR before | after | change | users not worse | "
          "mean TAR @ 0.1 % FAR before | after |")
    print("|---|---|---|---|---|---|---|")
    for backbone in args.backbones.split(","):
        t0, t1, s0, s1 = np.mean([r[2:6] for r in rows if r[1] == backbone], axis=0)
        mine = [r for r in rows if r[1] == backbone]
        print(f"| {backbone} | {100 * t0:.1f} % | {100 * t1:.1f} % | {100 * (t1 - t0):+.1f} pts | "
              f"{sum(r[3] >= r[2] for r in mine)} / {len(mine)} | {100 * s0:.1f} % | {100 * s1:.1f} % |")


if __name__ == "__main__":
    main()

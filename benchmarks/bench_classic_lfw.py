"""The classic Siamese network trained from scratch under the LFW protocol: trained on View 1 DevTrain only
(its 2200 listed pairs plus pairs sampled from DevTrain identities), evaluated on View 2 (pairs.txt, 10 folds,
threshold chosen on the other 9 folds).

Chips are the central 120 x 120 pixels of the deep-funneled 250 x 250 LFW images, resized to 100 x 100: MTCNN on
the ~11,000 images involved would take most of a 2-core budget, and deep funneling has already centred the faces.
Training stops after `--epochs` or when `--minutes` of training time are spent, whichever comes first.

    python -m benchmarks.bench_classic_lfw --lfw ../shared/data/lfw [--pairs 3000] [--epochs 10] [--minutes 20]
"""
from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import cv2
import numpy as np

from trainer.data import Pairs, augmented_chips, training_dataset
from trainer.evaluate import LFW_DIR, read_lfw_pairs, verification_report
from trainer.model_io import ModelConfig
from trainer.networks import backbone_spec, build_embedding, build_siamese
from trainer.train import BATCH_SIZE, LEARNING_RATES
from trainer.verify import Verifier

os.environ.setdefault("FACEREG_PRECISION", "float32")  # the float32 network's accuracy (bench_precision: bfloat16)

CROP = slice(65, 185)


def center_chip(path: Path) -> np.ndarray:
    """The central 120 x 120 of a deep-funneled LFW image, as a 100 x 100 RGB chip."""
    image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    return cv2.resize(image[CROP, CROP], (100, 100), interpolation=cv2.INTER_AREA)


def devtrain_pairs(lfw: Path, per_class: int, rng: np.random.Generator) -> list[tuple[Path, Path, bool]]:
    """The listed DevTrain pairs, topped up with random genuine and impostor pairs of DevTrain identities."""
    listed = [(p.path1, p.path2, p.same) for p in read_lfw_pairs(lfw, "pairsDevTrain.txt")]
    lines = (lfw / "peopleDevTrain.txt").read_text().split("\n")[1:]
    people = [(f[0], int(f[1])) for f in (line.split() for line in lines) if len(f) == 2]
    image = lambda name, n: lfw / "images" / name / f"{name}_{n:04d}.jpg"  # noqa: E731
    several = [(name, count) for name, count in people if count > 1]
    genuine = [p for p in listed if p[2]]
    impostor = [p for p in listed if not p[2]]
    while len(genuine) < per_class:
        name, count = several[rng.integers(len(several))]
        i, j = rng.choice(count, 2, replace=False) + 1
        genuine.append((image(name, i), image(name, j), True))
    while len(impostor) < per_class:
        (n1, c1), (n2, c2) = (people[k] for k in rng.choice(len(people), 2, replace=False))
        impostor.append((image(n1, rng.integers(c1) + 1), image(n2, rng.integers(c2) + 1), False))
    return genuine[:per_class] + impostor[:per_class]


def table_of(pairs: list[tuple[Path, Path, bool]]) -> tuple[np.ndarray, Pairs]:
    """The chips of every image in a pair list, and the pairs as indices into them."""
    paths = sorted({p for a, b, _ in pairs for p in (a, b)})
    index = {p: i for i, p in enumerate(paths)}
    chips = np.stack([center_chip(p) for p in paths])
    return chips, Pairs(np.array([index[a] for a, _, _ in pairs]), np.array([index[b] for _, b, _ in pairs]),
                        np.array([s for _, _, s in pairs], np.float32))


def main() -> None:
    import keras

    from trainer.head import adam

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, default=LFW_DIR)
    parser.add_argument("--pairs", type=int, default=3000, help="training pairs per class")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--minutes", type=float, default=20, help="training time budget")
    parser.add_argument("--learning-rate", type=float, default=LEARNING_RATES["classic"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    started = time.perf_counter()
    train_chips, train_pairs = table_of(devtrain_pairs(args.lfw, args.pairs, np.random.default_rng(args.seed)))
    view2 = read_lfw_pairs(args.lfw)
    test_chips, test_pairs = table_of([(p.path1, p.path2, p.same) for p in view2])
    loaded = time.perf_counter()
    print(f"{len(train_chips)} training images, {len(train_pairs)} pairs; {len(test_chips)} View 2 images "
          f"({loaded - started:.0f} s)", flush=True)

    keras.utils.set_random_seed(args.seed)
    model = build_siamese(build_embedding("classic"))
    model.compile(optimizer=adam(args.learning_rate), loss="binary_crossentropy", metrics=["accuracy"])
    budget = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: setattr(
        model, "stop_training", time.perf_counter() - loaded > 60 * args.minutes))
    spec = backbone_spec("classic")
    history = model.fit(
        training_dataset(train_chips, train_pairs, augmented_chips(spec), batch_size=BATCH_SIZE, seed=args.seed,
                         first_epoch=0, epochs=args.epochs),
        epochs=args.epochs, steps_per_epoch=math.ceil(len(train_pairs) / BATCH_SIZE), shuffle=False,
        callbacks=[budget], verbose=2,
    )
    trained = time.perf_counter()

    verifier = Verifier(model, ModelConfig("classic"))
    embeddings = verifier.embed_chips(test_chips)
    scores = verifier.score(embeddings[test_pairs.a], embeddings[test_pairs.b])
    report = verification_report(scores, test_pairs.labels, np.array([p.fold for p in view2]))
    epochs = len(history.history["loss"])
    print("\n| network | training data | pairs seen | epochs | train time | View 2 accuracy (10-fold) | ROC AUC | EER |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| classic, from scratch | View 1 DevTrain: {len(train_pairs)} pairs ({len(train_chips)} images) | "
          f"{epochs * len(train_pairs)} | {epochs} | {(trained - loaded) / 60:.1f} min | "
          f"{100 * report['accuracy_mean']:.2f} +/- {100 * report['accuracy_std']:.2f} % | {report['auc']:.4f} | "
          f"{100 * report['eer']:.1f} % |")
    print(f"\nfinal training loss {history.history['loss'][-1]:.4f}, accuracy {history.history['accuracy'][-1]:.4f}; "
          f"learning rate {args.learning_rate}; total {(time.perf_counter() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()

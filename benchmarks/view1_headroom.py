"""Is there headroom in the dlib backbone's embedding? Adapting it to LFW's people, measured on View 1 only.

    python -m benchmarks.view1_headroom [--lfw ../shared/data/lfw]

The default model keeps dlib's 128-d embedding and learns only a head. This asks whether adapting the embedding
to View 1's training people (Unrestricted configuration: peopleDevTrain.txt, 1,184 people with 2+ images) separates
View 1's test people better than dlib's own embedding does. Rows:
- dlib's embedding as it is (its `fc` layer);
- within-class whitening (WCCN): the embedding times the inverse square root of the within-person covariance,
  shrunk towards the identity by `--shrink`;
- dlib's `fc` layer (256 -> 128), then its last residual block with `fc` (1.2 M weights), fine-tuned from their
  own weights with dlib's own metric loss (same-person distances below 0.56, others above 0.64, hardest
  negatives as many as positives; batches of 64 people x 4 images; plain or mirrored images at random), for each
  learning rate and step count of a small grid.
Every image of peopleDevTrain and peopleDevTest is detected once (the face nearest the centre; a central crop
where there is none) and run through the frozen network up to its last residual block, plain and mirrored;
embeddings are the flip average. All scores are Euclidean distances. Columns:
- DevTest pairs (pairsDevTest.txt, 1,000): accuracy with the threshold chosen on DevTrain pairs, 10-fold
  accuracy (threshold on the other 9 folds of DevTest), ROC AUC;
- "people pairs" from peopleDevTest (up to 20 same-person pairs per person and as many different-person pairs,
  seed 0): 10-fold accuracy, ROC AUC, EER.
DevTrain pairs are drawn from the training people, so their threshold favours what the map has seen; the 10-fold
columns do not have that bias. View 2 is not touched. About 22 minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("FACEREG_PRECISION", "float32")  # the float32 network's accuracy (bench_precision: bfloat16)

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from trainer.evaluate import (  # noqa: E402
    LFW_DIR,
    best_accuracy_threshold,
    equal_error_rate,
    kfold_accuracy,
    read_lfw_pairs,
)
from trainer.faces import DETECT_BATCH  # noqa: E402
from trainer.verify import Verifier  # noqa: E402

FC_GRID = [(3e-5, 100), (3e-5, 300), (3e-5, 1000), (1e-4, 100), (1e-4, 300), (3e-4, 300)]
BLOCK_GRID = [(1e-5, 300), (1e-5, 1000), (3e-5, 300), (3e-5, 1000)]
MARGIN, DISTANCE = 0.04, 0.6  # dlib's loss_metric_: same-person pairs below 0.6 - 0.04, others above 0.6 + 0.04
LAST_FROZEN = "stage4_block3_out"  # the output of the residual block before dlib's last one


def read_people(lfw: Path, name: str) -> list[tuple[str, Path]]:
    """(person, image path) for every image of a people file (peopleDevTrain.txt, peopleDevTest.txt)."""
    images = []
    for line in (lfw / name).read_text().splitlines()[1:]:
        person, count = line.split("\t")
        images += [(person, lfw / "images" / person / f"{person}_{n:04d}.jpg") for n in range(1, int(count) + 1)]
    return images


def frozen_features(paths: list[Path]) -> tuple[np.ndarray, np.ndarray, keras.Model]:
    """dlib's network up to LAST_FROZEN for each image's central face, plain and mirrored, and the network."""
    import tensorflow as tf

    from trainer.dlib_resnet import build_dlib_resnet
    from trainer.networks import backbone_spec

    verifier, spec = Verifier.default(), backbone_spec("dlib_resnet")
    network = build_dlib_resnet()
    trunk = keras.Model(network.input, network.get_layer(LAST_FROZEN).output)
    run = tf.function(lambda x: trunk(x, training=False))
    plain, mirrored = [], []
    for start in range(0, len(paths), DETECT_BATCH):
        found = verifier.detect_many(paths[start : start + DETECT_BATCH], on_no_face="center", on_multiple="central")
        chips = np.stack([f.chip for f in found])
        plain.append(run(spec.prepare(chips)).numpy())
        mirrored.append(run(spec.prepare(chips[:, :, ::-1])).numpy())
    return np.concatenate(plain), np.concatenate(mirrored), network


def outputs(model: keras.Model, inputs: np.ndarray) -> np.ndarray:
    """`model`'s outputs for `inputs`, 256 at a time."""
    return np.concatenate([np.asarray(model(inputs[s : s + 256], training=False)) for s in range(0, len(inputs), 256)])


def embed(model: keras.Model, plain: np.ndarray, mirrored: np.ndarray) -> np.ndarray:
    """The flip-averaged embeddings `model` gives for plain and mirrored inputs."""
    return (outputs(model, plain) + outputs(model, mirrored)) / 2


def rows_by_person(people: np.ndarray, rows: np.ndarray) -> list[list[int]]:
    """The rows of each person among `rows`, people in order of first appearance."""
    by_person = defaultdict(list)
    for i in rows:
        by_person[people[i]].append(i)
    return list(by_person.values())


def people_pairs(people: np.ndarray, rows: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Same-person pairs (up to 20 per person) and as many different-person pairs among `rows`: a, b, labels."""
    rng = np.random.default_rng(seed)
    same = []
    for images in rows_by_person(people, rows):
        candidates = [(a, b) for k, a in enumerate(images) for b in images[k + 1 :]]
        rng.shuffle(candidates)
        same += candidates[:20]
    same = np.array(same)
    other = rng.choice(rows, (4 * len(same), 2))
    other = other[people[other[:, 0]] != people[other[:, 1]]][: len(same)]
    pairs = np.concatenate([same, other])
    return pairs[:, 0], pairs[:, 1], np.r_[np.ones(len(same)), np.zeros(len(other))]


def wccn(features: np.ndarray, people: np.ndarray, rows: np.ndarray, shrink: float) -> np.ndarray:
    """Within-class whitening of embeddings: the inverse square root of the shrunk within-person covariance."""
    scatter, count = np.zeros((features.shape[1],) * 2), 0
    for images in rows_by_person(people, rows):
        if len(images) > 1:
            centred = features[images] - features[images].mean(0)
            scatter, count = scatter + centred.T @ centred, count + len(images)
    covariance = scatter / count
    covariance += shrink * np.trace(covariance) / len(covariance) * np.eye(len(covariance))
    values, vectors = np.linalg.eigh(covariance)
    return vectors @ np.diag(values**-0.5) @ vectors.T


def fine_tune(
    model: keras.Model, plain: np.ndarray, mirrored: np.ndarray, people: np.ndarray, rows: np.ndarray,
    learning_rate: float, steps: int, seed: int = 0,
) -> None:
    """Train all of `model`'s weights in place with dlib's metric loss on the people of `rows` with 2+ images."""
    import tensorflow as tf

    groups = [np.array(images) for images in rows_by_person(people, rows) if len(images) > 1]
    rng, optimizer = np.random.default_rng(seed), keras.optimizers.Adam(learning_rate)

    @tf.function(reduce_retracing=True)
    def step(features, same, positive):
        with tf.GradientTape() as tape:
            e = model(features, training=True)
            d = tf.sqrt(tf.reduce_sum((e[:, None] - e[None]) ** 2, -1) + 1e-12)
            pos = tf.boolean_mask(tf.nn.relu(d - (DISTANCE - MARGIN)), positive)
            neg = tf.boolean_mask(tf.nn.relu(DISTANCE + MARGIN - d), ~same)
            neg = tf.math.top_k(neg, k=tf.minimum(tf.size(neg), tf.size(pos))).values
            loss = (tf.reduce_sum(pos) + tf.reduce_sum(neg)) / tf.cast(2 * tf.size(pos), tf.float32)
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))

    for _ in range(steps):
        chosen = rng.choice(len(groups), 64, replace=False)
        batch = np.concatenate([rng.choice(groups[c], min(4, len(groups[c])), replace=False) for c in chosen])
        flip = (rng.random(len(batch)) < 0.5).reshape((-1,) + (1,) * (plain.ndim - 1))
        same = people[batch][:, None] == people[batch][None, :]
        step(np.where(flip, mirrored[batch], plain[batch]), same, same & ~np.eye(len(batch), dtype=bool))


def main() -> None:
    """Run the comparison and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, default=LFW_DIR)
    parser.add_argument("--shrink", type=float, default=1.0)
    args = parser.parse_args()

    train = read_people(args.lfw, "peopleDevTrain.txt")
    images, n_train = train + read_people(args.lfw, "peopleDevTest.txt"), len(train)
    people = np.array([person for person, _ in images])
    paths = [path for _, path in images]
    index = {path: i for i, path in enumerate(paths)}
    train_rows, test_rows = np.arange(n_train), np.arange(n_train, len(paths))
    start = time.perf_counter()
    plain, mirrored, network = frozen_features(paths)
    detected = time.perf_counter() - start
    block = keras.Model(network.get_layer(LAST_FROZEN).output, network.output)  # last residual block, pool, fc
    fc = keras.Model(network.get_layer("pool_everything").output, network.output)
    pool = keras.Model(network.get_layer(LAST_FROZEN).output, network.get_layer("pool_everything").output)
    pooled_plain, pooled_mirrored = outputs(pool, plain), outputs(pool, mirrored)
    dlib_weights = block.get_weights()

    def pair_rows(name: str):
        pairs = read_lfw_pairs(args.lfw, name)
        return (np.array([index[p.path1] for p in pairs]), np.array([index[p.path2] for p in pairs]),
                np.array([p.same for p in pairs]))

    dev_train, dev_test = pair_rows("pairsDevTrain.txt"), pair_rows("pairsDevTest.txt")
    people_test = people_pairs(people, test_rows)
    ten_folds = lambda n: np.arange(n) % 10  # noqa: E731

    def row(name: str, embeddings: np.ndarray) -> str:
        score = lambda p: -np.linalg.norm(embeddings[p[0]] - embeddings[p[1]], axis=1)  # noqa: E731
        s_train, s_test, s_people = score(dev_train), score(dev_test), score(people_test)
        t = best_accuracy_threshold(s_train, dev_train[2])
        cells = [
            f"{100 * np.mean((s_test >= t) == dev_test[2]):.2f} %",
            f"{100 * kfold_accuracy(s_test, dev_test[2], ten_folds(len(s_test)))[0]:.2f} %",
            f"{roc_auc_score(dev_test[2], s_test):.5f}",
            f"{100 * kfold_accuracy(s_people, people_test[2], ten_folds(len(s_people)))[0]:.2f} %",
            f"{roc_auc_score(people_test[2], s_people):.5f}",
            f"{100 * equal_error_rate(s_people, people_test[2]):.2f} %",
        ]
        return f"| {name} | " + " | ".join(cells) + " |"

    embedding = embed(block, plain, mirrored)
    lines = [row("dlib's embedding (the default model's backbone)", embedding)]
    lines.append(row(f"WCCN on DevTrain people, shrink {args.shrink}",
                     embedding @ wccn(embedding, people, train_rows, args.shrink)))
    for what, model, inputs, grid in [("fc", fc, (pooled_plain, pooled_mirrored), FC_GRID),
                                      ("last residual block + fc", block, (plain, mirrored), BLOCK_GRID)]:
        for learning_rate, steps in grid:
            block.set_weights(dlib_weights)
            fine_tune(model, *inputs, people, train_rows, learning_rate, steps)
            lines.append(row(f"{what} fine-tuned on DevTrain people, lr {learning_rate:g}, {steps} steps",
                             embed(model, *inputs)))

    print(f"\n{len(paths)} images ({n_train} of DevTrain people) detected and embedded in {detected:.0f} s; "
          f"people pairs: {len(people_test[2])}")
    print("\n| embedding | DevTest acc. (DevTrain threshold) | DevTest 10-fold acc. | DevTest AUC "
          "| people pairs 10-fold acc. | people pairs AUC | people pairs EER |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

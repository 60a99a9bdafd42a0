"""Training speed on this machine: a head-only dlib_resnet fine-tune on 300 LFW images (cold face cache, then warm),
with the process's peak memory, and training throughput in pairs per second of each training mode.

The 300 images: George_W_Bush 1-100 as anchors, 101-200 as positives, and one image each of 100 other View 1
DevTrain identities as negatives (symlinks in a temp folder). Throughput is measured on random chips, after a
warm-up epoch, with the trainer's own batches (augmentation included).

    python -m benchmarks.bench_train_speed --lfw ../shared/data/lfw [--epochs 30]
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_personalize import devtrain_people, image, link_dataset
from trainer.data import Pairs, augmented_chips, random_views, training_dataset
from trainer.evaluate import LFW_DIR
from trainer.serving import configure_cpu
from trainer.train import BATCH_SIZE, LEARNING_RATES, train

USER = "George_W_Bush"
THROUGHPUT_PAIRS = 256


def peak_memory_mib() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def throughput(mode: str, unfreeze: int = 2) -> float:
    """Training pairs per second of a mode: 'classic', 'head' (dlib_resnet head on embeddings) or 'unfreeze'."""
    import keras

    from trainer.default_model import load_default_model
    from trainer.dlib_resnet import set_trainable_blocks
    from trainer.head import adam, head_model
    from trainer.networks import backbone_spec, build_embedding, build_siamese

    rng = np.random.default_rng(0)
    n = 64
    pairs = Pairs(rng.integers(n, size=THROUGHPUT_PAIRS), rng.integers(n, size=THROUGHPUT_PAIRS),
                  rng.integers(2, size=THROUGHPUT_PAIRS).astype(np.float32))
    if mode == "classic":
        model, spec = build_siamese(build_embedding("classic")), backbone_spec("classic")
    else:
        model, spec = load_default_model()[0], backbone_spec("dlib_resnet")
    if mode == "head":
        model = head_model(model)
        table, prepare = rng.normal(size=(n, 2, spec.embedding_dim)).astype(np.float32), random_views(2)
    else:
        if mode == "unfreeze":
            set_trainable_blocks(model.get_layer("embedding"), unfreeze)
        size = spec.input_size
        table, prepare = rng.integers(256, size=(n, size, size, 3), dtype=np.uint8), augmented_chips(spec)
    model.compile(optimizer=adam(LEARNING_RATES[mode]), loss="binary_crossentropy")
    steps = math.ceil(THROUGHPUT_PAIRS / BATCH_SIZE)
    data = training_dataset(table, pairs, prepare, batch_size=BATCH_SIZE, seed=0, first_epoch=0, epochs=2)
    times: list[float] = []
    clock = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: times.append(time.perf_counter()),
                                           on_epoch_end=lambda epoch, logs: times.append(time.perf_counter()))
    model.fit(data, epochs=2, steps_per_epoch=steps, callbacks=[clock], verbose=0)  # epoch 1 warms up (tracing)
    keras.backend.clear_session()
    return THROUGHPUT_PAIRS / (times[3] - times[2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, default=LFW_DIR)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    configure_cpu()  # TensorFlow's threads as `python -m trainer` and the app set them (TF_NUM_INTRAOP_THREADS wins)

    others = [name for name, _ in devtrain_people(args.lfw) if name != USER]
    np.random.default_rng(0).shuffle(others)
    work = Path(tempfile.mkdtemp(prefix="facereg-speed-"))
    folder = link_dataset(work / "faces", {
        "anchor": [image(args.lfw, USER, n) for n in range(1, 101)],
        "positive": [image(args.lfw, USER, n) for n in range(101, 201)],
        "negative": [image(args.lfw, name, 1) for name in others[:100]],
    })
    runs = []
    for cache in ("cold", "warm"):
        started = time.perf_counter()
        result = train(folder, "dlib_resnet", args.epochs, work / f"model-{cache}", cache_dir=work / "cache", verbose=0)
        runs.append((cache, time.perf_counter() - started, peak_memory_mib(), result))

    print(f"\nmachine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}; "
          f"load average {os.getloadavg()[0]:.1f} at the end")
    print("\n| head-only fine-tune, 300 images | face cache | epochs | wall time | peak RSS (process) | "
          "validation F1 | ROC AUC |")
    print("|---|---|---|---|---|---|---|")
    for cache, seconds, memory, result in runs:
        print(f"| dlib_resnet head | {cache} | {args.epochs} | {seconds:.1f} s | {memory:.0f} MiB | "
              f"{result.metrics['f1']:.3f} | {result.metrics['auc']:.3f} |")
    print("\n| training mode | pairs / s |")
    print("|---|---|")
    for label, mode in (("dlib_resnet head only (embeddings computed once)", "head"),
                        ("dlib_resnet --unfreeze 2", "unfreeze"), ("classic, whole network", "classic")):
        print(f"| {label} | {throughput(mode):.1f} |", flush=True)


if __name__ == "__main__":
    main()

"""Fine-tuning a FaceReg Siamese model on a dataset of anchor / positive / negative faces: `train()`.

Three modes, one loop:

* `classic` trains the whole Siamese network from scratch on augmented chip pairs;
* `dlib_resnet` (default) trains only the head, starting from the embedded default model's head, on embeddings
  computed once per training image (the image and `AUGMENTED_VIEWS` augmented copies) and validation image;
* `dlib_resnet` with `unfreeze=K` fine-tunes the last K residual blocks, `fc` and the head on augmented chip pairs
  at a smaller learning rate.

Checkpoints (weights, optimizer state, epoch, dropout RNG state) go to `<output>.checkpoints/`, outside the model
folder, which stays exactly what `hub_tools.push_model` publishes. Batches and augmentations depend only on the seed
and the epoch, so `resume=True` after an interruption ends with the weights an uninterrupted run would have.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .data import (
    FaceCache,
    Progress,
    augment,
    augmented_chips,
    check_labels,
    detect_faces,
    load_source,
    make_pairs,
    random_views,
    split_faces,
    training_dataset,
    validation_dataset,
)
from .errors import FaceRegError
from .evaluate import threshold_sweep, verification_report
from .model_io import ModelConfig, save_model_dir, utc_now
from .networks import backbone_spec, build_embedding, build_siamese
from .report import evaluation_counts, summary_metrics, write_metrics, write_plots

LEARNING_RATES = {"head": 1e-2, "classic": 5e-5, "unfreeze": 1e-5}  # head: measured, see bench_personalize
BATCH_SIZE = 32
MAX_TRAIN_PAIRS_PER_CLASS = 20_000
AUGMENTED_VIEWS = 1  # head-only: augmented copies embedded per training image, besides the image itself
STATE_FILE = "state.json"


@dataclass
class TrainResult:
    """What a training run produced: the model folder, its threshold and validation metrics, and the data used."""

    output: Path
    backbone: str
    threshold: float
    metrics: dict[str, Any]
    epochs: int
    resumed_from: int
    faces: dict[str, dict[str, int]]
    no_face: list[str]
    corrupt: list[str]
    seconds: float
    history: dict[str, list[float]] = field(default_factory=dict)
    url: str | None = None


def checkpoint_dir_for(output: str | Path) -> Path:
    """Where a run writing `output` keeps its checkpoints: a sibling folder, never published."""
    output = Path(output)
    return output.with_name(f"{output.name}.checkpoints")


def configure_devices() -> Any:
    """GPU memory growth on every GPU; MirroredStrategy over several GPUs, else the default strategy."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # the GPU was initialised already; growth is fixed for this process
            pass
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()


def _seed_generators(model: Any) -> list[Any]:
    """The seed generators (dropout RNG state) of a model and its nested models, in a fixed order."""
    import keras

    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found += _seed_generators(layer)
        elif getattr(layer, "seed_generator", None) is not None:
            found.append(layer.seed_generator)
    return found


def _keras_callbacks() -> tuple[type, type]:
    """The checkpoint and progress callbacks (defined on first use: Keras loads lazily)."""
    import keras

    class Checkpoint(keras.callbacks.Callback):
        """Save weights, optimizer state, epoch and RNG state every `every` epochs and at the last one."""

        def __init__(self, folder: Path, every: int, epochs: int, settings: dict[str, Any]) -> None:
            super().__init__()
            self.folder, self.every, self.epochs, self.settings = folder, every, epochs, settings

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            done = epoch + 1
            if done % self.every and done != self.epochs:
                return
            self.folder.mkdir(parents=True, exist_ok=True)
            weights = f"epoch-{done:05d}.weights.h5"
            self.model.save_weights(self.folder / weights)
            state = {
                "epoch": done,
                "weights": weights,
                "settings": self.settings,
                "seed_states": [g.state.numpy().tolist() for g in _seed_generators(self.model)],
            }
            tmp = self.folder / f".{STATE_FILE}.tmp"
            tmp.write_text(json.dumps(state))
            os.replace(tmp, self.folder / STATE_FILE)
            for old in self.folder.glob("epoch-*.weights.h5"):
                if old.name != weights:
                    old.unlink()

    class ProgressCallback(keras.callbacks.Callback):
        """Report each finished epoch to a progress(fraction, message) callback over [start, end]."""

        def __init__(self, progress: Progress, start: float, end: float, epochs: int) -> None:
            super().__init__()
            self.progress, self.start, self.end, self.epochs = progress, start, end, epochs

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            loss = (logs or {}).get("loss", float("nan"))
            fraction = self.start + (self.end - self.start) * (epoch + 1) / self.epochs
            self.progress(fraction, f"epoch {epoch + 1}/{self.epochs}: loss {loss:.4f}")

    return Checkpoint, ProgressCallback


def _restore(model: Any, folder: Path, settings: dict[str, Any]) -> int:
    """Load the last checkpoint into a compiled model; return its epoch (0 when there is none)."""
    state_file = folder / STATE_FILE
    if not state_file.is_file():
        return 0
    state = json.loads(state_file.read_text())
    if state["settings"] != settings:
        changed = sorted(k for k in settings if state["settings"].get(k) != settings[k])
        raise FaceRegError(
            f"cannot resume from {folder}: it was made with other settings ({', '.join(changed)}); "
            "train without --resume to start over"
        )
    model.optimizer.build(model.trainable_variables)
    model.load_weights(folder / state["weights"])
    for generator, value in zip(_seed_generators(model), state["seed_states"], strict=True):
        generator.state.assign(np.asarray(value, np.int64))
    return int(state["epoch"])


def _view_embeddings(verifier: Any, chips: np.ndarray, seed: int) -> np.ndarray:
    """Embeddings (N x views x D) of chips and of AUGMENTED_VIEWS augmented copies of them."""
    import tensorflow as tf

    views = [chips] + [
        augment(tf.constant(chips), tf.constant([seed, 1_000 + v], tf.int64)).numpy()
        for v in range(AUGMENTED_VIEWS)
    ]
    return np.stack([verifier.embed_chips(v) for v in views], axis=1)


def _check_request(backbone: str, epochs: int, unfreeze: int, checkpoint_every: int, target_far: float | None) -> None:
    """Errors in the arguments themselves, before any data is read."""
    backbone_spec(backbone)
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be at least 1, got {checkpoint_every}")
    if unfreeze < 0 or (unfreeze and backbone != "dlib_resnet"):
        raise ValueError("unfreeze must be >= 0, and only the pretrained dlib_resnet backbone has blocks to unfreeze")
    if target_far is not None and not 0.0 < target_far < 1.0:
        raise ValueError(f"target_far must be between 0 and 1, got {target_far}")


def train(
    dataset: str | Path,
    backbone: str,
    epochs: int,
    output: str | Path,
    *,
    push_to: str | None = None,
    resume: bool = False,
    token: str | None = None,
    progress: Progress | None = None,
    seed: int = 0,
    unfreeze: int = 0,
    target_far: float | None = None,
    checkpoint_every: int = 10,
    learning_rate: float | None = None,
    batch_size: int = BATCH_SIZE,
    private: bool = True,
    cache_dir: str | Path | None = None,
    verbose: int | str = "auto",
    allow_folder: bool = True,
    record_dataset: bool = True,
) -> TrainResult:
    """Fine-tune a Siamese model on a FaceReg dataset, pick its threshold on held-out faces, write (and push) it.

    dataset: a Hub dataset repo id or a local folder of anchor/, positive/, negative/ images.
    backbone: "dlib_resnet" (pretrained; head only unless `unfreeze` > 0) or "classic" (from scratch).
    output: the FaceReg model folder to write (model.keras, facereg.json, metrics.json, README.md, roc.png,
        scores.png); checkpoints go to `<output>.checkpoints/`.
    push_to: a model repo to publish the folder to at the end (private unless private=False); needs a token.
    resume: continue from the last checkpoint of an interrupted run with the same settings.
    progress: called as progress(fraction_done, message), e.g. a `gradio.Progress`.
    unfreeze: dlib_resnet only: also fine-tune the last `unfreeze` residual blocks.
    target_far: choose the threshold for this false-accept rate instead of the best F1.
    learning_rate: Adam's initial rate (default: LEARNING_RATES of the mode).
    cache_dir: the face cache (default: $FACEREG_CACHE or ~/.cache/facereg/faces).
    verbose: Keras' progress bar setting ("auto", 0, 1, 2).
    allow_folder: False reads `dataset` only as a Hub repo id, never as a folder of this machine.
    record_dataset: False leaves the dataset's name (repo id or folder path) out of the model folder, for data
        whose location must not be published (a visitor's captures on a server).
    """
    import keras

    from .head import adam, head_model
    from .verify import Verifier

    started = time.perf_counter()
    report = progress or (lambda fraction, message: None)
    _check_request(backbone, epochs, unfreeze, checkpoint_every, target_far)
    spec = backbone_spec(backbone)
    output = Path(output)
    if push_to:
        from hub_tools import resolve_token

        token = resolve_token(token, required=True, action=f"pushing the model to {push_to!r}")
    strategy = configure_devices()

    label = str(dataset) if record_dataset else "the dataset"
    report(0.0, f"loading {label}")
    data = load_source(dataset, token=token, allow_folder=allow_folder)
    check_labels(data, label)
    faces = detect_faces(data, spec.input_size, FaceCache(cache_dir),
                         lambda f, m: report(0.02 + 0.38 * f, m))
    train_faces, val_faces = split_faces(faces, seed)
    train_pairs = make_pairs(train_faces, seed, MAX_TRAIN_PAIRS_PER_CLASS)
    val_pairs = make_pairs(val_faces, seed)

    mode = "classic" if backbone == "classic" else ("unfreeze" if unfreeze else "head")
    learning_rate = LEARNING_RATES[mode] if learning_rate is None else learning_rate
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        if backbone == "classic":
            siamese, config = build_siamese(build_embedding("classic")), ModelConfig("classic")
        else:
            from .default_model import load_default_model

            # Personalisation may weigh each embedding component, starting from the default head's equal weights.
            siamese, config = load_default_model(head="uniform")
        # float32: the network itself (a bfloat16 copy would keep its weights from before training), on every CPU.
        verifier = Verifier(siamese, config, precision="float32")
        if mode == "head":
            report(0.4, f"embedding {len(train_faces)} training and {len(val_faces)} validation faces")
            table, prepare = _view_embeddings(verifier, train_faces.chips, seed), random_views(1 + AUGMENTED_VIEWS)
            val_table, scale = verifier.embed_chips(val_faces.chips), 1.0
            model = head_model(siamese)
        else:
            table, prepare = train_faces.chips, augmented_chips(spec)
            val_table, scale = val_faces.chips, spec.pixel_scale
            model = siamese
            if mode == "unfreeze":
                from .dlib_resnet import set_trainable_blocks

                set_trainable_blocks(siamese.get_layer("embedding"), unfreeze)
        model.compile(optimizer=adam(learning_rate), loss="binary_crossentropy", metrics=["accuracy"])

    settings = {"backbone": backbone, "unfreeze": unfreeze, "seed": seed, "learning_rate": learning_rate,
                "batch_size": batch_size, "train_pairs": len(train_pairs)}
    checkpoints = checkpoint_dir_for(output)
    if not resume and checkpoints.exists():
        shutil.rmtree(checkpoints)
    first_epoch = _restore(model, checkpoints, settings) if resume else 0
    history: dict[str, list[float]] = {}
    if first_epoch < epochs:
        Checkpoint, ProgressCallback = _keras_callbacks()
        report(0.45, f"training {mode} from epoch {first_epoch + 1} of {epochs}")
        fit = model.fit(
            training_dataset(table, train_pairs, prepare, batch_size=batch_size, seed=seed,
                             first_epoch=first_epoch, epochs=epochs),
            epochs=epochs,
            initial_epoch=first_epoch,
            steps_per_epoch=math.ceil(len(train_pairs) / batch_size),
            shuffle=False,  # the dataset is shuffled per epoch from the seed
            validation_data=validation_dataset(val_table, val_pairs, batch_size, scale),
            validation_freq=checkpoint_every,
            callbacks=[Checkpoint(checkpoints, checkpoint_every, epochs, settings),
                       ProgressCallback(report, 0.45, 0.9, epochs)],
            verbose=verbose,
        )
        history = {name: [float(v) for v in values] for name, values in fit.history.items()}

    report(0.9, "choosing the threshold on the validation pairs")
    val_embeddings = val_table if mode == "head" else verifier.embed_chips(val_faces.chips)  # head: same network
    scores = verifier.score(val_embeddings[val_pairs.a], val_embeddings[val_pairs.b])
    # Clipped: with target_far, a top-scoring impostor makes the sweep's threshold +inf (accept nothing).
    threshold = float(np.clip(threshold_sweep(scores, val_pairs.labels, target_far), 0.0, 1.0))
    validation = verification_report(scores, val_pairs.labels, threshold=threshold)
    config.created = utc_now()  # a new model (the default's config, which personalisation starts from, has its own)
    config.threshold = threshold
    config.metrics = summary_metrics(validation)
    config.dataset = str(dataset) if record_dataset else None
    config.evaluation = evaluation_counts(
        validation, f"validation pairs of held-out images of {label}, which training never saw")
    if backbone == "dlib_resnet":
        from .default_model import lfw_view2_table

        config.benchmarks = [lfw_view2_table(default=False)]
    face_counts = {"train": train_faces.counts(), "validation": val_faces.counts()}
    save_model_dir(siamese, config, output)
    write_plots(output, scores, val_pairs.labels, threshold)
    seconds = time.perf_counter() - started
    write_metrics(output, {
        "validation": validation,
        "threshold_rule": "best F1" if target_far is None else f"lowest threshold with FAR <= {target_far}",
        "data": {
            "dataset": config.dataset,
            "images": len(data),
            "faces": face_counts,
            "pairs": {"train": len(train_pairs), "validation": len(val_pairs)},
            "no_face": faces.no_face,
            "corrupt": faces.corrupt,
        },
        "training": {**settings, "mode": mode, "epochs": epochs, "resumed_from": first_epoch,
                     "seconds": round(seconds, 1), "history": history},
    })
    _write_card(output, config, push_to)
    url = None
    if push_to:
        from hub_tools import push_model

        report(0.95, f"pushing to {push_to}")
        url = push_model(output, push_to, private=private, token=token,
                         commit_message=f"FaceReg {backbone} fine-tuned on {label}: threshold {threshold:.4f}")
    report(1.0, f"done: threshold {threshold:.4f}, F1 {validation['f1']:.4f}, AUC {validation['auc']:.4f}")
    return TrainResult(output, backbone, threshold, validation, epochs, first_epoch, face_counts,
                       faces.no_face, faces.corrupt, seconds, history, url)


def _write_card(output: Path, config: ModelConfig, repo_id: str | None) -> None:
    """Write the model card README.md from facereg.json; `hub_tools.push_model` rebuilds it for the repo pushed to."""
    from hub_tools import build_model_card

    build_model_card(config.to_json(), repo_id).save(output / "README.md")

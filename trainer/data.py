"""Training data: FaceReg datasets as aligned face chips (cached on disk), the train/validation split, pairs,
augmentation and the `tf.data` pipelines.

Faces are detected once per image: `FaceCache` keeps each image's detection (keyed by the SHA-256 of its bytes and
the detector) and each aligned chip (keyed by that hash, the detector and the chip size) under a cache folder, so a
second run, a resumed run or the other backbone never detects again. Images are split into train and validation
before they are paired, by capture session where the dataset has one, so that no image and no session is on both
sides. Randomness is drawn from the seed and the epoch only (stateless ops), so a resumed run sees the same batches.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import cv2
import numpy as np

from .errors import DatasetError, ImageDecodeError
from .faces import Face, align_face, face_locations
from .images import load_image
from .networks import BackboneSpec

if TYPE_CHECKING:
    import datasets
    import tensorflow as tf

LABELS = ("anchor", "positive", "negative")
TRAIN_FRACTION = 0.7
MIN_FACES_PER_LABEL = 2  # one for each side of the split
BRIGHTNESS_DELTA = 0.1 * 255  # brightness shift, uint8 units
CONTRAST_RANGE = (0.8, 1.2)
CACHE_ENV = "FACEREG_CACHE"

Progress = Callable[[float, str], Any]
"""Called as progress(fraction_done, message); a `gradio.Progress` fits."""


def default_cache_dir() -> Path:
    """Where face detections and chips are cached: $FACEREG_CACHE, else ~/.cache/facereg/faces."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "facereg" / "faces"


def _write_atomically(path: Path, write: Callable[[Path], Any]) -> None:
    """Write a file through a temporary name and rename it, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    write(tmp)
    os.replace(tmp, path)


class FaceCache:
    """Largest-face detections and aligned chips on disk, keyed by image content hash, detector and chip size."""

    def __init__(self, root: str | Path | None = None, detector: str = "mtcnn") -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.detector = detector

    def _face_file(self, key: str) -> Path:
        return self.root / self.detector / "faces" / key[:2] / f"{key}.json"

    def _chip_file(self, key: str, size: int) -> Path:
        return self.root / self.detector / f"chips{size}" / key[:2] / f"{key}.png"

    def face(self, key: str, image: np.ndarray) -> Face | None:
        """The largest face of an image (None: no face), detected once and then read from the cache."""
        file = self._face_file(key)
        if file.is_file():
            saved = json.loads(file.read_text())
            if saved is None:
                return None
            landmarks = None if saved["landmarks"] is None else np.asarray(saved["landmarks"], np.float32)
            return Face(box=tuple(saved["box"]), landmarks=landmarks, confidence=saved["confidence"],
                        low_confidence=saved.get("low_confidence", False))
        faces = face_locations(image, self.detector)
        face = faces[0] if faces else None
        saved = None if face is None else {
            "box": [int(v) for v in face.box],
            "landmarks": None if face.landmarks is None else face.landmarks.tolist(),
            "confidence": face.confidence,
            "low_confidence": face.low_confidence,
        }
        _write_atomically(file, lambda tmp: tmp.write_text(json.dumps(saved)))
        return face

    def chip(self, data: bytes, size: int, name: str) -> np.ndarray | None:
        """The aligned size x size RGB chip of an image's largest face, or None when it has no face.

        Raises ImageDecodeError for bytes that are not an image (not cached: failing again is cheap).
        """
        key = hashlib.sha256(data).hexdigest()
        file = self._chip_file(key, size)
        if file.is_file():
            return cv2.cvtColor(cv2.imread(str(file), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        image = load_image(data, name=name)
        face = self.face(key, image)
        if face is None:
            return None
        chip = align_face(image, face, size)
        _write_atomically(file, lambda tmp: cv2.imwrite(str(tmp), cv2.cvtColor(chip, cv2.COLOR_RGB2BGR)))
        return chip


@dataclass
class FaceSet:
    """Aligned face chips with their labels and split groups, and the images that gave no chip."""

    chips: np.ndarray  # N x S x S x 3 uint8
    labels: np.ndarray  # N label names
    groups: np.ndarray  # N split groups: the capture session, else the image's content hash
    names: list[str]
    no_face: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, mask: np.ndarray) -> "FaceSet":
        """The faces where mask is true (skipped images are not carried over)."""
        return FaceSet(self.chips[mask], self.labels[mask], self.groups[mask],
                       [n for n, keep in zip(self.names, mask) if keep])

    def counts(self) -> dict[str, int]:
        """Faces per label."""
        counted = Counter(self.labels.tolist())
        return {label: counted[label] for label in LABELS}


def load_source(
    source: str | Path, token: str | bool | None = None, revision: str | None = None, allow_folder: bool = True
) -> "datasets.Dataset":
    """A FaceReg dataset from a Hub dataset repo or (allow_folder) a local folder of anchor/, positive/, negative/."""
    from hub_tools import DatasetSchemaError, load_faces

    try:
        return load_faces(source, token=token, revision=revision, allow_folder=allow_folder)
    except DatasetSchemaError as exc:
        raise DatasetError(str(exc)) from exc


def check_labels(dataset: "datasets.Dataset", source: str) -> None:
    """DatasetError unless the dataset has at least one image of every label."""
    names = dataset.features["label"].names
    present = Counter(names[i] for i in dataset["label"])
    missing = [label for label in LABELS if not present[label]]
    if missing:
        raise DatasetError(
            f"{source} has no {' and no '.join(missing)} images; a FaceReg dataset needs anchor/ and positive/ "
            "images of the person and negative/ images of others"
        )


def detect_faces(
    dataset: "datasets.Dataset", size: int, cache: FaceCache, progress: Progress | None = None
) -> FaceSet:
    """Aligned chips of every image's largest face; images without a face or that do not decode are counted."""
    import datasets

    raw = dataset.cast_column("image", datasets.Image(decode=False))
    names = raw.features["label"].names
    chips, labels, groups, kept, no_face, corrupt = [], [], [], [], [], []
    for i, row in enumerate(raw):
        image, label = row["image"], names[row["label"]]
        name = Path(image["path"]).name if image.get("path") else f"{label} image {i + 1}"
        try:
            data = image["bytes"] if image.get("bytes") is not None else Path(image["path"]).read_bytes()
            chip = cache.chip(data, size, name)
        except (ImageDecodeError, OSError):
            corrupt.append(name)
            continue
        if chip is None:
            no_face.append(name)
        else:
            chips.append(chip)
            labels.append(label)
            groups.append(f"session:{row['session']}" if row.get("session") else hashlib.sha256(data).hexdigest())
            kept.append(name)
        if progress is not None:
            progress((i + 1) / len(raw), f"detected faces in {i + 1}/{len(raw)} images")
    chip_array = np.stack(chips) if chips else np.zeros((0, size, size, 3), np.uint8)
    return FaceSet(chip_array, np.array(labels, dtype=str), np.array(groups, dtype=str), kept, no_face, corrupt)


def split_faces(faces: FaceSet, seed: int = 0, train_fraction: float = TRAIN_FRACTION) -> tuple[FaceSet, FaceSet]:
    """Split into train and validation by group (session or image), about train_fraction of each label in train."""
    counts = faces.counts()
    short = [f"{label}: {n}" for label, n in counts.items() if n < MIN_FACES_PER_LABEL]
    if short:
        raise DatasetError(
            f"too few faces to split into train and validation (need at least {MIN_FACES_PER_LABEL} per label; "
            f"found {', '.join(short)}; {len(faces.no_face)} images without a face, {len(faces.corrupt)} unreadable)"
        )
    wanted = {label: max(1, round((1 - train_fraction) * n)) for label, n in counts.items()}
    taken = Counter()
    groups = np.unique(faces.groups)
    np.random.default_rng(seed).shuffle(groups)
    validation = np.zeros(len(faces), bool)
    for group in groups:
        members = faces.groups == group
        group_counts = Counter(faces.labels[members].tolist())
        label, n = group_counts.most_common(1)[0]
        if taken[label] == 0 or taken[label] + n <= wanted[label]:
            validation |= members
            taken.update(group_counts)
    train, val = faces.subset(~validation), faces.subset(validation)
    for side, part in (("train", train), ("validation", val)):
        missing = [label for label, n in part.counts().items() if n == 0]
        if missing:
            raise DatasetError(
                f"cannot split by capture session: the {side} side would have no {', '.join(missing)} faces; "
                "add images (or sessions) of every label"
            )
    return train, val


@dataclass(frozen=True)
class Pairs:
    """Indices into a FaceSet of pairs' two sides, and their labels (1: same person)."""

    a: np.ndarray
    b: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def make_pairs(faces: FaceSet, seed: int = 0, max_per_class: int | None = None) -> Pairs:
    """Balanced pairs: (anchor, positive) = 1 and (anchor, negative) = 0, as many of each."""
    index = {label: np.flatnonzero(faces.labels == label) for label in LABELS}
    genuine = np.array(np.meshgrid(index["anchor"], index["positive"])).reshape(2, -1)
    impostor = np.array(np.meshgrid(index["anchor"], index["negative"])).reshape(2, -1)
    n = min(genuine.shape[1], impostor.shape[1], max_per_class or np.inf)
    rng = np.random.default_rng(seed)
    genuine = genuine[:, np.sort(rng.choice(genuine.shape[1], int(n), replace=False))]
    impostor = impostor[:, np.sort(rng.choice(impostor.shape[1], int(n), replace=False))]
    both = np.concatenate([genuine, impostor], axis=1)
    return Pairs(both[0], both[1], np.concatenate([np.ones(int(n)), np.zeros(int(n))]).astype(np.float32))


def augment(chips: "tf.Tensor", seed: "tf.Tensor") -> "tf.Tensor":
    """Random horizontal flip, brightness and contrast, drawn independently for every chip of a uint8 batch."""
    import tensorflow as tf

    x = tf.cast(chips, tf.float32)
    n = tf.shape(x)[0]
    seeds = tf.random.experimental.stateless_split(seed, 3)
    flip = tf.random.stateless_uniform([n, 1, 1, 1], seeds[0]) < 0.5
    x = tf.where(flip, tf.reverse(x, axis=[2]), x)
    x = x + tf.random.stateless_uniform([n, 1, 1, 1], seeds[1], -BRIGHTNESS_DELTA, BRIGHTNESS_DELTA)
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    x = (x - mean) * tf.random.stateless_uniform([n, 1, 1, 1], seeds[2], *CONTRAST_RANGE) + mean
    return tf.clip_by_value(x, 0.0, 255.0)


def epoch_orders(n: int, seed: int, first_epoch: int, epochs: int) -> np.ndarray:
    """The shuffled order of n items for each epoch from first_epoch to epochs - 1 (depends on seed and epoch only)."""
    return np.stack([np.random.default_rng([seed, epoch]).permutation(n) for epoch in range(first_epoch, epochs)])


def training_dataset(
    table: np.ndarray,
    pairs: Pairs,
    prepare: Callable[["tf.Tensor", "tf.Tensor"], "tf.Tensor"],
    *,
    batch_size: int,
    seed: int,
    first_epoch: int,
    epochs: int,
) -> "tf.data.Dataset":
    """Shuffled batches ((a, b), label) for epochs first_epoch..epochs-1; `prepare(rows, seed)` makes inputs.

    `table` holds what pairs index (chips, or embeddings of augmented views); each batch's random seed comes from
    (seed, epoch, batch number), so the same epoch gives the same batches in a resumed run.
    """
    import tensorflow as tf

    table_t = tf.constant(table)
    a, b = tf.constant(pairs.a, tf.int32), tf.constant(pairs.b, tf.int32)
    labels = tf.constant(pairs.labels.reshape(-1, 1))
    orders = tf.constant(epoch_orders(len(pairs), seed, first_epoch, epochs), tf.int32)

    def epoch_batches(epoch: tf.Tensor) -> tf.data.Dataset:
        order = orders[tf.cast(epoch, tf.int32) - first_epoch]
        def tagged(step: tf.Tensor, idx: tf.Tensor):
            return epoch, step, idx

        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size).enumerate().map(tagged)

    def load(epoch: tf.Tensor, step: tf.Tensor, idx: tf.Tensor):
        batch_seed = tf.stack([tf.cast(seed, tf.int64), epoch * 1_000_003 + step])
        seed_a, seed_b = tf.unstack(tf.random.experimental.stateless_split(batch_seed, 2))
        inputs = (prepare(tf.gather(table_t, tf.gather(a, idx)), seed_a),
                  prepare(tf.gather(table_t, tf.gather(b, idx)), seed_b))
        return inputs, tf.gather(labels, idx)

    return (
        tf.data.Dataset.range(first_epoch, epochs)
        .flat_map(epoch_batches)
        .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def augmented_chips(spec: BackboneSpec) -> Callable[["tf.Tensor", "tf.Tensor"], "tf.Tensor"]:
    """A `prepare` for training_dataset over uint8 chips: augment, then scale for the backbone."""
    def prepare(chips, seed):
        return augment(chips, seed) * spec.pixel_scale

    return prepare


def random_views(views: int) -> Callable[["tf.Tensor", "tf.Tensor"], "tf.Tensor"]:
    """A `prepare` for training_dataset over embeddings of shape (N, views, D): one random view per row."""
    import tensorflow as tf

    def prepare(rows, seed):
        pick = tf.random.stateless_uniform([tf.shape(rows)[0]], seed, 0, views, dtype=tf.int32)
        return tf.gather(rows, pick, axis=1, batch_dims=1)

    return prepare


def validation_dataset(table: np.ndarray, pairs: Pairs, batch_size: int, scale: float = 1.0) -> "tf.data.Dataset":
    """Fixed, cached validation batches ((a, b), label) of unaugmented inputs."""
    import tensorflow as tf

    table_t = tf.constant(table)

    def side(idx):
        return tf.cast(tf.gather(table_t, idx), tf.float32) * scale

    def load(a, b, label):
        return (side(a), side(b)), label

    slices = (pairs.a.astype(np.int32), pairs.b.astype(np.int32), pairs.labels.reshape(-1, 1))
    return (
        tf.data.Dataset.from_tensor_slices(slices).batch(batch_size).map(load).cache().prefetch(tf.data.AUTOTUNE)
    )

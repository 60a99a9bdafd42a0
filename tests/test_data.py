"""Training data: the face cache, loading and checking datasets, the session-aware split, pairs, augmentation."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from tests.conftest import lfw_image, needs_lfw
from trainer.data import (
    FaceCache,
    FaceSet,
    augment,
    check_labels,
    detect_faces,
    load_source,
    make_pairs,
    split_faces,
    training_dataset,
)
from trainer.errors import DatasetError, ImageDecodeError


def face_set(labels: list[str], sessions: list[str] | None = None) -> FaceSet:
    """A FaceSet of blank chips with these labels, grouped by session (else one group per image)."""
    groups = sessions or [f"image{i}" for i in range(len(labels))]
    chips = np.zeros((len(labels), 4, 4, 3), np.uint8)
    return FaceSet(chips, np.array(labels), np.array(groups), [f"f{i}" for i in range(len(labels))])


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> FaceCache:
    """The session's face cache (shared with the training tests through the same base temp folder)."""
    return FaceCache(tmp_path_factory.getbasetemp() / "face-cache")


@needs_lfw
def test_face_cache_detects_once_and_serves_every_chip_size(cache):
    data = lfw_image("Colin_Powell", 1).read_bytes()
    chip = cache.chip(data, 150, "Colin_Powell_0001.jpg")
    assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8
    assert len(list(cache.root.rglob("*.json"))) >= 1
    np.testing.assert_array_equal(cache.chip(data, 150, "again"), chip)  # read back losslessly (PNG)
    assert cache.chip(data, 100, "smaller").shape == (100, 100, 3)  # aligned from the cached detection


def test_face_cache_remembers_images_without_a_face_and_rejects_corrupt_ones(cache):
    import cv2

    ok, blank = cv2.imencode(".png", np.full((120, 120, 3), 200, np.uint8))
    assert cache.chip(blank.tobytes(), 150, "blank.png") is None
    assert cache.chip(blank.tobytes(), 150, "blank.png") is None
    with pytest.raises(ImageDecodeError):
        cache.chip(b"not an image at all", 150, "broken.jpg")


@needs_lfw
def test_folder_dataset_counts_skipped_images_and_checks_labels(tmp_path, cache):
    for label, name in (("anchor", "Tony_Blair"), ("positive", "Tony_Blair"), ("negative", "Hugo_Chavez")):
        (tmp_path / label).mkdir()
        shutil.copy(lfw_image(name, 1 if label != "positive" else 2), tmp_path / label / f"{name}.jpg")
    (tmp_path / "negative" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    dataset = load_source(tmp_path)
    check_labels(dataset, str(tmp_path))
    faces = detect_faces(dataset, 150, cache)
    assert faces.counts() == {"anchor": 1, "positive": 1, "negative": 1}
    assert faces.corrupt == ["broken.jpg"] and faces.no_face == []

    shutil.rmtree(tmp_path / "negative")
    with pytest.raises(DatasetError, match="no negative images"):
        check_labels(load_source(tmp_path), str(tmp_path))
    (tmp_path / "strangers").mkdir()
    with pytest.raises(DatasetError, match="strangers"):
        load_source(tmp_path)


def test_split_keeps_sessions_whole_and_every_label_on_both_sides():
    labels = ["anchor"] * 10 + ["positive"] * 10 + ["negative"] * 20
    sessions = [f"s{i // 2}" for i in range(40)]  # 20 sessions of two images each
    faces = face_set(labels, sessions)
    for seed in range(5):
        train, val = split_faces(faces, seed=seed)
        assert not set(train.groups) & set(val.groups)
        assert len(train) + len(val) == 40
        for label, n in faces.counts().items():
            assert 0 < val.counts()[label] <= round(0.3 * n) + 2 and train.counts()[label] > 0
    a, b = split_faces(faces, seed=3), split_faces(faces, seed=3)
    assert a[1].names == b[1].names  # the same seed splits the same way


def test_split_refuses_too_few_faces_or_one_session_per_label():
    with pytest.raises(DatasetError, match="too few faces"):
        split_faces(face_set(["anchor", "positive", "positive", "negative", "negative"]))
    one_session = face_set(["anchor"] * 3 + ["positive"] * 3 + ["negative"] * 3, ["a"] * 3 + ["p"] * 3 + ["n"] * 3)
    with pytest.raises(DatasetError, match="no anchor"):
        split_faces(one_session)


def test_pairs_are_balanced_anchor_positive_and_anchor_negative():
    faces = face_set(["anchor"] * 3 + ["positive"] * 2 + ["negative"] * 5)
    pairs = make_pairs(faces, seed=0)
    assert len(pairs) == 12 and pairs.labels.sum() == 6
    same, other = pairs.labels == 1, pairs.labels == 0
    assert set(faces.labels[pairs.a]) == {"anchor"}
    assert set(faces.labels[pairs.b[same]]) == {"positive"} and set(faces.labels[pairs.b[other]]) == {"negative"}
    assert len(set(zip(pairs.a, pairs.b))) == 12
    assert len(make_pairs(faces, seed=0, max_per_class=4)) == 8


def test_augmentation_draws_independently_per_sample_and_repeats_per_seed():
    import tensorflow as tf

    chips = np.tile(np.linspace(0, 255, 16 * 16 * 3).reshape(1, 16, 16, 3).astype(np.uint8), (16, 1, 1, 1))
    out = augment(tf.constant(chips), tf.constant([0, 1], tf.int64)).numpy()
    assert out.min() >= 0 and out.max() <= 255
    assert len({o.tobytes() for o in out}) == 16  # every sample got its own flip / brightness / contrast
    flipped = [np.corrcoef(o[:, ::-1].ravel(), chips[0].ravel())[0, 1] > np.corrcoef(o.ravel(), chips[0].ravel())[0, 1]
               for o in out]
    assert 0 < sum(flipped) < 16
    np.testing.assert_array_equal(out, augment(tf.constant(chips), tf.constant([0, 1], tf.int64)).numpy())
    assert not np.array_equal(out, augment(tf.constant(chips), tf.constant([0, 2], tf.int64)).numpy())


def test_an_epoch_has_the_same_batches_whichever_epoch_training_starts_from():
    import tensorflow as tf

    faces = face_set(["anchor"] * 4 + ["positive"] * 4 + ["negative"] * 4)
    table = np.arange(12 * 8, dtype=np.float32).reshape(12, 1, 8)
    pairs = make_pairs(faces)

    def batches(first_epoch: int) -> list:
        dataset = training_dataset(table, pairs, lambda rows, seed: rows[:, 0] + tf.cast(seed[0], tf.float32),
                                   batch_size=10, seed=7, first_epoch=first_epoch, epochs=3)
        return [np.concatenate([a.numpy(), b.numpy(), y.numpy()], axis=1) for (a, b), y in dataset]

    full, resumed = batches(0), batches(2)
    per_epoch = len(full) // 3
    assert len(resumed) == per_epoch == 4  # 32 pairs in batches of 10
    for uninterrupted, after_resume in zip(full[-per_epoch:], resumed):
        np.testing.assert_array_equal(uninterrupted, after_resume)
    assert not np.array_equal(full[0], full[per_epoch])  # epochs are shuffled differently

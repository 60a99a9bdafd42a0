"""MTCNN's networks, translated for OpenCV's DNN engine or compiled by TensorFlow, compute what the `mtcnn` package's
Keras networks compute."""
from __future__ import annotations

import threading

import keras
import numpy as np
import pytest

from trainer.mtcnn_nets import CompiledNetwork, DnnNetwork, caffe_description


@pytest.fixture(scope="module")
def stages():
    from mtcnn.stages import StageONet, StagePNet, StageRNet

    return {"pnet": StagePNet().model, "rnet": StageRNet().model, "onet": StageONet().model}


def keras_outputs(model, batch: np.ndarray) -> list[np.ndarray]:
    return [np.asarray(out) for out in model(batch, training=False)]


# PNet sees every pyramid level's size: odd and even sides exercise Caffe's ceil-mode pooling against Keras's "same".
@pytest.mark.parametrize("name,height,width,batch", [
    ("pnet", 12, 12, 1), ("pnet", 13, 17, 2), ("pnet", 37, 37, 3), ("pnet", 150, 151, 2), ("pnet", 288, 384, 1),
    ("rnet", 24, 24, 1), ("rnet", 24, 24, 9), ("onet", 48, 48, 1), ("onet", 48, 48, 5),
])
def test_translated_network_gives_the_keras_outputs(stages, name: str, height: int, width: int, batch: int) -> None:
    model = stages[name]
    rng = np.random.default_rng(height * 100 + batch)
    inputs = rng.uniform(-1, 1, (batch, height, width, 3)).astype(np.float32)  # mtcnn's normalized pixels
    ours, theirs = DnnNetwork(model, height)(inputs), keras_outputs(model, inputs)
    assert [out.shape for out in ours] == [out.shape for out in theirs]
    for mine, reference in zip(ours, theirs):
        np.testing.assert_allclose(mine, reference, atol=1e-4)


def test_an_empty_batch_gives_empty_outputs_of_the_right_shape(stages) -> None:
    outputs = DnnNetwork(stages["onet"], 48)(np.zeros((0, 48, 48, 3), np.float32))
    assert [out.shape for out in outputs] == [(0, 4), (0, 10), (0, 2)]


def test_threads_running_one_network_at_once_each_get_their_own_answer(stages) -> None:
    network = DnnNetwork(stages["rnet"], 24)
    rng = np.random.default_rng(0)
    batches = [rng.uniform(-1, 1, (n, 24, 24, 3)).astype(np.float32) for n in (3, 11, 7, 20)]
    expected = [keras_outputs(stages["rnet"], batch)[1] for batch in batches]
    errors: list[float] = []
    start = threading.Barrier(len(batches))

    def run(i: int) -> None:
        start.wait()
        for _ in range(20):
            errors.append(float(np.abs(network(batches[i])[1] - expected[i]).max()))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(errors) == 80 and max(errors) < 1e-4


def test_networks_kept_per_input_shape_give_the_same_outputs_and_stay_bounded(stages) -> None:
    one, per_shape = DnnNetwork(stages["pnet"], 12), DnnNetwork(stages["pnet"], 12, shapes=3)
    rng = np.random.default_rng(1)
    levels = [rng.uniform(-1, 1, (2, side, side, 3)).astype(np.float32) for side in (150, 106, 75, 53, 37)]
    for _ in range(2):  # the second round reuses no network: five shapes, three kept
        for level in levels + levels[-2:]:  # the last two again: their networks are reused
            for mine, reference in zip(per_shape(level), one(level)):
                np.testing.assert_array_equal(mine, reference)
    assert list(per_shape._local.nets) == [(2, 75, 75, 3), (2, 53, 53, 3), (2, 37, 37, 3)]  # the last three, in use order


# Sizes around the step (8) and the chunk (16): padded, whole, and split into chunks with a padded remainder.
@pytest.mark.parametrize("batch", [1, 7, 8, 9, 16, 17, 40])
def test_compiled_network_gives_the_keras_outputs_whatever_the_batch_size(stages, batch: int) -> None:
    network = CompiledNetwork(stages["rnet"], 24, chunk=16, step=8)
    inputs = np.random.default_rng(batch).uniform(-1, 1, (batch, 24, 24, 3)).astype(np.float32)
    ours, theirs = network(inputs), keras_outputs(stages["rnet"], inputs)
    assert [out.shape for out in ours] == [out.shape for out in theirs] == [(batch, 4), (batch, 2)]
    for mine, reference in zip(ours, theirs):
        np.testing.assert_allclose(mine, reference, atol=1e-5)


def test_compiled_network_gives_empty_outputs_for_an_empty_batch(stages) -> None:
    outputs = CompiledNetwork(stages["rnet"], 24)(np.zeros((0, 24, 24, 3), np.float32))
    assert [out.shape for out in outputs] == [(0, 4), (0, 2)]


def test_compiled_network_runs_only_whole_steps_up_to_its_chunk(stages) -> None:
    network = CompiledNetwork(stages["rnet"], 24, chunk=16, step=8)
    seen: list[int] = []
    compiled = network._network
    network._network = lambda batch: seen.append(len(batch)) or compiled(batch)
    for n in (0, 3, 13, 16, 30, 50):
        network(np.zeros((n, 24, 24, 3), np.float32))
    assert seen == [8, 8, 16, 16, 16, 16, 16, 16, 16, 8]


def test_layers_it_cannot_translate_are_named() -> None:
    model = keras.Sequential([keras.Input((12, 12, 3)), keras.layers.Conv2D(4, 3, padding="same", name="odd"),
                              keras.layers.PReLU(name="p"), keras.layers.Conv2D(2, 1, name="head")])
    with pytest.raises(ValueError, match="odd: only square, unpadded convolutions"):
        caffe_description(model, 12)

"""dlib's ResNet-29 in Keras: the .dat reader, equality with dlib's own descriptors, saving, freezing."""
from __future__ import annotations

import keras
import numpy as np
import pytest
from PIL import Image

from tests.conftest import lfw_image
from trainer.dlib_format import read_dlib_net
from trainer.dlib_resnet import (
    ZeroPadAdd,
    build_dlib_resnet,
    dlib_weights_path,
    residual_block_names,
    set_trainable_blocks,
)
from trainer.errors import ModelFormatError

PEOPLE = ("Colin_Powell", "Tony_Blair", "George_W_Bush")
IMAGES_PER_PERSON = 4
CROP = 116  # of the 250x250 deep-funneled LFW images, whose face is centred: a rough alignment


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return build_dlib_resnet()


@pytest.fixture(scope="module")
def chips(lfw_dir) -> np.ndarray:
    """150x150 RGB uint8 centre crops of a few LFW images, IMAGES_PER_PERSON per person of PEOPLE."""
    offset = (250 - CROP) // 2
    out = []
    for name in PEOPLE:
        for n in range(1, IMAGES_PER_PERSON + 1):
            image = Image.open(lfw_image(name, n)).convert("RGB")
            chip = image.crop((offset, offset, offset + CROP, offset + CROP)).resize((150, 150), Image.BILINEAR)
            out.append(np.asarray(chip))
    return np.stack(out)


@pytest.fixture(scope="module")
def descriptors(model, chips) -> np.ndarray:
    return model.predict(chips.astype(np.float32), verbose=0)


def test_reader_finds_the_resnet_layers():
    net = read_dlib_net(dlib_weights_path())
    kinds = [layer.kind for layer in net.layers]
    assert kinds.count("con_4") == kinds.count("affine_") == 29
    assert net.layers[0].arrays["filters"].shape == (32, 3, 7, 7)
    assert net.layers[-1].arrays["weights"].shape == (256, 128)
    assert net.input.settings["nr"] == net.input.settings["nc"] == 150
    assert net.input.settings["avg_red"] == pytest.approx(122.782, abs=1e-4)
    assert net.loss.kind == "loss_metric_2"


def test_descriptors_match_dlib(descriptors, chips):
    dlib = pytest.importorskip("dlib", reason="dlib is missing: pip install -r requirements-bench.txt")
    reference = dlib.face_recognition_model_v1(str(dlib_weights_path()))
    expected = np.stack([np.array(reference.compute_face_descriptor(chip)) for chip in chips])
    assert descriptors.shape == (len(chips), 128)
    assert np.abs(descriptors - expected).max() < 1e-5


def test_genuine_pairs_are_closer_than_impostor_pairs(descriptors):
    who = np.repeat(np.arange(len(PEOPLE)), IMAGES_PER_PERSON)
    distances = np.linalg.norm(descriptors[:, None] - descriptors[None], axis=-1)
    upper = np.triu_indices(len(who), 1)
    same = (who[:, None] == who[None])[upper]
    genuine, impostor = distances[upper][same], distances[upper][~same]
    assert genuine.max() < 0.6
    assert genuine.max() < impostor.min()
    assert (impostor > 0.6).mean() > 0.7


def test_keras_file_round_trip_without_custom_objects(model, chips, tmp_path):
    path = tmp_path / "dlib_resnet.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = chips[:2].astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_zero_pad_add_pads_bottom_right_and_channels():
    small = np.ones((1, 3, 3, 2), np.float32)
    large = np.full((1, 4, 4, 3), 10.0, np.float32)
    out = keras.ops.convert_to_numpy(ZeroPadAdd()([small, large]))
    assert out.shape == (1, 4, 4, 3)
    assert (out[0, :3, :3, :2] == 11).all()
    assert out[0, 3, 3, 0] == out[0, 0, 0, 2] == 10


def test_set_trainable_blocks_freezes_all_but_the_last_blocks():
    model = build_dlib_resnet(weights=None)
    blocks = residual_block_names(model)
    assert len(blocks) == 14 and blocks[0] == "stage1_block1" and blocks[-1] == "stage5_block1"
    set_trainable_blocks(model, 2)
    trainable = {layer.name for layer in model.layers if layer.trainable and layer.weights}
    assert trainable == {"stage4_block3_conv_a", "stage4_block3_conv_b", "stage5_block1_conv_a",
                         "stage5_block1_conv_b", "fc"}
    set_trainable_blocks(model, len(blocks))
    assert all(layer.trainable for layer in model.layers)


def test_truncated_weights_file_raises_model_format_error(tmp_path):
    truncated = tmp_path / "dlib_face_recognition_resnet_model_v1.dat"
    truncated.write_bytes(dlib_weights_path().read_bytes()[:100_000])
    with pytest.raises(ModelFormatError, match="truncated.*pip install"):
        build_dlib_resnet(truncated)
    with pytest.raises(ModelFormatError, match="cannot read.*pip install face_recognition_models"):
        build_dlib_resnet(tmp_path / "missing.dat")

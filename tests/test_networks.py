"""The classic network's exact layout, the Siamese model and its .keras round trip."""
import keras
import numpy as np
import pytest

from trainer.errors import UnknownBackboneError
from trainer.dlib_resnet import build_dlib_resnet
from trainer.model_io import ModelConfig
from trainer.networks import L1Distance, backbone_spec, bfloat16_copy, build_classic_embedding, build_siamese
from trainer.serving import cpu_has_bfloat16, inference_precision
from trainer.verify import Verifier

CLASSIC_LAYERS = [
    ("InputLayer", None),
    ("Conv2D", (64, (10, 10), "relu")),
    ("BatchNormalization", None),
    ("MaxPooling2D", (2, 2)),
    ("Dropout", 0.3),
    ("Conv2D", (128, (3, 3), "relu")),
    ("MaxPooling2D", (2, 2)),
    ("Dropout", 0.3),
    ("Conv2D", (128, (7, 7), "relu")),
    ("MaxPooling2D", (2, 2)),
    ("Dropout", 0.3),
    ("Conv2D", (256, (4, 4), "relu")),
    ("Flatten", None),
    ("Dense", (4096, "sigmoid")),
]
# 100 -conv10-> 91 -pool-> 45 -conv3-> 43 -pool-> 21 -conv7-> 15 -pool-> 7 -conv4-> 4; 4*4*256 = 4096 features.
CLASSIC_PARAMS = (
    (10 * 10 * 3 * 64 + 64)
    + 4 * 64
    + (3 * 3 * 64 * 128 + 128)
    + (7 * 7 * 128 * 128 + 128)
    + (4 * 4 * 128 * 256 + 256)
    + (4096 * 4096 + 4096)
)


def _describe(layer):
    kind = type(layer).__name__
    if kind == "Conv2D":
        return kind, (layer.filters, tuple(layer.kernel_size), layer.activation.__name__)
    if kind == "MaxPooling2D":
        return kind, tuple(layer.pool_size)
    if kind == "Dropout":
        return kind, layer.rate
    if kind == "Dense":
        return kind, (layer.units, layer.activation.__name__)
    return kind, None


def test_classic_network_layout_and_parameter_count():
    model = build_classic_embedding()
    assert [_describe(layer) for layer in model.layers] == CLASSIC_LAYERS
    assert model.input_shape == (None, 100, 100, 3)
    assert model.output_shape == (None, 4096)
    assert model.count_params() == CLASSIC_PARAMS == 18_202_176
    assert model.get_layer("conv1").kernel_regularizer is not None


def test_unknown_backbone_lists_the_known_ones():
    with pytest.raises(UnknownBackboneError, match="classic.*dlib_resnet"):
        backbone_spec("resnet9000")


def test_l1_distance_is_the_absolute_difference():
    a = np.array([[1.0, -2.0, 3.0]], np.float32)
    b = np.array([[0.5, 2.0, 3.0]], np.float32)
    np.testing.assert_allclose(L1Distance()([a, b]), [[0.5, 4.0, 0.0]])


def test_siamese_keras_round_trip_without_custom_objects(tmp_path):
    model = build_siamese(build_classic_embedding())
    assert [layer.name for layer in model.layers[2:]] == ["embedding", "l1_distance", "head"]
    rng = np.random.default_rng(0)
    a, b = rng.random((2, 3, 100, 100, 3), dtype=np.float32)
    before = model.predict([a, b], verbose=0)
    assert before.shape == (3, 1) and np.all((before >= 0) & (before <= 1))
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(loaded.predict([a, b], verbose=0), before)
    # The same image on both sides: identical embeddings, distance zero.
    np.testing.assert_allclose(loaded.get_layer("l1_distance")([a, a]), 0.0)


def _small_embedding() -> keras.Model:
    inputs = keras.Input((6,), name="features")
    return keras.Model(inputs, keras.layers.Dense(8, name="fc")(inputs), name="embedding")


@pytest.mark.parametrize("kind", ["tied", "uniform", "tied_squared"])
def test_restricted_heads_train_and_round_trip_without_custom_objects(tmp_path, kind):
    from trainer.head import fit_head
    from trainer.networks import TiedKernel, TowardUniform, head_kind

    model = build_siamese(_small_embedding(), head=kind, penalty=1.0)
    assert [layer.name for layer in model.layers[2:]] == ["embedding", "l1_distance", "head"]
    head = model.get_layer("head")
    assert head.get_weights()[0].shape == (8, 1) and head_kind(model) == kind
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 256, 8)).astype(np.float32)
    labels = (np.abs(a - b).sum(axis=1) < 6).astype(np.float32)  # near pairs are "same"
    if kind == "tied_squared":
        labels = (np.square(a - b).sum(axis=1) < 12).astype(np.float32)
    fit_head(model, a, b, labels, epochs=30, batch_size=32, learning_rate=0.05, verbose=0)
    kernel = head.get_weights()[0][:, 0]
    assert kernel.mean() < 0  # a larger distance lowers the score
    if kind.startswith("tied"):
        assert isinstance(head.kernel_constraint, TiedKernel)
        np.testing.assert_allclose(kernel, kernel[0], rtol=1e-6)  # one weight: two free parameters with the bias
    else:
        assert isinstance(head.kernel_regularizer, TowardUniform) and head.kernel_regularizer.strength == 1.0
    x = rng.normal(size=(2, 5, 6)).astype(np.float32)
    before = model.predict([x[0], x[1]], verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(loaded.predict([x[0], x[1]], verbose=0), before, rtol=1e-6)
    assert head_kind(loaded) == kind
    if kind == "tied_squared":  # a logistic function of the squared Euclidean distance of the embeddings
        ea, eb = model.get_layer("embedding").predict(x[0], verbose=0), model.get_layer("embedding").predict(x[1], verbose=0)
        w, bias = kernel[0], head.get_weights()[1][0]
        expected = 1 / (1 + np.exp(-(w * np.square(ea - eb).sum(axis=1) + bias)))
        np.testing.assert_allclose(before[:, 0], expected, rtol=1e-4)


def test_unknown_head_is_named():
    with pytest.raises(ValueError, match="'wide'.*free, tied, uniform, tied_squared"):
        build_siamese(_small_embedding(), head="wide")


def test_bfloat16_copy_computes_in_bfloat16_from_the_same_weights():
    network = build_dlib_resnet()
    copy = bfloat16_copy(network)
    assert [layer.name for layer in copy.layers] == [layer.name for layer in network.layers]
    assert copy.get_layer("dlib_input").compute_dtype == "float32"  # the channel means are not rounded
    assert copy.get_layer("conv0").compute_dtype == "bfloat16"
    assert copy.get_layer("conv0").kernel.dtype == "bfloat16"
    kernel = network.get_layer("conv0").kernel.numpy()
    assert np.abs(copy.get_layer("conv0").kernel.numpy().astype(np.float32) - kernel).max() <= np.abs(kernel).max() / 128
    x = np.random.default_rng(0).uniform(0, 255, (2, 150, 150, 3)).astype(np.float32)
    full, half = network(x).numpy(), copy(x).numpy().astype(np.float32)
    assert np.linalg.norm(half - full, axis=1).max() < 0.02 * np.linalg.norm(full, axis=1).min()
    assert not np.allclose(half, full, atol=1e-6)  # bfloat16 did compute: float32 would agree to 1e-6


def test_precision_is_bfloat16_only_where_the_cpu_has_it_and_it_was_checked_unless_set(monkeypatch):
    monkeypatch.delenv("FACEREG_PRECISION", raising=False)
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    assert inference_precision() == ("bfloat16" if cpu_has_bfloat16() else "float32")
    assert inference_precision(bfloat16_checked=False) == "float32"
    assert backbone_spec("dlib_resnet").bfloat16 and not backbone_spec("classic").bfloat16
    classic = build_siamese(build_classic_embedding())
    assert Verifier(classic, ModelConfig("classic")).precision == "float32"  # unchecked in bfloat16: float32
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")  # without oneDNN, bfloat16 would run on slow generic kernels
    assert inference_precision() == "float32"
    for chosen in ("float32", "bfloat16", " BFloat16 "):  # set: for every backbone
        monkeypatch.setenv("FACEREG_PRECISION", chosen)
        assert inference_precision() == inference_precision(bfloat16_checked=False) == chosen.strip().lower()
    assert Verifier(classic, ModelConfig("classic")).precision == "bfloat16"
    monkeypatch.setenv("FACEREG_PRECISION", "float16")
    with pytest.raises(ValueError, match="FACEREG_PRECISION='float16': use one of float32, bfloat16"):
        inference_precision()

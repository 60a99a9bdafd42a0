"""dlib's ResNet-29 face embedding (dlib_face_recognition_resnet_model_v1) rebuilt in Keras.

The network of dlib's dnn_face_recognition_ex.cpp, on a 150x150 RGB chip (float32, 0..255):

    dlib_input   (x - (122.782, 117.001, 104.298)) / 256, as dlib's input_rgb_image_sized<150>
    conv0        7x7/2 convolution, 32 filters, no padding; conv0_relu; pool0: 3x3/2 max pooling
    stage1       3 residual blocks of 32 filters                         35x35
    stage2..4    a downsampling block, then 3, 2, 2 blocks of 64, 128, 256 filters
    stage5       a downsampling block of 256 filters                       2x2
    pool_everything (global average), fc: 128 outputs, no bias -> the descriptor

A residual block `stageS_blockB` is conv_a (3x3, stride 1 or 2) -> relu_a -> conv_b (3x3) -> add -> out (ReLU);
what it adds is its input, or for a downsampling block its input through `stageS_blockB_pool`
(2x2/2 average pooling). dlib pads a 3x3 convolution by 1 with stride 1 and not at all with stride 2;
its additions of tensors of different shapes zero-pad the smaller one at the bottom, right and last
channels (`ZeroPadAdd`): 3x3 + 4x4 -> 4x4 in stage4, 1x1 + 2x2 -> 2x2 in stage5.

dlib's `affine_` layers (its batch normalisation, folded) follow every convolution; they are folded
again into the convolution's kernel and bias when the weights load, so every `conv*` layer here is a
plain `Conv2D` with bias. To fine-tune only the top of the network, `set_trainable_blocks(model, k)`
freezes everything but the last k residual blocks (`residual_block_names(model)`, in forward order)
and `fc`.
"""
from __future__ import annotations

import functools
import importlib.util
import re
from pathlib import Path

import keras
import numpy as np

from .dlib_format import DlibLayer, DlibNet, read_dlib_net
from .errors import ModelFormatError

INPUT_SIZE = 150
EMBEDDING_SIZE = 128
RGB_MEANS = (122.782, 117.001, 104.298)
# (filters, residual blocks, whether the first block downsamples) of stage1..stage5.
STAGES = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))
_WEIGHTS_FILE = "dlib_face_recognition_resnet_model_v1.dat"
_BLOCK_OUTPUT = re.compile(r"^(stage\d+_block\d+)_out$")


@keras.saving.register_keras_serializable(package="facereg")
class ZeroPadAdd(keras.layers.Layer):
    """Sum of tensors of different shapes, as dlib's add_prev: each zero-padded at the end of every axis."""

    def compute_output_shape(self, input_shapes: list[tuple]) -> tuple:
        return (input_shapes[0][0], *(max(dims) for dims in zip(*(s[1:] for s in input_shapes))))

    def call(self, inputs: list) -> keras.KerasTensor:
        target = self.compute_output_shape([tuple(x.shape) for x in inputs])
        total = None
        for x in inputs:
            padded = keras.ops.pad(x, [(0, 0)] + [(0, t - d) for t, d in zip(target[1:], x.shape[1:])])
            total = padded if total is None else total + padded
        return total


def _conv(x: keras.KerasTensor, filters: int, size: int, stride: int, name: str) -> keras.KerasTensor:
    """dlib's con_: padding size // 2 with stride 1 ("same"), none with stride 2 ("valid")."""
    padding = "same" if stride == 1 else "valid"
    return keras.layers.Conv2D(filters, size, strides=stride, padding=padding, name=name)(x)


def _residual_block(x: keras.KerasTensor, filters: int, downsample: bool, name: str) -> keras.KerasTensor:
    """dlib's ares / ares_down: relu(shortcut(x) + affine(con(relu(affine(con(x))))))."""
    y = _conv(x, filters, 3, 2 if downsample else 1, f"{name}_conv_a")
    y = keras.layers.ReLU(name=f"{name}_relu_a")(y)
    y = _conv(y, filters, 3, 1, f"{name}_conv_b")
    if downsample:
        shortcut = keras.layers.AveragePooling2D(2, 2, padding="valid", name=f"{name}_pool")(x)
        y = ZeroPadAdd(name=f"{name}_add")([y, shortcut])
    else:
        y = keras.layers.Add(name=f"{name}_add")([y, x])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def dlib_weights_path() -> Path:
    """Path of dlib_face_recognition_resnet_model_v1.dat as installed by face_recognition_models."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelFormatError(
            f"the dlib_resnet weights ({_WEIGHTS_FILE}) come with face_recognition_models, which is not "
            "installed: pip install face_recognition_models"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models" / _WEIGHTS_FILE


@functools.lru_cache(maxsize=4)
def _load_net(path: str) -> DlibNet:
    """Parse a dlib network file once per process."""
    return read_dlib_net(path)


def _expected_kinds() -> list[str]:
    """dlib layer types of the network, innermost first, with each con_ + affine_ pair as "con_4"."""
    kinds = ["con_4", "relu_", "max_pool_2"]
    for _, blocks, downsample in STAGES:
        for b in range(blocks):
            kinds += ["con_4", "relu_", "con_4"]
            kinds += ["avg_pool_2", "add_prev_", "relu_"] if downsample and b == 0 else ["add_prev_", "relu_"]
    return kinds + ["avg_pool_2", "fc_2"]


def _fold_affine(con: DlibLayer, affine: DlibLayer) -> tuple[np.ndarray, np.ndarray]:
    """Keras (HWIO kernel, bias) of dlib's con_ followed by affine_ (gamma * (conv + b) + beta)."""
    gamma, beta = affine.arrays["gamma"], affine.arrays["beta"]
    kernel = con.arrays["filters"].transpose(2, 3, 1, 0) * gamma
    return kernel.astype(np.float32), (con.arrays["biases"] * gamma + beta).astype(np.float32)


def _keras_weights(net: DlibNet, source: str) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """The (kernel, bias) of every convolution in forward order and the fc kernel, from a parsed network."""
    layers, convs, kinds = list(net.layers), [], []
    while layers:
        layer = layers.pop(0)
        if layer.kind == "con_4":
            if not layers or layers[0].kind != "affine_":
                raise ModelFormatError(f"{source}: a con_ layer is not followed by an affine_ layer")
            s = layer.settings
            padding = s["nr"] // 2 if s["stride_y"] == 1 else 0
            if (s["padding_y"], s["padding_x"], s["stride_x"]) != (padding, padding, s["stride_y"]):
                raise ModelFormatError(f"{source}: a con_ layer with padding or strides dlib_resnet does not use")
            convs.append(_fold_affine(layer, layers.pop(0)))
        kinds.append(layer.kind)
    if kinds != _expected_kinds() or net.input.kind != "input_rgb_image_sized":
        raise ModelFormatError(
            f"{source} holds a dlib network that is not dlib_face_recognition_resnet_model_v1 "
            f"(layer types {kinds})"
        )
    return convs, net.layers[-1].arrays["weights"]


def build_dlib_resnet(weights: str | Path | None = "default") -> keras.Model:
    """dlib's ResNet-29 embedding: (150, 150, 3) float32 RGB 0..255 -> 128-d; weights "default", a .dat or None."""
    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), dtype="float32", name="image")
    x = keras.layers.Normalization(mean=list(RGB_MEANS), variance=[256.0**2] * 3, name="dlib_input")(inputs)
    x = _conv(x, 32, 7, 2, "conv0")
    x = keras.layers.ReLU(name="conv0_relu")(x)
    x = keras.layers.MaxPooling2D(3, 2, padding="valid", name="pool0")(x)
    for s, (filters, blocks, downsample) in enumerate(STAGES, start=1):
        for b in range(1, blocks + 1):
            x = _residual_block(x, filters, downsample and b == 1, f"stage{s}_block{b}")
    x = keras.layers.GlobalAveragePooling2D(name="pool_everything")(x)
    outputs = keras.layers.Dense(EMBEDDING_SIZE, use_bias=False, name="fc")(x)
    model = keras.Model(inputs, outputs, name="dlib_resnet")
    if weights is not None:
        path = dlib_weights_path() if weights == "default" else Path(weights)
        convs, fc = _keras_weights(_load_net(str(path.resolve())), str(path))
        conv_layers = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
        for layer, (kernel, bias) in zip(conv_layers, convs, strict=True):
            layer.set_weights([kernel, bias])
        model.get_layer("fc").set_weights([fc])
    return model


def residual_block_names(model: keras.Model) -> list[str]:
    """Names of the residual blocks ("stage1_block1" ...) in forward order; a block's layers start with it."""
    return [m.group(1) for layer in model.layers if (m := _BLOCK_OUTPUT.match(layer.name))]


def set_trainable_blocks(model: keras.Model, last_k: int) -> None:
    """Freeze all layers but the last `last_k` residual blocks and fc (0: only fc; >= block count: all)."""
    blocks = residual_block_names(model)
    if last_k < 0:
        raise ValueError(f"last_k must be >= 0, got {last_k}")
    trainable = tuple(f"{name}_" for name in blocks[max(len(blocks) - last_k, 0):]) if last_k else ()
    for layer in model.layers:
        layer.trainable = last_k >= len(blocks) or layer.name == "fc" or layer.name.startswith(trainable)

"""The networks of FaceReg: embedding backbones, the L1-distance layer and the Siamese model."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import keras
import numpy as np

from .errors import UnknownBackboneError

CLASSIC_L2 = 1e-4  # weight of the L2 penalty on the first convolution (the original design names none)
# L2 penalty on the head's kernel. Without it a head on 128 L1 features overfits the 2,200 View 1 DevTrain
# pairs: `python -m trainer fit-default` gave 96.1 % on DevTest without it, 97.9 % with it (no flip).
HEAD_L2 = 3e-4


@dataclass(frozen=True)
class BackboneSpec:
    """What the pipeline must know about an embedding network: chip size and pixel scaling."""

    name: str
    input_size: int
    pixel_scale: float  # network input = uint8 chip * pixel_scale
    embedding_dim: int
    pretrained: bool
    # Embedded in bfloat16 by default where the CPU has bfloat16 instructions (trainer.serving.inference_precision):
    # only where that was checked to keep the decisions (dlib_resnet: `python -m benchmarks.bench_precision`). The
    # classic network's 4,096 sigmoid outputs move its L1 distance more under bfloat16's rounding, and were not checked.
    bfloat16: bool = False

    def prepare(self, chips: np.ndarray) -> np.ndarray:
        """Turn a batch of uint8 RGB chips into this network's float32 input."""
        return chips.astype(np.float32) * np.float32(self.pixel_scale)


BACKBONES: dict[str, BackboneSpec] = {
    "dlib_resnet": BackboneSpec("dlib_resnet", 150, 1.0, 128, pretrained=True, bfloat16=True),
    "classic": BackboneSpec("classic", 100, 1.0 / 255.0, 4096, pretrained=False),
}


def backbone_spec(name: str) -> BackboneSpec:
    """The spec of a backbone by name, or UnknownBackboneError listing the known ones."""
    try:
        return BACKBONES[name]
    except KeyError:
        known = ", ".join(sorted(BACKBONES))
        raise UnknownBackboneError(f"unknown backbone {name!r}; choose one of: {known}") from None


def build_classic_embedding() -> keras.Model:
    """The embedding network of the original design: 100x100x3 in [0, 1] -> 4096-d sigmoid."""
    inputs = keras.Input((100, 100, 3), name="image")
    x = keras.layers.Conv2D(
        64, 10, activation="relu", kernel_regularizer=keras.regularizers.L2(CLASSIC_L2), name="conv1"
    )(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = keras.layers.Dropout(0.3, name="drop1")(x)
    x = keras.layers.Conv2D(128, 3, activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(2, name="pool2")(x)
    x = keras.layers.Dropout(0.3, name="drop2")(x)
    x = keras.layers.Conv2D(128, 7, activation="relu", name="conv3")(x)
    x = keras.layers.MaxPooling2D(2, name="pool3")(x)
    x = keras.layers.Dropout(0.3, name="drop3")(x)
    x = keras.layers.Conv2D(256, 4, activation="relu", name="conv4")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = keras.layers.Dense(4096, activation="sigmoid", name="embedding_dense")(x)
    return keras.Model(inputs, outputs, name="embedding")


def _build_dlib_resnet() -> keras.Model:
    from .dlib_resnet import build_dlib_resnet

    return build_dlib_resnet()


_BUILDERS: dict[str, Callable[[], keras.Model]] = {
    "classic": build_classic_embedding,
    "dlib_resnet": _build_dlib_resnet,
}


def build_embedding(backbone: str) -> keras.Model:
    """A fresh embedding network for a backbone (pretrained weights where it has them)."""
    backbone_spec(backbone)
    return _BUILDERS[backbone]()


@keras.saving.register_keras_serializable(package="facereg")
class L1Distance(keras.layers.Layer):
    """Element-wise absolute difference of two embeddings: the Siamese distance layer.

    power=2 squares the differences, so that their sum is the squared Euclidean distance (the "tied_squared" head).
    """

    def __init__(self, power: int = 1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.power = int(power)

    def call(self, inputs):
        anchor, other = inputs
        difference = keras.ops.abs(anchor - other)
        return difference if self.power == 1 else keras.ops.power(difference, self.power)

    def get_config(self) -> dict:
        return {**super().get_config(), "power": self.power}

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@keras.saving.register_keras_serializable(package="facereg")
class TiedKernel(keras.constraints.Constraint):
    """Every weight of a kernel set to their mean: Dense(1) over a distance's components then has one weight on
    their sum and a bias (two free parameters), so its score ranks pairs exactly as the summed distance does."""

    def __call__(self, w):
        return keras.ops.ones_like(w) * keras.ops.mean(w)

    def get_config(self) -> dict:
        return {}


@keras.saving.register_keras_serializable(package="facereg")
class TowardUniform(keras.regularizers.Regularizer):
    """L2 penalty on a kernel's spread about its mean: pulls a Dense(1) head toward equal weights (strength
    0: a free head; large: a tied one), where plain L2 pulls it toward zero."""

    def __init__(self, strength: float) -> None:
        self.strength = float(strength)

    def __call__(self, w):
        return self.strength * keras.ops.sum(keras.ops.square(w - keras.ops.mean(w)))

    def get_config(self) -> dict:
        return {"strength": self.strength}


# What the head may learn: "free" (one weight per embedding component, L2 toward zero: the seed's head), "tied"
# (one weight shared by all components, and a bias: a logistic function of the L1 norm of the difference),
# "uniform" (free weights pulled toward equal ones), "tied_squared" (one weight on the squared components: a
# logistic function of the squared Euclidean distance, so it ranks pairs exactly as the backbone's own distance).
HEADS = ("free", "tied", "uniform", "tied_squared")


def build_siamese(
    embedding: keras.Model, name: str = "siamese", head: str = "free", penalty: float = HEAD_L2, power: int | None = None
) -> keras.Model:
    """Two inputs, one shared embedding, L1 distance and a Dense(1, sigmoid) similarity head.

    head: one of HEADS; penalty: the L2 weight of "free", the strength of "uniform"; power: of the L1 layer's
    components (default: 2 for "tied_squared", else 1).
    """
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; known heads: {', '.join(HEADS)}")
    shape = tuple(embedding.input_shape[1:])
    anchor = keras.Input(shape, name="anchor")
    other = keras.Input(shape, name="other")
    if embedding.name != "embedding":
        embedding = keras.Model(embedding.input, embedding.output, name="embedding")
    power = power or (2 if head == "tied_squared" else 1)
    distance = L1Distance(power=power, name="l1_distance")([embedding(anchor), embedding(other)])
    tied = {"kernel_constraint": TiedKernel(), "kernel_initializer": "zeros"}
    options = {
        "free": {"kernel_regularizer": keras.regularizers.L2(penalty)},
        "tied": tied,
        "uniform": {"kernel_regularizer": TowardUniform(penalty)},
        "tied_squared": tied,
    }[head]
    score = keras.layers.Dense(1, activation="sigmoid", name="head", **options)(distance)
    return keras.Model([anchor, other], score, name=name)


def head_kind(model: keras.Model) -> str:
    """Which of HEADS a Siamese model's head is, read from its kernel's constraint and regulariser."""
    head = model.get_layer("head")
    if isinstance(head.kernel_constraint, TiedKernel):
        return "tied_squared" if model.get_layer("l1_distance").power == 2 else "tied"
    return "uniform" if isinstance(head.kernel_regularizer, TowardUniform) else "free"


# Layers that turn pixels into the network's input keep float32 in a bfloat16 copy: bfloat16's 8-bit mantissa would
# round their constants (dlib's channel means 122.782, 104.298 -> 123, 104.5) and shift every input.
_FLOAT32_LAYERS = (keras.layers.InputLayer, keras.layers.Normalization, keras.layers.Rescaling)


def bfloat16_copy(network: keras.Model) -> keras.Model:
    """A copy of a network for inference that computes and keeps its weights in bfloat16 (input scaling in float32)."""

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        if isinstance(layer, _FLOAT32_LAYERS):
            return layer.__class__.from_config(layer.get_config())
        return layer.__class__.from_config({**layer.get_config(), "dtype": "bfloat16"})

    copy = keras.models.clone_model(network, clone_function=clone)
    for target, source in zip(copy.layers, network.layers, strict=True):
        target.set_weights(source.get_weights())
    return copy


def siamese_parts(model: keras.Model) -> tuple[keras.Model, keras.layers.Layer]:
    """The shared embedding sub-model and the head layer of a Siamese model."""
    return model.get_layer("embedding"), model.get_layer("head")

"""Reader of dlib's serialization format, enough for the DNN `.dat` files of `face_recognition_models`.

dlib writes a network with its own binary serialization (dlib/serialize.h, dlib/dnn/core.h, layers.h):

Primitives
    int     a control byte, then the magnitude in little-endian bytes. The control byte's low 4 bits
            give the number of magnitude bytes and its bit 0x80 the sign: ``01 02`` is 2, ``81 04`` is -4.
    float   (scalar settings, not tensors) two ints, mantissa and exponent: mantissa * 2**exponent;
            exponents 32000, 32001 and 32002 stand for +inf, -inf and NaN.
    bool    one ASCII byte, ``'1'`` or ``'0'``.
    string  an int length, then that many bytes. Layers begin with their type as a string ("con_4").
    tensor  ints version (2), n, k, nr, nc, then n*k*nr*nc little-endian float32 (IEEE) values.
    alias   (a view into a layer's parameter tensor) ints version (1), n, k, nr, nc; the views of a layer
            lie one after the other in its parameter tensor, in the order they are written.

Network
    A network is nested templates, `loss<fc<avg_pool<... con<input>>>>`, and each level writes its
    version and then its subnetwork before its own content. So the file holds: the loss layer's version
    and settings; the versions of all enclosed levels, outermost first (2: a computational layer,
    1: a tag or skip, which write nothing else; 3: the innermost computational layer, which holds the
    input layer); then the input layer; then each computational layer, innermost first, as its type
    string, its settings and parameters, and the bookkeeping of its `add_layer` wrapper (3 bools,
    3 empty tensors, and for the innermost one an int). Batch normalisation is already folded into
    `affine_` layers (per-channel ``x * gamma + beta``).

`read_dlib_net(path)` returns the layers with their settings and their parameters as numpy arrays
in dlib's layouts: convolution filters (num_filters, k, nr, nc), fully connected weights
(num_inputs, num_outputs). Tags and skips carry no data, so the graph itself (which layers add to
which) is not in the result: the model builder knows it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ModelFormatError

_SPECIAL_EXPONENTS = {32000: math.inf, 32001: -math.inf, 32002: math.nan}
_COMPUTATIONAL, _TAG_OR_SKIP, _INNERMOST = 2, 1, 3


@dataclass(frozen=True)
class DlibLayer:
    """One dlib layer: its type string, its scalar settings and its parameter arrays."""

    kind: str
    settings: dict[str, int | float | str] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class DlibNet:
    """A parsed dlib network: loss layer, input layer and computational layers innermost first."""

    loss: DlibLayer
    input: DlibLayer
    layers: tuple[DlibLayer, ...]


class _Reader:
    """Sequential reader of dlib's primitives over an in-memory file."""

    def __init__(self, data: bytes, source: str) -> None:
        self.data, self.source, self.pos = data, source, 0

    def fail(self, what: str) -> ModelFormatError:
        return ModelFormatError(
            f"{self.source} is not a valid dlib network file ({what} at byte {self.pos} of {len(self.data)}). "
            "If it is the file of face_recognition_models, reinstall it: "
            "pip install --force-reinstall --no-deps face_recognition_models"
        )

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise self.fail("file ends early: truncated")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def integer(self) -> int:
        control = self.take(1)[0]
        size = control & 0x0F
        if size > 8:
            raise self.fail(f"integer of {size} bytes")
        value = int.from_bytes(self.take(size), "little")
        return -value if control & 0x80 else value

    def real(self) -> float:
        mantissa, exponent = self.integer(), self.integer()
        if exponent in _SPECIAL_EXPONENTS:
            return _SPECIAL_EXPONENTS[exponent]
        return math.ldexp(mantissa, exponent)

    def boolean(self) -> bool:
        byte = self.take(1)
        if byte not in (b"0", b"1"):
            raise self.fail(f"boolean byte {byte!r}")
        return byte == b"1"

    def string(self) -> str:
        length = self.integer()
        if not 0 <= length <= 256:
            raise self.fail(f"string of length {length}")
        return self.take(length).decode("ascii", errors="replace")

    def tensor(self) -> np.ndarray:
        version, *shape = (self.integer() for _ in range(5))
        if version != 2 or min(shape) < 0:
            raise self.fail(f"tensor header {version}, {shape}")
        count = math.prod(shape)
        return np.frombuffer(self.take(4 * count), dtype="<f4").reshape(shape)

    def alias(self) -> tuple[int, int, int, int]:
        version, *shape = (self.integer() for _ in range(5))
        if version != 1:
            raise self.fail(f"alias tensor version {version}")
        return tuple(shape)

    def ints(self, *names: str) -> dict[str, int]:
        return {name: self.integer() for name in names}


def _views(params: np.ndarray, *shapes: tuple[int, ...]) -> list[np.ndarray]:
    """Split a flat parameter tensor into consecutive float32 arrays of the given shapes."""
    flat, out, offset = params.reshape(-1), [], 0
    for shape in shapes:
        size = math.prod(shape)
        out.append(np.array(flat[offset:offset + size].reshape(shape), dtype=np.float32))
        offset += size
    return out


def _read_details(r: _Reader) -> DlibLayer:
    """Read one layer's own content, dispatching on its type string."""
    kind = r.string()
    if kind == "input_rgb_image_sized":
        means = {name: r.real() for name in ("avg_red", "avg_green", "avg_blue")}
        return DlibLayer(kind, {**means, **r.ints("nr", "nc")})
    if kind == "con_4":
        params = r.tensor()
        settings = r.ints("num_filters", "nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")
        filters, biases = _views(params, r.alias(), r.alias())
        for name in ("lr_mult", "wd_mult", "bias_lr_mult", "bias_wd_mult"):
            settings[name] = r.real()
        return DlibLayer(kind, settings, {"filters": filters, "biases": biases.reshape(-1)})
    if kind == "affine_":
        params = r.tensor()
        gamma, beta = _views(params, r.alias(), r.alias())
        return DlibLayer(kind, {"mode": r.integer()}, {"gamma": gamma.reshape(-1), "beta": beta.reshape(-1)})
    if kind in ("max_pool_2", "avg_pool_2"):
        return DlibLayer(kind, r.ints("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x"))
    if kind in ("relu_", "add_prev_"):
        return DlibLayer(kind)
    if kind == "fc_2":
        settings = r.ints("num_outputs", "num_inputs")
        params = r.tensor()
        weights_shape, biases_shape = r.alias(), r.alias()
        settings["bias_mode"] = r.integer()
        for name in ("lr_mult", "wd_mult", "bias_lr_mult", "bias_wd_mult"):
            settings[name] = r.real()
        weights, biases = _views(params, weights_shape, biases_shape)
        rows = settings["num_inputs"]
        return DlibLayer(kind, settings, {"weights": weights.reshape(rows, -1), "biases": biases.reshape(-1)})
    if kind == "loss_metric_2":
        return DlibLayer(kind, {"margin": r.real(), "distance_threshold": r.real()})
    raise r.fail(f"unsupported layer type {kind!r}")


def _skip_bookkeeping(r: _Reader, innermost: bool) -> None:
    """Skip what an add_layer writes after its layer: 3 bools, 3 (empty) tensors, and maybe an int."""
    for _ in range(3):
        r.boolean()
    for _ in range(3):
        r.tensor()
    if innermost:
        r.integer()  # _sample_expansion_factor


def parse_dlib_net(data: bytes, source: str = "<bytes>") -> DlibNet:
    """Parse the bytes of a serialized dlib network; ModelFormatError if they are not one."""
    r = _Reader(data, source)
    if r.integer() != 1:
        raise r.fail("unknown loss layer version")
    loss = _read_details(r)
    versions = []
    while not versions or versions[-1] != _INNERMOST:
        versions.append(r.integer())
        if versions[-1] not in (_COMPUTATIONAL, _TAG_OR_SKIP, _INNERMOST):
            raise r.fail(f"layer version {versions[-1]}")
    input_layer = _read_details(r)
    layers = [_read_details(r)]
    _skip_bookkeeping(r, innermost=True)
    for _ in range(versions.count(_COMPUTATIONAL)):
        layers.append(_read_details(r))
        _skip_bookkeeping(r, innermost=False)
    if r.pos != len(data):
        raise r.fail("unexpected data after the network")
    return DlibNet(loss, input_layer, tuple(layers))


def read_dlib_net(path: str | Path) -> DlibNet:
    """Read a serialized dlib network from a file; ModelFormatError if it is missing or not one."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelFormatError(
            f"cannot read dlib network file {path}: {exc.strerror or exc}. "
            "Install the weights with: pip install face_recognition_models"
        ) from exc
    return parse_dlib_net(data, str(path))

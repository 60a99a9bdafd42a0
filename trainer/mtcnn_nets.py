"""MTCNN's three networks (PNet, RNet, ONet) with the `mtcnn` package's own weights, on the engine that runs each best.

TensorFlow runs these small networks slowly on a CPU: their layers have 10 to 64 channels and their batches are
small, so its per-call and per-operation costs dominate. OpenCV's DNN engine (`cv2.dnn`, already a dependency) runs
them faster (`python benchmarks/bench_detect.py` compares the detector on both engines). Each Keras network of
`mtcnn` is translated, at first use and in memory, into the Caffe description that MTCNN was first published in,
with its weights copied over; nothing is downloaded or written to disk. The translated network computes what the
Keras one does, to float rounding (tested on random inputs at every pyramid size, and the whole detector on LFW
images). PNet and ONet run there (`DnnNetwork`).

RNet is the exception (`CompiledNetwork`): it runs on every PNet proposal at once, 140 patches for two pairs (70 a
pair: `python benchmarks/bench_detect.py`), where a compiled TensorFlow function on one thread costs much less CPU
than OpenCV's engine on two.

A `cv2.dnn.Net` must not run in two threads at once: each thread gets its own copy (`DnnNetwork`).
"""
from __future__ import annotations

import collections
import threading
from typing import Any

import cv2
import numpy as np

__all__ = ["CompiledNetwork", "DnnNetwork", "caffe_description"]


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _blob(array: np.ndarray) -> bytes:
    """caffe.BlobProto: shape (field 7: BlobShape, dims in field 1) and packed float data (field 5)."""
    array = np.ascontiguousarray(array, np.float32)
    return _field(7, _field(1, b"".join(_varint(d) for d in array.shape))) + _field(5, array.tobytes())


def _weights(layers: dict[str, list[np.ndarray]]) -> bytes:
    """caffe.NetParameter holding only weights: a LayerParameter (field 100) per layer, name (1) and blobs (7)."""
    return b"".join(
        _field(100, _field(1, name.encode()) + b"".join(_field(7, _blob(b)) for b in blobs))
        for name, blobs in layers.items()
    )


def caffe_description(model: Any, side: int) -> tuple[str, dict[str, list[np.ndarray]], list[str]]:
    """A Keras MTCNN network as a Caffe prototxt (NCHW input of side x side), its weights by layer name and the
    names of its output layers, in the Keras network's output order.

    The network is a chain of Conv2D / PReLU / MaxPooling2D layers (then Permute((2, 1, 3)), Flatten, Dense and
    PReLU), ending in two or three heads (Conv2D or Dense) on the chain's output; a softmax head gets a Softmax
    layer. Caffe pools in ceil mode, which equals Keras's "same" and "valid" pooling at the sizes MTCNN uses
    (tests compare the outputs).
    """
    import keras

    lines = [f'input: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: {side}\ninput_dim: {side}']
    weights: dict[str, list[np.ndarray]] = {}
    outputs: list[str] = []
    last_prelu = max(i for i, layer in enumerate(model.layers) if isinstance(layer, keras.layers.PReLU))
    top, height, width, permuted = "data", side, side, False

    def add(name: str, kind: str, bottom: str, out: str, params: str = "") -> None:
        lines.append(f'layer {{ name: "{name}" type: "{kind}" bottom: "{bottom}" top: "{out}" {params}}}')

    for i, layer in enumerate(model.layers):
        name, head = layer.name, i > last_prelu
        out = name if head or not isinstance(layer, keras.layers.PReLU) else top  # PReLU works in place
        activation = layer.get_config().get("activation", "linear")
        if activation not in ("linear", "softmax") or (activation == "softmax" and not head):
            raise ValueError(f"{name}: activation {activation!r} is not translated")
        if isinstance(layer, keras.layers.Conv2D):
            kernel, bias = layer.get_weights()
            (size, size_x), (stride, stride_x) = layer.kernel_size, layer.strides
            if layer.padding != "valid" or size != size_x or stride != stride_x:
                raise ValueError(f"{name}: only square, unpadded convolutions are translated")
            add(name, "Convolution", top, out,
                f"convolution_param {{ num_output: {kernel.shape[-1]} kernel_size: {size} stride: {stride} }} ")
            weights[name] = [kernel.transpose(3, 2, 0, 1), bias]  # HWIO -> OIHW
            height, width = (height - size) // stride + 1, (width - size) // stride + 1
        elif isinstance(layer, keras.layers.PReLU):
            add(name, "PReLU", top, out)
            weights[name] = [layer.get_weights()[0].reshape(-1)]
        elif isinstance(layer, keras.layers.MaxPooling2D):
            (size, _), (stride, _) = layer.pool_size, layer.strides
            add(name, "Pooling", top, out, f"pooling_param {{ pool: MAX kernel_size: {size} stride: {stride} }} ")
            height, width = (-(-(height - size) // stride) + 1, -(-(width - size) // stride) + 1)  # ceil mode
        elif isinstance(layer, keras.layers.Permute):
            if tuple(layer.dims) != (2, 1, 3):
                raise ValueError(f"{name}: only Permute((2, 1, 3)) is translated")
            permuted = True
            continue
        elif isinstance(layer, keras.layers.Flatten):
            continue
        elif isinstance(layer, keras.layers.Dense):
            kernel, bias = layer.get_weights()
            units = kernel.shape[1]
            if permuted:  # the first Dense: Keras flattened (W, H, C) after the permute, Caffe flattens (C, H, W)
                kernel = kernel.reshape(width, height, -1, units).transpose(2, 1, 0, 3).reshape(-1, units)
                permuted = False
            add(name, "InnerProduct", top, out, f"inner_product_param {{ num_output: {units} }} ")
            weights[name] = [kernel.T, bias]  # (in, out) -> (out, in)
        else:
            raise ValueError(f"{name}: {type(layer).__name__} layers are not translated")
        if head:
            if activation == "softmax":
                add(f"{name}-softmax", "Softmax", out, f"{name}-softmax")
                out = f"{name}-softmax"
            outputs.append(out)  # a layer's name, as cv2.dnn.Net.forward takes them
        else:
            top = out
    return "\n".join(lines) + "\n", weights, outputs


class DnnNetwork:
    """A Keras MTCNN network run by OpenCV's DNN engine: NHWC float32 batches in, the Keras network's outputs out.

    OpenCV sets a network up again (its buffers and its convolutions' packed weights) whenever the input's shape
    changes. With `shapes` > 1 each thread keeps a network for each of its last `shapes` input shapes: PNet sees one
    shape per pyramid level, the same ones image after image of one size, so it is not set up again at each level
    (`python benchmarks/bench_detect.py` times the detector both ways; the faces are the same). RNet and ONet see a
    new batch size nearly every call, where a network per shape gained nothing in a one-off check."""

    def __init__(self, model: Any, side: int, shapes: int = 1) -> None:
        prototxt, weights, self.outputs = caffe_description(model, side)
        self._prototxt = np.frombuffer(prototxt.encode(), np.uint8)
        self._weights = np.frombuffer(_weights(weights), np.uint8)
        self._side = side
        self._shapes = shapes
        self._local = threading.local()

    def _net(self, shape: tuple[int, ...]) -> cv2.dnn.Net:
        """This thread's network for inputs of `shape` (a cv2.dnn.Net must not run in two threads at once)."""
        nets = getattr(self._local, "nets", None)
        if nets is None:
            nets = self._local.nets = collections.OrderedDict()
        key = shape if self._shapes > 1 else None
        if key not in nets:
            nets[key] = cv2.dnn.readNetFromCaffe(self._prototxt, self._weights)
            if len(nets) > self._shapes:
                nets.popitem(last=False)  # the least recently used
        nets.move_to_end(key)
        return nets[key]

    def __call__(self, batch: Any) -> list[np.ndarray]:
        """The network's outputs for an N x H x W x 3 batch, as the Keras network gives them (NHWC maps, N x K rows)."""
        batch = np.asarray(batch, np.float32)
        empty = len(batch) == 0
        if empty:  # OpenCV needs at least one image; the outputs' shapes come from a blank one
            height, width = batch.shape[1:3] if batch.ndim == 4 else (self._side, self._side)
            batch = np.zeros((1, height, width, 3), np.float32)
        net = self._net(batch.shape)
        net.setInput(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)))
        results = [out.transpose(0, 2, 3, 1) if out.ndim == 4 else out for out in net.forward(self.outputs)]
        return [out[:0] for out in results] if empty else results


class CompiledNetwork:
    """A Keras MTCNN network as one compiled TensorFlow function: NHWC float32 batches in, its outputs as numpy out.

    For RNet, whose batches are large (every PNet proposal of the images detected together: 140 for two pairs).
    There TensorFlow's compiled function, on the one thread an operation `trainer.serving.configure_cpu` gives it,
    spends much less CPU than OpenCV's engine on two threads, in about the same time, and the detector
    serves more pairs a second when the app's two inference workers detect at once
    (`python benchmarks/bench_detect.py`, its last table). Batches run in chunks of at most `chunk`, each padded with
    blank patches to a multiple of `step`: TensorFlow keeps memory for every input shape it has run, and RNet's batch
    size changes nearly every call. In a one-off check over batches of 1 to 400 patches, these defaults grew the
    process's memory a little more than OpenCV's engine did, and then it stayed; unpadded batches grew it several
    times as much, and it kept growing. Chunks of 128 held it lower but cost the detector more CPU under two threads.
    """

    def __init__(self, model: Any, side: int, chunk: int = 256, step: int = 32) -> None:
        import tensorflow as tf

        self._network = tf.function(lambda batch: model(batch, training=False), autograph=False,
                                    input_signature=[tf.TensorSpec([None, side, side, 3], tf.float32)])
        self._side, self._chunk, self._step = side, chunk, step

    def __call__(self, batch: Any) -> list[np.ndarray]:
        """The network's outputs (N x K rows) for an N x side x side x 3 batch; an empty batch gives empty outputs."""
        batch = np.asarray(batch, np.float32)
        outputs = []
        for start in range(0, max(len(batch), 1), self._chunk):  # an empty batch runs one blank chunk for the shapes
            part = batch[start:start + self._chunk]
            padded = np.zeros((max(-(-len(part) // self._step), 1) * self._step, self._side, self._side, 3), np.float32)
            padded[:len(part)] = part
            outputs.append([out.numpy()[:len(part)] for out in self._network(padded)])
        return [np.concatenate(parts) for parts in zip(*outputs)]

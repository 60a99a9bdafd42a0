"""Verification speed and memory on this CPU, side by side with `face_recognition` on the same images.

    python benchmarks/bench_speed.py [--pairs 10] [--repeats 3] [--xla] [--opencv] [--frozen]

Rows (medians): end to end for one pair from two image files (decode, detect, align, embed, head), the
same for `face_recognition` (dlib HOG detector + 5-point landmarks + the same ResNet, `face_encodings` on both files
and `face_distance`), the two pipelines alternating pair by pair (the speed-up); then each pipeline on all the pairs
back to back, in turns, as a service running only one of them would (pair by pair, each evicts the other's weights
from the CPU caches); embedding alone at batch 1 and 32; and, in fresh processes, the cold start from `python` to
the first verification and that process's peak memory (max RSS). `--xla` and `--opencv` add the embedding network
alone, one pass per face, as FaceReg compiles it beside XLA or OpenCV's DNN engine (an ONNX translation made here,
in memory, for this comparison only: FaceReg does not ship it). `--frozen` adds it beside the same network with its
weights frozen into the graph as constants (what it would cost in time to freeze, time to the first call, and memory).
Needs `pip install -r requirements-bench.txt` and `pip install --no-deps face_recognition` for the peer.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from trainer.evaluate import LFW_DIR, read_lfw_pairs  # noqa: E402
from trainer.networks import siamese_parts  # noqa: E402
from trainer.serving import configure_cpu, usable_cpus  # noqa: E402
from trainer.verify import Verifier  # noqa: E402

# The process prints its own peak RSS (VmHWM, kB): the rusage wait4 reports for a child also counts the RSS of the
# process it was forked from (Linux keeps the larger at exec), here this benchmark's, which had grown to 1.4 GB.
COLD_START = """
import time, sys
from trainer import Verifier, configure_cpu
configure_cpu()
Verifier.default().verify(sys.argv[1], sys.argv[2])
print(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
"""


def timed(fn, repeats: int) -> list[float]:
    """Wall-clock milliseconds of `repeats` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - start))
    return times


def multiply_adds(model) -> int:
    """Multiply-adds of one forward pass of a Keras network, counted from its Conv2D and Dense layers (and those of
    the networks nested in it)."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += multiply_adds(layer)
        elif isinstance(layer, keras.layers.Conv2D):
            height, width, filters = layer.output.shape[1:]
            total += height * width * filters * layer.kernel_size[0] * layer.kernel_size[1] * layer.input.shape[-1]
        elif isinstance(layer, keras.layers.Dense):
            total += layer.input.shape[-1] * layer.units
    return int(total)


def cpu_name() -> str:
    """The CPU's model name and its widest vector instructions (Linux /proc/cpuinfo), for the record."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    first = {}  # the first CPU's fields
    for key, _, value in (line.partition(":") for line in info.splitlines()):
        first.setdefault(key.strip(), value.strip())
    flags = first.get("flags", "").split()
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{first.get('model name', '?')}, {vector}"


def cold_start(image1: Path, image2: Path) -> tuple[float, float]:
    """Seconds from starting python to the first verification, and that process's peak RSS in MB."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", COLD_START, str(image1), str(image2)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError("the cold-start process failed")
    return seconds, int(result.stdout.split()[-1]) / 1024


def main() -> None:
    """Run the benchmark and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, default=LFW_DIR)
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--xla", action="store_true",
                        help="also time the embedding compiled with XLA (jit_compile) at batch 4 and 16")
    parser.add_argument("--opencv", action="store_true",
                        help="also time the embedding on OpenCV's DNN engine at batch 1, 4 and 16 (needs onnx)")
    parser.add_argument("--frozen", action="store_true",
                        help="also time the embedding with its weights frozen into constants at batch 1, 4 and 16")
    args = parser.parse_args()

    import face_recognition

    # Spread over View 2's folds, genuine and impostor in turn (each fold is 300 genuine pairs, then 300 impostor;
    # until 2026-12-02 night every tenth of the list was taken, the first pair of each fold: genuine pairs only).
    view2, step = read_lfw_pairs(args.lfw), 6000 // args.pairs
    pairs = [(p.path1, p.path2) for p in (view2[i * step + 300 * (i % 2)] for i in range(args.pairs))]
    configure_cpu()  # TensorFlow's threads as `python -m trainer` and the app set them
    verifier = Verifier.default()
    verifier.verify(*pairs[0])  # compile once; cold start is measured separately below

    stages: list[dict] = []  # verify's own timing_ms of each call: where the time goes

    def ours(a: Path, b: Path) -> None:
        stages.append(verifier.verify(a, b)["timing_ms"])

    def theirs(a: Path, b: Path) -> None:
        encodings = [face_recognition.face_encodings(face_recognition.load_image_file(p))[:1] for p in (a, b)]
        if all(encodings):
            face_recognition.face_distance(encodings[0], encodings[1][0])

    # Interleaved pair by pair, so that a drift in the machine's speed affects both pipelines alike.
    ours_ms, theirs_ms = [], []
    for _ in range(args.repeats):
        for a, b in pairs:
            ours_ms += timed(lambda: ours(a, b), 1)
            theirs_ms += timed(lambda: theirs(a, b), 1)
    # The same pairs back to back, each pipeline in turn (blocks alternate): what a service running one of them sees.
    # Pair by pair above, each pipeline's weights and buffers leave the CPU caches while the other one runs.
    stages_between = stages[:]
    stages.clear()
    blocks_ours, blocks_theirs = [], []
    for _ in range(args.repeats):
        blocks_ours += [t for a, b in pairs for t in timed(lambda: ours(a, b), 1)]
        blocks_theirs += [t for a, b in pairs for t in timed(lambda: theirs(a, b), 1)]
    # Several pairs in one pass (what the app's inference worker does with concurrent requests), same pairs.
    verifier.verify_many(pairs[:8])
    many_ms = [t / len(pairs) for t in timed(lambda: verifier.verify_many(pairs), args.repeats)]
    chips = np.stack([verifier.detect(p).chip for p in {p for pair in pairs for p in pair}][:32])
    chips = np.concatenate([chips] * (32 // len(chips) + 1))[:32]
    verifier.embed_chips(chips)
    batch1 = timed(lambda: verifier.embed_chips(chips[:1]), 20)
    batch32 = timed(lambda: verifier.embed_chips(chips), 5)
    colds = [cold_start(*pairs[0]) for _ in range(args.repeats)]
    engine_rows = xla_embedding(verifier, chips, args.repeats) if args.xla else []
    engine_rows += opencv_embedding(verifier, chips, args.repeats) if args.opencv else []
    engine_rows += frozen_embedding(verifier, chips, args.repeats) if args.frozen else []

    flip = " (with test-time flip: 2 forward passes per face)" if verifier.config.flip else ""
    m = statistics.median
    passes = 32 * (2 if verifier.config.flip else 1)
    macs = multiply_adds(siamese_parts(verifier.model)[0])
    gflops = 2 * macs * passes / (m(batch32) / 1000) / 1e9
    print(f"\nCPU: {cpu_name()}; {usable_cpus()} usable cores; FaceReg embeds in {verifier.precision} "
          f"(`trainer.serving.inference_precision`).")
    print(f"\n| measurement (median, {os.cpu_count()}-core CPU) | value |")
    print("|---|---|")
    print(f"| FaceReg end to end, one pair from two files{flip} | {m(ours_ms):.0f} ms |")
    print(f"| face_recognition end to end, one pair (HOG + face_encodings x2 + face_distance) | {m(theirs_ms):.0f} ms |")
    print(f"| speed-up of FaceReg over face_recognition | {m(theirs_ms) / m(ours_ms):.1f}x |")
    print("| inside `verify`: detect and align both / embed both / head | "
          + " / ".join(f"{m([t[k] for t in stages_between]):.1f}" for k in ("detect_align", "embed", "head")) + " ms |")
    print(f"| each pipeline on the {len(pairs)} pairs back to back, in turns: FaceReg / face_recognition (speed-up) | "
          f"{m(blocks_ours):.0f} / {m(blocks_theirs):.0f} ms ({m(blocks_theirs) / m(blocks_ours):.1f}x) |")
    print("| inside `verify`, back to back: detect and align both / embed both / head | "
          + " / ".join(f"{m([t[k] for t in stages]):.1f}" for k in ("detect_align", "embed", "head")) + " ms |")
    print(f"| FaceReg, the {len(pairs)} pairs in one `verify_many` call (as the app batches concurrent requests), "
          f"a pair | {m(many_ms):.0f} ms |")
    print(f"| embedding alone, batch 1{flip} | {m(batch1):.1f} ms |")
    print(f"| embedding alone, batch 32{flip} | {m(batch32):.0f} ms ({m(batch32) / 32:.1f} ms per face) |")
    print(f"| the embedding's arithmetic at batch 32 ({verifier.precision}): {macs / 1e9:.2f} G multiply-adds a pass, "
          f"{passes} passes | "
          f"{gflops:.0f} GFLOP/s ({gflops / usable_cpus():.0f} a core) |")
    print(f"| cold start: `python` to first verification | {m([c[0] for c in colds]):.1f} s |")
    print(f"| peak memory (max RSS) of that verification process | {m([c[1] for c in colds]):.0f} MB |")
    for row in engine_rows:
        print(row)


def compiled_embedding(verifier: Verifier):
    """The Verifier's embedding network and one forward pass of it (no flip) compiled as the Verifier compiles it."""
    import tensorflow as tf

    embedding, _ = siamese_parts(verifier.model)
    size = verifier.spec.input_size
    return embedding, tf.function(lambda x: embedding(x, training=False),
                                  input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)])


def xla_embedding(verifier: Verifier, chips: np.ndarray, repeats: int) -> list[str]:
    """Table rows: the embedding network (one forward pass, no flip) as the Verifier compiles it and with XLA
    (jit_compile, one compilation per batch size: the padded buckets it would need), per face, alternating."""
    import tensorflow as tf

    embedding, plain = compiled_embedding(verifier)
    xla = tf.function(lambda x: embedding(x, training=False), jit_compile=True)
    rows = []
    for batch in (4, 16):
        x = tf.constant(verifier.spec.prepare(chips[:batch]))
        start = time.perf_counter()
        xla(x)
        compile_s = time.perf_counter() - start
        plain(x)
        ours, theirs = [], []
        for _ in range(5 * repeats):
            ours += timed(lambda: plain(x).numpy(), 1)
            theirs += timed(lambda: xla(x).numpy(), 1)
        m = statistics.median
        rows.append(f"| embedding, one pass, batch {batch}: compiled / XLA (first call {compile_s:.1f} s) | "
                    f"{m(ours) / batch:.1f} / {m(theirs) / batch:.1f} ms per face |")
    return rows


def frozen_embedding(verifier: Verifier, chips: np.ndarray, repeats: int) -> list[str]:
    """Table rows: the embedding network (one forward pass, no flip) as the Verifier compiles it and with the weights
    it reads frozen into its graph as constants (`convert_variables_to_constants_v2`: TensorFlow's oneDNN
    convolutions can then keep their filters in oneDNN's layout between calls), per face, alternating; the seconds
    to freeze it and of its first call, and how much this process's memory grew meanwhile."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    from benchmarks.bench_app import rss_mib

    _, plain = compiled_embedding(verifier)
    plain(tf.constant(verifier.spec.prepare(chips[:1])))
    rss, start = rss_mib(os.getpid()), time.perf_counter()
    frozen = convert_variables_to_constants_v2(plain.get_concrete_function())
    freeze_s, start = time.perf_counter() - start, time.perf_counter()
    frozen(tf.constant(verifier.spec.prepare(chips[:1])))
    first_s, rows = time.perf_counter() - start, []
    for batch in (1, 4, 16):
        x = tf.constant(verifier.spec.prepare(chips[:batch]))
        difference = float(np.abs(plain(x).numpy() - frozen(x)[0].numpy()).max())
        ours, theirs = [], []
        for _ in range(5 * repeats):
            ours += timed(lambda: plain(x).numpy(), 1)
            theirs += timed(lambda: frozen(x)[0].numpy(), 1)
        m = statistics.median
        rows.append(f"| embedding, one pass, batch {batch}: compiled / frozen weights (largest difference "
                    f"{difference:.0e}) | {m(ours) / batch:.1f} / {m(theirs) / batch:.1f} ms per face |")
    rows.append(f"| freezing the embedding: seconds to freeze / of its first call; memory (RSS) it added | "
                f"{freeze_s:.1f} / {first_s:.1f} s; {rss_mib(os.getpid()) - rss:.0f} MiB |")
    return rows


def dlib_resnet_onnx(model) -> bytes:
    """The dlib_resnet Keras network as an ONNX model (NCHW float32 input "image", 128-d output), for cv2.dnn."""
    import keras
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from trainer.dlib_resnet import RGB_MEANS, ZeroPadAdd

    nodes, weights, tops = [], [], {}

    def constant(name: str, value, dtype=np.float32) -> str:
        weights.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def add(op: str, inputs: list[str], name: str, **attributes) -> str:
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attributes))
        return name

    centred = add("Sub", ["image", constant("means", np.reshape(RGB_MEANS, (1, 3, 1, 1)))], "centred")
    tops[model.get_layer("dlib_input").output.name] = add("Mul", [centred, constant("scale", [[[[1 / 256]]]])],
                                                          "dlib_input")
    for layer in model.layers:
        if isinstance(layer, (keras.layers.InputLayer, keras.layers.Normalization)):
            continue
        inputs = [tops[t.name] for t in (layer.input if isinstance(layer.input, list) else [layer.input])]
        name = layer.name
        if isinstance(layer, keras.layers.Conv2D):
            kernel, bias = layer.get_weights()
            size, stride = layer.kernel_size[0], layer.strides[0]
            pads = [size // 2] * 4 if layer.padding == "same" else [0] * 4
            top = add("Conv", [*inputs, constant(f"{name}_w", kernel.transpose(3, 2, 0, 1)), constant(f"{name}_b", bias)],
                      name, kernel_shape=[size, size], strides=[stride, stride], pads=pads)
        elif isinstance(layer, keras.layers.ReLU):
            top = add("Relu", inputs, name)
        elif isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)):
            op = "MaxPool" if isinstance(layer, keras.layers.MaxPooling2D) else "AveragePool"
            top = add(op, inputs, name, kernel_shape=list(layer.pool_size), strides=list(layer.strides))
        elif isinstance(layer, (ZeroPadAdd, keras.layers.Add)):
            shapes = [tuple(t.shape[1:]) for t in layer.input]
            target = [max(dims) for dims in zip(*shapes)]
            padded = []
            for i, (top, shape) in enumerate(zip(inputs, shapes)):
                height, width, channels = (t - d for t, d in zip(target, shape))  # zeros at the end of each axis
                if height or width or channels:
                    ends = constant(f"{name}_pads{i}", [0, 0, 0, 0, 0, channels, height, width], np.int64)
                    top = add("Pad", [top, ends], f"{name}_pad{i}")
                padded.append(top)
            top = add("Add", padded, name)
        elif isinstance(layer, keras.layers.GlobalAveragePooling2D):
            top = add("Flatten", [add("GlobalAveragePool", inputs, f"{name}_map")], name)
        elif isinstance(layer, keras.layers.Dense):
            top = add("MatMul", [*inputs, constant(f"{name}_w", layer.get_weights()[0])], name)
        else:
            raise ValueError(f"{name}: {type(layer).__name__} is not translated")
        tops[layer.output.name] = top
    graph = helper.make_graph(nodes, "dlib_resnet", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                                                   [None, 3, 150, 150])],
                              [helper.make_tensor_value_info(top, TensorProto.FLOAT, [None, 128])], weights)
    return onnx.helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()


def opencv_embedding(verifier: Verifier, chips: np.ndarray, repeats: int) -> list[str]:
    """Table rows: the embedding network (one forward pass, no flip) as the Verifier compiles it and on OpenCV's DNN
    engine, per face, alternating; and the largest difference between their descriptors."""
    import cv2
    import tensorflow as tf

    embedding, plain = compiled_embedding(verifier)
    net = cv2.dnn.readNetFromONNX(np.frombuffer(dlib_resnet_onnx(embedding), np.uint8))

    def opencv(x: np.ndarray) -> np.ndarray:
        net.setInput(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        return net.forward()

    rows = []
    for batch in (1, 4, 16):
        x = verifier.spec.prepare(chips[:batch]).astype(np.float32)
        difference = float(np.abs(plain(tf.constant(x)).numpy() - opencv(x)).max())
        ours, theirs = [], []
        for _ in range(10 * repeats):
            ours += timed(lambda: plain(tf.constant(x)).numpy(), 1)
            theirs += timed(lambda: opencv(x), 1)
        m = statistics.median
        rows.append(f"| embedding, one pass, batch {batch}: compiled / OpenCV DNN (descriptors within {difference:.0e}) | "
                    f"{m(ours) / batch:.1f} / {m(theirs) / batch:.1f} ms per face ({m(ours) / m(theirs):.2f}x) |")
    return rows


if __name__ == "__main__":
    main()

"""TensorFlow's threads as the app and the CLI set them (`configure_cpu`): half the CPUs per operation (one on 2
CPUs), and a Verifier that then embeds in two calls side by side gives what one call gives.

The check runs in a fresh Python process: TensorFlow's thread pools are fixed once it has run an operation, which
this test process has done long before. It compares float32 embeddings (FACEREG_PRECISION=float32) with the Keras
network's own: bfloat16 is tested in tests/test_verify.py.
"""
import json
import os
import subprocess
import sys

from tests.conftest import REPO_ROOT
from trainer.serving import usable_cpus

CHECK = """
import dataclasses, json
import numpy as np
from trainer import Verifier, configure_cpu
from trainer.networks import siamese_parts
from trainer.serving import side_by_side

threads = configure_cpu()
assert side_by_side()
verifier = Verifier.default()
embedding = siamese_parts(verifier.model)[0]
chips = np.random.default_rng(0).integers(0, 256, (3, 150, 150, 3), dtype=np.uint8)
x = verifier.spec.prepare(chips)
flipped = (embedding(x).numpy() + embedding(x[:, :, ::-1]).numpy()) / 2
plain = Verifier(verifier.model, dataclasses.replace(verifier.config, flip=False))
print(json.dumps({
    "threads": threads,
    "flip": verifier.config.flip,
    "flip_error": float(np.abs(verifier.embed_chips(chips) - flipped).max()),
    "halves_error": float(max(np.abs(plain.embed_chips(chips[:n]) - embedding(x[:n]).numpy()).max() for n in (1, 2, 3))),
    "scale": float(np.abs(flipped).max()),
}))
"""


def test_threads_per_operation_and_side_by_side_embedding_equals_one_call():
    env = {**os.environ, "FACEREG_PRECISION": "float32"}
    done = subprocess.run([sys.executable, "-c", CHECK], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    cpus = usable_cpus()
    assert result["threads"] == [max(1, cpus // 2), cpus]  # half the CPUs per operation, two operations at once
    assert result["flip"] is True  # the default model embeds with test-time flip: the plain + mirrored calls
    assert result["scale"] > 0.01
    assert result["flip_error"] < 1e-5  # the batch of 3 plain and 3 mirrored chips, in two calls
    assert result["halves_error"] < 1e-5  # without flip: a batch of 1, 2 or 3 chips in two halves (one may be empty)

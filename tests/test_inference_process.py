"""A model's verifications answered by a process of its own (trainer.inference_process): the same answers and errors
as in this process, a fallback here when it fails, and no process left behind."""
import functools
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import lfw_image, needs_lfw
from tests.test_serving import PAIRS, assert_same, images
from trainer.errors import ImageDecodeError, NoFaceError
from trainer.inference_process import InferenceProcess, InferenceProcessError, ProcessBatcher
from trainer.verify import Verifier

pytestmark = needs_lfw
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def verifier() -> Verifier:
    return Verifier.default()


@pytest.fixture(scope="module")
def alone(verifier) -> list[dict]:
    """Each pair verified on its own, in this process."""
    return [verifier.verify(*images(pair), return_chips=True) for pair in PAIRS]


@pytest.fixture(scope="module")
def process():
    process = InferenceProcess(Verifier.default)
    yield process
    process.close()


def as_sent(pair) -> tuple:
    """A pair's images as the app sends them: an upload's bytes (an array where `images` resized one)."""
    return tuple(image if isinstance(image, np.ndarray) else Path(image).read_bytes() for image in images(pair))


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie (a container's init may not reap orphans)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_the_process_answers_each_caller_as_the_model_does_here(process, alone):
    results: dict[int, dict] = {}
    start = threading.Barrier(len(PAIRS) * 2)

    def call(i: int) -> None:
        start.wait()
        results[i] = process.verify(*as_sent(PAIRS[i % len(PAIRS)]), return_chips=True)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(PAIRS) * 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert sorted(results) == list(range(len(PAIRS) * 2))
    for i, result in results.items():
        assert_same(result, alone[i % len(PAIRS)])
    assert process.wait_ready() == process.pid != os.getpid() and alive(process.pid)
    assert max(result["timing_ms"].get("pairs_in_batch", 1) for result in results.values()) > 1  # batched there


def test_errors_come_back_as_the_models_own(process, alone, tmp_path):
    wall = tmp_path / "wall.png"
    Image.new("RGB", (300, 300), (200, 180, 160)).save(wall)
    face = lfw_image("Colin_Powell", 1).read_bytes()
    with pytest.raises(ImageDecodeError, match="image 1"):
        process.verify(b"not an image", face)
    with pytest.raises(NoFaceError, match="image 2: no face found"):
        process.verify(face, wall.read_bytes())
    assert_same(process.verify(*as_sent(PAIRS[0])), alone[0])  # and it goes on serving


def test_verifications_fall_back_to_this_process_when_the_process_ends(verifier, alone, caplog):
    process = InferenceProcess(Verifier.default)
    batcher = ProcessBatcher(verifier, process)
    assert_same(batcher.verify(*as_sent(PAIRS[0])), alone[0])
    assert batcher.batches == []  # served over there
    os.kill(process.pid, signal.SIGKILL)
    with caplog.at_level(logging.WARNING, logger="facereg.serving"):
        assert_same(batcher.verify(*as_sent(PAIRS[1])), alone[1])
        assert_same(batcher.verify(*as_sent(PAIRS[2])), alone[2])
    assert batcher.batches == [1, 1]  # served here
    assert caplog.text.count("verifying in the app's own process from now on") == 1
    process.close()


def test_a_model_that_does_not_load_is_reported_and_served_here(verifier, alone, tmp_path):
    process = InferenceProcess(functools.partial(Verifier.from_dir, tmp_path / "no-model"))
    with pytest.raises(InferenceProcessError, match="could not serve: .*no-model"):
        process.wait_ready(300)
    assert_same(ProcessBatcher(verifier, process).verify(*as_sent(PAIRS[3])), alone[3])
    process.close()


PARENT = """
import sys, time
from trainer.inference_process import InferenceProcess
from trainer.verify import Verifier
process = InferenceProcess(Verifier.default)
print(process.wait_ready(), flush=True)
time.sleep(600)
"""


def test_the_process_exits_when_its_parent_dies():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], cwd=REPO, stdout=subprocess.PIPE)
    try:
        pid = int(parent.stdout.readline())
        assert alive(pid)
    finally:
        parent.kill()  # SIGKILL: no atexit, no close()
        parent.wait()
    deadline = time.monotonic() + 30
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(pid)

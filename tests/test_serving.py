"""Batched serving (trainer.serving): many threads at once get exactly what Verifier.verify gives each alone."""
import threading

import numpy as np
import pytest
from PIL import Image

from tests.conftest import LFW_PAIRS, lfw_image, needs_lfw
from trainer.errors import ImageDecodeError, NoFaceError
from trainer.serving import BatchedVerifier
from trainer.verify import Verifier

pytestmark = needs_lfw

PAIRS = LFW_PAIRS  # the last pair's first image is resized to 200 px, so a batch mixes image sizes


def images(pair) -> tuple:
    """The two images of a pair; the last pair's first image resized to 200 x 200 pixels (an array)."""
    a, b = (lfw_image(*who) for who in pair)
    if pair is PAIRS[-1]:
        a = np.asarray(Image.open(a).resize((200, 200)))
    return a, b


@pytest.fixture(scope="module")
def verifier() -> Verifier:
    return Verifier.default()


@pytest.fixture(scope="module")
def alone(verifier) -> list[dict]:
    """Each pair verified on its own."""
    return [verifier.verify(*images(pair), return_chips=True) for pair in PAIRS]


def assert_same(batched: dict, single: dict) -> None:
    """Same verdict, score, distance, faces and warnings, within the float tolerance of batched convolutions."""
    assert batched["is_match"] == single["is_match"] and batched["threshold"] == single["threshold"]
    assert batched["score"] == pytest.approx(single["score"], abs=1e-4)
    assert batched["distance"] == pytest.approx(single["distance"], abs=1e-3)
    assert batched["warnings"] == single["warnings"] and batched["backbone"] == single["backbone"]
    for face, other in zip(batched["faces"], single["faces"]):
        assert face["faces_found"] == other["faces_found"]
        np.testing.assert_allclose(face["box"], other["box"], atol=1)
        assert face["confidence"] == pytest.approx(other["confidence"], abs=1e-4)
    for chip, other in zip(batched.get("chips", []), single.get("chips", [])):
        assert np.abs(chip.astype(int) - other).max() <= 2


def test_verify_many_in_one_pass_equals_pairs_one_by_one(verifier, alone):
    results = verifier.verify_many([images(pair) for pair in PAIRS], return_chips=True)
    for batched, single in zip(results, alone):
        assert_same(batched, single)
        assert batched["timing_ms"]["pairs_in_batch"] == len(PAIRS)


def test_one_bad_pair_does_not_fail_the_others(verifier, alone, tmp_path):
    wall = tmp_path / "wall.png"
    Image.new("RGB", (300, 300), (200, 180, 160)).save(wall)
    first, no_face, unreadable, last = verifier.verify_many(
        [images(PAIRS[0]), (wall, lfw_image("Colin_Powell", 1)), (b"not an image", wall), images(PAIRS[1])],
        threshold=[None, None, None, 0.0],
    )
    assert_same(first, alone[0])
    assert isinstance(no_face, NoFaceError) and "wall.png" in str(no_face)
    assert isinstance(unreadable, ImageDecodeError)
    assert last["threshold"] == 0.0 and last["is_match"] is True
    assert last["score"] == pytest.approx(alone[1]["score"], abs=1e-4)


def test_concurrent_callers_each_get_their_own_result(verifier, alone):
    batched = BatchedVerifier(verifier)
    results: dict[int, dict] = {}
    start = threading.Barrier(len(PAIRS) * 2)

    def call(i: int) -> None:
        start.wait()
        results[i] = batched.verify(*images(PAIRS[i % len(PAIRS)]), return_chips=True)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(PAIRS) * 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(results) == list(range(len(PAIRS) * 2))
    for i, result in results.items():
        assert_same(result, alone[i % len(PAIRS)])
        assert result["timing_ms"]["queued"] >= 0 and result["timing_ms"]["total"] > 0
    assert sum(batched.batches) == len(PAIRS) * 2 and max(batched.batches) <= batched.max_pairs


def test_errors_reach_their_own_caller_and_the_worker_keeps_serving(verifier, alone, tmp_path):
    batched = verifier.batcher()
    assert verifier.batcher() is batched  # one worker per Verifier
    wall = tmp_path / "wall.png"
    Image.new("RGB", (300, 300), (200, 180, 160)).save(wall)
    with pytest.raises(ImageDecodeError, match="image 1"):
        batched.verify(b"not an image", lfw_image("Colin_Powell", 1))
    with pytest.raises(NoFaceError, match="wall.png"):
        batched.verify(wall, lfw_image("Colin_Powell", 1))
    assert_same(batched.verify(*images(PAIRS[0])), alone[0])


def test_idle_worker_exits_and_restarts_on_the_next_request(verifier, alone):
    batched = BatchedVerifier(verifier, idle_exit_s=0.2)
    assert_same(batched.verify(*images(PAIRS[2])), alone[2])
    workers = list(batched._workers)
    assert len(workers) == 1
    workers[0].join(10)
    assert not workers[0].is_alive() and batched._workers == []
    assert_same(batched.verify(*images(PAIRS[3])), alone[3])


def test_other_work_runs_on_the_worker_thread_and_its_errors_come_back(verifier, alone):
    batched = BatchedVerifier(verifier)
    anchors = batched.call(verifier.enroll, [lfw_image("Colin_Powell", n) for n in (2, 3)])
    assert len(anchors) == 2
    assert batched.call(threading.current_thread).name == "facereg-inference"
    with pytest.raises(NoFaceError):
        batched.call(verifier.enroll, [np.full((100, 100, 3), 128, np.uint8)])
    assert_same(batched.verify(*images(PAIRS[0])), alone[0])


def test_bfloat16_verifier_decides_as_float32_on_lfw_pairs(verifier):
    # The default head and threshold were chosen on float32 embeddings; bfloat16 ones (made on any CPU: slow
    # without bf16 instructions, but right) must not move a decision (benchmarks/bench_precision.py: all of LFW).
    pairs = [images(pair) for pair in PAIRS]
    results = {p: Verifier(verifier.model, verifier.config, precision=p).verify_many(pairs)
               for p in ("float32", "bfloat16")}
    for full, half in zip(results["float32"], results["bfloat16"]):
        assert half["is_match"] == full["is_match"]
        assert half["score"] == pytest.approx(full["score"], abs=0.03)
    assert {r["is_match"] for r in results["float32"]} == {True, False}  # genuine and impostor pairs
    assert max(abs(a["score"] - b["score"]) for a, b in zip(*results.values())) > 1e-6  # the two did differ

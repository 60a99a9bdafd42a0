"""Concurrent visitors through `gradio_client`: each gets the answer `Verifier.verify` gives its pair alone."""
from __future__ import annotations

import threading

import pytest

from tests.conftest import LFW_PAIRS as PAIRS
from tests.conftest import lfw_image, needs_lfw

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

pytestmark = needs_lfw


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The app, launched in this process on a free port."""
    from space.testing import running_app

    with running_app(tmp_path_factory.mktemp("app")) as running:
        yield running


def test_concurrent_verify_calls_each_get_their_own_answer(app):
    verifier = app.models.default()
    alone = [verifier.verify(*(lfw_image(*who) for who in pair)) for pair in PAIRS]
    threshold = round(verifier.threshold, 3)
    clients = [Client(app.url, verbose=False) for _ in PAIRS]
    answers: dict[int, dict] = {}
    start = threading.Barrier(len(PAIRS))

    def visit(i: int) -> None:
        files = [handle_file(str(lfw_image(*who))) for who in PAIRS[i]]
        start.wait()
        answers[i] = clients[i].predict(*files, threshold, api_name="/verify")[-1]

    threads = [threading.Thread(target=visit, args=(i,)) for i in range(len(PAIRS))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert sorted(answers) == list(range(len(PAIRS)))
    for i, expected in enumerate(alone):
        got = answers[i]
        assert got["score"] == pytest.approx(expected["score"], abs=1e-4)
        assert got["is_match"] == (expected["score"] >= threshold)
        assert got["faces"] == expected["faces"] or all(
            abs(a - b) <= 1 for f, g in zip(got["faces"], expected["faces"]) for a, b in zip(f["box"], g["box"])
        )
        assert got["timing_ms"]["queued"] >= 0  # served by the model's inference worker
    assert sum(verifier.batcher().batches) >= len(PAIRS)

"""Shared pytest fixtures: where LFW lives, and a small fixed subset of it for tests."""
from __future__ import annotations

from pathlib import Path

import pytest

from trainer.evaluate import LFW_DIR  # FACEREG_LFW, else ../shared/data/lfw

pytest_plugins = ["tests.hub_fixture"]

REPO_ROOT = Path(__file__).resolve().parent.parent
LFW_SKIP_REASON = (
    f"LFW not found at {LFW_DIR}: set FACEREG_LFW to a folder holding LFW's images/ "
    "(deep-funneled, images/<Name>/<Name>_<NNNN>.jpg) and pairs*.txt"
)
needs_lfw = pytest.mark.skipif(not (LFW_DIR / "images").is_dir(), reason=LFW_SKIP_REASON)


# Distinct real pairs, genuine and impostor (person, image number), for tests that verify several pairs at once.
LFW_PAIRS = [
    (("Colin_Powell", 1), ("Colin_Powell", 2)),
    (("Colin_Powell", 3), ("Tony_Blair", 1)),
    (("Tony_Blair", 2), ("Tony_Blair", 3)),
    (("George_W_Bush", 1), ("George_W_Bush", 2)),
    (("Gerhard_Schroeder", 1), ("Donald_Rumsfeld", 1)),
    (("Ariel_Sharon", 1), ("Ariel_Sharon", 2)),
]


def lfw_image(name: str, n: int) -> Path:
    """Path of LFW image number n of a person."""
    return LFW_DIR / "images" / name / f"{name}_{n:04d}.jpg"


@pytest.fixture(scope="session")
def lfw_dir() -> Path:
    """The LFW folder; skips the test where LFW is absent."""
    if not (LFW_DIR / "images").is_dir():
        pytest.skip(LFW_SKIP_REASON)
    return LFW_DIR

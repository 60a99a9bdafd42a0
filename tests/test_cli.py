"""`python -m trainer verify / evaluate` end to end, in a fresh process as a user runs them."""
import json
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT, lfw_image, needs_lfw

pytestmark = needs_lfw


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trainer", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300)


def test_verify_json_contract():
    done = run("verify", str(lfw_image("Colin_Powell", 1)), str(lfw_image("Colin_Powell", 2)), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["is_match"] is True
    assert 0 <= result["score"] <= 1 and 0 < result["threshold"] < 1


@pytest.mark.parametrize("content", [b"", b"plain text, not a picture"])
def test_verify_bad_input_is_one_line_on_stderr(tmp_path, content):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(content)
    done = run("verify", str(bad), str(lfw_image("Colin_Powell", 1)))
    assert done.returncode != 0
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and "bad.jpg" in lines[-1]
    assert "Traceback" not in done.stderr


def test_evaluate_pairs_tsv_and_lfw_layout(tmp_path, lfw_dir):
    people = [("Colin_Powell", 1, "Colin_Powell", 2), ("Tony_Blair", 1, "Tony_Blair", 2),
              ("Colin_Powell", 1, "Tony_Blair", 1), ("George_W_Bush", 1, "Tony_Blair", 2)]
    lines = [f"{a}/{a}_{i:04d}.jpg\t{b}/{b}_{j:04d}.jpg\t{int(a == b)}\t{k % 2}" for k, (a, i, b, j) in
             enumerate(people)]
    (tmp_path / "pairs.tsv").write_text("\n".join(lines) + "\n")
    done = run("evaluate", "--pairs", str(tmp_path / "pairs.tsv"), "--images", str(lfw_dir / "images"), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    for key in ("pairs", "accuracy_mean", "accuracy_std", "accuracy_at_threshold", "auc", "eer",
                "tar_at_far_1e-3", "no_face"):
        assert key in report
    assert report["pairs"] == 4 and report["no_face"] == 0
    assert report["accuracy_at_threshold"] == 1.0 and report["auc"] == 1.0

    done = run("evaluate", "--pairs", str(tmp_path / "missing.tsv"), "--images", str(lfw_dir))
    assert done.returncode != 0 and "missing.tsv" in done.stderr and "Traceback" not in done.stderr

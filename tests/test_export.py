"""What a stranger finds on the Hub works on its own: FaceReg installs as a package, a model folder loads outside
this repository (Keras after `import facereg`; the SavedModel with TensorFlow alone), the default model exports,
publishes and loads back, and model cards tell the repo id, the usage and how much the metrics can tell.

Fresh processes run with their working directory outside the repository and no PYTHONPATH, so nothing of FaceReg
is importable but what was installed.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

import hub_tools
from hub_tools.models import GENERATED_MARK, wilson_interval
from tests.conftest import REPO_ROOT, lfw_image, needs_lfw

SUMMARY_METRICS = {"accuracy", "f1", "precision", "recall", "roc_auc", "eer", "tar_at_far_1e-2"}
TIMEOUT_S = 600


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without PYTHONPATH (nothing of the repository importable), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return {**env, **extra}


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a command to its end; the output is kept for the assertion messages."""
    return subprocess.run(command, cwd=cwd, env=env or clean_env(), capture_output=True, text=True,
                          timeout=TIMEOUT_S)


def python_blocks(markdown: str) -> list[str]:
    """The ```python code blocks of a card, in order."""
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.S)


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throw-away venv (seeing the installed dependencies) with FaceReg pip-installed from this checkout."""
    import setuptools  # requirements.txt's test part: pip install --no-build-isolation builds with it

    assert int(setuptools.__version__.split(".")[0]) >= 64, "pyproject.toml needs setuptools>=64"
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    source = tmp_path_factory.mktemp("source") / "facereg"  # a copy: the build writes build/ and *.egg-info there
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(".*", "__pycache__", "build", "*.egg-info",
                                                                   "data", "runs", "artifacts", "test-artifacts"))
    done = run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
                "--no-build-isolation", str(source)], cwd=venv)
    assert done.returncode == 0, done.stderr
    return python


@pytest.fixture(scope="module")
def default_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded default model exported by the CLI, as a user would."""
    folder = tmp_path_factory.mktemp("export") / "facereg-default"
    done = run([sys.executable, "-m", "trainer", "export-default", str(folder)], cwd=REPO_ROOT,
               env=clean_env(PYTHONPATH=str(REPO_ROOT)))
    assert done.returncode == 0, done.stderr
    assert str(folder) in done.stdout
    return folder


@pytest.fixture(scope="module")
def chips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four 150 x 150 RGB chips (random pixels: loading is what is tested, not accuracy), saved as .npy."""
    path = tmp_path_factory.mktemp("chips") / "chips.npy"
    np.save(path, np.random.default_rng(0).integers(0, 256, (4, 150, 150, 3)).astype(np.float32))
    return path


@pytest.fixture(scope="module")
def reference(chips: Path) -> dict[str, np.ndarray]:
    """What this repository's own code gives on the chips: the Verifier's embeddings and scores (in the precision it
    picks on this CPU, and in float32, which the SavedModel computes in everywhere), the Siamese output."""
    from trainer.verify import Verifier

    verifier = Verifier.default()
    full = Verifier(verifier.model, verifier.config, precision="float32")
    x = np.load(chips)
    embeddings, embeddings_float32 = (v.embed_chips(x.astype(np.uint8)) for v in (verifier, full))
    return {
        "embeddings": embeddings,
        "scores": verifier.score(embeddings[:2], embeddings[2:]),
        "embeddings_float32": embeddings_float32,
        "scores_float32": full.score(embeddings_float32[:2], embeddings_float32[2:]),
        "siamese": verifier.model.predict([x[:2], x[2:]], verbose=0).reshape(-1),
    }


def test_pyproject_dependencies_are_the_runtime_requirements() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    text = (REPO_ROOT / "requirements.txt").read_text()
    runtime = text.split("# Tests")[0]
    wanted = [line.strip() for line in runtime.splitlines() if line.strip() and not line.startswith("#")]
    assert project["dependencies"] == wanted
    assert set(project["scripts"]) == {"facereg", "facereg-hub", "facereg-space"}


def test_lfw_view2_figures_are_the_readme_table() -> None:
    saved = json.loads((REPO_ROOT / "trainer" / "default_model" / "lfw_view2.json").read_text())
    readme = (REPO_ROOT / "README.md").read_text()
    for cells in (saved["columns"], saved["default"], saved["backbone"]):
        assert "| " + " | ".join(cells) + " |" in readme, (
            "trainer/default_model/lfw_view2.json must hold README's LFW View 2 table, as the cards quote it")


def test_pip_install_gives_the_package_its_data_and_commands(venv_python: Path, tmp_path: Path) -> None:
    bin_dir = venv_python.parent
    probe = ("import json, trainer, hub_tools, space, facereg; from trainer.default_model import HEAD_FILE;"
             "print(json.dumps([trainer.__file__, HEAD_FILE.is_file(), facereg.CUSTOM_LAYERS.__len__()]))")
    done = run([str(venv_python), "-c", probe], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    where, head_found, layers = json.loads(done.stdout.splitlines()[-1])
    assert Path(where).is_relative_to(venv_python.parent.parent) and head_found and layers == 2
    for script in ("facereg", "facereg-hub", "facereg-space"):
        done = run([str(bin_dir / script), "--help"], cwd=tmp_path)
        assert done.returncode == 0 and done.stdout.startswith("usage: "), script
        assert script == "facereg-space" or done.stdout.startswith(f"usage: {script} "), "help names the command"
    (tmp_path / "taken").write_text("a file")
    done = run([str(bin_dir / "facereg"), "export-default", str(tmp_path / "taken")], cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines()[-1].startswith("error: ") and "Traceback" not in done.stderr


def test_export_default_folder(default_dir: Path) -> None:
    assert {p.name for p in default_dir.iterdir()} == {"model.keras", "facereg.json", "saved_model", "README.md"}
    config = json.loads((default_dir / "facereg.json").read_text())
    head = json.loads((REPO_ROOT / "trainer" / "default_model" / "head.json").read_text())
    assert config["threshold"] == head["threshold"] and config["flip"] == head["flip"]
    assert config["created"] == head["created"]  # when the head was fitted, not when it was exported
    evaluation = config["evaluation"]
    assert evaluation["pairs"] == evaluation["genuine_pairs"] + evaluation["impostor_pairs"]
    correct = evaluation["true_accepts"] + evaluation["impostor_pairs"] - evaluation["false_accepts"]
    assert correct / evaluation["pairs"] == pytest.approx(config["metrics"]["accuracy"])
    export_mb = sum(f.stat().st_size for f in (default_dir / "saved_model").rglob("*") if f.is_file()) / 2**20
    keras_mb = (default_dir / "model.keras").stat().st_size / 2**20
    assert export_mb < keras_mb * 1.2, f"the SavedModel ({export_mb:.1f} MB) should hold the weights once"
    card = (default_dir / "README.md").read_text()
    saved = json.loads((REPO_ROOT / "trainer" / "default_model" / "lfw_view2.json").read_text())
    assert "| " + " | ".join(saved["default"]) + " |" in card and "| " + " | ".join(saved["backbone"]) + " |" in card
    assert GENERATED_MARK in card and "not yet published" in card


def stranger_env(hub_server, tmp_path: Path, **extra: str) -> dict[str, str]:
    """A stranger's environment: no PYTHONPATH, no FaceReg settings, the Hub (here the local server) in HF_ENDPOINT."""
    env = clean_env(HF_ENDPOINT=hub_server.endpoint, HF_HUB_DISABLE_XET="1", HF_HOME=str(tmp_path / "hf-home"),
                    **extra)
    env.pop("FACEREG_HUB_ENDPOINT", None)
    return env


@pytest.fixture(scope="module")
def published(default_dir: Path, hub_server) -> tuple[str, str]:
    """The exported default model published with `python -m hub_tools push-model` (public); its repo id and card."""
    repo_id = "alice/facereg"
    done = run([sys.executable, "-m", "hub_tools", "push-model", str(default_dir), repo_id,
                "--token", hub_server.token], cwd=REPO_ROOT, env=clean_env(PYTHONPATH=str(REPO_ROOT)))
    assert done.returncode == 0, done.stderr
    return repo_id, (hub_tools.pull_model(repo_id, token=hub_server.token) / "README.md").read_text()


def card_snippet(card: str, needle: str) -> str:
    """The card's python block that holds `needle`."""
    return next(block for block in python_blocks(card) if needle in block)


def test_keras_model_loads_after_install_outside_the_repo(venv_python, published, chips, reference, hub_server,
                                                         tmp_path):
    repo_id, card = published
    snippet = card_snippet(card, "keras.saving.load_model")
    script = f"""
import json, numpy as np, keras
from huggingface_hub import snapshot_download
try:
    keras.saving.load_model(snapshot_download({repo_id!r}) + "/model.keras")
    without = "loaded"
except Exception as exc:
    without = str(exc)
{snippet}
import trainer
x = np.load({str(chips)!r})
verifier = facereg.Verifier.from_hub({repo_id!r})
embeddings = verifier.embed_chips(x.astype(np.uint8))
print(json.dumps({{"without": without, "trainer": trainer.__file__,
                  "siamese": model.predict([x[:2], x[2:]], verbose=0).reshape(-1).tolist(),
                  "scores": verifier.score(embeddings[:2], embeddings[2:]).tolist()}}))
"""
    done = run([str(venv_python), "-c", script], cwd=tmp_path, env=stranger_env(hub_server, tmp_path))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["without"] != "loaded"  # so it is the card's `import facereg` that makes it load
    assert not Path(out["trainer"]).is_relative_to(REPO_ROOT)
    np.testing.assert_allclose(out["siamese"], reference["siamese"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["scores"], reference["scores"], rtol=1e-5, atol=1e-6)


def test_saved_model_needs_only_tensorflow(published, chips, reference, hub_server, tmp_path):
    repo_id, card = published
    snippet = card_snippet(card, "tf.saved_model.load")
    script = f"""
import importlib.util, json
assert all(importlib.util.find_spec(m) is None for m in ("trainer", "facereg", "hub_tools", "space"))
{snippet}
assert 0 <= score <= 1
embeddings = model.embed(np.load({str(chips)!r}))["embeddings"]
scores = model.score(embeddings[:2], embeddings[2:])["scores"]
print(json.dumps({{"embeddings": embeddings.numpy().tolist(), "scores": scores.numpy().tolist()}}))
"""
    done = run([sys.executable, "-c", script], cwd=tmp_path, env=stranger_env(hub_server, tmp_path))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    np.testing.assert_allclose(out["embeddings"], reference["embeddings_float32"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["scores"], reference["scores_float32"], rtol=1e-5, atol=1e-6)


def test_default_model_publishes_and_loads_back_with_identical_scores(published, chips, reference, hub_server):
    from trainer.verify import Verifier

    repo_id, card = published
    verifier = Verifier.from_hub(repo_id, token=hub_server.token)
    embeddings = verifier.embed_chips(np.load(chips).astype(np.uint8))
    np.testing.assert_array_equal(embeddings, reference["embeddings"])
    np.testing.assert_array_equal(verifier.score(embeddings[:2], embeddings[2:]), reference["scores"])
    assert verifier.threshold == Verifier.default().threshold

    lines = card.splitlines()
    assert lines[lines.index(GENERATED_MARK) + 2] == f"# {repo_id}"
    assert f'Verifier.from_hub("{repo_id}")' in card and f"facereg-hub pull-model {repo_id}" in card
    assert f'snapshot_download("{repo_id}")' in card and "not yet published" not in card
    assert "USER/MODEL" not in card and hub_server.token not in card
    metadata = hub_tools.read_model_card(repo_id)
    metrics = {m["type"] for m in metadata["model-index"][0]["results"][0]["metrics"]}
    assert metrics == SUMMARY_METRICS and metadata["license"] == "cc0-1.0"


@needs_lfw
def test_the_cards_command_line_works_after_install(venv_python, published, hub_server, tmp_path):
    """The card's command line as written, in a shell outside the repo with only the installed FaceReg."""
    from trainer.verify import Verifier

    _, card = published
    command = next(b for b in re.findall(r"```bash\n(.*?)```", card, flags=re.S) if "facereg verify" in b).strip()
    a, b = lfw_image("Colin_Powell", 1), lfw_image("Colin_Powell", 2)
    command = command.replace("a.jpg", str(a)).replace("b.jpg", str(b))
    env = stranger_env(hub_server, tmp_path, PATH=f"{venv_python.parent}:{os.environ['PATH']}")
    done = run(["bash", "-c", command], cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    verdict = done.stdout.strip().splitlines()[-1]
    score = float(re.search(r"score ([0-9.]+)", verdict).group(1))
    assert verdict.startswith("SAME person") and score == pytest.approx(Verifier.default().verify(a, b)["score"],
                                                                       abs=1e-4)


@needs_lfw
def test_trained_model_card_names_the_repo_and_tells_how_much_its_metrics_can_tell(hub_server, tmp_path):
    from tests.test_train import make_dataset
    from trainer.train import train

    run_id = "run-20261129-121817-b8f908"  # as the app names its runs
    output = tmp_path / run_id
    train(make_dataset(tmp_path / "faces"), "dlib_resnet", 2, output, cache_dir=tmp_path / "cache", verbose=0)
    local_card = (output / "README.md").read_text()
    assert run_id not in local_card and "not yet published" in local_card
    assert (output / "saved_model" / "saved_model.pb").is_file()

    repo_id = "alice/facereg-trained"
    hub_tools.push_model(output, repo_id, token=hub_server.token)  # as the app's Publish button does
    card = (hub_tools.pull_model(repo_id, token=hub_server.token) / "README.md").read_text()
    assert run_id not in card and f"# {repo_id}\n" in card
    assert f'Verifier.from_hub("{repo_id}")' in card and 'api_name="/verify"' in card and hub_server.token not in card
    metadata = hub_tools.read_model_card(repo_id, token=hub_server.token)
    assert {m["type"] for m in metadata["model-index"][0]["results"][0]["metrics"]} == SUMMARY_METRICS

    validation = json.loads((output / "metrics.json").read_text())["validation"]
    ta, fa = validation["true_accepts"], validation["false_accepts"]
    correct, pairs = ta + validation["impostor_pairs"] - fa, validation["pairs"]
    assert f"Measured on **{pairs} pairs**" in card
    for name, k, n in (("accuracy", correct, pairs), ("precision", ta, ta + fa),
                       ("recall", ta, validation["genuine_pairs"])):
        low, high = wilson_interval(k, n)
        assert f"| {low:.4f} - {high:.4f} | {k} of {n} " in card, name
    backbone_row = json.loads((REPO_ROOT / "trainer" / "default_model" / "lfw_view2.json").read_text())["backbone"]
    assert "| " + " | ".join(backbone_row) + " |" in card
    for text in ("## Intended use", "## Out of scope", "without the consent", "high-stakes", "## Known limits",
                 "Pose", "Image quality", "3 million", "not reported", "CC0"):
        assert text in card, text


def test_wilson_interval() -> None:
    low, high = wilson_interval(108, 108)
    assert high == 1.0 and low == pytest.approx(0.96574, abs=1e-4)  # 108/108 right: at least 96.6 %, not 100 %
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4) and high == pytest.approx(0.7634, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


@needs_lfw
def test_the_cards_gradio_client_snippet_works_against_the_app(published, tmp_path):
    """The card's gradio_client snippet as written, against the app launched here (a Space's code), after the
    default model was published: the app switches to it, then verifies a pair."""
    pytest.importorskip("gradio_client")
    from space.testing import running_app
    from trainer.verify import Verifier

    repo_id, card = published
    snippet = card_snippet(card, "gradio_client")
    a, b = lfw_image("Colin_Powell", 1), lfw_image("Colin_Powell", 2)
    with running_app(tmp_path / "app") as app:
        code = (snippet.replace('Client("USER/SPACE")', f'Client("{app.url}", verbose=False)')
                .replace('"a.jpg"', repr(str(a))).replace('"b.jpg"', repr(str(b))))
        scope: dict = {}
        exec(code, scope)  # noqa: S102  (the card's own code)
        assert [w.model.repo for w in app.workspaces.all()] == [repo_id]  # the snippet's own visitor's model
    assert scope["details"]["is_match"] and scope["score"] == pytest.approx(Verifier.default().verify(a, b)["score"],
                                                                            abs=1e-4)

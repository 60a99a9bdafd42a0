"""The app's models: the default it started with, shared by every visitor, and the models visitors loaded or
published, each serving only the visitors who chose it.

Loaded models are cached by (repo, commit) with a bound on how many stay in memory. Before a cached model serves a
visitor, the Hub is asked with that visitor's own token which commit the repo's revision is at: a visitor who may not
read the repo gets "not found", so a private model loaded with one visitor's token never serves another.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCHMARK_FIGURES = 3  # of a benchmark's columns, the Model tab shows the first few; the model card all
log = logging.getLogger("facereg.space")

MODEL_REPO_ENV = "FACEREG_MODEL_REPO"
MODEL_REVISION_ENV = "FACEREG_MODEL_REVISION"
MODEL_DIR_ENV = "FACEREG_MODEL_DIR"
MAX_MODELS_ENV = "FACEREG_MAX_MODELS"
INFERENCE_PROCESS_ENV = "FACEREG_INFERENCE_PROCESS"
# The embedded default model's head (read for its threshold without importing TensorFlow).
DEFAULT_HEAD_FILE = Path(__file__).resolve().parent.parent / "trainer" / "default_model" / "head.json"


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from: a repo (and revision) through hub_tools, a local folder, or the embedded default."""

    repo: str | None = None
    revision: str | None = None
    folder: str | None = None

    @classmethod
    def from_env(cls) -> "ModelSource":
        """FACEREG_MODEL_REPO (+ FACEREG_MODEL_REVISION), else FACEREG_MODEL_DIR, else the embedded default."""
        repo = os.environ.get(MODEL_REPO_ENV, "").strip() or None
        revision = os.environ.get(MODEL_REVISION_ENV, "").strip() or None
        folder = os.environ.get(MODEL_DIR_ENV, "").strip() or None
        return cls(repo=repo, revision=revision if repo else None, folder=None if repo else folder)

    def describe(self) -> str:
        """One line naming the source."""
        if self.repo:
            return self.repo + (f"@{self.revision}" if self.revision else "")
        return f"folder {self.folder}" if self.folder else "embedded default"


@dataclass(frozen=True)
class ModelChoice:
    """A visitor's model: a Hub repo at the revision asked for, resolved to a commit."""

    repo: str
    revision: str | None
    commit: str

    @property
    def key(self) -> tuple[str, str]:
        """The cache key: the same commit is the same model, whoever loaded it."""
        return self.repo, self.commit

    def describe(self) -> str:
        """One line naming the model."""
        return self.repo + (f"@{self.revision}" if self.revision else "")


class Models:
    """The default model (loaded on first use, once) and a bounded cache of the models visitors chose."""

    def __init__(self, default: ModelSource | None = None, capacity: int | None = None) -> None:
        self.default_source = default or ModelSource.from_env()
        self.capacity = capacity if capacity is not None else int(os.environ.get(MAX_MODELS_ENV, "") or 2)
        self._default: Any = None
        self._cache: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[tuple[str, str], threading.Lock] = {}
        self._process: Any = None

    # -- the default -------------------------------------------------------------------------------------------------
    @property
    def default_loaded(self) -> bool:
        """Whether the default model is in memory yet."""
        return self._default is not None

    def start_inference_process(self) -> None:
        """Have a process of its own answer the default model's verifications (`trainer.inference_process`: the app's
        threads and the networks then do not share a GIL). It loads the model from the same source, starting now."""
        import functools

        from trainer.inference_process import InferenceProcess

        self._process = InferenceProcess(functools.partial(_load, self.default_source, None))

    def default(self) -> Any:
        """The app-wide default `trainer.Verifier`, loading it on the first call."""
        verifier = self._default
        if verifier is not None:
            return verifier
        with self._lock:
            if self._default is None:
                verifier = _load(self.default_source, token=None)
                if self._process is not None:
                    from trainer.inference_process import ProcessBatcher

                    verifier.use_batcher(ProcessBatcher(verifier, self._process))
                self._default = verifier
            return self._default

    def warm_up(self) -> None:
        """Size TensorFlow's threads, load the default model and trace its networks once, so the first request is fast
        (after the inference process, if any, is ready: it answers the first verifications)."""
        from trainer.inference_process import InferenceProcessError
        from trainer.serving import configure_cpu, warm_up

        configure_cpu()
        verifier = self.default()
        if self._process is not None:
            try:
                self._process.wait_ready()
            except InferenceProcessError as exc:  # verifications fall back to this process (ProcessBatcher)
                log.warning("%s", exc)
        warm_up(verifier)

    def threshold_hint(self) -> float | None:
        """The default model's threshold without loading it: from its config file, or None for a Hub repo."""
        if self._default is not None:
            return float(self._default.threshold)
        if self.default_source.repo:
            return None
        config = Path(self.default_source.folder) / "facereg.json" if self.default_source.folder else DEFAULT_HEAD_FILE
        try:
            return float(json.loads(config.read_text())["threshold"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    # -- visitors' models --------------------------------------------------------------------------------------------
    def resolve(self, repo: str, revision: str | None, token: str | bool | None) -> ModelChoice:
        """The commit a repo's revision is at, asked with the visitor's token (RepoNotFoundError if they may not read it)."""
        from huggingface_hub import HfApi

        from hub_tools.errors import hub_errors

        with hub_errors(repo, token=token or None):
            commit = HfApi(token=token).model_info(repo, revision=revision).sha
        return ModelChoice(repo, revision, commit)

    def load(self, choice: ModelChoice, token: str | bool | None, folder: Path | None = None) -> Any:
        """The model of a resolved choice: from the cache, else from `folder` (a run just published) or the Hub."""
        verifier = self.cached(choice)
        if verifier is not None:
            return verifier
        with self._lock:
            loading = self._loading.setdefault(choice.key, threading.Lock())
        with loading:  # two visitors asking for the same new model load it once
            verifier = self.cached(choice)
            if verifier is None:
                from trainer import Verifier
                from trainer.serving import warm_up

                log.info("loading model %s", choice.describe())
                if folder is not None:
                    verifier = Verifier.from_dir(folder)
                    verifier.config.source = choice.repo
                else:
                    verifier = Verifier.from_hub(choice.repo, revision=choice.commit, token=token)
                # Trace its networks now, while the visitor waits for the model anyway: otherwise their first
                # verification would wait for the tracing, many times as long as the verifications after it.
                warm_up(verifier)
                self._store(choice.key, verifier)
        return verifier

    def cached(self, choice: ModelChoice) -> Any:
        """The cached model of a choice, or None (it was never loaded, or was evicted)."""
        with self._lock:
            verifier = self._cache.get(choice.key)
            if verifier is not None:
                self._cache.move_to_end(choice.key)
            return verifier

    def _store(self, key: tuple[str, str], verifier: Any) -> None:
        with self._lock:
            self._cache[key] = verifier
            self._cache.move_to_end(key)
            while len(self._cache) > self.capacity:
                evicted, _ = self._cache.popitem(last=False)
                log.info("model %s@%s left the cache", evicted[0], evicted[1][:8])

    def cached_keys(self) -> list[tuple[str, str]]:
        """(repo, commit) of the models in memory, least recently used first."""
        with self._lock:
            return list(self._cache)

    def for_visitor(self, choice: ModelChoice | None, token: str | bool | None) -> Any:
        """The model that serves a visitor: the default, or their choice (checked against the Hub if not in memory)."""
        if choice is None:
            return self.default()
        verifier = self.cached(choice)
        if verifier is not None:
            return verifier
        return self.load(self.resolve(choice.repo, choice.commit, token), token)

    def info(self, choice: ModelChoice | None, verifier: Any) -> dict[str, Any]:
        """What the Model tab shows about the model serving a visitor."""
        config = verifier.config
        source = self.default_source
        return {
            "source": source.describe() if choice is None else choice.describe(),
            "repo": source.repo if choice is None else choice.repo,
            "revision": (source.revision or ("main" if source.repo else None)) if choice is None
            else (choice.revision or "main"),
            "commit": None if choice is None else choice.commit,
            "serves": "every visitor (the app's default)" if choice is None else "you alone",
            "backbone": config.backbone,
            "threshold": round(float(config.threshold), 4),
            "flip": config.flip,
            "precision": verifier.precision,
            "detector": config.detector,
            "dataset": config.dataset,
            "created": config.created,
            "metrics_measured_on": _measured_on(config.evaluation or {}),  # before the metrics: read first
            "accepted_at_threshold": _accepted(config.evaluation or {}),
            "metrics": {name: round(value, 4) if isinstance(value, float) else value
                        for name, value in (config.metrics or {}).items()},
            "benchmarks": {table["name"]: _benchmark_summary(table) for table in config.benchmarks or []
                           if table.get("rows")},
        }


def info_markdown(info: dict[str, Any] | None) -> str:
    """The Model tab's summary of `Models.info` in words: what serves the visitor, its threshold, and how good it is,
    on which pairs."""
    if not info:
        return ""
    flip = ", test-time flip" if info.get("flip") else ""
    trained = f"; trained on {info['dataset']}" if info.get("dataset") else ""
    precision = (" Embeddings are computed in bfloat16 on this server's CPU, which is faster: scores may differ from "
                 "float32's by a few hundredths (at most 0.03 on LFW)." if info.get("precision") == "bfloat16" else "")
    paragraphs = [f"### Model: {info['source']}",
                  f"Serves {info['serves']}. Backbone **{info['backbone']}**{flip}; faces found by "
                  f"**{info['detector']}**{trained}.{precision}",
                  f"**Threshold {info['threshold']:.3f}**: a score at or above it is a match."]
    metrics, accepted = info.get("metrics") or {}, info.get("accepted_at_threshold") or {}
    if "accuracy" in metrics:
        counts = " It accepted " + " and ".join(f"{n} {kind}" for kind, n in accepted.items()) + "." if accepted else ""
        paragraphs.append(f"**How good it is**: accuracy **{100 * metrics['accuracy']:.1f} %** at this threshold on "
                          f"{info['metrics_measured_on']}.{counts}")
    else:
        paragraphs.append("No accuracy was recorded with this model.")
    for name, table in (info.get("benchmarks") or {}).items():
        protocol = f" ({table['protocol']})" if table.get("protocol") else ""
        rows = [f"- {row['measured']}: " + ", ".join(f"{column} {value}" for column, value in list(row.items())[1:])
                for row in table["rows"]]
        paragraphs.append("\n".join([f"**{name}**{protocol}: {table.get('note') or ''}", "", *rows]))
    return "\n\n".join(paragraphs)


def _benchmark_summary(table: dict[str, Any]) -> dict[str, Any]:
    """A benchmark's rows (what each measured, its main figures) with its note and protocol, as the Model tab shows
    it; the model card has every column."""
    columns = table["columns"][1:BENCHMARK_FIGURES + 1]
    rows = [{"measured": row[0], **dict(zip(columns, row[1:BENCHMARK_FIGURES + 1]))} for row in table["rows"]]
    return {"note": table.get("note"), "rows": rows, "protocol": table.get("protocol")}


def _accepted(evaluation: dict[str, Any]) -> dict[str, str]:
    """How many of the evaluation's same-person and different-people pairs the threshold accepted ("497 of 500")."""
    counts = [("same-person pairs", "true_accepts", "genuine_pairs"),
              ("different-people pairs", "false_accepts", "impostor_pairs")]
    return {kind: f"{evaluation[accepted]} of {evaluation[total]}" for kind, accepted, total in counts
            if accepted in evaluation and total in evaluation}


def _measured_on(evaluation: dict[str, Any]) -> str:
    """Which pairs a model's metrics come from, in words (the model card says it at more length)."""
    if "pairs" not in evaluation:
        return "not recorded"
    split = (f" ({evaluation['genuine_pairs']} of the same person, {evaluation['impostor_pairs']} of different people)"
             if "genuine_pairs" in evaluation and "impostor_pairs" in evaluation else "")
    data = f": {evaluation['data']}" if evaluation.get("data") else ""
    return f"{evaluation['pairs']} pairs{split}{data}"


def _load(source: ModelSource, token: str | bool | None) -> Any:
    """A Verifier for a source."""
    from trainer import Verifier

    log.info("loading model: %s", source.describe())
    if source.repo:
        return Verifier.from_hub(source.repo, revision=source.revision, token=token)
    if source.folder:
        return Verifier.from_dir(source.folder)
    return Verifier.default()

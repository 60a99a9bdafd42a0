"""Process-wide state of the app: which model is loaded (lazily, once), which token to use, readable errors."""
from __future__ import annotations

import contextlib
import html
import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

log = logging.getLogger("facereg.space")

MODEL_REPO_ENV = "FACEREG_MODEL_REPO"
MODEL_REVISION_ENV = "FACEREG_MODEL_REVISION"
MODEL_DIR_ENV = "FACEREG_MODEL_DIR"
# The embedded default model's head (read for its threshold without importing TensorFlow).
DEFAULT_HEAD_FILE = Path(__file__).resolve().parent.parent / "trainer" / "default_model" / "head.json"
# What Gradio's mocked login (outside a Space) hands to gr.OAuthToken parameters: not a real token.
MOCK_OAUTH_TOKEN = "mock-oauth-token-for-local-dev"
NO_TOKEN_MESSAGE = (
    "No usable Hugging Face token: sign in with the button at the top (on a Space), "
    "or set HF_TOKEN / run `hf auth login` where the app runs."
)


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


class ModelHolder:
    """The loaded `Verifier`: built on first use, once, and swapped atomically when another model is loaded."""

    def __init__(self, source: ModelSource | None = None) -> None:
        self.source = self.initial_source = source or ModelSource.from_env()
        self._verifier: Any = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory yet."""
        return self._verifier is not None

    def get(self) -> Any:
        """The current `trainer.Verifier`, loading it on the first call."""
        verifier = self._verifier
        if verifier is not None:
            return verifier
        with self._lock:
            if self._verifier is None:
                self._verifier = self._load(self.source, token=None)
            return self._verifier

    def switch(self, source: ModelSource, token: str | None = None) -> Any:
        """Load another model and make it current; the old one keeps serving until the new one is ready."""
        verifier = self._load(source, token)
        with self._lock:
            self._verifier, self.source = verifier, source
        return verifier

    @staticmethod
    def _load(source: ModelSource, token: str | None) -> Any:
        from trainer import Verifier

        log.info("loading model: %s", source.describe())
        if source.repo:
            return Verifier.from_hub(source.repo, revision=source.revision, token=token)
        if source.folder:
            return Verifier.from_dir(source.folder)
        return Verifier.default()

    def warm_up(self) -> None:
        """Size TensorFlow's threads, load the model and trace its networks once, so the first request is fast."""
        from trainer.serving import configure_cpu, warm_up

        configure_cpu()
        warm_up(self.get())

    def threshold_hint(self) -> float | None:
        """The threshold without loading the model: the loaded one's, else read from the config file, else None."""
        if self._verifier is not None:
            return float(self._verifier.threshold)
        if self.source.repo:
            return None
        config = Path(self.source.folder) / "facereg.json" if self.source.folder else DEFAULT_HEAD_FILE
        try:
            return float(json.loads(config.read_text())["threshold"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def info(self) -> dict[str, Any]:
        """What the Model tab shows: source, revision, backbone, threshold, metrics."""
        config = self.get().config
        return {
            "source": self.source.describe(),
            "repo": self.source.repo,
            "revision": self.source.revision or ("main" if self.source.repo else None),
            "backbone": config.backbone,
            "threshold": round(float(config.threshold), 4),
            "flip": config.flip,
            "detector": config.detector,
            "dataset": config.dataset,
            "created": config.created,
            "metrics": config.metrics,
        }


def resolve_token(oauth_token: gr.OAuthToken | None) -> str:
    """The signed-in user's token on a Space, else HF_TOKEN or the stored login; gr.Error when there is none."""
    if oauth_token is not None and oauth_token.token and oauth_token.token != MOCK_OAUTH_TOKEN:
        return oauth_token.token
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise fail(NO_TOKEN_MESSAGE, title="Sign-in needed")
    return token


def _scrubbed(text: str, secrets: tuple[str, ...]) -> str:
    """The text without the secrets, HTML-escaped (gr.Error renders HTML)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return html.escape(text, quote=False)


def fail(message: str, title: str = "Error") -> gr.Error:
    """A gr.Error for the user: no traceback printed on the server."""
    return gr.Error(message, title=title, print_exception=False)


@contextlib.contextmanager
def user_errors(action: str, *secrets: str) -> Iterator[None]:
    """Turn FaceReg and Hub errors into a readable gr.Error; log anything unexpected without leaking tokens."""
    from hub_tools.errors import HubError
    from trainer.errors import FaceRegError

    try:
        yield
    except gr.Error:
        raise
    except (FaceRegError, HubError) as exc:
        raise fail(_scrubbed(str(exc), secrets), title=f"{action} failed") from None
    except Exception as exc:  # the app must keep working: report, do not crash the worker
        log.error("%s failed: %s: %s", action, type(exc).__name__, _scrubbed(str(exc), secrets))
        raise fail(_scrubbed(f"{action} failed unexpectedly ({type(exc).__name__}: {exc})", secrets)) from None


def image_path(value: Any, what: str) -> Any:
    """An uploaded/webcam value, or a readable gr.Error when it is missing."""
    if value is None or (isinstance(value, (str, Path)) and not str(value)):
        raise fail(f"Add {what} first (upload a photo or take one with the webcam).", title="Missing image")
    return value

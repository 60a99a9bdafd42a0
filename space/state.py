"""What every action shares: which token a visitor acts with, and readable errors that never leak a secret."""
from __future__ import annotations

import contextlib
import html
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

log = logging.getLogger("facereg.space")

# What Gradio's mocked login (outside a Space) hands to gr.OAuthToken parameters: not a real token.
MOCK_OAUTH_TOKEN = "mock-oauth-token-for-local-dev"
NO_TOKEN_MESSAGE = (
    "No usable Hugging Face token: set HF_TOKEN or run `hf auth login` where the app runs."
)
SIGN_IN_MESSAGE = "Sign in with Hugging Face (the button at the top) to {action}: this app acts on the Hub only as you."


def on_space() -> bool:
    """Whether the app runs as a Hugging Face Space (SYSTEM=spaces), where visitors act only with their own token."""
    return gr.utils.get_space() is not None


def hub_token(oauth_token: gr.OAuthToken | None, *, required: bool, action: str) -> str | bool | None:
    """The token a visitor's Hub action uses.

    On a Space: the visitor's own OAuth token; a visitor who is not signed in gets "sign in" when a token is
    required, else `False` (anonymous, never the Space's own token). Locally: the signed-in token, else HF_TOKEN or
    the stored login (None when there is none and none is required).
    """
    if oauth_token is not None and oauth_token.token and oauth_token.token != MOCK_OAUTH_TOKEN:
        return oauth_token.token
    if on_space():
        if required:
            raise fail(SIGN_IN_MESSAGE.format(action=action), title="Sign-in needed")
        return False
    from huggingface_hub import get_token

    token = get_token()
    if required and not token:
        raise fail(NO_TOKEN_MESSAGE, title="Token needed")
    return token


def secrets_of(*tokens: Any) -> tuple[str, ...]:
    """The real tokens among some values, to scrub from messages."""
    return tuple(t for t in tokens if isinstance(t, str) and t)


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
    """Turn FaceReg, Hub and quota errors into a readable gr.Error; log anything unexpected without leaking tokens."""
    from hub_tools.errors import HubError
    from space.workspace import QuotaError
    from trainer.errors import FaceRegError

    try:
        yield
    except gr.Error:
        raise
    except QuotaError as exc:
        raise fail(html.escape(str(exc), quote=False), title="Limit reached") from None
    except (FaceRegError, HubError) as exc:
        raise fail(_scrubbed(str(exc), secrets), title=f"{action} failed") from None
    except Exception as exc:  # the app must keep working: report, do not crash the worker
        log.error("%s failed: %s: %s", action, type(exc).__name__, _scrubbed(str(exc), secrets))
        raise fail(_scrubbed(f"{action} failed unexpectedly ({type(exc).__name__}: {exc})", secrets)) from None


def image_path(value: Any, what: str) -> Any:
    """An uploaded/webcam value (Gradio's FileData, as a dict where an event skips preprocessing, gives its file's
    path), or a readable gr.Error when it is missing."""
    if isinstance(value, dict):
        value = value.get("path")
    if value is None or (isinstance(value, (str, Path)) and not str(value)):
        raise fail(f"Add {what} first (upload a photo or take one with the webcam).", title="Missing image")
    return value

"""Which Hugging Face token to use: the one given, else `HF_TOKEN`, else the stored login."""
from __future__ import annotations

from huggingface_hub import get_token

from hub_tools.errors import MissingTokenError


def resolve_token(token: str | None = None, *, required: bool, action: str = "this operation") -> str | None:
    """The token given, else `huggingface_hub.get_token()`; raise MissingTokenError if required and there is none."""
    token = token or get_token()
    if required and not token:
        raise MissingTokenError(action)
    return token

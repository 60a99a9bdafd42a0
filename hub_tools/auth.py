"""Which Hugging Face token to use: the one given, else `HF_TOKEN`, else the stored login; `False` for none at all."""
from __future__ import annotations

from huggingface_hub import get_token

from hub_tools.errors import MissingTokenError


def resolve_token(
    token: str | bool | None = None, *, required: bool, action: str = "this operation"
) -> str | bool | None:
    """The token given, else `huggingface_hub.get_token()`; raise MissingTokenError if required and there is none.

    `token=False` means "anonymous": no token is looked up and `False` is returned, which `huggingface_hub` and
    `datasets` also read as "send no token" (a public app acting for a visitor who is not signed in).
    """
    if token is False:
        if required:
            raise MissingTokenError(action)
        return False
    token = token or get_token()
    if required and not token:
        raise MissingTokenError(action)
    return token

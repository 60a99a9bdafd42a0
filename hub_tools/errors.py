"""Named errors a user can act on, and the translation of `huggingface_hub`'s exceptions onto them.

Every message is built here, never from a token: `hub_errors` also masks the token in any text it copies
from the server, so secrets never reach logs, model cards or error messages.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import httpx2
from huggingface_hub import constants
from huggingface_hub.errors import (
    HfHubHTTPError,
    HFValidationError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

TOKEN_HELP = "pass --token (token= in Python), set HF_TOKEN, or run `hf auth login`"


class HubError(Exception):
    """Base of every error `hub_tools` raises on purpose; its message is one line meant for the user."""


class MissingTokenError(HubError):
    """No token was given, in HF_TOKEN, or stored by `hf auth login`, and the operation needs one."""

    def __init__(self, action: str = "this operation") -> None:
        super().__init__(f"{action} needs a Hugging Face token: {TOKEN_HELP}")


class InvalidTokenError(HubError):
    """The Hub refused the token (HTTP 401 or 403)."""


class RepoNotFoundError(HubError):
    """The repository (or the revision asked for) does not exist, or the token may not see it."""

    def __init__(self, message: str, repo_id: str) -> None:
        super().__init__(message)
        self.repo_id = repo_id


class DatasetSchemaError(HubError):
    """A dataset is not a FaceReg dataset; `column` names the offending column."""

    def __init__(self, message: str, column: str) -> None:
        super().__init__(message)
        self.column = column


class HubUnreachableError(HubError):
    """No connection to the Hub endpoint could be made."""

    def __init__(self, endpoint: str, reason: str) -> None:
        super().__init__(f"cannot reach the Hub at {endpoint}: {reason}")
        self.endpoint = endpoint


class ModelFolderError(HubError):
    """A folder (or a downloaded repo) is not a FaceReg model folder."""


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and the ones it was raised from or while handling."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _endpoint_of(exc: BaseException) -> str:
    """The scheme://host:port the failed request went to, else the configured endpoint."""
    try:
        url = urlsplit(str(exc.request.url))  # type: ignore[attr-defined]
        return f"{url.scheme}://{url.netloc}"
    except (AttributeError, RuntimeError):
        return constants.ENDPOINT


def _mask(text: str, token: str | None) -> str:
    """`text` on one line, with every occurrence of the token replaced by ***."""
    text = " ".join(text.split())
    return text.replace(token, "***") if token else text


def repo_not_found(
    repo_id: str, *, token: str | None, repo_type: str = "model", endpoint: str | None = None
) -> RepoNotFoundError:
    """The RepoNotFoundError for a repo the Hub does not show, with what to check."""
    hint = "check the name" + (" and that the token may read it" if token else f", or if it is private, {TOKEN_HELP}")
    where = endpoint or constants.ENDPOINT
    return RepoNotFoundError(f"{repo_type} repo {repo_id!r} not found at {where}: {hint}", repo_id)


def translate(exc: BaseException, *, repo_id: str, token: str | None, repo_type: str = "model") -> HubError | None:
    """The `HubError` that explains `exc` (or an exception it was raised from), or None when none does."""
    chain = list(_chain(exc))
    for cause in chain:
        if isinstance(cause, (httpx2.TransportError, OfflineModeIsEnabled, ConnectionError)):
            return HubUnreachableError(_endpoint_of(cause), _mask(str(cause) or type(cause).__name__, token))
    for cause in chain:
        if isinstance(cause, RepositoryNotFoundError):
            return repo_not_found(repo_id, token=token, repo_type=repo_type, endpoint=_endpoint_of(cause))
        if isinstance(cause, RevisionNotFoundError):
            where = _endpoint_of(cause)
            return RepoNotFoundError(f"{repo_type} repo {repo_id!r} has no such revision at {where}", repo_id)
        if isinstance(cause, HfHubHTTPError):
            return _http_error(cause, repo_id=repo_id, token=token, repo_type=repo_type)
        if isinstance(cause, HFValidationError):
            return HubError(_mask(f"invalid repo id {repo_id!r}: {cause}", token))
    return None


def _http_error(exc: HfHubHTTPError, *, repo_id: str, token: str | None, repo_type: str) -> HubError:
    """The `HubError` for an HTTP error answer of the Hub."""
    status = exc.response.status_code
    if status in (401, 403):
        if not token:
            return MissingTokenError(f"access to {repo_type} repo {repo_id!r}")
        return InvalidTokenError(
            f"the Hub at {_endpoint_of(exc)} refused the token for {repo_type} repo {repo_id!r} (HTTP {status}): "
            "check that it is valid and allowed to write there"
        )
    detail = exc.server_message or exc.response.reason_phrase
    return HubError(_mask(f"the Hub at {_endpoint_of(exc)} answered HTTP {status} for {repo_id!r}: {detail}", token))


@contextmanager
def hub_errors(repo_id: str, *, token: str | None, repo_type: str = "model") -> Iterator[None]:
    """Re-raise Hub client exceptions met in the block as the matching `HubError`."""
    try:
        yield
    except HubError:
        raise
    except Exception as exc:
        error = translate(exc, repo_id=repo_id, token=token, repo_type=repo_type)
        if error is None:
            raise
        raise error from exc

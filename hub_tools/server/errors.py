"""HTTP errors in the Hub's shape: JSON `{"error": ...}` plus the `X-Error-Code` / `X-Error-Message` headers."""
from __future__ import annotations

from fastapi.responses import JSONResponse


class HubError(Exception):
    """An error answer; `code` is the Hub's `X-Error-Code` (RepoNotFound, RevisionNotFound, EntryNotFound)."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        body: dict | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}
        self.body = body or {}

    def response(self) -> JSONResponse:
        """The error as an HTTP response."""
        headers = {"X-Error-Message": _header_safe(self.message), **self.headers}
        if self.code:
            headers["X-Error-Code"] = self.code
        return JSONResponse({"error": self.message, **self.body}, status_code=self.status, headers=headers)


def repo_not_found(repo_id: str) -> HubError:
    """404 for a repo that does not exist or that the caller may not see."""
    return HubError(404, f"Repository not found: {repo_id}", "RepoNotFound")


def revision_not_found(revision: str) -> HubError:
    """404 for an unknown branch, tag or commit."""
    return HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")


def entry_not_found(path: str, commit_oid: str | None = None) -> HubError:
    """404 for a missing file; carries `X-Repo-Commit` so clients can cache the absence."""
    headers = {"X-Repo-Commit": commit_oid} if commit_oid else {}
    return HubError(404, f"Entry not found: {path}", "EntryNotFound", headers)


def bad_request(message: str) -> HubError:
    """400 for a malformed request."""
    return HubError(400, message)


def _header_safe(text: str) -> str:
    """Header values must be latin-1 and single-line."""
    return text.replace("\r", " ").replace("\n", " ").encode("latin-1", "replace").decode("latin-1")[:500]

"""Parse the Hub's URL space from the raw (still percent-encoded) request path into a `Route`."""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

API_REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_PREFIX_TYPES = {"datasets": "dataset", "spaces": "space"}
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_-])?")
# Revisions that the Hub accepts unencoded although they hold slashes.
_SPECIAL_REF = re.compile(r"refs/(pr/\d+|convert/[A-Za-z0-9_-]+)")


class BadPathError(ValueError):
    """A path, repo name or revision that is malformed or tries to leave its repo."""


@dataclass(frozen=True)
class Route:
    """What a request addresses: an action, and the repo, revision and path inside the repo it applies to."""

    action: str
    repo_type: str | None = None
    repo_id: str | None = None
    revision: str | None = None
    path: str = ""
    extra: str = ""  # the LFS object id and size of an upload URL


def check_repo_id(namespace: str, name: str) -> str:
    """`namespace/name` after checking both parts the way the Hub does."""
    for part in (namespace, name):
        if not _NAME.fullmatch(part) or "--" in part or ".." in part or part.endswith(".git"):
            raise BadPathError(f"Invalid repo name {namespace}/{name!s}: use letters, digits, '-', '_' and '.'")
    return f"{namespace}/{name}"


def check_repo_path(path: str, *, allow_root: bool = False) -> str:
    """A file or folder path inside a repo; refuses absolute paths, `.`/`..` segments and other escapes."""
    if path == "" and allow_root:
        return path
    parts = path.split("/")
    if (
        not path
        or path.startswith("/")
        or "\\" in path
        or "\0" in path
        or any(part in ("", ".", "..") for part in parts)
        or ".git" in parts
    ):
        raise BadPathError(f"Invalid path in repo: {path!r}")
    return path


def _take_revision(raw: list[str]) -> tuple[str, list[str]]:
    """Split a revision off the front of raw path segments; `refs/pr/1` may come encoded or not."""
    if not raw or not raw[0]:
        raise BadPathError("Missing revision")
    if raw[0] == "refs" and len(raw) >= 3 and _SPECIAL_REF.fullmatch("/".join(raw[:3])):
        revision, rest = "/".join(raw[:3]), raw[3:]
    else:
        revision, rest = unquote(raw[0]), raw[1:]
    if ".." in revision.split("/") or "\0" in revision:
        raise BadPathError(f"Invalid revision {revision!r}")
    return revision, rest


def _rest_path(raw: list[str]) -> str:
    """The remaining raw segments as one decoded path inside the repo (may be empty)."""
    return unquote("/".join(raw))


def parse(raw_path: str) -> Route | None:
    """The route a raw request path addresses, or None when nothing is served there."""
    segments = raw_path.split("?", 1)[0].split("/")[1:]
    if not segments:
        return None
    if segments[0] == "api":
        return _parse_api(segments[1:])
    return _parse_repo_url(segments)


def _parse_api(seg: list[str]) -> Route | None:
    if seg == ["whoami-v2"]:
        return Route("whoami")
    if seg == ["validate-yaml"]:
        return Route("validate_yaml")
    if seg in (["repos", "create"], ["repos", "delete"]):
        return Route(f"repo_{seg[1]}")
    if len(seg) < 3 or seg[0] not in API_REPO_TYPES:
        return None
    repo_type = API_REPO_TYPES[seg[0]]
    repo_id = check_repo_id(unquote(seg[1]), unquote(seg[2]))
    rest = seg[3:]
    if not rest:
        return Route("repo_info", repo_type, repo_id)
    head, tail = rest[0], rest[1:]
    if head in ("refs", "settings") and not tail:
        return Route(head, repo_type, repo_id)
    if head in ("revision", "tree", "paths-info", "preupload", "commit", "commits", "branch", "tag"):
        revision, tail = _take_revision(tail)
        if head == "tree":
            return Route("tree", repo_type, repo_id, revision, check_repo_path(_rest_path(tail), allow_root=True))
        if tail:
            return None
        action = "repo_info" if head == "revision" else head.replace("-", "_")
        return Route(action, repo_type, repo_id, revision)
    return None


def _parse_repo_url(seg: list[str]) -> Route | None:
    repo_type = "model"
    if seg[0] in _PREFIX_TYPES and len(seg) >= 4:
        repo_type, seg = _PREFIX_TYPES[seg[0]], seg[1:]
    if len(seg) < 3:
        return None
    namespace, name, rest = unquote(seg[0]), unquote(seg[1]), seg[2:]
    if rest[0] == "resolve":
        revision, tail = _take_revision(rest[1:])
        return Route("resolve", repo_type, check_repo_id(namespace, name), revision, check_repo_path(_rest_path(tail)))
    if name.endswith(".git") and rest[:3] == ["info", "lfs", "objects"]:
        repo_id = check_repo_id(namespace, name[: -len(".git")])
        lfs = rest[3:]
        if lfs in (["batch"], ["verify"]):
            return Route(f"lfs_{lfs[0]}", repo_type, repo_id)
        if len(lfs) == 3 and lfs[0] == "upload":
            return Route("lfs_upload", repo_type, repo_id, extra=f"{lfs[1]}/{lfs[2]}")
    return None

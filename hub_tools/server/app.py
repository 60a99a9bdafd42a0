"""The FastAPI application: one catch-all route, parsed on the raw path, dispatched to the Hub's endpoints."""
from __future__ import annotations

import base64
import binascii
import html
import json
import re
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from . import listing
from .access import LOCAL_USER, Access, Caller
from .blobs import BlobMismatchError, BlobStore
from .errors import HubError, bad_request, entry_not_found, repo_not_found, revision_not_found
from .repos import (
    BRANCH_PREFIX,
    PR_PREFIX,
    TAG_PREFIX,
    EntryMissingError,
    Repo,
    RepoExistsError,
    RepoStore,
    RevisionMissingError,
    StaleParentError,
)
from .routes import URL_PREFIXES, BadPathError, Route, check_repo_id, check_repo_path, parse
from .uploads import default_gitattributes, lfs_patterns, parse_commit, regular_entry, remote_oid, upload_mode

METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE"]
TREE_PAGE_SIZE = 1000
COMMITS_PAGE_SIZE = 100
READ_CHUNK = 1024 * 1024
SPOOL_MAX_MEMORY = 8 * 1024 * 1024
SPACE_SDKS = ("gradio", "streamlit", "docker", "static")
SPACE_CARD = "README.md"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


@dataclass(frozen=True)
class Call:
    """One request, parsed: the route, who is calling, and the URL base the client used."""

    request: Request
    route: Route
    caller: Caller
    base_url: str

    @property
    def query(self) -> dict[str, str]:
        """Query parameters (last value wins)."""
        return dict(self.request.query_params)

    def flag(self, name: str) -> bool:
        """A boolean query parameter (`1`, `true`)."""
        return self.query.get(name, "").lower() in ("1", "true")

    def repo_url(self, repo_type: str, repo_id: str) -> str:
        """The web URL of a repo (what `create_repo` returns)."""
        return f"{self.base_url}/{URL_PREFIXES[repo_type]}{repo_id}"


Handler = Callable[[Call], Awaitable[Response]]


class HubApp:
    """State (blob store, metadata, access) and the handlers of every supported endpoint."""

    def __init__(self, data_dir: Path, tokens: list[str] | None) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.blobs = BlobStore(data_dir / "blobs")
        self.store = RepoStore(data_dir / "hub.sqlite")
        self.access = Access.load(data_dir, tokens)
        self.handlers: dict[tuple[str, str], Handler] = {
            ("whoami", "GET"): self.whoami,
            ("validate_yaml", "POST"): self.validate_yaml,
            ("repo_create", "POST"): self.create_repo,
            ("repo_delete", "DELETE"): self.delete_repo,
            ("repo_info", "GET"): self.repo_info,
            ("settings", "PUT"): self.update_settings,
            ("tree", "GET"): self.tree,
            ("paths_info", "POST"): self.paths_info,
            ("refs", "GET"): self.refs,
            ("commits", "GET"): self.commits,
            ("branch", "POST"): self.create_branch,
            ("branch", "DELETE"): self.delete_branch,
            ("tag", "POST"): self.create_tag,
            ("tag", "DELETE"): self.delete_tag,
            ("preupload", "POST"): self.preupload,
            ("commit", "POST"): self.commit,
            ("lfs_batch", "POST"): self.lfs_batch,
            ("lfs_upload", "PUT"): self.lfs_upload,
            ("lfs_verify", "POST"): self.lfs_verify,
            ("resolve", "GET"): self.resolve,
            ("resolve", "HEAD"): self.resolve,
        }

    async def handle(self, request: Request) -> Response:
        """Route one request; every failure becomes a Hub-shaped error response."""
        raw_path = request.scope.get("raw_path", b"").decode("utf-8", "replace") or request.url.path
        try:
            route = parse(raw_path)
            if route is None:
                raise HubError(404, f"Not found: {raw_path}")
            handler = self.handlers.get((route.action, request.method))
            if handler is None:
                raise HubError(405, f"Method {request.method} not allowed on {raw_path}")
            caller = self.access.caller(request.headers.get("authorization"))
            return await handler(Call(request, route, caller, str(request.base_url).rstrip("/")))
        except BadPathError as err:
            return bad_request(str(err)).response()
        except HubError as err:
            return err.response()

    # -- access ---------------------------------------------------------------------------------------------------
    @staticmethod
    def require_writer(call: Call) -> None:
        """401 without a token, 403 with a token the server does not know."""
        if call.caller is Caller.ANONYMOUS:
            raise HubError(401, "Authentication required: send 'Authorization: Bearer <token>'")
        if call.caller is Caller.INVALID:
            raise HubError(403, "Invalid token: it does not grant write access to this server")

    def visible_repo(self, call: Call, *, write: bool = False) -> Repo:
        """The route's repo; private repos exist only for callers with a valid token."""
        if write:
            self.require_writer(call)
        route = call.route
        repo = self.store.get_repo(route.repo_type, route.repo_id)
        if repo is None or (repo.private and call.caller is not Caller.USER):
            raise repo_not_found(route.repo_id)
        return repo

    def head(self, repo: Repo, revision: str | None) -> str:
        """Commit oid of a revision (default `main`)."""
        revision = revision or "main"
        oid = self.store.resolve(repo, revision)
        if oid is None:
            raise revision_not_found(revision)
        return oid

    def parse_cursor(self, repo: Repo, cursor: str) -> tuple[str, int]:
        """A pagination cursor `<commit oid>:<offset>`: later pages keep listing the commit of the first one."""
        oid, _, offset = cursor.partition(":")
        if not re.fullmatch(r"[0-9a-f]{40}", oid) or not offset.isdigit() or self.store.resolve(repo, oid) != oid:
            raise bad_request(f"Invalid cursor {cursor!r}")
        return oid, int(offset)

    # -- account --------------------------------------------------------------------------------------------------
    async def whoami(self, call: Call) -> Response:
        """GET /api/whoami-v2: the local user, for any valid token."""
        if call.caller is Caller.INVALID:
            raise HubError(401, "Invalid credentials in Authorization header")
        if call.caller is Caller.ANONYMOUS:
            raise HubError(401, "Invalid username or password.")
        return JSONResponse(
            {
                "type": "user",
                "id": LOCAL_USER,
                "name": LOCAL_USER,
                "fullname": "Local Hub user",
                "email": None,
                "emailVerified": False,
                "isPro": False,
                "canPay": False,
                "avatarUrl": "",
                "orgs": [],
                "auth": {"type": "access_token", "accessToken": {"displayName": "local", "role": "write"}},
            }
        )

    async def validate_yaml(self, call: Call) -> Response:
        """POST /api/validate-yaml: README metadata is accepted as is."""
        return JSONResponse({"errors": [], "warnings": []})

    # -- repos ----------------------------------------------------------------------------------------------------
    async def create_repo(self, call: Call) -> Response:
        """POST /api/repos/create: 409 with the repo `url` when it exists."""
        self.require_writer(call)
        body = await json_body(call.request)
        repo_type = body.get("type") or "model"
        if repo_type not in URL_PREFIXES:
            raise bad_request(f"Unknown repo type {repo_type!r}")
        repo_id = check_repo_id(str(body.get("organization") or LOCAL_USER), str(body.get("name") or ""))
        private = body.get("visibility") == "private" if "visibility" in body else bool(body.get("private"))
        url = call.repo_url(repo_type, repo_id)
        files = {".gitattributes": default_gitattributes()}
        if repo_type == "space":
            sdk = body.get("sdk")
            if sdk not in SPACE_SDKS:
                raise bad_request(f"A Space needs an 'sdk', one of {', '.join(SPACE_SDKS)}; got {sdk!r}")
            files[SPACE_CARD] = space_readme(repo_id, sdk)
        initial = []
        for path, content in files.items():
            sha256 = await run_in_threadpool(self.blobs.put_bytes, content)
            initial.append(regular_entry(path, sha256, content))
        try:
            await run_in_threadpool(self.store.create_repo, repo_type, repo_id, private, LOCAL_USER, initial)
        except RepoExistsError:
            raise HubError(409, f"You already created this {repo_type} repo", body={"url": url}) from None
        return JSONResponse({"url": url, "name": repo_id, "id": repo_id})

    async def delete_repo(self, call: Call) -> Response:
        """DELETE /api/repos/delete."""
        self.require_writer(call)
        body = await json_body(call.request)
        repo_type = body.get("type") or "model"
        repo_id = check_repo_id(str(body.get("organization") or LOCAL_USER), str(body.get("name") or ""))
        repo = self.store.get_repo(repo_type, repo_id)
        if repo is None:
            raise repo_not_found(repo_id)
        await run_in_threadpool(self.store.delete_repo, repo)
        return JSONResponse({})

    async def repo_info(self, call: Call) -> Response:
        """GET /api/{type}s/{repo_id}[/revision/{rev}]: sha, dates, visibility and siblings (`?blobs=1` for sizes)."""
        repo = self.visible_repo(call)
        oid = self.head(repo, call.route.revision)
        commit = self.store.commit(oid)
        entries = self.store.entries(oid)
        with_blobs = call.flag("blobs")
        info = {
            "_id": f"{repo.id:024x}",
            "id": repo.name,
            "author": repo.name.split("/")[0],
            "sha": oid,
            "lastModified": commit.created_at,
            "createdAt": repo.created_at,
            "private": repo.private,
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": [listing.sibling_json(e, with_blobs) for e in entries],
            "usedStorage": sum(e.size for e in entries),
        }
        if repo.type == "model":
            info["modelId"] = repo.name
        if repo.type == "space":  # as on the Hub, a Space's settings are its README's metadata
            readme = next((e for e in entries if e.path == SPACE_CARD), None)
            card = listing.front_matter(self.blobs.path(readme.sha256).read_bytes() if readme else None)
            info.update(sdk=card.get("sdk"), cardData=card)
        return JSONResponse(info)

    async def update_settings(self, call: Call) -> Response:
        """PUT /api/{type}s/{repo_id}/settings: visibility (`private` or `visibility`)."""
        repo = self.visible_repo(call, write=True)
        body = await json_body(call.request)
        if "visibility" in body or "private" in body:
            private = body["visibility"] == "private" if "visibility" in body else bool(body["private"])
            self.store.set_private(repo, private)
        return JSONResponse({})

    # -- reading trees ----------------------------------------------------------------------------------------------
    async def tree(self, call: Call) -> Response:
        """GET /api/{type}s/{repo_id}/tree/{rev}[/{path}]: paginated listing with `Link: rel="next"`."""
        repo = self.visible_repo(call)
        commit_oid, offset = self.head(repo, call.route.revision), 0
        if cursor := call.query.get("cursor"):
            commit_oid, offset = self.parse_cursor(repo, cursor)
        items = listing.tree(self.store.entries(commit_oid), call.route.path, call.flag("recursive"))
        if items is None:
            raise entry_not_found(call.route.path, commit_oid)
        limit = min(int_param(call.query.get("limit"), TREE_PAGE_SIZE), TREE_PAGE_SIZE)
        page = items[offset : offset + limit]
        if call.flag("expand"):
            listing.add_last_commits(self.store, commit_oid, page)
        headers = {}
        if offset + limit < len(items):
            headers["Link"] = next_link(call, f"{commit_oid}:{offset + limit}")
        return JSONResponse(page, headers=headers)

    async def paths_info(self, call: Call) -> Response:
        """POST /api/{type}s/{repo_id}/paths-info/{rev}: form (or JSON) `paths` and `expand`."""
        repo = self.visible_repo(call)
        oid = self.head(repo, call.route.revision)
        if call.request.headers.get("content-type", "").startswith("application/json"):
            data = await json_body(call.request, allow_empty=True)
            paths, expand = list(data.get("paths", [])), bool(data.get("expand"))
        else:
            form = parse_qs((await call.request.body()).decode("utf-8", "replace"))
            paths, expand = form.get("paths", []), form.get("expand", ["false"])[-1].lower() == "true"
        for path in paths:
            check_repo_path(str(path).strip("/"), allow_root=True)
        items = listing.paths_info(self.store.entries(oid), [str(p) for p in paths])
        if expand:
            listing.add_last_commits(self.store, oid, items)
        return JSONResponse(items)

    async def refs(self, call: Call) -> Response:
        """GET /api/{type}s/{repo_id}/refs[?include_prs=1]."""
        repo = self.visible_repo(call)
        groups: dict[str, list[dict]] = {"branches": [], "converts": [], "tags": [], "pullRequests": []}
        kinds = {BRANCH_PREFIX: "branches", TAG_PREFIX: "tags", PR_PREFIX: "pullRequests", "refs/convert/": "converts"}
        for ref, oid in self.store.refs(repo).items():
            for prefix, group in kinds.items():
                if ref.startswith(prefix):
                    groups[group].append({"name": ref[len(prefix) :], "ref": ref, "targetCommit": oid})
        if not call.flag("include_prs"):
            del groups["pullRequests"]
        return JSONResponse(groups)

    async def commits(self, call: Call) -> Response:
        """GET /api/{type}s/{repo_id}/commits/{rev}: history, newest first, paginated."""
        repo = self.visible_repo(call)
        head, offset = self.head(repo, call.route.revision), 0
        if cursor := call.query.get("cursor"):
            head, offset = self.parse_cursor(repo, cursor)
        history = list(self.store.history(head))
        formatted = "formatted" in call.request.query_params.getlist("expand[]")
        page = []
        for commit in history[offset : offset + COMMITS_PAGE_SIZE]:
            item = {
                "id": commit.oid,
                "title": commit.title,
                "message": commit.message,
                "date": commit.created_at,
                "authors": [{"user": commit.author, "avatar": None}],
            }
            if formatted:
                item["formatted"] = {"title": html.escape(commit.title), "message": html.escape(commit.message)}
            page.append(item)
        headers = {}
        if offset + COMMITS_PAGE_SIZE < len(history):
            headers["Link"] = next_link(call, f"{head}:{offset + COMMITS_PAGE_SIZE}")
        return JSONResponse(page, headers=headers)

    # -- branches and tags -----------------------------------------------------------------------------------------
    async def create_branch(self, call: Call) -> Response:
        """POST /api/{type}s/{repo_id}/branch/{branch} with optional `startingPoint`; 409 when it exists."""
        repo = self.visible_repo(call, write=True)
        branch = check_ref_name(call.route.revision)
        body = await json_body(call.request, allow_empty=True)
        oid = self.head(repo, body.get("startingPoint"))
        try:
            self.store.create_ref(repo, BRANCH_PREFIX + branch, oid)
        except RepoExistsError:
            raise HubError(409, f"Branch {branch} already exists") from None
        return JSONResponse({})

    async def delete_branch(self, call: Call) -> Response:
        """DELETE /api/{type}s/{repo_id}/branch/{branch} (not `main`)."""
        repo = self.visible_repo(call, write=True)
        branch = check_ref_name(call.route.revision)
        if branch == "main":
            raise HubError(403, "Cannot delete the default branch main")
        try:
            self.store.delete_ref(repo, BRANCH_PREFIX + branch)
        except RevisionMissingError:
            raise revision_not_found(branch) from None
        return JSONResponse({})

    async def create_tag(self, call: Call) -> Response:
        """POST /api/{type}s/{repo_id}/tag/{rev} with `tag`; 409 when it exists."""
        repo = self.visible_repo(call, write=True)
        oid = self.head(repo, call.route.revision)
        body = await json_body(call.request)
        tag = check_ref_name(str(body.get("tag") or ""))
        try:
            self.store.create_ref(repo, TAG_PREFIX + tag, oid)
        except RepoExistsError:
            raise HubError(409, f"Tag {tag} already exists") from None
        return JSONResponse({})

    async def delete_tag(self, call: Call) -> Response:
        """DELETE /api/{type}s/{repo_id}/tag/{tag}."""
        repo = self.visible_repo(call, write=True)
        tag = check_ref_name(call.route.revision)
        try:
            self.store.delete_ref(repo, TAG_PREFIX + tag)
        except RevisionMissingError:
            raise revision_not_found(tag) from None
        return JSONResponse({})

    # -- writing ----------------------------------------------------------------------------------------------------
    async def preupload(self, call: Call) -> Response:
        """POST /api/{type}s/{repo_id}/preupload/{rev}: `regular` or `lfs` per file, and the oid already there."""
        repo = self.visible_repo(call, write=True)
        oid = self.head(repo, call.route.revision)
        body = await json_body(call.request)
        files = body.get("files")
        if not isinstance(files, list):
            raise bad_request("preupload expects a list of files")
        tree = {e.path: e for e in self.store.entries(oid)}
        gitattributes = tree.get(".gitattributes")
        patterns = lfs_patterns(self.blobs.path(gitattributes.sha256).read_bytes() if gitattributes else None)
        out = []
        for item in files:
            try:
                path = check_repo_path(str(item["path"]))
                size = int(item["size"])
                sample = base64.b64decode(item.get("sample", ""))
            except (KeyError, TypeError, ValueError, binascii.Error) as err:
                raise bad_request(f"Malformed preupload file entry: {err}") from None
            answer = {"path": path, "uploadMode": upload_mode(path, size, sample, patterns), "shouldIgnore": False}
            if (existing := remote_oid(tree.get(path))) is not None:
                answer["oid"] = existing
            out.append(answer)
        return JSONResponse({"files": out, "commitOid": oid})

    async def commit(self, call: Call) -> Response:
        """POST /api/{type}s/{repo_id}/commit/{branch}: NDJSON header + operations; 412 on a stale parentCommit."""
        repo = self.visible_repo(call, write=True)
        branch = call.route.revision
        if branch.startswith(TAG_PREFIX) or (branch.startswith("refs/") and not branch.startswith(PR_PREFIX)):
            raise bad_request(f"Cannot commit to {branch}: commit to a branch")
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX_MEMORY, dir=self.blobs.tmp_dir)
        try:
            async for chunk in call.request.stream():
                spool.write(chunk)
            spool.seek(0)
            payload = await run_in_threadpool(parse_commit, spool, self.blobs)
        finally:
            spool.close()
        try:
            commit, pr_ref = await run_in_threadpool(
                lambda: self.store.apply_commit(
                    repo,
                    branch,
                    payload.change,
                    title=payload.title,
                    message=payload.description,
                    author=LOCAL_USER,
                    parent_commit=payload.parent_commit,
                    create_pr=call.flag("create_pr"),
                )
            )
        except StaleParentError as err:
            raise HubError(412, str(err)) from None
        except RevisionMissingError:
            raise revision_not_found(branch) from None
        except EntryMissingError as err:
            raise HubError(404, str(err), "EntryNotFound") from None
        repo_url = call.repo_url(repo.type, repo.name)
        answer = {"success": True, "commitOid": commit.oid, "commitUrl": f"{repo_url}/commit/{commit.oid}"}
        if pr_ref is not None:
            answer["pullRequestUrl"] = f"{repo_url}/discussions/{pr_ref.rsplit('/', 1)[-1]}"
        return JSONResponse(answer)

    async def lfs_batch(self, call: Call) -> Response:
        """POST /{prefix}{repo_id}.git/info/lfs/objects/batch: signed upload URLs for objects not stored yet."""
        repo = self.visible_repo(call, write=True)
        body = await json_body(call.request)
        if body.get("operation") != "upload":
            raise bad_request("Only the 'upload' operation is served; download files through /resolve/")
        lfs_base = f"{call.repo_url(repo.type, repo.name)}.git/info/lfs/objects"
        objects = []
        for obj in body.get("objects") or []:
            oid, size = str(obj.get("oid", "")).lower(), obj.get("size")
            if not _SHA256.fullmatch(oid) or not isinstance(size, int) or size < 0:
                error = {"code": 422, "message": "oid must be a sha256 and size an integer"}
                objects.append({"oid": oid, "size": size if isinstance(size, int) else 0, "error": error})
                continue
            answer = {"oid": oid, "size": size, "authenticated": True}
            if not self.blobs.has(oid, size):
                signature = self.access.sign(repo.type, repo.name, oid, str(size))
                answer["actions"] = {
                    "upload": {"href": f"{lfs_base}/upload/{oid}/{size}?sig={signature}", "header": {}},
                    "verify": {"href": f"{lfs_base}/verify", "header": {}},
                }
            objects.append(answer)
        return JSONResponse(
            {"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
            media_type="application/vnd.git-lfs+json",
        )

    async def lfs_upload(self, call: Call) -> Response:
        """PUT to a signed upload URL: streams the body to a temp file, checks sha256 and size, publishes it."""
        route = call.route
        oid, size_text = route.extra.split("/", 1)
        if not self.access.check_signature(call.query.get("sig", ""), route.repo_type, route.repo_id, oid, size_text):
            raise HubError(403, "Invalid or missing upload signature")
        if self.store.get_repo(route.repo_type, route.repo_id) is None:
            raise repo_not_found(route.repo_id)
        size = int(size_text)
        writer = self.blobs.writer()
        try:
            async for chunk in call.request.stream():
                writer.write(chunk)
                if writer.size > size:
                    raise bad_request(f"Upload is larger than the announced {size} bytes")
            await run_in_threadpool(writer.commit, oid, size)
        except BlobMismatchError as err:
            raise bad_request(f"Upload rejected: {err}") from None
        except ClientDisconnect:
            raise bad_request("Client disconnected during the upload") from None
        finally:
            writer.abort()  # drops the partial file; a no-op once committed
        return Response(status_code=200)

    async def lfs_verify(self, call: Call) -> Response:
        """POST .../info/lfs/objects/verify: 200 when the object is stored with that size."""
        self.visible_repo(call, write=True)
        body = await json_body(call.request)
        oid, size = str(body.get("oid", "")).lower(), body.get("size")
        if not _SHA256.fullmatch(oid) or not self.blobs.has(oid, size if isinstance(size, int) else None):
            raise HubError(404, f"LFS object {oid} not found")
        return JSONResponse({"success": True})

    # -- downloads ----------------------------------------------------------------------------------------------------
    async def resolve(self, call: Call) -> Response:
        """GET/HEAD /{prefix}{repo_id}/resolve/{rev}/{path}: the file, with ETag, X-Repo-Commit and Range support."""
        repo = self.visible_repo(call)
        oid = self.head(repo, call.route.revision)
        entry = self.store.entry(oid, call.route.path)
        if entry is None:
            raise entry_not_found(call.route.path, oid)
        headers = {
            "X-Repo-Commit": oid,
            "ETag": f'"{entry.sha256 if entry.lfs else entry.git_oid}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f"inline; filename*=UTF-8''{quote(call.route.path.rsplit('/', 1)[-1])}",
        }
        if entry.lfs:
            headers["X-Linked-Etag"] = f'"{entry.sha256}"'
            headers["X-Linked-Size"] = str(entry.size)
        start, length, status = 0, entry.size, 200
        if (range_header := call.request.headers.get("range")) is not None:
            byte_range = parse_range(range_header, entry.size)
            if byte_range is None:
                unsatisfiable = {"Content-Range": f"bytes */{entry.size}", "X-Repo-Commit": oid}
                raise HubError(416, f"Range {range_header} not satisfiable", headers=unsatisfiable)
            if byte_range != (0, entry.size):
                start, length, status = byte_range[0], byte_range[1] - byte_range[0], 206
                headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{entry.size}"
        headers["Content-Length"] = str(length)
        if call.request.method == "HEAD":
            return Response(status_code=status, headers=headers)
        return StreamingResponse(read_file(self.blobs.path(entry.sha256), start, length), status, headers)


async def json_body(request: Request, *, allow_empty: bool = False) -> dict:
    """The request's JSON object body; 400 when it is not one."""
    raw = await request.body()
    if not raw.strip() and allow_empty:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise bad_request("Request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise bad_request("Request body must be a JSON object")
    return body


def space_readme(repo_id: str, sdk: str) -> bytes:
    """The README.md of a new Space: the metadata block the Hub reads its SDK from."""
    return f"---\ntitle: {repo_id.split('/')[-1]}\nsdk: {sdk}\npinned: false\n---\n".encode()


def int_param(value: str | None, default: int) -> int:
    """A positive integer query parameter."""
    try:
        return max(1, int(value)) if value else default
    except ValueError:
        raise bad_request(f"Not an integer: {value!r}") from None


def next_link(call: Call, cursor: str) -> str:
    """`Link` header pointing at the next page: same URL, query updated with the cursor."""
    raw_path = call.request.scope.get("raw_path", b"").decode("utf-8", "replace") or call.request.url.path
    query = {**call.query, "cursor": cursor}
    return f'<{call.base_url}{raw_path}?{urlencode(query)}>; rel="next"'


def check_ref_name(name: str | None) -> str:
    """A branch or tag name."""
    if not name or name.startswith(("refs/", "/")) or name.endswith("/") or ".." in name or " " in name:
        raise bad_request(f"Invalid branch or tag name {name!r}")
    return name


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """`bytes=a-b`, `bytes=a-` or `bytes=-n` as a half-open (start, end); None when unsatisfiable.

    Multi-range and malformed headers are ignored (whole file), as HTTP allows.
    """
    match = _RANGE.fullmatch(header.strip())
    if match is None or (not match[1] and not match[2]):
        return (0, size)
    if not match[1]:
        suffix = int(match[2])
        return (max(0, size - suffix), size) if suffix > 0 and size > 0 else None
    start = int(match[1])
    end = min(int(match[2]) + 1, size) if match[2] else size
    if start >= size or end <= start:
        return None
    return (start, end)


def read_file(path: Path, start: int, length: int) -> Iterator[bytes]:
    """Yield `length` bytes of a file from `start`, one chunk at a time."""
    with path.open("rb") as file:
        file.seek(start)
        while length > 0:
            chunk = file.read(min(READ_CHUNK, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk


def create_app(data_dir: str | Path, tokens: list[str] | None = None) -> FastAPI:
    """The server as an ASGI app storing everything under `data_dir`."""
    hub = HubApp(Path(data_dir), tokens)
    app = FastAPI(title="FaceReg local Hub", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/health", include_in_schema=False)
    async def health() -> dict:
        return {"status": "ok"}

    @app.api_route("/{full_path:path}", methods=METHODS, include_in_schema=False)
    async def dispatch(request: Request, full_path: str) -> Response:
        return await hub.handle(request)

    return app

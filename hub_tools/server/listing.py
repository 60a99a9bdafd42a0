"""File and folder listings in the Hub's JSON shape (tree, paths-info, siblings), with last-commit lookup."""
from __future__ import annotations

from collections.abc import Iterable

import yaml

from .blobs import lfs_pointer
from .repos import Commit, Entry, RepoStore, tree_oid


def file_json(entry: Entry) -> dict:
    """A file as the tree and paths-info endpoints describe it (`oid` is the git object id)."""
    item: dict = {"type": "file", "oid": entry.git_oid, "size": entry.size, "path": entry.path}
    if entry.lfs:
        pointer_size = len(lfs_pointer(entry.sha256, entry.size))
        item["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": pointer_size}
    return item


def folder_json(path: str, contents: Iterable[Entry]) -> dict:
    """A folder, with a tree id derived from everything below it."""
    return {"type": "directory", "oid": tree_oid(contents), "size": 0, "path": path}


def sibling_json(entry: Entry, with_metadata: bool) -> dict:
    """A file as repo info lists it in `siblings`."""
    item: dict = {"rfilename": entry.path}
    if with_metadata:
        item.update(size=entry.size, blobId=entry.git_oid)
        if entry.lfs:
            item["lfs"] = {
                "sha256": entry.sha256,
                "size": entry.size,
                "pointerSize": len(lfs_pointer(entry.sha256, entry.size)),
            }
    return item


def tree(entries: list[Entry], path: str, recursive: bool) -> list[dict] | None:
    """The listing of `path` ("" = root): direct children, or every descendant; None if `path` does not exist."""
    for entry in entries:
        if entry.path == path:
            return [file_json(entry)]
    prefix = f"{path}/" if path else ""
    folders: dict[str, list[Entry]] = {}
    files: list[Entry] = []
    for entry in entries:
        if not entry.path.startswith(prefix):
            continue
        parts = entry.path[len(prefix) :].split("/")
        depth = len(parts) - 1 if recursive else min(len(parts) - 1, 1)
        for i in range(1, depth + 1):
            folders.setdefault(prefix + "/".join(parts[:i]), []).append(entry)
        if recursive or len(parts) == 1:
            files.append(entry)
    if path and not files and not folders:
        return None
    items = [folder_json(p, contents) for p, contents in folders.items()] + [file_json(e) for e in files]
    if recursive:
        items.sort(key=lambda item: item["path"])
    else:
        items.sort(key=lambda item: (item["type"] != "directory", item["path"]))
    return items


def paths_info(entries: list[Entry], paths: list[str]) -> list[dict]:
    """Files and folders among `paths`, in the order asked; paths that do not exist are left out."""
    by_path = {e.path: e for e in entries}
    out = []
    for path in dict.fromkeys(p.strip("/") for p in paths):
        if path in by_path:
            out.append(file_json(by_path[path]))
            continue
        contents = [e for e in entries if e.path.startswith(path + "/")]
        if path and contents:
            out.append(folder_json(path, contents))
    return out


def add_last_commits(store: RepoStore, head: str, items: list[dict]) -> None:
    """Set `lastCommit` on each item: the newest commit that changed that file or folder."""

    def signatures(entries: list[Entry]) -> dict[str, str]:
        by_path = {e.path: e for e in entries}
        out = {}
        for item in items:
            path = item["path"]
            if item["type"] == "file":
                if path in by_path:
                    out[path] = by_path[path].git_oid
            else:
                contents = [e for e in entries if e.path.startswith(path + "/")]
                if contents:
                    out[path] = tree_oid(contents)
        return out

    wanted = signatures(store.entries(head))
    found: dict[str, Commit] = {}
    for commit in store.history(head):
        if len(found) == len(wanted):
            break
        parent = signatures(store.entries(commit.parent)) if commit.parent else {}
        for path, signature in wanted.items():
            if path not in found and parent.get(path) != signature:
                found[path] = commit
    for item in items:
        commit = found.get(item["path"])
        if commit is not None:
            item["lastCommit"] = {"id": commit.oid, "title": commit.title, "date": commit.created_at}


def front_matter(readme: bytes | None) -> dict:
    """The YAML metadata block at the top of a README (a repo card's `cardData`); {} when absent or malformed."""
    lines = (readme or b"").decode("utf-8", "replace").splitlines()
    if not lines or lines[0].rstrip() != "---":
        return {}
    end = next((i for i, line in enumerate(lines[1:], 1) if line.rstrip() == "---"), None)
    if end is None:
        return {}
    try:
        data = yaml.safe_load("\n".join(lines[1:end]))
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}

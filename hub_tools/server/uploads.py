"""The write path: upload modes (preupload), Git LFS batch answers, and the NDJSON commit payload."""
from __future__ import annotations

import base64
import binascii
import codecs
import fnmatch
import json
from collections.abc import Iterable
from dataclasses import dataclass

from .blobs import BlobStore, git_blob_oid, lfs_pointer
from .errors import bad_request
from .repos import Change, Entry
from .routes import BadPathError, check_repo_path

REGULAR_MAX_SIZE = 10 * 1024 * 1024  # the Hub takes larger files through LFS only
# Written as `.gitattributes` by the initial commit of every repo: these files always go through LFS.
DEFAULT_LFS_PATTERNS = (
    "*.7z *.arrow *.bin *.bz2 *.ckpt *.gz *.h5 *.joblib *.keras *.lz4 *.mlmodel *.model *.msgpack *.npy *.npz"
    " *.onnx *.ot *.parquet *.pb *.pickle *.pkl *.pt *.pth *.rar *.safetensors *.tar *.tflite *.tgz *.wasm *.xz"
    " *.zip *.zst *tfevents* saved_model/**/* *.png *.jpg *.jpeg *.webp *.gif *.bmp *.tiff *.mp3 *.wav *.mp4"
).split()


def default_gitattributes() -> bytes:
    """The `.gitattributes` of a new repo."""
    return "".join(f"{pattern} filter=lfs diff=lfs merge=lfs -text\n" for pattern in DEFAULT_LFS_PATTERNS).encode()


def lfs_patterns(gitattributes: bytes | None) -> list[str]:
    """Patterns marked `filter=lfs` in a `.gitattributes` file."""
    if not gitattributes:
        return []
    patterns = []
    for line in gitattributes.decode("utf-8", "replace").splitlines():
        fields = line.split()
        if len(fields) >= 2 and not fields[0].startswith("#") and "filter=lfs" in fields[1:]:
            patterns.append(fields[0])
    return patterns


def _matches(path: str, pattern: str) -> bool:
    """Git-attributes matching, simplified: patterns without a slash match the file name, others the full path."""
    if "/" not in pattern.rstrip("/"):
        return fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], pattern)
    return fnmatch.fnmatchcase(path, pattern.replace("**/", "*"))


def _looks_binary(sample: bytes) -> bool:
    """NUL bytes or invalid UTF-8 in the first bytes (a multi-byte character cut at the end is fine)."""
    if b"\0" in sample:
        return True
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        return True
    return False


def upload_mode(path: str, size: int, sample: bytes, patterns: list[str]) -> str:
    """`lfs` for large, binary or LFS-tracked files, `regular` for small text files."""
    if size > REGULAR_MAX_SIZE or _looks_binary(sample) or any(_matches(path, p) for p in patterns):
        return "lfs"
    return "regular"


def remote_oid(entry: Entry | None) -> str | None:
    """The oid a client compares with its local one to skip unchanged files: sha256 for LFS, git sha1 otherwise."""
    if entry is None:
        return None
    return entry.sha256 if entry.lfs else entry.git_oid


def regular_entry(path: str, sha256: str, content: bytes) -> Entry:
    """Tree entry of a regular (non-LFS) file."""
    return Entry(path, sha256, len(content), False, git_blob_oid(content))


def lfs_entry(path: str, sha256: str, size: int) -> Entry:
    """Tree entry of an LFS file (its git oid is the one of its pointer file)."""
    return Entry(path, sha256, size, True, git_blob_oid(lfs_pointer(sha256, size)))


@dataclass
class CommitRequest:
    """A parsed commit payload."""

    title: str
    description: str
    parent_commit: str | None
    change: Change


def parse_commit(lines: Iterable[bytes], blobs: BlobStore) -> CommitRequest:
    """Read NDJSON commit lines; regular files go to the blob store, LFS files must already be there."""
    title, description, parent = "", "", None
    change = Change()
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
            key, value = item["key"], item["value"]
        except (ValueError, KeyError, TypeError) as err:
            raise bad_request(f"Commit payload line {number} is not a valid operation: {err}") from None
        if key == "header":
            title = str(value.get("summary") or "")
            description = str(value.get("description") or "")
            parent = value.get("parentCommit")
            continue
        path = _op_path(value, key)
        if key == "file":
            change.additions.append(_regular_file(path, value, blobs))
        elif key == "lfsFile":
            change.additions.append(_lfs_file(path, value, blobs))
        elif key == "deletedFile":
            change.deleted_files.append(path)
        elif key == "deletedFolder":
            change.deleted_folders.append(path)
        else:
            raise bad_request(f"Unknown commit operation {key!r}")
    if not title:
        raise bad_request("Commit summary (title) is empty")
    return CommitRequest(title, description, parent, change)


def _op_path(value: dict, key: str) -> str:
    path = value.get("path") if isinstance(value, dict) else None
    if not isinstance(path, str):
        raise bad_request(f"Operation {key!r} has no path")
    try:
        return check_repo_path(path.rstrip("/") if key == "deletedFolder" else path)
    except BadPathError as err:
        raise bad_request(str(err)) from None


def _regular_file(path: str, value: dict, blobs: BlobStore) -> Entry:
    if value.get("encoding", "base64") != "base64":
        raise bad_request(f"Unsupported encoding {value.get('encoding')!r} for {path}")
    try:
        content = base64.b64decode(value.get("content", ""), validate=True)
    except (binascii.Error, TypeError):
        raise bad_request(f"Content of {path} is not valid base64") from None
    return regular_entry(path, blobs.put_bytes(content), content)


def _lfs_file(path: str, value: dict, blobs: BlobStore) -> Entry:
    if value.get("algo", "sha256") != "sha256":
        raise bad_request(f"Unsupported hash algorithm {value.get('algo')!r} for {path}")
    sha256 = str(value.get("oid", "")).lower()
    size = value.get("size")
    if size is None and blobs.has(sha256):  # copies of LFS files name the object without its size
        size = blobs.path(sha256).stat().st_size
    if not isinstance(size, int) or not blobs.has(sha256, size):
        raise bad_request(f"LFS object {sha256} of {path} was not uploaded (or has another size)")
    return lfs_entry(path, sha256, size)

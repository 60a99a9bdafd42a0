"""Content-addressed blob store: files named by their sha256, written through a temp file and an atomic rename."""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

LFS_POINTER_TEMPLATE = "version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n"


def git_blob_oid(content: bytes) -> str:
    """Git's object id of a blob: sha1 of `blob <size>\\0` followed by the content."""
    digest = hashlib.sha1(f"blob {len(content)}\0".encode())
    digest.update(content)
    return digest.hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The Git LFS pointer file that stands in the git tree for an LFS file."""
    return LFS_POINTER_TEMPLATE.format(sha256=sha256, size=size).encode()


class BlobMismatchError(ValueError):
    """Uploaded bytes do not match the announced sha256 or size."""


class BlobWriter:
    """A blob being written: bytes go to a temp file and are hashed on the way; `commit()` publishes it."""

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        fd, name = tempfile.mkstemp(dir=store.tmp_dir, prefix="upload-")
        self._file = os.fdopen(fd, "wb")
        self._tmp_path = Path(name)
        self._sha256 = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        """Append bytes to the blob."""
        self._file.write(chunk)
        self._sha256.update(chunk)
        self.size += len(chunk)

    def commit(self, expected_sha256: str | None = None, expected_size: int | None = None) -> str:
        """Check the hash (and size), fsync and rename into the store; returns the sha256."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        sha256 = self._sha256.hexdigest()
        if expected_sha256 is not None and sha256 != expected_sha256.lower():
            self.abort()
            raise BlobMismatchError(f"content has sha256 {sha256}, expected {expected_sha256}")
        if expected_size is not None and self.size != expected_size:
            self.abort()
            raise BlobMismatchError(f"content has {self.size} bytes, expected {expected_size}")
        final = self._store.path(sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._tmp_path, final)
        return sha256

    def abort(self) -> None:
        """Drop the partial blob."""
        if not self._file.closed:
            self._file.close()
        self._tmp_path.unlink(missing_ok=True)


class BlobStore:
    """Blobs under `root/sha256/ab/cd/<sha256>`; partial uploads live in `root/tmp` and are wiped on open."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp_dir = root / "tmp"
        shutil.rmtree(self.tmp_dir, ignore_errors=True)  # leftovers of a killed server are never visible
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        """Where the blob with this sha256 lives."""
        return self.root / "sha256" / sha256[:2] / sha256[2:4] / sha256

    def has(self, sha256: str, size: int | None = None) -> bool:
        """Whether the blob is stored (with that size when given)."""
        path = self.path(sha256)
        return path.is_file() and (size is None or path.stat().st_size == size)

    def writer(self) -> BlobWriter:
        """Start writing a new blob."""
        return BlobWriter(self)

    def put_bytes(self, content: bytes) -> str:
        """Store small content in one go; returns its sha256."""
        writer = self.writer()
        try:
            writer.write(content)
        except BaseException:
            writer.abort()
            raise
        return writer.commit()

"""Repos, commits, refs and file trees in SQLite (WAL): a commit is one transaction, landing whole or not at all."""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

BRANCH_PREFIX = "refs/heads/"
TAG_PREFIX = "refs/tags/"
PR_PREFIX = "refs/pr/"

SCHEMA = """
CREATE TABLE IF NOT EXISTS repos (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    type TEXT NOT NULL,
    name TEXT NOT NULL,
    private INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (type, name)
);
CREATE TABLE IF NOT EXISTS commits (
    oid TEXT PRIMARY KEY,
    repo INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    parent TEXT,
    title TEXT NOT NULL,
    message TEXT NOT NULL,
    author TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS commits_by_repo ON commits(repo);
CREATE TABLE IF NOT EXISTS entries (
    commit_oid TEXT NOT NULL REFERENCES commits(oid) ON DELETE CASCADE,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    lfs INTEGER NOT NULL,
    git_oid TEXT NOT NULL,
    PRIMARY KEY (commit_oid, path)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS refs (
    repo INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    commit_oid TEXT NOT NULL,
    PRIMARY KEY (repo, name)
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class Repo:
    """One repository: its row id, type (model/dataset/space), full id `namespace/name` and visibility."""

    id: int
    type: str
    name: str
    private: bool
    created_at: str


@dataclass(frozen=True)
class Commit:
    """One commit: a full snapshot of the tree, its parent and message."""

    oid: str
    parent: str | None
    title: str
    message: str
    author: str
    created_at: str


@dataclass(frozen=True)
class Entry:
    """One file of a tree: content sha256, size, whether it is an LFS file, and its git object id."""

    path: str
    sha256: str
    size: int
    lfs: bool
    git_oid: str


@dataclass
class Change:
    """The edits of one commit, in order: files to add (or replace), files and folders to delete."""

    additions: list[Entry] = field(default_factory=list)
    deleted_files: list[str] = field(default_factory=list)
    deleted_folders: list[str] = field(default_factory=list)


class RepoExistsError(Exception):
    """The repo (or ref) already exists."""


class StaleParentError(Exception):
    """The commit's `parentCommit` is not the head of the branch any more."""


class RevisionMissingError(Exception):
    """The branch or revision does not exist."""


class EntryMissingError(Exception):
    """A deleted file or folder does not exist."""


def now_iso() -> str:
    """Current UTC time as the Hub writes it (ISO 8601, milliseconds, Z)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def tree_oid(entries: Iterable[Entry]) -> str:
    """A stable 40-hex id of a set of entries (the folder's 'tree id')."""
    digest = hashlib.sha1()
    for entry in sorted(entries, key=lambda e: e.path):
        digest.update(f"{entry.path}\0{entry.git_oid}\n".encode())
    return digest.hexdigest()


class RepoStore:
    """The metadata database; safe to share between threads (each operation opens its own connection)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with closing(self._connect()) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        return db

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A short-lived connection: no read snapshot outlives the operation."""
        with closing(self._connect()) as db:
            yield db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (writers queue up on SQLite's lock)."""
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # -- repos --------------------------------------------------------------------------------------------------
    def get_repo(self, repo_type: str, name: str) -> Repo | None:
        """The repo, or None."""
        with self._read() as db:
            rows = db.execute("SELECT * FROM repos WHERE type = ? AND name = ?", (repo_type, name)).fetchall()
        return next((Repo(r["id"], r["type"], r["name"], bool(r["private"]), r["created_at"]) for r in rows), None)

    def create_repo(self, repo_type: str, name: str, private: bool, author: str, initial: list[Entry]) -> Repo:
        """Create a repo whose `main` holds an initial commit of `initial`; RepoExistsError if it exists."""
        with self._write() as db:
            if db.execute("SELECT 1 FROM repos WHERE type = ? AND name = ?", (repo_type, name)).fetchall():
                raise RepoExistsError(name)
            created = now_iso()
            repo_id = db.execute(
                "INSERT INTO repos (type, name, private, created_at) VALUES (?, ?, ?, ?)",
                (repo_type, name, int(private), created),
            ).lastrowid
            commit = self._insert_commit(db, repo_id, None, "initial commit", "", author, {e.path: e for e in initial})
            db.execute("INSERT INTO refs VALUES (?, ?, ?)", (repo_id, BRANCH_PREFIX + "main", commit.oid))
        return Repo(repo_id, repo_type, name, private, created)

    def delete_repo(self, repo: Repo) -> None:
        """Delete the repo with its commits and refs (blobs stay in the blob store)."""
        with self._write() as db:
            db.execute("DELETE FROM repos WHERE id = ?", (repo.id,))

    def set_private(self, repo: Repo, private: bool) -> None:
        """Change the repo's visibility."""
        with self._write() as db:
            db.execute("UPDATE repos SET private = ? WHERE id = ?", (int(private), repo.id))

    # -- revisions ----------------------------------------------------------------------------------------------
    def refs(self, repo: Repo) -> dict[str, str]:
        """All refs of the repo: full ref name -> commit oid."""
        with self._read() as db:
            rows = db.execute("SELECT name, commit_oid FROM refs WHERE repo = ? ORDER BY name", (repo.id,)).fetchall()
        return {row["name"]: row["commit_oid"] for row in rows}

    def resolve(self, repo: Repo, revision: str) -> str | None:
        """Commit oid of a branch, tag, full ref, or (abbreviated) commit id; None when unknown."""
        with self._read() as db:
            for ref in (revision, BRANCH_PREFIX + revision, TAG_PREFIX + revision):
                if oid := _ref(db, repo.id, ref):
                    return oid
            if 7 <= len(revision) <= 40 and all(c in "0123456789abcdef" for c in revision):
                rows = db.execute(
                    "SELECT oid FROM commits WHERE repo = ? AND oid >= ? AND oid < ? LIMIT 2",
                    (repo.id, revision, revision + "g"),
                ).fetchall()
                if len(rows) == 1:
                    return rows[0]["oid"]
        return None

    def commit(self, oid: str) -> Commit:
        """The commit with this oid."""
        with self._read() as db:
            row = db.execute("SELECT * FROM commits WHERE oid = ?", (oid,)).fetchall()[0]
        return _commit(row)

    def history(self, oid: str) -> list[Commit]:
        """The commit and its ancestors, newest first."""
        with self._read() as db:
            rows = db.execute(
                "SELECT * FROM commits WHERE repo = (SELECT repo FROM commits WHERE oid = ?)", (oid,)
            ).fetchall()
        by_oid = {row["oid"]: _commit(row) for row in rows}
        out: list[Commit] = []
        next_oid: str | None = oid
        while next_oid is not None:
            out.append(by_oid[next_oid])
            next_oid = out[-1].parent
        return out

    def entries(self, commit_oid: str) -> list[Entry]:
        """Every file of the commit's tree, sorted by path."""
        with self._read() as db:
            return _entries(db, commit_oid)

    def entry(self, commit_oid: str, path: str) -> Entry | None:
        """One file of the commit's tree, or None."""
        with self._read() as db:
            return next(iter(_entries(db, commit_oid, path)), None)

    # -- writes -------------------------------------------------------------------------------------------------
    def apply_commit(
        self,
        repo: Repo,
        branch: str,
        change: Change,
        *,
        title: str,
        message: str,
        author: str,
        parent_commit: str | None = None,
        create_pr: bool = False,
    ) -> tuple[Commit, str | None]:
        """Commit `change` on top of `branch` atomically; returns the commit and the PR ref when `create_pr`."""
        with self._write() as db:
            head = _ref(db, repo.id, _full_branch(branch))
            if head is None:
                raise RevisionMissingError(branch)
            if parent_commit is not None and not head.startswith(parent_commit.lower()):
                raise StaleParentError(f"parent commit {parent_commit} is not the head of {branch} ({head})")
            tree = {e.path: e for e in _entries(db, head)}
            for path in change.deleted_files:
                if tree.pop(path, None) is None:
                    raise EntryMissingError(f"A file with this name doesn't exist: {path}")
            for folder in change.deleted_folders:
                prefix = folder.rstrip("/") + "/"
                doomed = [p for p in tree if p.startswith(prefix)]
                if not doomed:
                    raise EntryMissingError(f"A folder with this name doesn't exist: {folder}")
                for path in doomed:
                    del tree[path]
            for entry in change.additions:
                tree[entry.path] = entry
            commit = self._insert_commit(db, repo.id, head, title, message, author, tree)
            pr_ref = None
            if create_pr:
                count = db.execute(
                    "SELECT COUNT(*) FROM refs WHERE repo = ? AND name LIKE ?", (repo.id, PR_PREFIX + "%")
                ).fetchall()[0][0]
                pr_ref = f"{PR_PREFIX}{count + 1}"
                db.execute("INSERT INTO refs VALUES (?, ?, ?)", (repo.id, pr_ref, commit.oid))
            else:
                db.execute(
                    "UPDATE refs SET commit_oid = ? WHERE repo = ? AND name = ?",
                    (commit.oid, repo.id, _full_branch(branch)),
                )
        return commit, pr_ref

    def create_ref(self, repo: Repo, ref: str, commit_oid: str) -> None:
        """Create a branch or tag (full ref name); RepoExistsError if it exists."""
        with self._write() as db:
            if _ref(db, repo.id, ref) is not None:
                raise RepoExistsError(ref)
            db.execute("INSERT INTO refs VALUES (?, ?, ?)", (repo.id, ref, commit_oid))

    def delete_ref(self, repo: Repo, ref: str) -> None:
        """Delete a branch or tag (full ref name); RevisionMissingError if absent."""
        with self._write() as db:
            if db.execute("DELETE FROM refs WHERE repo = ? AND name = ?", (repo.id, ref)).rowcount == 0:
                raise RevisionMissingError(ref)

    def _insert_commit(
        self,
        db: sqlite3.Connection,
        repo_id: int,
        parent: str | None,
        title: str,
        message: str,
        author: str,
        tree: dict[str, Entry],
    ) -> Commit:
        created = now_iso()
        header = json.dumps([repo_id, parent, tree_oid(tree.values()), title, message, author, created])
        oid = hashlib.sha1(header.encode() + os.urandom(8)).hexdigest()
        db.execute(
            "INSERT INTO commits VALUES (?, ?, ?, ?, ?, ?, ?)", (oid, repo_id, parent, title, message, author, created)
        )
        db.executemany(
            "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?)",
            [(oid, e.path, e.sha256, e.size, int(e.lfs), e.git_oid) for e in tree.values()],
        )
        return Commit(oid, parent, title, message, author, created)


def _full_branch(branch: str) -> str:
    """`main` -> `refs/heads/main`; PR refs (`refs/pr/1`) and full refs stay as they are."""
    return branch if branch.startswith("refs/") else BRANCH_PREFIX + branch


def _ref(db: sqlite3.Connection, repo_id: int, ref: str) -> str | None:
    """Commit oid a full ref points at, or None."""
    rows = db.execute("SELECT commit_oid FROM refs WHERE repo = ? AND name = ?", (repo_id, ref)).fetchall()
    return rows[0]["commit_oid"] if rows else None


def _entries(db: sqlite3.Connection, commit_oid: str, path: str | None = None) -> list[Entry]:
    """Files of a commit's tree (only `path` when given), sorted by path."""
    sql = "SELECT path, sha256, size, lfs, git_oid FROM entries WHERE commit_oid = ?"
    args: tuple = (commit_oid,)
    if path is not None:
        sql, args = sql + " AND path = ?", (commit_oid, path)
    rows = db.execute(sql + " ORDER BY path", args).fetchall()
    return [Entry(r["path"], r["sha256"], r["size"], bool(r["lfs"]), r["git_oid"]) for r in rows]


def _commit(row: sqlite3.Row) -> Commit:
    return Commit(row["oid"], row["parent"], row["title"], row["message"], row["author"], row["created_at"])

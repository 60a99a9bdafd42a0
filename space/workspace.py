"""Per-visitor workspaces: each visitor's captures, enrolled anchors, training runs, latest webcam frame and model
choice, kept apart from every other visitor's and deleted when their lifetime ends.

A workspace is keyed by the signed-in Hugging Face user on a Space (`gr.OAuthProfile`), else by the browser session
(Gradio's session hash; every `gradio_client.Client` is a session of its own). Its files live in a folder with a
random name under the data folder, which Gradio is never allowed to serve: what the app shows of them goes through
Gradio's cache under names derived from a secret seed and the file's bytes, and those copies are deleted with the
workspace. This module is the only place that keys state by visitor.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from space.capture import CaptureStore

log = logging.getLogger("facereg.space")

DATA_DIR_ENV = "FACEREG_DATA_DIR"
RUN_ID = re.compile(r"^run-[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$")
MB = 2**20


class QuotaError(Exception):
    """A limit of the visitor's workspace, or of the whole app, was reached; the message says which and what to do."""


@dataclass(frozen=True)
class Limits:
    """What one visitor, and all visitors together, may keep; each has an environment variable (see space/README)."""

    anonymous_ttl_s: float = 3600.0  # FACEREG_ANONYMOUS_TTL_MINUTES: idle time before a visitor's data is deleted
    user_ttl_s: float = 24 * 3600.0  # FACEREG_USER_TTL_HOURS: the same for a signed-in user
    captures: int = 300  # FACEREG_MAX_CAPTURES: saved face crops per workspace
    anchors: int = 20  # FACEREG_MAX_ANCHORS: enrolled anchor images per workspace
    runs: int = 3  # FACEREG_MAX_RUNS: trained models kept per workspace
    files_per_request: int = 40  # FACEREG_MAX_FILES_PER_REQUEST
    upload_bytes: int = 10 * MB  # FACEREG_MAX_UPLOAD_MB: one uploaded image
    pixels: int = 25_000_000  # FACEREG_MAX_PIXELS: one image's width x height
    total_bytes: int = 2048 * MB  # FACEREG_MAX_DISK_MB: all workspaces together
    workspaces: int = 500  # FACEREG_MAX_WORKSPACES: live at once (each may hold a webcam frame in memory)

    @classmethod
    def from_env(cls) -> "Limits":
        """The defaults, overridden by any FACEREG_* variable that is set."""
        scales = {"anonymous_ttl_s": ("FACEREG_ANONYMOUS_TTL_MINUTES", 60), "user_ttl_s": ("FACEREG_USER_TTL_HOURS", 3600),
                  "upload_bytes": ("FACEREG_MAX_UPLOAD_MB", MB), "total_bytes": ("FACEREG_MAX_DISK_MB", MB)}
        values: dict[str, Any] = {}
        for item in fields(cls):
            env, scale = scales.get(item.name, (f"FACEREG_MAX_{item.name.upper()}", 1))
            raw = os.environ.get(env, "").strip()
            if raw:
                try:
                    number = float(raw) * scale
                except ValueError:
                    raise ValueError(f"{env} must be a number, not {raw!r}") from None
                values[item.name] = number if item.type == "float" else int(number)
        return cls(**values)

    def check_files(self, count: int) -> None:
        """QuotaError when one request brings more files than allowed."""
        if count > self.files_per_request:
            raise QuotaError(f"{count} files in one request: at most {self.files_per_request} at a time.")

    def check_image(self, path: str | Path, name: str) -> None:
        """QuotaError when an image file is too large in bytes or pixels (read from its header, not decoded)."""
        size = Path(path).stat().st_size
        if size > self.upload_bytes:
            raise QuotaError(f"{name} is {size / MB:.1f} MB: images of at most {self.upload_bytes / MB:.0f} MB.")
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as image:
                width, height = image.size
        except (UnidentifiedImageError, OSError):
            return  # not an image: the decoder reports that with its own message
        self.check_pixels(width, height, name)

    def check_pixels(self, width: int, height: int, name: str) -> None:
        """QuotaError when an image has more pixels than allowed."""
        if width * height > self.pixels:
            raise QuotaError(f"{name} is {width} x {height} pixels: at most {self.pixels:,} pixels "
                             f"({self.pixels / 1e6:.1f} megapixels); send a smaller picture.")


def folder_bytes(folder: Path) -> int:
    """Bytes of all files below a folder (0 when it does not exist); what is deleted meanwhile counts 0.

    Other visitors' workspaces are deleted while this walks them (their session ends, their lifetime passes).
    `os.walk` skips a folder that vanishes; `Path.rglob` raised FileNotFoundError, which failed the caller's action.
    """
    total = 0
    for parent, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.stat(os.path.join(parent, name)).st_size
            except OSError:  # deleted meanwhile
                pass
    return total


class Workspace:
    """One visitor's data: captures, enrolled anchors, runs, the latest webcam frame and the model choice."""

    def __init__(self, key: str, owner: str | None, root: Path, limits: Limits) -> None:
        self.key, self.owner, self.root, self.limits = key, owner, root, limits
        self.captures = CaptureStore(root / "captures")
        self.enrolled = CaptureStore(root / "enrolled")  # anchors for verification, kept as face crops
        self.runs_dir = root / "runs"
        self.face_cache = root / "face-cache"  # the trainer's detection cache: the visitor's faces too
        self.frame: Any = None  # the latest webcam frame
        self.last_auto = 0.0  # when automatic capture last saved
        self.model: Any = None  # space.models.ModelChoice, or None for the app's default model
        self.anchor_embeddings: tuple[Any, Any] | None = None  # (model key + anchor files, trainer.AnchorSet)
        self.lock = threading.RLock()
        self.created = self.last_seen = time.time()
        self.deleted = False
        self.busy = 0  # long actions (training, pushing) running for it: never expired meanwhile

    @contextlib.contextmanager
    def in_use(self) -> Iterator["Workspace"]:
        """Mark the workspace busy for a long action; it counts as used when the action ends."""
        with self.lock:
            self.busy += 1
        try:
            yield self
        finally:
            with self.lock:
                self.busy -= 1
                self.last_seen = time.time()
            self.remove_leftovers()

    def remove_leftovers(self) -> None:
        """After an action that ran while the workspace was deleted: delete what it wrote."""
        if self.deleted:
            shutil.rmtree(self.root, ignore_errors=True)

    @property
    def signed_in(self) -> bool:
        """Whether the workspace belongs to a signed-in Hugging Face user (else to one browser session)."""
        return self.owner is not None

    @property
    def ttl_s(self) -> float:
        """How long the workspace lives without being used."""
        return self.limits.user_ttl_s if self.signed_in else self.limits.anonymous_ttl_s

    def expired(self, now: float) -> bool:
        """Whether its time to live has passed since it was last used (never while a long action runs)."""
        return not self.busy and now - self.last_seen > self.ttl_s

    def disk_bytes(self) -> int:
        """Bytes it holds on disk."""
        return folder_bytes(self.root)

    def check_capture_room(self, count: int) -> None:
        """QuotaError unless `count` more captures fit."""
        self.limits.check_files(count)
        have = self.captures.total()
        if have + count > self.limits.captures:
            raise QuotaError(f"Your capture set holds {have} faces, the limit is {self.limits.captures}: delete some "
                             "or push them to a dataset repo and use 'Delete my data'.")

    def check_anchor_room(self, count: int) -> None:
        """QuotaError unless `count` more anchors fit."""
        self.limits.check_files(count)
        have = len(self.anchor_files())
        if have + count > self.limits.anchors:
            raise QuotaError(f"{have} anchors are enrolled, the limit is {self.limits.anchors}: clear them first.")

    def anchor_files(self) -> list[Path]:
        """The enrolled anchor crops, oldest first."""
        return self.enrolled.files("anchor")[::-1]

    def run_ids(self) -> list[str]:
        """Ids of this workspace's finished runs, oldest first."""
        if not self.runs_dir.is_dir():
            return []
        return sorted(p.name for p in self.runs_dir.iterdir() if RUN_ID.match(p.name) and (p / "facereg.json").is_file())

    def new_run_dir(self) -> tuple[str, Path]:
        """A fresh run id and its folder; QuotaError when the workspace holds as many runs as allowed."""
        if len(self.run_ids()) >= self.limits.runs:
            raise QuotaError(f"You have {self.limits.runs} trained models, the limit: publish the one you want and "
                             "use 'Delete my data' to start over.")
        run_id = time.strftime("run-%Y%m%d-%H%M%S-") + secrets.token_hex(3)
        return run_id, self.runs_dir / run_id

    def run_dir(self, run_id: str) -> Path | None:
        """The folder of one of this workspace's finished runs, or None (other visitors' runs are not found)."""
        run_id = (run_id or "").strip()
        return self.runs_dir / run_id if run_id in self.run_ids() else None

    def served_files(self) -> list[Path]:
        """Files of this workspace that the app may have shown (captures, anchors, ROC plots)."""
        return [*self.captures.files(), *self.enrolled.files(), *self.runs_dir.glob("*/roc.png")]

    def delete(self) -> None:
        """Delete everything: files on disk, Gradio's cached copies of what was shown, and what is held in memory."""
        with self.lock:
            if self.deleted:
                return
            self.deleted = True
            forget_cached_copies(self.served_files())
            shutil.rmtree(self.root, ignore_errors=True)
            self.frame = self.model = self.anchor_embeddings = None


def forget_cached_copies(files: list[Path]) -> None:
    """Delete the copies Gradio's cache keeps of these files: each is `<hash of its bytes>/<its name>`.

    Only the copy under the file's own name goes. Another visitor who saved the same bytes shares the hash folder
    but not the name (capture and anchor names are unique to a workspace), and keeps their copy.
    """
    from gradio.processing_utils import hash_file
    from gradio.utils import get_upload_folder
    from gradio_client.utils import strip_invalid_filename_characters

    cache = Path(get_upload_folder())
    for path in files:
        try:
            folder = cache / hash_file(path)
        except OSError:
            continue
        (folder / strip_invalid_filename_characters(path.name)).unlink(missing_ok=True)
        try:
            folder.rmdir()  # only when no other copy is left in it
        except OSError:
            pass


def default_data_dir() -> Path:
    """FACEREG_DATA_DIR, else a folder in the system's temp directory."""
    return Path(os.environ.get(DATA_DIR_ENV, "").strip() or Path(tempfile.gettempdir()) / "facereg-workspaces")


class Workspaces:
    """All workspaces of the app: found by visitor, created on first use, deleted when their lifetime ends."""

    def __init__(self, root: str | Path | None = None, limits: Limits | None = None) -> None:
        self.root = Path(root) if root is not None else default_data_dir()
        self.limits = limits or Limits.from_env()
        self._by_key: dict[str, Workspace] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        if self.root.is_dir():  # a previous process's workspaces: their lifetime ended with it
            for child in self.root.iterdir():
                shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)

    @staticmethod
    def key_of(request: Any, profile: Any) -> tuple[str, str | None]:
        """(key, owner): the signed-in user's name, else the browser session."""
        username = getattr(profile, "username", None) if profile is not None else None
        if username:
            return f"user:{username}", username
        session = getattr(request, "session_hash", None) if request is not None else None
        return f"session:{session or secrets.token_hex(16)}", None

    def get(self, request: Any, profile: Any = None) -> Workspace:
        """The visitor's workspace, created on first use; every call counts as use."""
        key, owner = self.key_of(request, profile)
        self.sweep()
        with self._lock:
            workspace = self._by_key.get(key)
            if workspace is None:
                self._make_space_for_one()
                workspace = Workspace(key, owner, self.root / secrets.token_hex(16), self.limits)
                self._by_key[key] = workspace
            workspace.last_seen = time.time()
            return workspace

    def _make_space_for_one(self) -> None:
        """With the lock held: evict the least recently used anonymous workspace when the count is at its limit."""
        if len(self._by_key) < self.limits.workspaces:
            return
        idle = [w for w in self._by_key.values() if not w.signed_in and not w.busy]
        if not idle:
            raise QuotaError("Too many visitors right now: try again in a few minutes.")
        oldest = min(idle, key=lambda w: w.last_seen)
        del self._by_key[oldest.key]
        oldest.delete()

    def find(self, request: Any, profile: Any = None) -> Workspace | None:
        """The visitor's workspace if there is one (nothing is created)."""
        with self._lock:
            return self._by_key.get(self.key_of(request, profile)[0])

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_key)

    def all(self) -> list[Workspace]:
        """Every live workspace."""
        with self._lock:
            return list(self._by_key.values())

    def delete(self, workspace: Workspace) -> None:
        """Delete a workspace now and forget it."""
        with self._lock:
            if self._by_key.get(workspace.key) is workspace:
                del self._by_key[workspace.key]
        workspace.delete()
        log.info("deleted a %s workspace", "signed-in" if workspace.signed_in else "session")

    def end_session(self, request: Any) -> None:
        """A browser session ended: delete its workspace (a signed-in user's lives on until its time to live)."""
        workspace = self.find(request, None)
        if workspace is not None:
            self.delete(workspace)

    def sweep(self, now: float | None = None) -> int:
        """Delete every workspace whose time to live has passed; how many were deleted."""
        now = time.time() if now is None else now
        with self._lock:
            expired = [w for w in self._by_key.values() if w.expired(now)]
        for workspace in expired:
            self.delete(workspace)
        return len(expired)

    def total_bytes(self) -> int:
        """Bytes held on disk by all workspaces."""
        return folder_bytes(self.root)

    def make_room(self, needed: int, keep: Workspace) -> None:
        """Evict the least recently used anonymous workspaces until `needed` bytes fit; QuotaError if they cannot."""
        limit = self.limits.total_bytes
        total = self.total_bytes()
        if total + needed <= limit:
            return
        with self._lock:
            candidates = sorted((w for w in self._by_key.values() if not w.signed_in and w is not keep),
                                key=lambda w: w.last_seen)
        for workspace in candidates:
            freed = workspace.disk_bytes()
            self.delete(workspace)
            total -= freed
            if total + needed <= limit:
                return
        raise QuotaError("The app's storage for visitors' data is full: try again later, or push your captures "
                         "to a dataset repo and use 'Delete my data'.")

    def start_sweeper(self, every_s: float = 60.0) -> threading.Thread:
        """Sweep expired workspaces in the background every `every_s` seconds, until stop()."""
        def loop() -> None:
            while not self._stop.wait(every_s):
                try:
                    self.sweep()
                except Exception:  # noqa: BLE001 - the sweeper must outlive one bad folder
                    log.exception("sweeping workspaces failed")

        thread = threading.Thread(target=loop, name="facereg-sweeper", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Stop the background sweeper."""
        self._stop.set()

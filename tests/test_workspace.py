"""Per-visitor workspaces on their own (space/workspace.py): keys, lifetime, deletion from disk, quotas, eviction.

No faces needed: the files are small synthetic JPEGs written where the app writes captures.
"""
from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from space.workspace import Limits, QuotaError, Workspaces, forget_cached_copies


def visitor(session: str) -> SimpleNamespace:
    """A stand-in for gr.Request: only its session hash matters to workspaces."""
    return SimpleNamespace(session_hash=session)


def user(name: str) -> SimpleNamespace:
    """A stand-in for gr.OAuthProfile: only its username matters."""
    return SimpleNamespace(username=name)


def add_capture(workspace, category: str = "anchor", size: int = 64) -> Path:
    """Save a noise picture as a capture of the workspace."""
    pixels = np.random.default_rng(len(workspace.captures.files())).integers(0, 255, (size, size, 3), np.uint8)
    return workspace.captures.save_crop(pixels, category)


def test_each_session_and_each_user_has_its_own_workspace(tmp_path):
    spaces = Workspaces(tmp_path)
    a, b = spaces.get(visitor("a")), spaces.get(visitor("b"))
    assert a is not b and a.root != b.root and spaces.get(visitor("a")) is a
    add_capture(a)
    assert a.captures.total() == 1 and b.captures.total() == 0
    assert a.root.parent == tmp_path and len(a.root.name) == 32  # a random folder name, not the session's
    alice = spaces.get(visitor("x"), user("alice"))
    assert spaces.get(visitor("y"), user("alice")) is alice and alice.signed_in and not a.signed_in


def test_ending_a_session_deletes_its_files_but_not_a_signed_in_users(tmp_path):
    spaces = Workspaces(tmp_path)
    anonymous, alice = spaces.get(visitor("a")), spaces.get(visitor("b"), user("alice"))
    files = [add_capture(anonymous), add_capture(alice)]
    spaces.end_session(visitor("a"))
    spaces.end_session(visitor("b"))  # alice's browser tab closed: her workspace stays
    assert not files[0].exists() and not anonymous.root.exists() and spaces.find(visitor("a")) is None
    assert files[1].exists() and spaces.find(visitor("b"), user("alice")) is alice


def test_time_to_live_deletes_anonymous_sooner_than_signed_in(tmp_path):
    spaces = Workspaces(tmp_path, Limits(anonymous_ttl_s=10, user_ttl_s=100))
    anonymous, alice = spaces.get(visitor("a")), spaces.get(visitor("b"), user("alice"))
    add_capture(anonymous), add_capture(alice)
    now = time.time()
    assert spaces.sweep(now + 5) == 0
    assert spaces.sweep(now + 11) == 1 and not anonymous.root.exists() and alice.root.exists()
    with alice.in_use():  # a long action keeps it alive past its time to live
        assert spaces.sweep(now + 101) == 0
    assert spaces.sweep(time.time() + 101) == 1 and not alice.root.exists() and len(spaces) == 0


def test_background_sweeper_deletes_expired_workspaces(tmp_path):
    spaces = Workspaces(tmp_path, Limits(anonymous_ttl_s=0.5))
    workspace = spaces.get(visitor("a"))
    add_capture(workspace)
    spaces.start_sweeper(every_s=0.2)
    try:
        deadline = time.monotonic() + 10
        while workspace.root.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        spaces.stop()
    assert not workspace.root.exists() and len(spaces) == 0


def test_a_new_process_starts_with_no_workspaces(tmp_path):
    old = Workspaces(tmp_path).get(visitor("a"))
    file = add_capture(old)
    Workspaces(tmp_path)
    assert not file.exists() and list(tmp_path.iterdir()) == []


def test_delete_removes_gradios_cached_copies(tmp_path, monkeypatch):
    from gradio.processing_utils import save_file_to_cache

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    spaces = Workspaces(tmp_path / "workspaces")
    workspace = spaces.get(visitor("a"))
    mine = add_capture(workspace)
    other = spaces.get(visitor("b"))
    theirs = add_capture(other)  # the same picture: the same bytes, another name
    copy, their_copy = (Path(save_file_to_cache(p, str(tmp_path / "gradio"))) for p in (mine, theirs))
    assert theirs.read_bytes() == mine.read_bytes() and theirs.name != mine.name
    assert copy.is_file() and their_copy.parent == copy.parent  # Gradio's cache folder is named by the bytes
    spaces.delete(workspace)
    assert not copy.exists() and not workspace.root.exists()
    assert their_copy.is_file()  # the other visitor's copy stays
    spaces.delete(other)
    assert not copy.parent.exists()
    forget_cached_copies([tmp_path / "missing.jpg"])  # a file already gone is no error


def test_capture_run_and_anchor_quotas_have_clear_messages(tmp_path):
    spaces = Workspaces(tmp_path, Limits(captures=2, files_per_request=3, runs=1, anchors=1))
    workspace = spaces.get(visitor("a"))
    with pytest.raises(QuotaError, match="4 files in one request: at most 3"):
        workspace.check_capture_room(4)
    add_capture(workspace), add_capture(workspace)
    with pytest.raises(QuotaError, match="holds 2 faces, the limit is 2"):
        workspace.check_capture_room(1)
    run_id, folder = workspace.new_run_dir()
    folder.mkdir(parents=True)
    (folder / "facereg.json").write_text("{}")
    assert workspace.run_ids() == [run_id] and workspace.run_dir(run_id) == folder
    assert workspace.run_dir("run-20260101-000000-abcdef") is None and workspace.run_dir("../../etc") is None
    with pytest.raises(QuotaError, match="1 trained models, the limit"):
        workspace.new_run_dir()
    with pytest.raises(QuotaError, match="the limit is 1"):
        workspace.check_anchor_room(2)


def test_image_size_limits_read_the_header(tmp_path):
    from PIL import Image

    limits = Limits(upload_bytes=50_000, pixels=100 * 100)
    small, wide = tmp_path / "small.png", tmp_path / "wide.png"
    Image.new("RGB", (50, 50)).save(small)
    Image.new("RGB", (300, 100)).save(wide)
    limits.check_image(small, "small.png")
    with pytest.raises(QuotaError, match="wide.png is 300 x 100 pixels: at most 10,000 pixels"):
        limits.check_image(wide, "wide.png")
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * 60_000)
    with pytest.raises(QuotaError, match="big.bin is 0.1 MB"):
        limits.check_image(big, "big.bin")


def test_full_disk_evicts_oldest_anonymous_workspaces_first(tmp_path):
    spaces = Workspaces(tmp_path)
    oldest, newer, alice, me = (spaces.get(visitor(s), p) for s, p in (("1", None), ("2", None), ("3", user("alice")),
                                                                         ("4", None)))
    for workspace in (oldest, newer, alice, me):
        add_capture(workspace, size=200)
    oldest.last_seen -= 100
    used = spaces.total_bytes()
    one = oldest.disk_bytes()
    spaces.limits = Limits(total_bytes=used + 10)
    spaces.make_room(one // 2, keep=me)  # room for half a capture more: the oldest anonymous one goes
    assert not oldest.root.exists() and newer.root.exists() and alice.root.exists() and me.root.exists()
    with pytest.raises(QuotaError, match="storage for visitors' data is full"):
        spaces.make_room(10 * used, keep=me)  # evicting every other anonymous workspace cannot make this much room
    assert alice.root.exists() and me.root.exists() and not newer.root.exists()


def test_disk_use_is_counted_while_other_workspaces_are_deleted(tmp_path):
    """make_room walks every workspace folder while other threads delete theirs (a session ends, a lifetime passes):
    the count goes on and what vanished counts 0. It used to raise FileNotFoundError, which failed the visitor's
    action ("Enrolling failed unexpectedly", seen once in the eight-visitor app test). The folders here are made and
    removed directly, faster than whole workspaces can be, so that the walk meets a vanishing folder every run."""
    spaces = Workspaces(tmp_path)
    kept = spaces.get(visitor("kept"))
    add_capture(kept, size=200)
    stop, failures = threading.Event(), []

    def churn() -> None:  # workspace folders appear, fill and vanish, as visitors come and their data is deleted
        n = 0
        while not stop.is_set():
            n += 1
            folder = spaces.root / f"gone-{n % 4}" / "captures" / "anchor"
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(5):
                (folder / f"{k}.jpg").write_bytes(b"x" * 100)
            shutil.rmtree(spaces.root / f"gone-{(n + 2) % 4}", ignore_errors=True)

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            try:
                assert spaces.total_bytes() >= kept.disk_bytes() > 0
                spaces.make_room(1, keep=kept)
            except FileNotFoundError as exc:
                failures.append(exc)
    finally:
        stop.set()
        thread.join()
    assert not failures, failures[:3]
    assert kept.root.exists()


def test_limits_from_environment(monkeypatch):
    monkeypatch.setenv("FACEREG_ANONYMOUS_TTL_MINUTES", "2")
    monkeypatch.setenv("FACEREG_MAX_CAPTURES", "7")
    monkeypatch.setenv("FACEREG_MAX_DISK_MB", "1.5")
    limits = Limits.from_env()
    assert limits.anonymous_ttl_s == 120 and limits.captures == 7 and limits.total_bytes == int(1.5 * 2**20)
    monkeypatch.setenv("FACEREG_MAX_RUNS", "many")
    with pytest.raises(ValueError, match="FACEREG_MAX_RUNS must be a number"):
        Limits.from_env()


def test_workspace_count_is_bounded_by_evicting_idle_anonymous_ones(tmp_path):
    spaces = Workspaces(tmp_path, Limits(workspaces=2))
    first = spaces.get(visitor("1"))
    spaces.get(visitor("2"), user("alice"))
    add_capture(first)
    spaces.get(visitor("3"))
    assert spaces.find(visitor("1")) is None and not first.root.exists() and spaces.find(visitor("2"), user("alice"))
    signed_in = Workspaces(tmp_path / "users", Limits(workspaces=1))
    signed_in.get(visitor("a"), user("bob"))
    with pytest.raises(QuotaError, match="Too many visitors"):
        signed_in.get(visitor("b"))

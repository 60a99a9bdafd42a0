"""The headless collector on a short video made with ffmpeg from LFW images and a frame without a face."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from tests.conftest import lfw_image, needs_lfw
from trainer.cli import main
from trainer.collect import collect
from trainer.errors import FaceRegError
from trainer.images import load_image

pytestmark = [needs_lfw, pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")]


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A 4-second, 10 fps video: a face, a blank second, two more faces (one image per second)."""
    import cv2

    folder = tmp_path_factory.mktemp("video")
    frames = [lfw_image("Colin_Powell", 1), None, lfw_image("Colin_Powell", 2), lfw_image("Tony_Blair", 1)]
    for i, frame in enumerate(frames):
        if frame is None:
            cv2.imwrite(str(folder / f"f{i}.png"), np.full((250, 250, 3), 128, np.uint8))
        else:
            cv2.imwrite(str(folder / f"f{i}.png"), cv2.imread(str(frame)))
    path = folder / "capture.mp4"
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-framerate", "1", "-i", str(folder / "f%d.png"),
         "-c:v", "mpeg4", "-q:v", "2", "-r", "10", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )
    return path


def test_collect_saves_one_face_per_sampled_second_and_skips_frames_without_one(video, tmp_path):
    result = collect(str(video), "positive", tmp_path, every=1.0)
    assert result.frames == 4 and result.no_face == 1
    assert [p.name for p in result.saved] == ["capture_000000.jpg", "capture_000020.jpg", "capture_000030.jpg"]
    assert sorted(p.name for p in (tmp_path / "positive").iterdir()) == [p.name for p in result.saved]
    crop = load_image(result.saved[0])
    assert crop.shape == (250, 250, 3)


def test_cli_collect_stops_at_max_and_reports(video, tmp_path, capsys):
    assert main(["collect", "--source", str(video), "--label", "anchor", "--out", str(tmp_path),
                 "--every", "0.5", "--max", "2"]) == 0
    assert len(list((tmp_path / "anchor").iterdir())) == 2
    assert "saved 2 faces" in capsys.readouterr().out


def test_collected_folder_is_a_dataset_the_trainer_can_read(video, tmp_path):
    from trainer.data import FaceCache, detect_faces, load_source

    collect(str(video), "anchor", tmp_path, every=1.0)
    faces = detect_faces(load_source(tmp_path), 150, FaceCache(tmp_path / "cache"))
    assert faces.counts()["anchor"] == 3 and faces.no_face == []


def test_collect_errors_name_the_problem(tmp_path, capsys):
    with pytest.raises(FaceRegError, match="not found"):
        collect(str(tmp_path / "missing.mp4"), "anchor", tmp_path)
    with pytest.raises(FaceRegError, match="label"):
        collect(str(tmp_path / "missing.mp4"), "friends", tmp_path)
    assert main(["collect", "--source", str(tmp_path / "missing.mp4"), "--label", "anchor", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: video file") and err.count("\n") == 1

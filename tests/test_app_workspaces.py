"""Visitors of one running app kept apart, through separate `gradio_client` sessions (each is a visitor).

Visitor A captures, enrols anchors, trains and publishes a model; visitor B sees none of it. Then A's data is gone
when A deletes it or when its time to live ends, and eight visitors at once each see exactly their own data.
"""
from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from huggingface_hub import hf_hub_download

from space.models import DEFAULT_HEAD_FILE, info_markdown
from space.workspace import Limits
from tests.app_helpers import app_error, lfw, workspace_of
from tests.conftest import needs_lfw
from trainer.serving import inference_precision

pytestmark = needs_lfw

NEGATIVES = ("Tony_Blair", "Gerhard_Schroeder", "Donald_Rumsfeld", "Ariel_Sharon")
HEAD = json.loads(DEFAULT_HEAD_FILE.read_text())  # the embedded default model's head


def fetch(url: str) -> int:
    """HTTP status of a GET."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def file_url(app, path: str | Path) -> str:
    """The URL under which Gradio would serve a server path."""
    return f"{app.url}gradio_api/file={path}"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The app in this process (workspaces in a temp folder)."""
    from space.testing import running_app

    with running_app(tmp_path_factory.mktemp("workspaces-app")) as running:
        running.models.default()
        yield running


def test_a_visitor_sees_nothing_of_another(app, hub_server, hub_repo_id, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", hub_server.token)  # running locally: Hub actions use HF_TOKEN
    a, b = Client(app.url, verbose=False, download_files=False), Client(app.url, verbose=False)
    _, counts, gallery, _ = a.predict([lfw("Colin_Powell", n) for n in (1, 2, 3, 4)], "anchor", api_name="/capture")
    a.predict([lfw("Colin_Powell", n) for n in (5, 6, 7, 8)], "positive", api_name="/capture")
    a.predict([lfw(p, n) for p in NEGATIVES for n in (1, 2)], "negative", api_name="/capture")
    a.predict([lfw("Colin_Powell", 9)], api_name="/enroll_anchors")
    _, _, threshold, run_id = a.predict("local", "dlib_resnet", 2, api_name="/train")
    a.predict(run_id, hub_repo_id, True, api_name="/publish")  # private, and now A's model
    mine = workspace_of(app, a)
    assert mine.captures.total() == 16 and len(mine.anchor_files()) == 1 and mine.run_ids() == [run_id]
    assert mine.model.repo == hub_repo_id
    served = app.models.cached(mine.model)  # A's model, loaded when published: its networks already traced
    assert served is not None and served._embed_fn.experimental_get_tracing_count() == 1
    published = Path(hf_hub_download(hub_repo_id, "facereg.json", token=hub_server.token)).read_text()
    assert str(mine.root) not in published and mine.root.name not in published  # no server path on the Hub

    status, counts_b, gallery_b, _ = b.predict([lfw("Tony_Blair", 3)], "negative", api_name="/capture")
    assert "total 1" in counts_b and len(gallery_b) == 1 and "anchor**: 0" in counts_b
    a_caption = f"anchor/{mine.captures.files('anchor')[0].name}"
    assert "not one of your captures" in app_error(lambda: b.predict(a_caption, "anchor",
                                                                         api_name="/delete_capture"))
    assert "Enrol at least one anchor" in app_error(lambda: b.predict(None, lfw("Colin_Powell", 10), 0.5, 0.5,
                                                                          api_name="/verify_anchors"))
    assert "no trained model with that run id" in app_error(lambda: b.predict(run_id, "facereg/b-model", False,
                                                                                  api_name="/publish"))
    default = b.predict(api_name="/model_info")
    assert default["repo"] is None  # B still has the app's default model
    assert default["created"] == HEAD["created"]  # when its head was fitted, not when the app loaded it
    assert default["metrics"]["accuracy"] == round(HEAD["metrics"]["accuracy"], 4)
    assert default["metrics_measured_on"].startswith("1000 pairs (500 of the same person, 500 of different people)")
    assert "DevTest" in default["metrics_measured_on"]  # says which pairs, not only how many
    view2 = json.loads((DEFAULT_HEAD_FILE.parent / "lfw_view2.json").read_text())  # its LFW View 2 figures
    ours, backbone = default["benchmarks"]["LFW View 2"]["rows"]  # this model first, then its backbone alone
    assert (ours["measured"], ours["10-fold acc. mean +/- std"]) == (view2["default"][0], view2["default"][1])
    assert (backbone["measured"], backbone["10-fold acc. mean +/- std"]) == (view2["backbone"][0], view2["backbone"][1])
    assert "next to its backbone" in default["benchmarks"]["LFW View 2"]["note"]
    summary = info_markdown(default)  # the Model tab's words above the details
    same, different = round(500 * HEAD["metrics"]["recall"]), round(500 * HEAD["metrics"]["far_at_threshold"])
    assert f"accuracy **{100 * HEAD['metrics']['accuracy']:.1f} %**" in summary and "DevTest" in summary
    assert f"{same} of 500 same-person pairs and {different} of 500 different-people pairs" in summary
    assert view2["default"][1] in summary and view2["backbone"][1] in summary
    assert default["precision"] == inference_precision()  # as any Verifier made on this CPU
    assert ("computed in bfloat16" in summary) == (default["precision"] == "bfloat16")
    theirs = workspace_of(app, b)
    assert theirs.captures.total() == 1 and theirs.anchor_files() == [] and theirs.run_ids() == []
    assert "not a dataset repo id" in app_error(lambda: b.predict(str(mine.captures.root), "dlib_resnet", 1,
                                                                      api_name="/train"))
    assert mine.captures.total() == 16  # B's attempts changed nothing of A's

    # A's files: the workspace folder is never served; what the gallery shows has a name nobody can guess
    capture = mine.captures.files("anchor")[0]
    assert fetch(file_url(app, capture)) == 403
    shown = gallery[0]["image"]["url"]
    assert str(mine.root) not in shown and fetch(shown) == 200

    # Delete my data: every file of A gone from disk at once, and the shown copies too
    root = mine.root
    message = a.predict(api_name="/delete_my_data")
    assert "Deleted all your data" in message and not root.exists() and fetch(shown) in (403, 404)
    assert workspace_of(app, b).captures.total() == 1  # B's data untouched
    fresh = a.predict(api_name="/model_info")
    assert fresh["repo"] is None and workspace_of(app, a).captures.total() == 0


def test_deleting_ones_data_leaves_anothers_identical_files_shown(app):
    """Gradio caches a shown file in a folder named by its bytes: two visitors who save the same face share that
    folder, and one deleting their data must not take away what the other is shown."""
    a, b = Client(app.url, verbose=False, download_files=False), Client(app.url, verbose=False, download_files=False)
    same = lfw("Hugo_Chavez", 4)
    shown = {}
    for name, client in (("a", a), ("b", b)):
        _, anchors = client.predict([same], api_name="/enroll_anchors")[:2]
        _, _, captures, _ = client.predict([same], "anchor", api_name="/capture")
        shown[name] = [anchors[0]["image"]["url"], captures[0]["image"]["url"]]
    assert all(fetch(url) == 200 for urls in shown.values() for url in urls)
    assert "Deleted all your data" in a.predict(api_name="/delete_my_data")
    assert [fetch(url) for url in shown["a"]] == [403, 403]
    assert [fetch(url) for url in shown["b"]] == [200, 200]
    b.predict(api_name="/delete_my_data")


def test_a_deleted_capture_or_anchor_is_no_longer_shown(app):
    client = Client(app.url, verbose=False, download_files=False)
    _, anchors = client.predict([lfw("Jean_Chretien", 2)], api_name="/enroll_anchors")[:2]
    _, _, captures, _ = client.predict([lfw("Jean_Chretien", 3)], "positive", api_name="/capture")
    shown = [anchors[0]["image"]["url"], captures[0]["image"]["url"]]
    assert [fetch(url) for url in shown] == [200, 200]
    client.predict(api_name="/clear_anchors")
    status = client.predict(captures[0]["caption"], "positive", api_name="/delete_capture")[0]
    assert status.startswith("Deleted") and [fetch(url) for url in shown] == [403, 403]
    client.predict(api_name="/delete_my_data")


def test_an_idle_visitors_workspace_expires(tmp_path):
    from space.testing import running_app

    with running_app(tmp_path, limits=Limits(anonymous_ttl_s=3)) as short:  # time to live 3 s, swept every second
        client = Client(short.url, verbose=False, download_files=False)
        _, _, gallery, _ = client.predict([lfw("Colin_Powell", 1)], "anchor", api_name="/capture")
        workspace = workspace_of(short, client)
        root = workspace.root
        assert root.is_dir() and workspace.captures.total() == 1 and fetch(gallery[0]["image"]["url"]) == 200
        deadline = time.monotonic() + 60
        while root.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not root.exists() and workspace_of(short, client) is None
        assert fetch(gallery[0]["image"]["url"]) in (403, 404)


def test_eight_visitors_at_once_each_see_their_own(app, tmp_path):
    """A minute of mixed work by eight visitors (verify, capture, anchors, one training run): no errors, and each
    visitor's counts are exactly what that visitor saved."""
    duration = 60.0
    clients = [Client(app.url, verbose=False) for _ in range(8)]
    people = ["Colin_Powell", "Tony_Blair", "George_W_Bush", "Donald_Rumsfeld", "Gerhard_Schroeder", "Ariel_Sharon",
              "Hugo_Chavez", "Jean_Chretien"]
    saved, enrolled = [0] * 8, [0] * 8
    errors: list[str] = []
    stop_at = time.monotonic() + duration

    def visitor(i: int) -> None:
        client, person, n = clients[i], people[i], 0
        try:
            if i == 0:  # one visitor trains once on their captures, while the others work
                client.predict([lfw(person, k) for k in (1, 2, 3)], "anchor", api_name="/capture")
                client.predict([lfw(person, k) for k in (4, 5, 6)], "positive", api_name="/capture")
                client.predict([lfw(p, 1) for p in people[1:4]], "negative", api_name="/capture")
                saved[i] += 9
                client.predict("local", "dlib_resnet", 1, api_name="/train")
            while time.monotonic() < stop_at:
                n += 1
                step = n % 3
                if step == 0:
                    client.predict(lfw(person, 1), lfw(person, 2), 0.5, api_name="/verify")
                elif step == 1:
                    client.predict([lfw(person, 1 + n % 5)], "positive", api_name="/capture")
                    saved[i] += 1
                else:
                    client.predict([lfw(person, 2)], lfw(person, 3), 0.5, 0.5, api_name="/verify_anchors")
                    enrolled[i] = 1  # the same anchor every time: enrolled once
        except Exception as exc:  # noqa: BLE001 - collected and reported by the test
            errors.append(f"visitor {i}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=visitor, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=duration + 600)
    assert not errors, errors
    for i, client in enumerate(clients):
        workspace = workspace_of(app, client)
        assert workspace.captures.total() == saved[i], f"visitor {i}"
        assert len(workspace.anchor_files()) == enrolled[i], f"visitor {i}"
        assert len(workspace.run_ids()) == (1 if i == 0 else 0)


def test_limits_give_clear_messages_through_the_api(tmp_path):
    from PIL import Image

    from space.testing import running_app

    limits = Limits(captures=3, files_per_request=2, pixels=300 * 300, upload_bytes=200_000)
    big = tmp_path / "big.png"
    Image.new("RGB", (400, 400)).save(big)
    heavy = tmp_path / "heavy.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 300, 3), np.uint8)).save(heavy)  # ~270 kB
    with running_app(tmp_path / "app", limits=limits) as small:
        client = Client(small.url, verbose=False)
        faces = [lfw("Colin_Powell", n) for n in (1, 2, 3)]
        assert "3 files in one request: at most 2" in app_error(lambda: client.predict(faces, "anchor",
                                                                                          api_name="/capture"))
        client.predict(faces[:2], "anchor", api_name="/capture")
        assert "limit is 3" in app_error(lambda: client.predict(faces[1:], "anchor", api_name="/capture"))
        assert "400 x 400 pixels" in app_error(lambda: client.predict(handle_file(str(big)), faces[0], 0.5,
                                                                          api_name="/verify"))
        with pytest.raises(Exception, match="(?i)too large|413|exceed"):  # Gradio refuses the upload itself
            client.predict(handle_file(str(heavy)), faces[0], 0.5, api_name="/verify")
        assert workspace_of(small, client).captures.total() == 2
        assert client.predict(faces[0], faces[1], 0.5, api_name="/verify")[-1]["is_match"]  # still working

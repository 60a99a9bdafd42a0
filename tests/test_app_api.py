"""The app through `gradio_client`, against the app launched here and the local Hub server (tests/hub_fixture.py)."""
from __future__ import annotations

import base64
import io
import json
import re
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from space.models import info_markdown
from tests.app_helpers import app_error, lfw, workspace_of
from tests.conftest import lfw_image, needs_lfw

pytestmark = needs_lfw

ENDPOINTS = {"/verify", "/verify_anchors", "/enroll_anchors", "/clear_anchors", "/capture", "/delete_capture",
             "/push_dataset", "/train", "/publish", "/model_info", "/load_model", "/delete_my_data"}
TRAIN_BACKBONE = "dlib_resnet"
NEGATIVE_PEOPLE = ("Tony_Blair", "Gerhard_Schroeder", "Donald_Rumsfeld", "Ariel_Sharon")



@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The app, launched in this process on a free port (captures and runs in a temp folder)."""
    from space.testing import running_app

    with running_app(tmp_path_factory.mktemp("app")) as running:
        yield running


@pytest.fixture
def client(app) -> Client:
    """A gradio_client connected to the app: a visitor of its own, with an empty workspace."""
    return Client(app.url, verbose=False)



@pytest.fixture
def token(hub_server, monkeypatch) -> str:
    """The local Hub server's write token, given to the app as HF_TOKEN (as one would locally)."""
    monkeypatch.setenv("HF_TOKEN", hub_server.token)
    return hub_server.token


def verify(client: Client, app, a, b) -> dict:
    """The details dict of /verify at the model's threshold."""
    threshold = app.models.default().threshold
    chips, verdict, score, elapsed, details = client.predict(a, b, threshold, api_name="/verify")
    shown = chip_images(chips)
    assert len(shown) == 2 and all(chip.shape == (150, 150, 3) for chip in shown)
    assert details["score"] == pytest.approx(score, abs=1e-4) and elapsed > 0
    assert ("✔ Match" in verdict) == details["is_match"]
    return details


def chip_images(html: str) -> list[np.ndarray]:
    """The aligned chips a /verify answer shows inline (JPEG data URLs), decoded."""
    found = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', html)
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")) for data in found]


def test_the_chips_shown_are_the_aligned_faces_and_no_file(client, app):
    a, b = lfw("Colin_Powell", 1), lfw("Tony_Blair", 1)
    chips, *_ = client.predict(a, b, app.models.default().threshold, api_name="/verify")
    verifier = app.models.default()
    for shown, image in zip(chip_images(chips), (lfw_image("Colin_Powell", 1), lfw_image("Tony_Blair", 1))):
        aligned = verifier.detect(image).chip.astype(np.float32)
        assert np.abs(shown.astype(np.float32) - aligned).mean() < 4  # the same chip, up to JPEG's loss
    assert "/file=" not in chips and 'alt="Aligned face 1"' in chips


def test_verify_reads_only_images_uploaded_to_the_app(app):
    """/verify skips Gradio's preprocessing of its images: a request naming a file on the server (here an LFW face)
    instead of uploading it must still be refused, while the same face uploaded is verified; and so for the page's
    Verify, which skips the queue too (one POST)."""
    config = httpx.get(f"{app.url}config").json()
    fn_index = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "verify")
    button = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == "verify-button")
    page_index = next(d["id"] for d in config["dependencies"] if [button, "click"] in d["targets"] and d["backend_fn"])
    face = lfw_image("Colin_Powell", 1)

    def posted(http: httpx.Client, image: dict) -> httpx.Response:
        """The page's Verify, as the browser sends it: outside the queue, the answer in the response."""
        return http.post("/run/predict", json={"data": [image, image, 0.5], "fn_index": page_index,
                                               "session_hash": uuid.uuid4().hex, "event_data": None,
                                               "trigger_id": None})

    def completed(http: httpx.Client, image: dict) -> dict:
        session = uuid.uuid4().hex
        http.post("/queue/join", json={"data": [image, image, 0.5], "fn_index": fn_index, "session_hash": session,
                                       "event_data": None, "trigger_id": None}).raise_for_status()
        with http.stream("GET", f"/queue/data?session_hash={session}") as events:
            messages = (json.loads(line[5:]) for line in events.iter_lines() if line.startswith("data:"))
            return next(message for message in messages if message.get("msg") == "process_completed")

    with httpx.Client(base_url=f"{app.url}gradio_api", timeout=120) as http:
        with face.open("rb") as handle:
            uploaded = http.post("/upload", files=[("files", (face.name, handle))]).json()[0]
        meta = {"orig_name": face.name, "meta": {"_type": "gradio.FileData"}}
        answer = completed(http, {"path": uploaded, **meta})
        refused = completed(http, {"path": str(face), **meta})
        page_answer, page_refused = posted(http, {"path": uploaded, **meta}), posted(http, {"path": str(face), **meta})
    assert answer["success"] is True and answer["output"]["data"][4]["is_match"]
    assert refused["success"] is False and "data" not in refused["output"]
    assert page_answer.status_code == 200 and page_answer.json()["data"][4]["is_match"]
    assert page_refused.status_code == 500 and "data" not in page_refused.json()


def test_every_action_is_a_named_endpoint(client):
    assert ENDPOINTS <= set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])


def test_genuine_pair_matches_and_impostor_does_not(client, app):
    genuine = verify(client, app, lfw("Colin_Powell", 1), lfw("Colin_Powell", 2))
    impostor = verify(client, app, lfw("Colin_Powell", 1), lfw("Tony_Blair", 1))
    assert genuine["is_match"] and not impostor["is_match"]
    assert genuine["score"] > impostor["score"]
    assert genuine["threshold"] == pytest.approx(app.models.default().threshold)


def test_probe_against_anchors(client, app):
    anchors = [lfw("Colin_Powell", n) for n in (1, 2, 3)]
    threshold = app.models.default().threshold
    verdict, table, details = client.predict(anchors, lfw("Colin_Powell", 4), threshold, 0.5,
                                             api_name="/verify_anchors")
    assert details["is_match"] and details["anchors"] == 3 and len(table["data"]) == 3
    assert [row[0] for row in table["data"]] == [f"Colin_Powell_{n:04d}.jpg" for n in (1, 2, 3)]
    _, _, impostor = client.predict(None, lfw("Tony_Blair", 1), threshold, 0.5, api_name="/verify_anchors")
    assert not impostor["is_match"] and impostor["detections"] < 2 and impostor["anchors"] == 3
    line, gallery, _ = client.predict(anchors[:1], api_name="/enroll_anchors")  # enrolled already: kept once
    assert "**3** anchor(s)" in line and len(gallery) == 3
    line, gallery = client.predict(api_name="/clear_anchors")
    assert "No anchors" in line and gallery == [] and workspace_of(app, client).anchor_files() == []


def test_capture_saves_face_crops(client, app):
    status, counts, gallery, _ = client.predict([lfw("Colin_Powell", 1), lfw("Colin_Powell", 2)], "anchor",
                                                api_name="/capture")
    store = workspace_of(app, client).captures
    files = store.files("anchor")
    assert len(files) == 2 and "Saved 2 anchor" in status and "**anchor**: 2" in counts and len(gallery) == 2
    assert all(Image.open(f).size == (250, 250) for f in files)
    client.predict(files[0].relative_to(store.root).as_posix(), "anchor", api_name="/delete_capture")
    assert store.counts() == {"anchor": 1, "positive": 0, "negative": 0}


def fill_dataset(client: Client) -> None:
    """Capture 4 anchors and 4 positives of Colin Powell and 8 negatives of others, through /capture."""
    client.predict([lfw("Colin_Powell", n) for n in (1, 2, 3, 4)], "anchor", api_name="/capture")
    client.predict([lfw("Colin_Powell", n) for n in (5, 6, 7, 8)], "positive", api_name="/capture")
    client.predict([lfw(p, n) for p in NEGATIVE_PEOPLE for n in (1, 2)], "negative", api_name="/capture")


def test_push_dataset_train_publish_and_switch(client, app, token, hub_repo_id):
    import hub_tools

    fill_dataset(client)
    dataset_repo, model_repo = hub_repo_id, hub_repo_id + "-model"
    message = client.predict(dataset_repo, True, api_name="/push_dataset")
    assert dataset_repo in message
    faces = hub_tools.load_faces(dataset_repo, token=token)
    assert len(faces) == 16 and sorted(set(faces["label"])) == [0, 1, 2]

    metrics, roc, threshold, run_id = client.predict(dataset_repo, TRAIN_BACKBONE, 2, api_name="/train")
    assert Path(roc).is_file() and 0 < threshold < 1 and "auc" in metrics

    message, info, slider = client.predict(run_id, model_repo, False, api_name="/publish")
    assert model_repo in message and info["repo"] == model_repo and slider == pytest.approx(threshold, abs=1e-3)
    published = client.predict(api_name="/model_info")
    assert published["repo"] == model_repo
    assert "validation pairs of held-out images" in published["metrics_measured_on"]
    view2 = published["benchmarks"]["LFW View 2"]
    [context] = view2["rows"]  # the backbone's row only: context, not this model
    assert "backbone" in context["measured"] and "not this fine-tuned model" in view2["note"]
    summary = info_markdown(published)  # the Model tab's words
    assert "you alone" in summary and "validation pairs of held-out images" in summary
    assert context["measured"] in summary
    assert workspace_of(app, client).model.repo == model_repo
    *_, details = client.predict(lfw("Colin_Powell", 9), lfw("Colin_Powell", 10), slider, api_name="/verify")
    assert details["threshold"] == pytest.approx(threshold, abs=1e-4)
    info, _ = client.predict("", "", api_name="/load_model")  # back to the app's default
    assert info["repo"] is None and workspace_of(app, client).model is None


def blank_image(path: Path) -> str:
    """A grey picture without a face."""
    Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(path)
    return str(path)


def two_faces(path: Path) -> str:
    """Two LFW faces side by side in one picture."""
    left, right = (np.asarray(Image.open(lfw_image(*who))) for who in (("Colin_Powell", 1), ("Tony_Blair", 1)))
    Image.fromarray(np.concatenate([left, right], axis=1)).save(path)
    return str(path)



def test_errors_are_readable_and_the_app_keeps_working(client, app, tmp_path, hub_server, monkeypatch):
    face = lfw("Colin_Powell", 1)
    no_face = handle_file(blank_image(tmp_path / "blank.png"))
    assert "no face" in app_error(lambda: client.predict(no_face, face, 0.5, api_name="/verify"))

    *_, verdict, _, _, several = client.predict(handle_file(two_faces(tmp_path / "two.jpg")), face, 0.5,
                                                api_name="/verify")
    assert f"⚠ {several['warnings'][0]}" in verdict  # shown under the verdict: a toast needs Gradio's queue
    assert len(several["warnings"]) == 1 and several["faces"][0]["faces_found"] >= 2
    assert several["warnings"][0].startswith("image 1: ") and "faces found; used the largest" in several["warnings"][0]

    (tmp_path / "notes.jpg").write_text("not an image")
    unreadable = handle_file(str(tmp_path / "notes.jpg"))
    assert "not an image that can be read" in app_error(lambda: client.predict(unreadable, face, 0.5,
                                                                                   api_name="/verify"))
    monkeypatch.setenv("HF_TOKEN", hub_server.token)
    assert "capture set is empty" in app_error(lambda: client.predict("facereg/x", True, api_name="/push_dataset"))
    assert "not a dataset repo id" in app_error(lambda: client.predict("/etc", "dlib_resnet", 1, api_name="/train"))
    assert "not a dataset repo id" in app_error(lambda: client.predict("../data", "dlib_resnet", 1,
                                                                          api_name="/train"))

    client.predict([face], "anchor", api_name="/capture")
    monkeypatch.delenv("HF_TOKEN")
    assert "No usable Hugging Face token" in app_error(lambda: client.predict("facereg/x", True,
                                                                                 api_name="/push_dataset"))
    monkeypatch.setenv("HF_TOKEN", hub_server.token)
    missing = app_error(lambda: client.predict("facereg/does-not-exist", "", api_name="/load_model"))
    assert "not found" in missing and hub_server.token not in missing
    assert workspace_of(app, client).model is None  # the old model still serves

    client.predict([face], "positive", api_name="/capture")
    no_negatives = app_error(lambda: client.predict("local", "dlib_resnet", 1, api_name="/train"))
    assert "no negative images" in no_negatives
    assert "Traceback" not in no_negatives + missing

    assert verify(client, app, lfw("Colin_Powell", 1), lfw("Colin_Powell", 2))["is_match"]

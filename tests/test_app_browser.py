"""The app in a real browser: Debian's chromium driven by Playwright, with an LFW face as the fake webcam.

Screenshots of every tab go to test-artifacts/ (gitignored) at the repository root.
"""
from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, lfw_image, needs_lfw

pytestmark = needs_lfw

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO_ROOT / "test-artifacts"
TIMEOUT_MS = 90_000


def fake_webcam(face: Path, out: Path) -> Path:
    """A 2 s, 640 x 480 Y4M video of one still face, for --use-file-for-fake-video-capture."""
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-loop", "1", "-i", str(face), "-t", "2", "-r", "10",
         "-vf", "scale=400:400,pad=640:480:120:40", "-pix_fmt", "yuv420p", str(out)],
        check=True,
    )
    return out


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The app, launched in this process on a free port."""
    from space.testing import running_app

    with running_app(tmp_path_factory.mktemp("browser-app")) as running:
        running.models.default()  # load the model before the browser's first request
        yield running


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Debian chromium whose webcam shows Colin Powell (no browser download, no network)."""
    from playwright.sync_api import sync_playwright

    video = fake_webcam(lfw_image("Colin_Powell", 1), tmp_path_factory.mktemp("webcam") / "face.y4m")
    args = ["--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={video}", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, app):
    """A fresh page on the app, in a browser context of its own."""
    page = new_page(browser, app)
    yield page
    page.context.close()


def screenshot(page, name: str) -> Path:
    """Save a full-page screenshot under test-artifacts/ and print where."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def open_webcam(container) -> None:
    """Switch an image input to its webcam and grant access (the fake UI accepts)."""
    source = container.locator("button[aria-label='Capture from camera']")
    if source.count():
        source.click()
    container.get_by_text("Click to Access Webcam").click()
    container.locator("video:visible").wait_for()
    # A capture before the fake camera delivers frames yields no picture: wait until the video plays.
    container.page.wait_for_function(
        "() => [...document.querySelectorAll('video')].some(v => v.readyState >= 2 && v.videoWidth > 0)"
    )


def field(page, elem_id: str) -> str:
    """What a Number field shows (its input's text)."""
    return page.locator(f"#{elem_id} input").input_value()


def test_verify_from_webcam_shows_the_verdict(page):
    # Before any result the score and time fields are empty, not a score of 0 (set by the page's load events).
    page.wait_for_function("['score', 'elapsed'].every(id => document.querySelector(`#${id} input`).value === '')")
    face1 = page.locator("#face1")
    open_webcam(face1)
    face1.locator("button[aria-label='capture photo']").click()
    face1.locator("img:visible").first.wait_for()
    page.locator("#face2 input[type=file]").set_input_files(str(lfw_image("Colin_Powell", 2)))
    page.locator("#face2 img:visible").first.wait_for()
    posted = []  # a Verify skips Gradio's queue: the event is posted and its answer read from the response
    page.on("request", lambda request: posted.append(request.url) if request.method == "POST" else None)
    page.locator("#verify-button").click()
    page.wait_for_function("document.querySelector('#verdict').innerText.includes('atch')")
    assert re.search(r"\bMatch\b", page.inner_text("#verdict")) and "No match" not in page.inner_text("#verdict")
    assert any("/gradio_api/run/" in url for url in posted), posted
    assert not any("/queue/join" in url for url in posted), posted
    page.wait_for_function("document.querySelector('#score input').value !== ''")
    assert 0.5 < float(field(page, "score")) <= 1 and float(field(page, "elapsed")) > 0
    chips = page.locator("#chips img")
    assert chips.count() == 2  # the aligned faces, shown inline: both decoded by the browser
    assert all(chips.nth(i).evaluate("img => img.complete && img.naturalWidth") == 150 for i in range(2))
    screenshot(page, "1-verify")
    # Each tab says in one line what it is for (a new visitor has read nothing)
    guides = {"Verify": "same person", "Anchors": "Enrol a few photos", "Capture": "photos of you",
              "Train and publish": "Fine-tune the model"}
    assert guides["Verify"] in page.locator(".guide:visible").first.inner_text()
    for tab, name in (("Anchors", "2-anchors"), ("Capture", "3-capture-tab"), ("Train and publish", "4-train"),
                      ("Model", "5-model")):
        page.get_by_role("tab", name=tab).click()
        if tab in guides:
            page.wait_for_function(f"[...document.querySelectorAll('.guide')].some(g => g.offsetParent && "
                                   f"g.innerText.includes('{guides[tab]}'))")
        if tab == "Model":
            page.wait_for_function("document.body.innerText.includes('backbone')")
            page.wait_for_function("document.querySelector('#model-summary').innerText.includes('How good it is')")
        if tab == "Train and publish":
            assert field(page, "tuned") == ""  # nothing trained yet
        screenshot(page, name)


def test_a_new_face_clears_the_verdict_and_a_failed_verify_says_so(page, tmp_path):
    import cv2
    import numpy as np

    page.locator("#face1 input[type=file]").set_input_files(str(lfw_image("Colin_Powell", 1)))
    page.locator("#face2 input[type=file]").set_input_files(str(lfw_image("Colin_Powell", 2)))
    page.locator("#face2 img:visible").first.wait_for()
    page.locator("#verify-button").click()
    page.wait_for_function("document.querySelector('#score input').value !== ''")
    assert "Match" in page.inner_text("#verdict") and page.locator("#chips img").count() == 2

    wall = tmp_path / "wall.png"  # a picture without a face
    cv2.imwrite(str(wall), np.full((200, 300, 3), 120, np.uint8))
    page.locator("#face2 input[type=file]").set_input_files(str(wall))
    # The earlier pair's result goes as soon as a face changes: it is not this pair's.
    page.wait_for_function("document.querySelector('#score input').value === ''")
    assert "Match" not in page.inner_text("#verdict") and page.locator("#chips img").count() == 0
    page.locator("#verify-button").click()
    page.wait_for_function("document.querySelector('#verdict').innerText.includes('Not verified')")
    assert "no face found" in page.inner_text("#verdict")  # the reason, where the verdict would be
    assert field(page, "score") == "" and page.locator("#chips img").count() == 0
    screenshot(page, "1b-verify-failed")

    two = tmp_path / "two.jpg"  # a warning is shown under the verdict (a toast needs Gradio's queue, which Verify skips)
    cv2.imwrite(str(two), np.hstack([cv2.imread(str(lfw_image("Colin_Powell", 2))),
                                     cv2.imread(str(lfw_image("Tony_Blair", 1)))]))
    page.locator("#face2 input[type=file]").set_input_files(str(two))
    page.wait_for_function("!document.querySelector('#verdict').innerText.includes('Not verified')")
    page.locator("#verify-button").click()
    page.wait_for_function("document.querySelector('#score input').value !== ''")
    assert re.search(r"image 2: \d faces found; used the largest", page.inner_text("#verdict"))


def test_on_a_phone_the_two_faces_stay_side_by_side(browser, app):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(app.url)
    page.locator("#face1 input[type=file]").set_input_files(str(lfw_image("Colin_Powell", 1)))
    page.locator("#face2 input[type=file]").set_input_files(str(lfw_image("Colin_Powell", 2)))
    page.locator("#face2 img:visible").first.wait_for()
    page.locator("#verify-button").click()
    page.wait_for_function("document.querySelectorAll('#chips img').length === 2")
    first, second = (page.locator("#chips img").nth(i).bounding_box() for i in range(2))
    assert first["y"] == second["y"] and first["x"] + first["width"] <= second["x"]  # one row, not one under the other
    assert second["x"] + second["width"] <= 390  # and both on screen
    screenshot(page, "1c-verify-phone")
    context.close()


def positives(app) -> int:
    """Positive captures in all of the app's workspaces."""
    return sum(w.captures.counts()["positive"] for w in app.workspaces.all())


def test_automatic_capture_saves_faces_while_streaming(page, app):
    page.get_by_role("tab", name="Capture").click()
    page.get_by_role("button", name="Capture now").click()  # too soon: the camera is not streaming
    page.wait_for_function("[...document.querySelectorAll('.toast-body')].some(t => t.innerText.includes('camera'))")
    # The failure shows by the button, not as "Error" badges over the counts and the gallery
    assert "Error" not in page.inner_text("#capture-counts") and "Error" not in page.inner_text("#captures")
    page.locator("#category").get_by_text("positive").click()
    page.locator("#auto-capture input[type=checkbox]").check()
    camera = page.locator("#camera")
    open_webcam(camera)
    before = positives(app)
    camera.locator("button.capture-button").click()  # labelled "Record" while streaming
    deadline = time.monotonic() + 60
    while positives(app) < before + 3 and time.monotonic() < deadline:
        time.sleep(0.5)
    saved = positives(app)
    assert saved >= before + 3, "automatic capture saved fewer than 3 faces in 60 s"
    page.wait_for_function(
        "n => { const m = document.querySelector('#capture-counts').innerText.match(/positive: (\\d+)/);"
        " return m && Number(m[1]) >= n; }", arg=before + 3)
    assert page.locator("#captures img").count() >= 3
    # The note of what the app holds of this visitor follows the automatic captures (this visitor had none before).
    page.wait_for_function(
        "() => { const m = document.querySelector('#privacy-note').innerText.match(/(\\d+) captures?/);"
        " return m && Number(m[1]) >= 3; }")
    screenshot(page, "3-capture")


def new_page(browser, app):
    """A page in a browser context of its own: a separate visitor with its own cookies and session."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(app.url)
    page.wait_for_selector("#face1")
    return page


def upload_captures(page, category: str, files: list[Path]) -> None:
    """Add pictures to a capture category through the Capture tab's upload box, and wait for the counts."""
    page.locator("#category").get_by_text(category).click()
    page.locator("#capture-uploads input[type=file]").set_input_files([str(f) for f in files])
    page.locator("#capture-add").click()
    page.wait_for_function(
        f"document.querySelector('#capture-status').innerText.includes('Saved {len(files)} {category}')")


def workspace_count(app) -> dict[str, int]:
    """Captures per workspace owner (session workspaces have owner None)."""
    return {w.key: w.captures.total() for w in app.workspaces.all()}


def test_two_visitors_in_two_browsers_see_only_their_own(browser, app, hub_server, hub_repo_id, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", hub_server.token)  # running locally: publishing uses HF_TOKEN
    a, b = new_page(browser, app), new_page(browser, app)

    a.get_by_role("tab", name="Capture").click()
    upload_captures(a, "anchor", [lfw_image("Colin_Powell", n) for n in (1, 2, 3)])
    upload_captures(a, "positive", [lfw_image("Colin_Powell", n) for n in (4, 5, 6)])
    upload_captures(a, "negative", [lfw_image(p, 1) for p in ("Tony_Blair", "Ariel_Sharon", "Hugo_Chavez")])
    a.wait_for_function("document.querySelector('#capture-counts').innerText.includes('total 9')")
    shown = a.locator("#captures img").first.get_attribute("src")
    a.get_by_role("tab", name="Anchors").click()
    a.locator("#anchor-uploads input[type=file]").set_input_files(str(lfw_image("Colin_Powell", 7)))
    a.locator("#enroll").click()
    a.wait_for_function("document.querySelector('#anchors-count').innerText.includes('1 anchor')")
    a.get_by_role("tab", name="Train and publish").click()
    a.locator("#train-dataset textarea, #train-dataset input").first.fill("local")
    a.locator("#epochs input").fill("1")
    a.locator("#train-button").click()
    a.wait_for_function("(document.querySelector('#run-id textarea, #run-id input') || {}).value?.startsWith('run-')",
                        timeout=300_000)
    run_id = a.locator("#run-id textarea, #run-id input").first.input_value()
    a.locator("#model-repo textarea, #model-repo input").first.fill(hub_repo_id)
    a.locator("#publish-button").click()
    a.wait_for_function("document.querySelector('#publish-result').innerText.includes('Published')",
                        timeout=300_000)
    from huggingface_hub import HfApi

    assert "private" in a.inner_text("#publish-result")  # a model trained on one's faces: private unless unticked
    assert HfApi(token=hub_server.token).repo_info(hub_repo_id).private
    a.get_by_role("tab", name="Model").click()
    a.wait_for_function(f"document.querySelector('#model-info').innerText.includes('{hub_repo_id}')")
    screenshot(a, "6-visitor-a")

    # B, in another browser context, sees none of it
    b.reload()
    b.wait_for_selector("#face1")
    b.get_by_role("tab", name="Capture").click()
    b.wait_for_function("document.querySelector('#capture-counts').innerText.includes('total 0')")
    assert b.locator("#captures img").count() == 0
    b.get_by_role("tab", name="Anchors").click()
    b.wait_for_function("document.querySelector('#anchors-count').innerText.includes('No anchors')")
    assert b.locator("#anchors img").count() == 0
    b.get_by_role("tab", name="Train and publish").click()
    assert b.locator("#run-id textarea, #run-id input").first.input_value() == ""
    b.locator("#train-dataset textarea, #train-dataset input").first.fill("local")
    b.locator("#train-button").click()
    b.get_by_text("Your capture set is empty").first.wait_for()
    b.locator("#model-repo textarea, #model-repo input").first.fill(hub_repo_id + "-b")
    b.locator("#publish-button").click()
    b.get_by_text("no trained model with that run id").first.wait_for()
    b.get_by_role("tab", name="Model").click()
    b.wait_for_function("document.querySelector('#model-info').innerText.includes('embedded default')")
    assert hub_repo_id not in b.inner_text("#model-info") and run_id not in b.content()
    assert "Error" not in b.inner_text("#model-info")  # B's failed publish is shown on its own tab only
    # A model that cannot be loaded: said on the load line; the summary still names the model that serves B
    b.locator("#load-repo textarea, #load-repo input").first.fill(hub_repo_id + "-missing")
    b.get_by_role("button", name="Load this model").click()
    b.wait_for_function("document.querySelector('#load-status').innerText.includes('Not loaded')")
    assert "not found" in " ".join(b.locator(".toast-body").all_inner_texts())
    assert "embedded default" in b.inner_text("#model-summary") and "Error" not in b.inner_text("#model-summary")
    screenshot(b, "7-visitor-b")
    a_workspace = next(w for w in app.workspaces.all() if w.captures.total() == 9)
    assert str(a_workspace.root) not in shown and shown.split("/")[-2] != a_workspace.root.name
    assert b.request.get(shown).status == 200  # a copy under a name derived from a secret seed and the bytes

    # A closes the tab: A's workspace is deleted from disk, and what the gallery showed is no longer served
    root = a_workspace.root
    a.context.close()
    deadline = time.monotonic() + 60
    while root.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not root.exists() and a_workspace not in app.workspaces.all()
    assert b.request.get(shown).status in (403, 404)
    b.context.close()

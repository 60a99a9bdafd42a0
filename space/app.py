"""The FaceReg Gradio app: five tabs whose every action is also a named API endpoint.

Run locally with `python -m space`; on a Hugging Face Space this file is the `app_file` and runs as a script.
"""
from __future__ import annotations

import os
import sys
from typing import Any
from pathlib import Path

if __package__ in (None, ""):  # run as a script (a Space runs `python space/app.py`): make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import space  # noqa: E402,F401  (applies FACEREG_HUB_ENDPOINT before gradio imports huggingface_hub)
import gradio as gr  # noqa: E402

from space.actions import Actions  # noqa: E402
from space.capture import CATEGORIES  # noqa: E402
from space.components import WEBCAM, face_image  # noqa: E402
from space.models import Models, info_markdown  # noqa: E402
from space.state import on_space  # noqa: E402
from space.workspace import Workspaces  # noqa: E402

BACKBONE_CHOICES = ("dlib_resnet", "classic")  # trainer.networks.BACKBONES, without importing TensorFlow here
INFERENCE = {"concurrency_id": "inference", "concurrency_limit": 4}
# /verify handlers only decode their images and wait for the model's inference workers (trainer.serving), which take
# the waiting requests in turn: many may wait there, so that Gradio's queue never holds a decoded request back.
VERIFY = {"concurrency_id": "verify", "concurrency_limit": 16}
# The page's Verify skips Gradio's queue: the browser posts the event and reads the answer from the response, one
# request instead of a queue join and its event stream, which cost the 2 cores more than they had to spare under 8
# visitors (docs/results-log.md, "The app under load"). Outside the queue Gradio's page shows no error message, so that
# event shows a failure as its verdict (Actions.verify_on_page). API clients call /verify, in the queue, whose errors
# raise in gradio_client as before. FACEREG_VERIFY_QUEUE=1 puts the page's event back in the queue.
VERIFY_QUEUED = os.environ.get("FACEREG_VERIFY_QUEUE", "0").strip() == "1"
PRIVATE = {"api_visibility": "private"}
# Browser-side handlers (no request): the verdict while a Verify runs, and after one failed (the error message, shown
# at the top right for a while, says why).
VERIFYING = "() => '⏳ Verifying...'"
NOT_VERIFIED = "() => '✘ **Not verified**: see the error message at the top right.'"
NOT_ANSWERED = "() => '✘ **Not verified**: the server could not answer; please try again.'"
LOADING = "() => '⏳ Loading the model...'"
NOT_LOADED = "() => '✘ **Not loaded**: see the error message at the top right. The model above still serves you.'"
# What each tab is for, in one line at its top: the app is a public demo, and its first visitors have read nothing.
GUIDES = {
    "verify": "Are these two faces the same person? Put a photo in each box (upload it, or the camera icon for your "
              "webcam) and press **Verify**: a score at or above the threshold is a match.",
    "anchors": "Enrol a few photos of one person (the anchors), then check a new photo (the probe) against all of "
               "them: it is verified when enough anchors score above the detection threshold.",
    "capture": "Your own dataset, to personalise the model: **anchor** and **positive** are photos of you, "
               "**negative** photos of other people. Capture from the webcam or add uploads; only the face is kept. "
               "Push the set to the Hub to keep it beyond this session.",
    "train": "Fine-tune the model on your captures (dataset `local`; a few faces of each category) or on a dataset "
             "on the Hub, check its validation metrics and tuned threshold, then publish it to your Hub account. "
             "Verify and Anchors use your trained model once it is published.",
}
CACHE_SWEEP_S = 300  # how often Gradio's copies of uploads and shown images are checked for age
# Gradio's queue looks for new events every millisecond whenever none is waiting, waking the event loop (and taking
# the GIL from the inference workers) a thousand times a second. Every 5 ms instead.
QUEUE_POLL_S = float(os.environ.get("FACEREG_QUEUE_POLL_MS", "5")) / 1000


def _selected_caption(evt: gr.SelectData) -> str | None:
    """The caption (category/file) of the gallery image just selected."""
    value = evt.value if isinstance(evt.value, dict) else {}
    return value.get("caption")


def _status_event(button: gr.Button, status: gr.Markdown, fn: Any, inputs: list, outputs: list, running: str,
                  failed: str, **kwargs: Any) -> Any:
    """Wire a button whose status line says what is going on, in the browser: `running` at once, then what `fn` puts
    there, or `failed` on a failure. Gradio's own badges are hidden: its "Error" badge was drawn over the text of the
    last good result (a verdict, the summary of the model that still serves the visitor)."""
    button.click(None, None, status, js=running, **PRIVATE)
    event = button.click(fn, inputs, outputs, show_progress="hidden", **kwargs)
    event.failure(None, None, status, js=failed, **PRIVATE)
    return event


def _verify_event(button: gr.Button, verdict: gr.Markdown, faces: list, fn: Any, inputs: list, result: list,
                  failed: str = NOT_VERIFIED, **kwargs: Any) -> Any:
    """Wire a Verify button whose verdict (one of the result's fields) is its status line. A result belongs to the
    faces it was computed on: a new face clears it, so that a failed Verify does not leave the previous faces'
    verdict on screen."""
    event = _status_event(button, verdict, fn, inputs, result, VERIFYING, failed, **kwargs)
    clear = f"() => Array({len(result)}).fill(null)"  # a Number shows its placeholder again, not 0
    for face in faces:
        face.change(None, None, result, js=clear, **PRIVATE)
    return event


def _token_note() -> str:
    """Where Hub actions get their token when the app runs outside a Space (never the token itself)."""
    from huggingface_hub import get_token

    found = "a token is available" if get_token() else "**no token found**: pushing and publishing will ask for one"
    return f"Running locally: Hub actions use `HF_TOKEN` or your `hf auth login` ({found})."


def build_app(models: Models | None = None, workspaces: Workspaces | None = None) -> gr.Blocks:
    """Build the Blocks app; nothing heavy happens here (the model loads on first use)."""
    models = Models() if models is None else models
    workspaces = Workspaces() if workspaces is None else workspaces
    actions = Actions(models, workspaces)
    hint = models.threshold_hint() or 0.5
    ttl = int(workspaces.limits.anonymous_ttl_s)

    with gr.Blocks(title="FaceReg", delete_cache=(min(CACHE_SWEEP_S, max(ttl // 2, 1)), max(ttl, 1))) as demo:
        with gr.Row(equal_height=True):
            gr.Markdown("# FaceReg\nFace verification with a Siamese network.", elem_id="title")
            if on_space():
                gr.LoginButton(scale=0)
            else:
                gr.Markdown(_token_note(), elem_id="token-note")
        with gr.Row(equal_height=True):
            privacy = gr.Markdown(elem_id="privacy-note")
            forget_button = gr.Button("Delete my data", variant="stop", scale=0, elem_id="delete-my-data")

        with gr.Tabs():
            with gr.Tab("Verify", id="verify"):
                gr.Markdown(GUIDES["verify"], elem_classes="guide")
                with gr.Row():
                    image1 = face_image("Face 1", height=300, elem_id="face1")
                    image2 = face_image("Face 2", height=300, elem_id="face2")
                threshold = gr.Slider(0, 1, value=hint, step=0.001, label="Threshold",
                                      info="Starts at the model's tuned threshold")
                verify_button = gr.Button("Verify", variant="primary", elem_id="verify-button")
                verify_api = gr.Button(visible=False)  # /verify's trigger: API clients only
                with gr.Row():
                    chips = gr.HTML(elem_id="chips", js_on_load=None)
                    with gr.Column():
                        verdict = gr.Markdown(elem_id="verdict")
                        score = gr.Number(label="Score", interactive=False, precision=4, elem_id="score",
                                          placeholder="shown after Verify")
                        elapsed = gr.Number(label="Time taken (ms)", interactive=False, precision=0, elem_id="elapsed",
                                            placeholder="shown after Verify")
                with gr.Accordion("Details", open=False):
                    details = gr.JSON(show_label=False)

            with gr.Tab("Anchors", id="anchors"):
                gr.Markdown(GUIDES["anchors"], elem_classes="guide")
                with gr.Row():
                    with gr.Column():
                        anchor_uploads = gr.File(label="Anchor images", file_count="multiple", file_types=["image"],
                                                 elem_id="anchor-uploads")
                        enroll_button = gr.Button("Enrol these images", elem_id="enroll")
                        anchor_cam = face_image("Add an anchor", height=240)
                        add_anchor = gr.Button("Add to anchors")
                        anchors_line = gr.Markdown(elem_id="anchors-count")
                        anchors_gallery = gr.Gallery(label="Enrolled anchors", columns=5, height=200,
                                                     allow_preview=False, elem_id="anchors")
                        clear_anchors = gr.Button("Clear anchors")
                    with gr.Column():
                        probe = face_image("Probe", height=240)
                        detection = gr.Slider(0, 1, value=hint, step=0.001, label="Detection threshold",
                                              info="An anchor counts when its score is above this")
                        verification = gr.Slider(0, 1, value=0.5, step=0.01, label="Verification threshold",
                                                 info="Share of anchors that must count")
                        anchors_button = gr.Button("Verify against anchors", variant="primary")
                anchors_verdict = gr.Markdown()
                anchor_scores = gr.Dataframe(headers=["anchor", "score", "counts"], interactive=False,
                                             label="Per-anchor scores")
                with gr.Accordion("Details", open=False):
                    anchors_details = gr.JSON(show_label=False)

            with gr.Tab("Capture", id="capture"):
                gr.Markdown(GUIDES["capture"], elem_classes="guide")
                with gr.Row():
                    with gr.Column():
                        category = gr.Radio(list(CATEGORIES), value="anchor", label="Category", elem_id="category")
                        camera = gr.Image(label="Camera (press record to stream)", sources=["webcam"], streaming=True,
                                          type="numpy", webcam_options=WEBCAM, height=300, elem_id="camera")
                        with gr.Row():
                            auto = gr.Checkbox(label="Automatic capture", elem_id="auto-capture")
                            every_ms = gr.Number(value=500, minimum=100, precision=0, label="Every (ms)")
                        capture_button = gr.Button("Capture now", variant="primary")
                        capture_status = gr.Markdown(elem_id="capture-status")
                        uploads = gr.File(label="Upload images (e.g. negatives)", file_count="multiple",
                                          file_types=["image"], elem_id="capture-uploads")
                        upload_button = gr.Button("Add uploads to the category", elem_id="capture-add")
                    with gr.Column():
                        counts = gr.Markdown(elem_id="capture-counts")
                        gallery = gr.Gallery(label="Captures of the category", columns=5, height=330,
                                             allow_preview=False, elem_id="captures")
                        selected = gr.Textbox(label="Selected", interactive=False)
                        delete_button = gr.Button("Delete selected", variant="stop")
                        dataset_repo = gr.Textbox(label="Dataset repo", placeholder="your-name/faces")
                        dataset_private = gr.Checkbox(value=True, label="Private")
                        push_button = gr.Button("Push to Hub", variant="primary")
                        push_result = gr.Markdown()

            with gr.Tab("Train and publish", id="train"):
                gr.Markdown(GUIDES["train"], elem_classes="guide")
                with gr.Row():
                    train_dataset = gr.Textbox(label="Dataset repo", elem_id="train-dataset",
                                               placeholder="your-name/faces, or 'local' for your captures")
                    backbone = gr.Dropdown(list(BACKBONE_CHOICES), value=BACKBONE_CHOICES[0], label="Backbone")
                    epochs = gr.Number(value=5, minimum=1, maximum=500, precision=0, label="Epochs", elem_id="epochs")
                train_button = gr.Button("Train", variant="primary", elem_id="train-button")
                with gr.Row():
                    metrics = gr.JSON(label="Metrics")
                    roc = gr.Image(label="ROC", interactive=False, height=300)
                    with gr.Column():
                        tuned = gr.Number(label="Tuned threshold", interactive=False, precision=4, elem_id="tuned",
                                          placeholder="shown after training")
                        run_id = gr.Textbox(label="Run", interactive=False, elem_id="run-id")
                with gr.Row():
                    model_repo = gr.Textbox(label="Model repo", placeholder="your-name/facereg", elem_id="model-repo")
                    # a model fitted on the visitor's faces: private unless unticked, as `trainer train --push-to`
                    model_private = gr.Checkbox(value=True, label="Private")
                publish_button = gr.Button("Publish", variant="primary", elem_id="publish-button")
                publish_result = gr.Markdown(elem_id="publish-result")

            with gr.Tab("Model", id="model"):
                model_summary = gr.Markdown(elem_id="model-summary")
                with gr.Row():
                    load_repo = gr.Textbox(label="Model repo (blank: the model the app started with)",
                                           elem_id="load-repo")
                    load_revision = gr.Textbox(label="Revision (blank: main)")
                with gr.Row():
                    load_button = gr.Button("Load this model")
                    refresh_button = gr.Button("Refresh")
                load_status = gr.Markdown(elem_id="load-status")
                model_info = gr.JSON(label="All details", elem_id="model-info")

        # preprocess=False: Gradio still checks that each image is one of its uploads, but skips the images'
        # preprocessing (a PIL header read and a thread hop each; `python -m benchmarks.app_latency` prints Gradio's
        # phases); the handler decodes the files itself, as it must anyway.
        verify_io = [image1, image2, threshold], [chips, verdict, score, elapsed, details]
        _verify_event(verify_button, verdict, [image1, image2], actions.verify_on_page, *verify_io,
                      failed=NOT_ANSWERED, preprocess=False, queue=VERIFY_QUEUED, **PRIVATE, **VERIFY)
        verify_api.click(actions.verify, *verify_io, api_name="verify", preprocess=False, **VERIFY)

        anchors_view = [anchors_line, anchors_gallery]
        enrolled = enroll_button.click(actions.enroll_anchors, anchor_uploads, [*anchors_view, anchor_uploads],
                            api_name="enroll_anchors", show_progress_on=anchors_line, **INFERENCE)
        added = add_anchor.click(actions.add_anchor, anchor_cam, anchors_view, show_progress_on=anchors_line,
                                 **PRIVATE, **INFERENCE)
        cleared = clear_anchors.click(actions.clear_anchors, None, anchors_view, api_name="clear_anchors")
        probed = _verify_event(anchors_button, anchors_verdict, [probe], actions.verify_anchors,
                               [anchor_uploads, probe, detection, verification],
                               [anchors_verdict, anchor_scores, anchors_details], api_name="verify_anchors",
                               **INFERENCE)
        probed.then(actions.anchors_view, None, anchors_view, **PRIVATE)

        overview = [counts, gallery]
        camera.stream(actions.capture_frame, [camera, category, auto, every_ms], [capture_status, *overview, privacy],
                      stream_every=0.2, time_limit=None, show_progress="hidden", concurrency_limit=2,
                      **PRIVATE)  # (trigger_mode="always_last" stops a webcam stream after one frame)
        captured = capture_button.click(actions.capture_now, [category], [capture_status, *overview],
                                        show_progress_on=capture_status, **PRIVATE)
        uploaded = upload_button.click(actions.capture, [uploads, category], [capture_status, *overview, uploads],
                            api_name="capture", show_progress_on=capture_status, **INFERENCE)
        category.change(actions.overview, category, overview, **PRIVATE)
        gallery.select(_selected_caption, None, selected, **PRIVATE)
        deleted = delete_button.click(actions.delete_capture, [selected, category], [capture_status, selected, *overview],
                            api_name="delete_capture", show_progress_on=capture_status)
        push_button.click(actions.push_dataset, [dataset_repo, dataset_private], push_result,
                          api_name="push_dataset").success(lambda repo: repo, dataset_repo, train_dataset, **PRIVATE)

        # Progress and failure show on one field of each action (show_progress_on): without it, Gradio draws its
        # progress, and on a failure an "Error" badge, over every output, the last good results and the counts among
        # them, and on other tabs where nothing went wrong (publish: the Model tab's info, the Verify tab's threshold).
        trained = train_button.click(actions.train, [train_dataset, backbone, epochs], [metrics, roc, tuned, run_id],
                           api_name="train", concurrency_id="train", concurrency_limit=1, show_progress_on=metrics)
        publish_button.click(actions.publish, [run_id, model_repo, model_private],
                             [publish_result, model_info, threshold], api_name="publish",
                             show_progress_on=publish_result).success(
            lambda t: t, threshold, detection, **PRIVATE)

        loaded = _status_event(load_button, load_status, actions.load_model, [load_repo, load_revision],
                               [model_info, threshold], LOADING, NOT_LOADED, api_name="load_model")
        loaded.success(lambda t: (t, ""), threshold, [detection, load_status], **PRIVATE)
        refresh_button.click(actions.model_info, None, model_info, api_name="model_info")
        model_info.change(info_markdown, model_info, model_summary, **PRIVATE)  # whichever event set the info

        forget_button.click(actions.delete_my_data, None, privacy, api_name="delete_my_data").then(
            actions.overview, category, overview, **PRIVATE).then(
            actions.anchors_view, None, anchors_view, **PRIVATE).then(
            lambda: (None, None, None, None), None, [metrics, roc, tuned, run_id], **PRIVATE).then(
            actions.model_info, None, model_info, **PRIVATE)
        for event in (enrolled, added, cleared, probed, captured, uploaded, deleted, trained):
            event.then(actions.privacy_note, None, privacy, **PRIVATE)

        demo.load(actions.overview, category, overview, **PRIVATE)
        demo.load(actions.anchors_view, None, anchors_view, **PRIVATE)
        demo.load(actions.privacy_note, None, privacy, **PRIVATE)
        # The thresholds start at the model's; the result fields start empty (Gradio draws an empty Number as 0,
        # which a visitor could read as a score, until a value or None is sent to it).
        demo.load(actions.model_info, None, model_info, **PRIVATE).success(
            lambda info: (info["threshold"],) * 2 + (None,) * 3, model_info,
            [threshold, detection, score, elapsed, tuned], **PRIVATE)
        demo.unload(actions.forget_session)
    demo.facereg_models, demo.facereg_workspaces = models, workspaces
    return demo


def launch(demo: gr.Blocks, **kwargs) -> None:
    """Launch the app: no folder of visitors' data is served; uploads are capped; expired workspaces are swept."""
    workspaces: Workspaces = demo.facereg_workspaces
    workspaces.start_sweeper(every_s=min(60.0, max(workspaces.limits.anonymous_ttl_s / 4, 1.0)))
    kwargs.setdefault("max_file_size", workspaces.limits.upload_bytes)
    demo.queue(default_concurrency_limit=2)
    queue = getattr(demo, "_queue", None)  # Gradio's own; its poll interval has no public setting
    if queue is not None and hasattr(queue, "sleep_when_free"):
        queue.sleep_when_free = QUEUE_POLL_S
    demo.launch(**kwargs)


if __name__ == "__main__":
    from space.__main__ import main

    main()

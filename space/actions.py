"""What each button (and each named API endpoint) does: thin calls into `trainer` and `hub_tools`.

No `from __future__ import annotations` here: Gradio reads the `gr.OAuthToken` / `gr.Request` hints at runtime.
"""
import re
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Optional

import gradio as gr

from space.capture import CATEGORIES, CaptureStore
from space.state import ModelHolder, ModelSource, fail, image_path, log, resolve_token, user_errors

RUN_ID = re.compile(r"^run-[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$")
GALLERY_LIMIT = 60


def verdict_markdown(is_match: bool, detail: str) -> str:
    """The verdict line shown in large type."""
    return f"## {'✔ Match' if is_match else '✘ No match'}\n{detail}"


class Actions:
    """The app's actions, bound to one model holder, one capture folder and one runs folder."""

    def __init__(self, holder: ModelHolder, store: CaptureStore, runs_dir: Path) -> None:
        self.holder = holder
        self.store = store
        self.runs_dir = runs_dir
        self._latest_frames: dict[str, Any] = {}
        self._last_auto: dict[str, float] = {}
        self._frames_lock = threading.Lock()

    # -- Verify --------------------------------------------------------------------------------------------------
    def verify(self, image1: Any, image2: Any, threshold: Optional[float]) -> tuple:
        """Two faces: aligned crops, verdict, score, elapsed ms and the full result."""
        image1, image2 = image_path(image1, "the first face"), image_path(image2, "the second face")
        with user_errors("Verification"):
            start = time.perf_counter()
            verifier = self.holder.get()  # its inference worker serves concurrent requests together
            result = verifier.batcher().verify(_contents(image1), _contents(image2), threshold=threshold,
                                               return_chips=True)
            elapsed_ms = 1000 * (time.perf_counter() - start)
        for warning in result["warnings"]:
            gr.Warning(warning)
        chips = result.pop("chips")
        detail = f"score **{result['score']:.3f}** vs threshold {result['threshold']:.3f}"
        result["elapsed_ms"] = elapsed_ms
        return chips[0], chips[1], verdict_markdown(result["is_match"], detail), result["score"], elapsed_ms, result

    # -- Anchors -------------------------------------------------------------------------------------------------
    def add_anchor(self, anchors: Optional[list], frame: Any) -> list:
        """Append a webcam/uploaded picture to the anchor files."""
        frame = image_path(frame, "a picture")
        folder = Path(tempfile.mkdtemp(prefix="facereg-anchor-"))
        with user_errors("Adding the anchor"):
            from PIL import Image

            from trainer import load_image

            path = folder / f"anchor-{uuid.uuid4().hex[:6]}.png"
            Image.fromarray(load_image(frame, name="webcam picture")).save(path)
        return [*(anchors or []), str(path)]

    def verify_anchors(
        self, anchors: Optional[list], probe: Any, detection_threshold: Optional[float], verification_threshold: float
    ) -> tuple:
        """A probe against every anchor: verdict, per-anchor scores and the full result."""
        if not anchors:
            raise fail("Enroll at least one anchor image first.", title="No anchors")
        probe = image_path(probe, "the probe face")
        paths = [a if isinstance(a, str) else getattr(a, "name", a) for a in anchors]
        with user_errors("Verification against anchors"):
            verifier = self.holder.get()
            result = verifier.batcher().call(  # on the inference worker, in turn with verifications
                verifier.verify_against_anchors, probe, paths, detection_threshold=detection_threshold,
                verification_threshold=verification_threshold,
            )
        for warning in result["warnings"] + result["skipped_anchors"]:
            gr.Warning(warning)
        for row in result["scores"]:
            row["anchor"] = Path(row["anchor"]).name
        rows = [[r["anchor"], round(r["score"], 4), r["score"] > result["detection_threshold"]] for r in result["scores"]]
        detail = (
            f"{result['detections']} of {result['anchors']} anchors above {result['detection_threshold']:.3f}: "
            f"verification **{result['verification']:.2f}** vs {result['verification_threshold']:.2f}"
        )
        return verdict_markdown(result["is_match"], detail), rows, result

    # -- Capture -------------------------------------------------------------------------------------------------
    def _save(self, image: Any, category: str, name: str) -> Path:
        with user_errors("Capture"):
            verifier = self.holder.get()
            saved = verifier.batcher().call(self.store.save_face, image, category,  # on the inference worker
                                            detector=verifier.config.detector, name=name)
        if saved.faces_found > 1:
            gr.Warning(f"{name}: {saved.faces_found} faces found; saved the largest")
        return saved.path

    def capture(self, files: Optional[list], category: str) -> tuple:
        """Save the face of each uploaded image under the category: status, counts, gallery."""
        if category not in CATEGORIES:
            raise fail(f"Choose a category: {', '.join(CATEGORIES)}.", title="Capture failed")
        if not files:
            raise fail("Add images first (upload them, or use the webcam above).", title="Nothing to capture")
        saved, problems = [], []
        for item in files:
            path = item if isinstance(item, str) else getattr(item, "name", item)
            try:
                saved.append(self._save(path, category, Path(str(path)).name))
            except gr.Error as exc:
                problems.append(exc.message)
        if not saved:
            raise fail(" ".join(problems), title="Capture failed")
        for problem in problems:
            gr.Warning(problem)
        status = f"Saved {len(saved)} {category} face(s)" + (f"; skipped {len(problems)}" if problems else "")
        return (status,) + self.overview(category)

    def capture_frame(self, frame: Any, category: str, auto: bool, every_ms: float, request: gr.Request) -> tuple:
        """A webcam stream frame: kept as the latest one; saved when automatic capture is due."""
        session = request.session_hash or "api"
        now = time.monotonic()
        with self._frames_lock:
            self._latest_frames[session] = frame
            due = auto and frame is not None and now - self._last_auto.get(session, 0.0) >= max(every_ms, 100) / 1000
            if due:
                self._last_auto[session] = now
        if not due:
            return gr.skip(), gr.skip(), gr.skip()
        try:
            path = self._save(frame, category, "webcam frame")
        except gr.Error as exc:  # no face in this frame: say so, keep streaming
            return f"Automatic capture: {exc.message}", gr.skip(), gr.skip()
        return (f"Automatic capture: saved {path.name} as {category}",) + self.overview(category)

    def capture_now(self, category: str, request: gr.Request) -> tuple:
        """Save the latest webcam frame of this session (the manual capture button)."""
        frame = self._latest_frames.get(request.session_hash or "api")
        if frame is None:
            raise fail("Start the camera first (click the record button under the webcam).", title="No frame yet")
        path = self._save(frame, category, "webcam frame")
        return (f"Saved {path.name} as {category}",) + self.overview(category)

    def forget_session(self, request: gr.Request) -> None:
        """Drop a closed session's latest frame."""
        with self._frames_lock:
            self._latest_frames.pop(request.session_hash, None)
            self._last_auto.pop(request.session_hash, None)

    def overview(self, category: str) -> tuple[str, list]:
        """Counts per category, and the newest captures of one category for the gallery."""
        counts = self.store.counts()
        line = " · ".join(f"**{c}**: {n}" for c, n in counts.items()) + f" · total {sum(counts.values())}"
        gallery = [(str(p), f"{p.parent.name}/{p.name}") for p in self.store.files(category)[:GALLERY_LIMIT]]
        return line, gallery

    def delete_capture(self, caption: Optional[str], category: str) -> tuple:
        """Delete the capture selected in the gallery."""
        if not caption:
            raise fail("Select an image in the gallery first.", title="Nothing selected")
        try:
            self.store.delete(self.store.root / caption)
        except ValueError as exc:
            raise fail(str(exc), title="Delete failed") from None
        return (f"Deleted {caption}", None) + self.overview(category)

    def push_dataset(
        self, repo_id: str, private: bool, oauth_token: gr.OAuthToken | None, progress: gr.Progress = gr.Progress()
    ) -> str:
        """Push the capture folder to a dataset repo; the repo's URL."""
        import hub_tools

        repo_id = (repo_id or "").strip()
        if not repo_id:
            raise fail("Enter a dataset repo id, such as your-name/faces.", title="No repo")
        if self.store.total() == 0:
            raise fail("The capture set is empty: capture or upload some faces first.", title="Nothing to push")
        token = resolve_token(oauth_token)
        with user_errors("Pushing the dataset", token):
            url = hub_tools.push_dataset(
                self.store.root, repo_id, private=bool(private), token=token, progress=lambda f, m: progress(f, desc=m)
            )
        return f"Pushed to [{url}]({url})"

    # -- Train and publish ---------------------------------------------------------------------------------------
    def train(
        self,
        dataset: str,
        backbone: str,
        epochs: float,
        oauth_token: gr.OAuthToken | None,
        progress: gr.Progress = gr.Progress(),
    ) -> tuple:
        """Train a model on a dataset repo (or the local capture folder): metrics, ROC plot, threshold, run id."""
        from trainer.train import train

        dataset = (dataset or "").strip()
        if not dataset:
            raise fail("Enter a dataset repo id (or 'local' for the capture folder).", title="No dataset")
        source = str(self.store.root) if dataset == "local" else dataset
        token = None if dataset == "local" else _optional_token(oauth_token)
        run_id = time.strftime("run-%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        output = self.runs_dir / run_id
        with user_errors("Training", *(t for t in [token] if t)):
            progress(0, desc="loading the dataset")
            result = train(source, backbone, int(epochs), output, token=token, verbose=0,
                           progress=lambda f, m: progress(f, desc=m))
        for problem in (result.no_face + result.corrupt)[:5]:
            gr.Warning(f"skipped {problem}")
        roc = result.output / "roc.png"
        return result.metrics, str(roc) if roc.is_file() else None, result.threshold, run_id

    def publish(
        self, run_id: str, repo_id: str, private: bool, oauth_token: gr.OAuthToken | None,
        progress: gr.Progress = gr.Progress(),
    ) -> tuple:
        """Push a trained model to a model repo and switch the app to it: URL, model info, new threshold."""
        import hub_tools

        run_id, repo_id = (run_id or "").strip(), (repo_id or "").strip()
        if not RUN_ID.match(run_id) or not (self.runs_dir / run_id / "facereg.json").is_file():
            raise fail("Train a model first: there is no trained model with that run id.", title="Nothing to publish")
        if not repo_id:
            raise fail("Enter a model repo id, such as your-name/facereg.", title="No repo")
        token = resolve_token(oauth_token)
        with user_errors("Publishing", token):
            progress(0.1, desc=f"uploading to {repo_id}")
            url = hub_tools.push_model(self.runs_dir / run_id, repo_id, private=bool(private), token=token)
            progress(0.7, desc="loading the published model")
            verifier = self.holder.switch(ModelSource(repo=repo_id), token=token)
        log.info("switched to %s", repo_id)
        return f"Published to [{url}]({url}); the app now uses it.", self.holder.info(), verifier.threshold

    # -- Model ---------------------------------------------------------------------------------------------------
    def model_info(self) -> dict:
        """The loaded model: source, revision, backbone, threshold, metrics (loads it on first use)."""
        with user_errors("Loading the model"):
            return self.holder.info()

    def threshold(self) -> float:
        """The loaded model's tuned threshold."""
        return self.model_info()["threshold"]

    def load_model(self, repo_id: str, revision: str, oauth_token: gr.OAuthToken | None) -> tuple:
        """Switch to a published model (blank repo: the one the app started with): model info and its threshold."""
        repo_id, revision = (repo_id or "").strip(), (revision or "").strip()
        token = _optional_token(oauth_token) if repo_id else None
        source = ModelSource(repo=repo_id, revision=revision or None) if repo_id else self.holder.initial_source
        with user_errors("Loading the model", *(t for t in [token] if t)):
            verifier = self.holder.switch(source, token=token)
        return self.holder.info(), verifier.threshold


def _contents(value: Any) -> Any:
    """An upload's bytes (so messages say "image 1", not a temp path); other values as they are."""
    if isinstance(value, (str, Path)) and Path(value).is_file():
        return Path(value).read_bytes()
    return value


def _optional_token(oauth_token: gr.OAuthToken | None) -> str | None:
    """A token when one is available (private repos need it), else None."""
    try:
        return resolve_token(oauth_token)
    except gr.Error:
        return None

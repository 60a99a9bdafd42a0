"""What each button (and each named API endpoint) does: thin calls into `trainer` and `hub_tools`, each on the
calling visitor's own workspace (space.workspace) and model (space.models).

No `from __future__ import annotations` here: Gradio reads the `gr.Request` / `gr.OAuthProfile` / `gr.OAuthToken`
hints at runtime and fills them in; they are not inputs of the API.
"""
import hashlib
import re
import time
from pathlib import Path
from typing import Any, Optional

import gradio as gr

from space.capture import CATEGORIES, CaptureStore
from space.components import chips_html
from space.models import Models
from space.state import fail, hub_token, image_path, log, secrets_of, user_errors
from space.workspace import MB, Workspace, Workspaces, forget_cached_copies

GALLERY_LIMIT = 60
RUN_BYTES = 40 * MB  # room made on disk before a training run (a dlib_resnet model folder is about 25 MB)
CAPTURE_BYTES = 60_000  # room made per face crop (a 250 x 250 JPEG is about 20 KB)
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
ENROLLED_SEPARATOR = "--"  # enrolled anchors are saved as <hash of the image>--<its name>.jpg


def verdict_markdown(is_match: bool, detail: str) -> str:
    """The verdict line shown in large type."""
    return f"## {'✔ Match' if is_match else '✘ No match'}\n{detail}"


def _path_of(item: Any) -> str:
    """The server path of an uploaded file value."""
    return item if isinstance(item, str) else getattr(item, "name", None) or getattr(item, "path", item)


def _repo_id(value: str, what: str, example: str) -> str:
    """A Hub repo id (user/name), never a path; gr.Error otherwise."""
    value = (value or "").strip()
    if not value:
        raise fail(f"Enter a {what} repo id, such as {example}.", title="No repo")
    if not REPO_ID.match(value) or ".." in value:
        raise fail(f"{value!r} is not a {what} repo id: use the form {example}.", title="Not a repo id")
    return value


def _display_name(path: Path) -> str:
    """An enrolled anchor's name as the visitor gave it."""
    return path.stem.split(ENROLLED_SEPARATOR, 1)[-1] + path.suffix


class Actions:
    """The app's actions, bound to the app's models and the visitors' workspaces."""

    def __init__(self, models: Models, workspaces: Workspaces) -> None:
        self.models = models
        self.workspaces = workspaces
        self.limits = workspaces.limits

    def _workspace(self, request: gr.Request, profile: Optional[gr.OAuthProfile]) -> Workspace:
        """The calling visitor's workspace."""
        with user_errors("Opening your workspace"):
            return self.workspaces.get(request, profile)

    def _verifier(self, workspace: Workspace, oauth_token: Optional[gr.OAuthToken]) -> Any:
        """The model serving this visitor (their own choice, else the app's default)."""
        token = hub_token(oauth_token, required=False, action="load a model") if workspace.model else None
        with user_errors("Loading the model", *secrets_of(token)):
            return self.models.for_visitor(workspace.model, token)

    def _check_image(self, value: Any, name: str) -> None:
        """QuotaError (as gr.Error) for an image over the size limits."""
        with user_errors("Reading the image"):
            if isinstance(value, (str, Path)) and Path(value).is_file():
                self.limits.check_image(value, name)
            elif hasattr(value, "shape") and len(value.shape) >= 2:
                self.limits.check_pixels(int(value.shape[1]), int(value.shape[0]), name)

    # -- Verify --------------------------------------------------------------------------------------------------
    def verify(
        self, image1: Any, image2: Any, threshold: Optional[float], request: gr.Request,
        profile: Optional[gr.OAuthProfile], oauth_token: Optional[gr.OAuthToken],
    ) -> tuple:
        """Two faces: the aligned crops (inline HTML), verdict, score, elapsed ms and the full result."""
        image1, image2 = image_path(image1, "the first face"), image_path(image2, "the second face")
        self._check_image(image1, "image 1")
        self._check_image(image2, "image 2")
        workspace = self._workspace(request, profile)
        start = time.perf_counter()
        verifier = self._verifier(workspace, oauth_token)
        with user_errors("Verification"):  # the model's inference worker serves concurrent requests together
            result = verifier.batcher().verify(_contents(image1), _contents(image2), threshold=threshold,
                                               return_chips=True)
        elapsed_ms = 1000 * (time.perf_counter() - start)
        chips = result.pop("chips")
        detail = f"score **{result['score']:.3f}** vs threshold {result['threshold']:.3f}"
        # Under the verdict, not in a toast: outside Gradio's queue (a browser's Verify) a gr.Warning reaches no one.
        detail += "".join(f"  \n⚠ {warning}" for warning in result["warnings"])
        result["elapsed_ms"] = elapsed_ms
        chips = chips_html(chips, ("Aligned face 1", "Aligned face 2"))
        return chips, verdict_markdown(result["is_match"], detail), result["score"], elapsed_ms, result

    def verify_on_page(
        self, image1: Any, image2: Any, threshold: Optional[float], request: gr.Request,
        profile: Optional[gr.OAuthProfile], oauth_token: Optional[gr.OAuthToken],
    ) -> tuple:
        """`verify` for the page's Verify button, outside Gradio's queue: a failure is the verdict (the page shows no
        error message for such an event) and clears the other results."""
        try:
            return self.verify(image1, image2, threshold, request, profile, oauth_token)
        except gr.Error as error:
            return None, f"## ✘ Not verified\n**{error.title}**: {error.message}", None, None, None

    # -- Anchors -------------------------------------------------------------------------------------------------
    def _enroll(self, workspace: Workspace, images: list, names: list[str]) -> tuple[int, list[str]]:
        """Save the face of each image as an enrolled anchor (the same image twice is kept once)."""
        anchors = workspace.enrolled.root / "anchor"
        stems = [_enrolled_stem(image, name, workspace.root.name) for image, name in zip(images, names)]
        fresh = [(image, name, stem) for image, name, stem in zip(images, names, stems)
                 if not (anchors / f"{stem}.jpg").is_file()]
        workspace.check_anchor_room(len(fresh))
        self.workspaces.make_room(CAPTURE_BYTES * len(fresh), keep=workspace)
        saved, problems = 0, []
        for image, name, stem in fresh:
            try:
                with user_errors("Enrolling"):
                    self._check_image(image, name)
                    self._detect_and_save(workspace.enrolled, image, "anchor", name, stem)
                saved += 1
            except gr.Error as exc:
                problems.append(exc.message)
        return saved, problems

    def anchors_view(self, request: gr.Request, profile: Optional[gr.OAuthProfile]) -> tuple[str, list]:
        """The enrolled anchors: a count line and a gallery."""
        workspace = self._workspace(request, profile)
        files = workspace.anchor_files()
        line = f"**{len(files)}** anchor(s) enrolled" if files else "No anchors enrolled yet."
        return line, [(str(p), _display_name(p)) for p in files[:GALLERY_LIMIT]]

    def enroll_anchors(self, files: Optional[list], request: gr.Request, profile: Optional[gr.OAuthProfile]) -> tuple:
        """Enrol uploaded images as anchors: count line, gallery, and the cleared upload box."""
        if not files:
            raise fail("Add anchor images first (upload them, or use the webcam).", title="Nothing to enrol")
        workspace = self._workspace(request, profile)
        paths = [_path_of(f) for f in files]
        with user_errors("Enrolling"):
            saved, problems = self._enroll(workspace, paths, [Path(p).name for p in paths])
        for problem in problems:
            gr.Warning(problem)
        return (*self.anchors_view(request, profile), None)

    def add_anchor(self, frame: Any, request: gr.Request, profile: Optional[gr.OAuthProfile]) -> tuple:
        """Enrol a webcam or uploaded picture as an anchor."""
        frame = image_path(frame, "a picture")
        workspace = self._workspace(request, profile)
        with user_errors("Enrolling"):
            saved, problems = self._enroll(workspace, [frame], ["webcam picture"])
        if not saved:
            raise fail(" ".join(problems), title="Enrolling failed")
        return self.anchors_view(request, profile)

    def clear_anchors(self, request: gr.Request, profile: Optional[gr.OAuthProfile]) -> tuple:
        """Remove every enrolled anchor."""
        workspace = self._workspace(request, profile)
        for path in workspace.anchor_files():
            workspace.enrolled.delete(path, before=forget_cached_copies)
        workspace.anchor_embeddings = None
        return self.anchors_view(request, profile)

    def verify_anchors(
        self, anchors: Optional[list], probe: Any, detection_threshold: Optional[float], verification_threshold: float,
        request: gr.Request, profile: Optional[gr.OAuthProfile], oauth_token: Optional[gr.OAuthToken],
    ) -> tuple:
        """A probe against every enrolled anchor (anchors given here are enrolled first): verdict, scores, result."""
        workspace = self._workspace(request, profile)
        if anchors:
            paths = [_path_of(a) for a in anchors]
            with user_errors("Enrolling"):
                _, problems = self._enroll(workspace, paths, [Path(p).name for p in paths])
            for problem in problems:
                gr.Warning(problem)
        files = workspace.anchor_files()
        if not files:
            raise fail("Enrol at least one anchor image first.", title="No anchors")
        probe = image_path(probe, "the probe face")
        self._check_image(probe, "the probe")
        verifier = self._verifier(workspace, oauth_token)
        with user_errors("Verification against anchors"):
            key = (workspace.model, tuple(p.name for p in files))  # the model by its commit, not its address
            cached = workspace.anchor_embeddings
            anchor_set = (cached[1] if cached and cached[0] == key  # on the inference worker, in turn with others
                          else verifier.batcher().call(verifier.enroll, [str(p) for p in files]))
            workspace.anchor_embeddings = (key, anchor_set)
            result = verifier.batcher().call(
                verifier.verify_against_anchors, probe, anchor_set, detection_threshold=detection_threshold,
                verification_threshold=verification_threshold)
        for warning in result["warnings"] + result["skipped_anchors"]:
            gr.Warning(warning)
        for row in result["scores"]:
            row["anchor"] = _display_name(Path(row["anchor"]))
        rows = [[r["anchor"], round(r["score"], 4), r["score"] > result["detection_threshold"]] for r in result["scores"]]
        detail = (
            f"{result['detections']} of {result['anchors']} anchors above {result['detection_threshold']:.3f}: "
            f"verification **{result['verification']:.2f}** vs {result['verification_threshold']:.2f}"
        )
        return verdict_markdown(result["is_match"], detail), rows, result

    # -- Capture -------------------------------------------------------------------------------------------------
    def _detect_and_save(self, store: CaptureStore, image: Any, category: str, name: str,
                         stem: Optional[str] = None) -> Any:
        """Detect the face and save its crop, on the default model's inference worker (in turn with verifications)."""
        verifier = self.models.default()
        return verifier.batcher().call(store.save_face, image, category, detector=verifier.config.detector,
                                       name=name, stem=stem)

    def _save(self, workspace: Workspace, image: Any, category: str, name: str) -> Path:
        with user_errors("Capture"):
            self._check_image(image, name)
            workspace.check_capture_room(1)
            self.workspaces.make_room(CAPTURE_BYTES, keep=workspace)
            saved = self._detect_and_save(workspace.captures, image, category, name)
        workspace.remove_leftovers()
        if saved.faces_found > 1:
            gr.Warning(f"{name}: {saved.faces_found} faces found; saved the largest")
        if saved.low_confidence:
            gr.Warning(f"{name}: face found with low confidence; check the capture in the gallery")
        return saved.path

    def capture(self, files: Optional[list], category: str, request: gr.Request,
                profile: Optional[gr.OAuthProfile]) -> tuple:
        """Save the face of each uploaded image under the category: status, counts, gallery, cleared uploads."""
        if category not in CATEGORIES:
            raise fail(f"Choose a category: {', '.join(CATEGORIES)}.", title="Capture failed")
        if not files:
            raise fail("Add images first (upload them, or use the webcam above).", title="Nothing to capture")
        workspace = self._workspace(request, profile)
        paths = [_path_of(f) for f in files]
        with user_errors("Capture"):
            workspace.check_capture_room(len(paths))
        saved, problems = [], []
        for path in paths:
            try:
                saved.append(self._save(workspace, path, category, Path(str(path)).name))
            except gr.Error as exc:
                problems.append(exc.message)
        if not saved:
            raise fail(" ".join(problems), title="Capture failed")
        for problem in problems:
            gr.Warning(problem)
        status = f"Saved {len(saved)} {category} face(s)" + (f"; skipped {len(problems)}" if problems else "")
        return (status, *self._overview(workspace, category), None)

    def capture_frame(self, frame: Any, category: str, auto: bool, every_ms: float, request: gr.Request,
                      profile: Optional[gr.OAuthProfile]) -> tuple:
        """A webcam stream frame: kept as the visitor's latest one; saved when automatic capture is due (then the
        counts, gallery and privacy note follow)."""
        workspace = self._workspace(request, profile)
        now = time.monotonic()
        with workspace.lock:
            workspace.frame = frame
            due = auto and frame is not None and now - workspace.last_auto >= max(every_ms or 0, 100) / 1000
            if due:
                workspace.last_auto = now
        if not due:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        try:
            path = self._save(workspace, frame, category, "webcam frame")
        except gr.Error as exc:  # no face in this frame, or a limit: say so, keep streaming
            return f"Automatic capture: {exc.message}", gr.skip(), gr.skip(), gr.skip()
        return (f"Automatic capture: saved {path.name} as {category}", *self._overview(workspace, category),
                self._privacy_note(workspace))

    def capture_now(self, category: str, request: gr.Request, profile: Optional[gr.OAuthProfile]) -> tuple:
        """Save the visitor's latest webcam frame (the manual capture button)."""
        workspace = self._workspace(request, profile)
        frame = workspace.frame
        if frame is None:
            raise fail("Start the camera first (click the record button under the webcam).", title="No frame yet")
        path = self._save(workspace, frame, category, "webcam frame")
        return (f"Saved {path.name} as {category}", *self._overview(workspace, category))

    def forget_session(self, request: gr.Request) -> None:
        """A browser tab closed: delete its workspace (a signed-in user's lives on until its time to live)."""
        self.workspaces.end_session(request)

    def overview(self, category: str, request: gr.Request, profile: Optional[gr.OAuthProfile]) -> tuple[str, list]:
        """Counts per category, and the newest captures of one category for the gallery."""
        return self._overview(self._workspace(request, profile), category)

    @staticmethod
    def _overview(workspace: Workspace, category: str) -> tuple[str, list]:
        counts = workspace.captures.counts()
        line = " · ".join(f"**{c}**: {n}" for c, n in counts.items()) + f" · total {sum(counts.values())}"
        files = workspace.captures.files(category if category in CATEGORIES else None)[:GALLERY_LIMIT]
        return line, [(str(p), f"{p.parent.name}/{p.name}") for p in files]

    def delete_capture(self, caption: Optional[str], category: str, request: gr.Request,
                       profile: Optional[gr.OAuthProfile]) -> tuple:
        """Delete one of the visitor's captures, named as the gallery captions it (category/file)."""
        if not caption:
            raise fail("Select an image in the gallery first.", title="Nothing selected")
        workspace = self._workspace(request, profile)
        try:
            found = workspace.captures.delete(workspace.captures.root / caption, before=forget_cached_copies)
        except ValueError as exc:
            raise fail(str(exc), title="Delete failed") from None
        if not found:
            raise fail(f"{caption} is not one of your captures.", title="Delete failed")
        return (f"Deleted {caption}", None, *self._overview(workspace, category))

    def push_dataset(
        self, repo_id: str, private: bool, request: gr.Request, profile: Optional[gr.OAuthProfile],
        oauth_token: Optional[gr.OAuthToken], progress: gr.Progress = gr.Progress(),
    ) -> str:
        """Push the visitor's captures to a dataset repo (as the visitor); the repo's URL."""
        import hub_tools

        repo_id = _repo_id(repo_id, "dataset", "your-name/faces")
        token = hub_token(oauth_token, required=True, action="push a dataset")
        workspace = self._workspace(request, profile)
        if workspace.captures.total() == 0:
            raise fail("Your capture set is empty: capture or upload some faces first.", title="Nothing to push")
        with user_errors("Pushing the dataset", *secrets_of(token)), workspace.in_use():
            url = hub_tools.push_dataset(workspace.captures.root, repo_id, private=bool(private), token=token,
                                         progress=lambda f, m: progress(f, desc=m))
        return f"Pushed to [{url}]({url})"

    # -- Delete my data ------------------------------------------------------------------------------------------
    def delete_my_data(self, request: gr.Request, profile: Optional[gr.OAuthProfile]) -> str:
        """Delete everything of the visitor at once: captures, anchors, runs, latest frame, model choice."""
        workspace = self.workspaces.find(request, profile)
        if workspace is None:
            return "Nothing to delete: this app holds no data of yours."
        self.workspaces.delete(workspace)
        return "Deleted all your data held by this app: captures, anchors, trained models, webcam frame, model choice."

    def privacy_note(self, request: gr.Request, profile: Optional[gr.OAuthProfile]) -> str:
        """What the app holds of this visitor, and until when."""
        return self._privacy_note(self._workspace(request, profile))

    @staticmethod
    def _privacy_note(workspace: Workspace) -> str:
        counts = workspace.captures.total(), len(workspace.anchor_files()), len(workspace.run_ids())
        hours = workspace.ttl_s / 3600
        lifetime = (f"{hours:g} h after your last action" if hours >= 1 else f"{workspace.ttl_s / 60:g} min after your "
                    "last action")
        who = (f"signed in as **{workspace.owner}**: kept until {lifetime}" if workspace.signed_in
               else f"this browser tab only: deleted when you close it, or {lifetime}")
        return (f"Your data here: {_count(counts[0], 'capture')}, {_count(counts[1], 'anchor')}, "
                f"{_count(counts[2], 'trained model')}; {who}. Nobody else can see it.")

    # -- Train and publish ---------------------------------------------------------------------------------------
    def train(
        self, dataset: str, backbone: str, epochs: float, request: gr.Request, profile: Optional[gr.OAuthProfile],
        oauth_token: Optional[gr.OAuthToken], progress: gr.Progress = gr.Progress(),
    ) -> tuple:
        """Train on a dataset repo, or 'local' (the visitor's captures): metrics, ROC plot, threshold, run id."""
        from trainer.train import train

        dataset = (dataset or "").strip()
        workspace = self._workspace(request, profile)
        if dataset == "local":
            source, token = workspace.captures.root, None
            if workspace.captures.total() == 0:
                raise fail("Your capture set is empty: capture faces first, or enter a dataset repo id.",
                           title="Nothing to train on")
        else:
            source = _repo_id(dataset, "dataset", "your-name/faces (or 'local' for your captures)")
            token = hub_token(oauth_token, required=False, action="read a private dataset")
        with user_errors("Training", *secrets_of(token)), workspace.in_use():
            run_id, output = workspace.new_run_dir()
            self.workspaces.make_room(RUN_BYTES, keep=workspace)
            progress(0, desc="loading the dataset")
            result = train(source, backbone, int(epochs), output, token=token, verbose=0,
                           cache_dir=workspace.face_cache, allow_folder=dataset == "local",
                           record_dataset=dataset != "local",
                           progress=lambda f, m: progress(f, desc=m))
        for problem in (result.no_face + result.corrupt)[:5]:
            gr.Warning(f"skipped {problem}")
        roc = result.output / "roc.png"
        return result.metrics, str(roc) if roc.is_file() else None, result.threshold, run_id

    def publish(
        self, run_id: str, repo_id: str, private: bool, request: gr.Request, profile: Optional[gr.OAuthProfile],
        oauth_token: Optional[gr.OAuthToken], progress: gr.Progress = gr.Progress(),
    ) -> tuple:
        """Push one of the visitor's trained models to a model repo and use it for them: URL, model info, threshold."""
        import hub_tools

        workspace = self._workspace(request, profile)
        folder = workspace.run_dir(run_id)
        if folder is None:
            raise fail("Train a model first: you have no trained model with that run id.", title="Nothing to publish")
        repo_id = _repo_id(repo_id, "model", "your-name/facereg")
        token = hub_token(oauth_token, required=True, action="publish a model")
        with user_errors("Publishing", *secrets_of(token)), workspace.in_use():
            progress(0.1, desc=f"uploading to {repo_id}")
            url = hub_tools.push_model(folder, repo_id, private=bool(private), token=token)
            progress(0.7, desc="loading the published model")
            choice = self.models.resolve(repo_id, None, token)
            verifier = self.models.load(choice, token, folder=folder)
        workspace.model, workspace.anchor_embeddings = choice, None
        log.info("a visitor switched to their published model")
        visibility = "private: only you and those you share it with can use it" if private else "public"
        return (f"Published to [{url}]({url}) ({visibility}); the app now uses it for you.",
                self.models.info(choice, verifier), verifier.threshold)

    # -- Model ---------------------------------------------------------------------------------------------------
    def model_info(self, request: gr.Request, profile: Optional[gr.OAuthProfile],
                   oauth_token: Optional[gr.OAuthToken]) -> dict:
        """The model serving this visitor: source, revision, backbone, threshold, metrics (loads it on first use)."""
        workspace = self._workspace(request, profile)
        verifier = self._verifier(workspace, oauth_token)
        return self.models.info(workspace.model, verifier)

    def load_model(self, repo_id: str, revision: str, request: gr.Request, profile: Optional[gr.OAuthProfile],
                   oauth_token: Optional[gr.OAuthToken]) -> tuple:
        """Use a published model for this visitor (blank repo: the app's default): model info and its threshold."""
        workspace = self._workspace(request, profile)
        if not (repo_id or "").strip():
            workspace.model, workspace.anchor_embeddings = None, None
            verifier = self._verifier(workspace, oauth_token)
            return self.models.info(None, verifier), verifier.threshold
        repo_id = _repo_id(repo_id, "model", "your-name/facereg")
        token = hub_token(oauth_token, required=False, action="load a private model")
        with user_errors("Loading the model", *secrets_of(token)):
            choice = self.models.resolve(repo_id, (revision or "").strip() or None, token)
            verifier = self.models.load(choice, token)
        workspace.model, workspace.anchor_embeddings = choice, None
        return self.models.info(choice, verifier), verifier.threshold


def _count(n: int, noun: str) -> str:
    """'1 capture', '2 captures'."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _enrolled_stem(image: Any, name: str, salt: str) -> str:
    """The file stem of an enrolled anchor: a hash of the image (so enrolling it again keeps one) and its name.

    The hash is salted with something unique to the workspace, so two visitors' anchors never share a name (see
    `forget_cached_copies`). The image is read once.
    """
    digest = hashlib.sha256(salt.encode())
    if isinstance(image, (str, Path)) and Path(image).is_file():
        digest.update(Path(image).read_bytes())
    elif hasattr(image, "tobytes"):
        digest.update(image.tobytes())
    else:
        digest.update(repr(image).encode())
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).stem)[:60] or "anchor"
    return f"{digest.hexdigest()[:16]}{ENROLLED_SEPARATOR}{safe}"


def _contents(value: Any) -> Any:
    """An upload's bytes (so messages say "image 1", not a temp path); other values as they are."""
    if isinstance(value, (str, Path)) and Path(value).is_file():
        return Path(value).read_bytes()
    return value

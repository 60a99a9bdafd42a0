"""Face verification with a FaceReg Siamese model: embed faces once, score pairs on batches."""
from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from .errors import FaceRegError, NoFaceError
from .faces import DETECT_BATCH, Face, FaceChip, face_locations_batch, pick_face
from .images import load_image
from .model_io import ModelConfig, load_model_dir
from .networks import backbone_spec, bfloat16_copy, siamese_parts

if TYPE_CHECKING:
    from .inference_process import ProcessBatcher
    from .serving import BatchedVerifier

BATCH_SIZE = 32
_BATCHER_LOCK = threading.Lock()


def _name_of(source: Any, default: str) -> str:
    return str(source) if isinstance(source, (str, Path)) else default


@dataclass
class AnchorSet:
    """Enrolled anchor faces: their embeddings, computed once, and what was skipped."""

    embeddings: np.ndarray
    names: list[str]
    faces: list[Face]
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)


class Verifier:
    """A loaded FaceReg model: detect, align, embed and score faces through compiled TensorFlow functions."""

    def __init__(self, model, config: ModelConfig, precision: str | None = None) -> None:
        """`precision` of the embedding: "float32" or "bfloat16" (a bfloat16 copy of the network, made now: train
        `model` afterwards and this Verifier still embeds with the weights it had); default `inference_precision`'s
        choice for this backbone."""
        import tensorflow as tf

        from .serving import PRECISIONS, inference_precision, side_by_side

        self.model = model
        self.config = config
        self.spec = backbone_spec(config.backbone)
        self.precision = precision or inference_precision(self.spec.bfloat16)
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r}: use one of {', '.join(PRECISIONS)}")
        network, head = siamese_parts(model)
        if self.precision == "bfloat16":
            network = bfloat16_copy(network)
        distance = model.get_layer("l1_distance")
        size, dim = self.spec.input_size, self.spec.embedding_dim

        def embedding(x):
            return tf.cast(network(x, training=False), tf.float32)

        # Sized by `configure_cpu` (as the app and the CLI run TensorFlow), a batch is embedded in two independent
        # calls, plain and mirrored (or, without flip, its two halves), which TensorFlow's inter-op threads run side
        # by side, each on half the CPUs; otherwise in one call on all of them.
        two_calls = side_by_side()

        @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)])
        def embed(x):
            if two_calls and config.flip:
                return (embedding(x) + embedding(tf.reverse(x, axis=[2]))) / 2
            if two_calls:  # a single chip goes in one call: TensorFlow's convolutions fail on an empty half on
                half = tf.shape(x)[0] // 2  # some CPUs (an AVX-512 machine: "input depth must be evenly divisible")
                return tf.cond(
                    half > 0,
                    lambda: tf.concat([embedding(x[:half]), embedding(x[half:])], 0),
                    lambda: embedding(x),
                )
            if not config.flip:
                return embedding(x)
            both = embedding(tf.concat([x, tf.reverse(x, axis=[2])], axis=0))
            plain, mirrored = tf.split(both, 2, axis=0)
            return (plain + mirrored) / 2

        @tf.function(input_signature=[tf.TensorSpec([None, dim], tf.float32)] * 2)
        def score(a, b):
            return tf.reshape(head(distance([a, b])), [-1])

        self._embed_fn: Callable = embed
        self._score_fn: Callable = score
        self._batcher: BatchedVerifier | None = None

    @classmethod
    def from_dir(cls, path: str | Path) -> "Verifier":
        """Load a FaceReg model folder (model.keras + facereg.json)."""
        return cls(*load_model_dir(path))

    @classmethod
    def from_hub(cls, repo_id: str, revision: str | None = None, token: str | None = None) -> "Verifier":
        """Download a published FaceReg model through hub_tools and load it."""
        from hub_tools import pull_model

        verifier = cls.from_dir(pull_model(repo_id, revision=revision, token=token))
        verifier.config.source = repo_id if revision is None else f"{repo_id}@{revision}"
        return verifier

    @classmethod
    def default(cls) -> "Verifier":
        """The embedded default model (pretrained backbone + the head trained on LFW View 1), loaded once."""
        return _default_verifier()

    def batcher(self) -> "BatchedVerifier | ProcessBatcher":
        """This model's inference worker (made on first use, one per Verifier): verify from many threads at once,
        concurrent requests sharing detection and embedding calls (see trainer.serving), or what `use_batcher` set."""
        from .serving import BatchedVerifier

        with _BATCHER_LOCK:
            if self._batcher is None:
                self._batcher = BatchedVerifier(self)
            return self._batcher

    def use_batcher(self, batcher: "ProcessBatcher") -> None:
        """Answer `batcher()`'s callers with `batcher` instead: a `trainer.inference_process.ProcessBatcher`, whose
        verifications run in a process of its own."""
        with _BATCHER_LOCK:
            self._batcher = batcher

    @property
    def threshold(self) -> float:
        """The model's tuned decision threshold."""
        return float(self.config.threshold)

    def detect(self, image: Any, name: str = "image", on_no_face: str = "error", on_multiple: str = "largest") -> FaceChip:
        """Decode an image and return its face (the largest, by default), aligned to this backbone's chip size."""
        return self.detect_many([image], [name], on_no_face, on_multiple)[0]

    def detect_many(
        self,
        images: Sequence[Any],
        names: Sequence[str] | None = None,
        on_no_face: str = "error",
        on_multiple: str = "largest",
    ) -> list[FaceChip]:
        """Decode images and return the face of each, aligned; same-size images are detected in one call.

        Images are decoded DETECT_BATCH at a time, so a long list never holds more than that many in memory.
        No face raises NoFaceError naming the image, or with on_no_face="center" aligns a central crop
        (faces_found=0).
        """
        names = names or [f"image {i + 1}" for i in range(len(images))]
        names = [_name_of(image, name) for image, name in zip(images, names)]
        found: list[FaceChip] = []
        for start in range(0, len(images), DETECT_BATCH):
            batch = list(zip(images[start : start + DETECT_BATCH], names[start : start + DETECT_BATCH]))
            pixels = [load_image(image, name=name) for image, name in batch]
            faces = face_locations_batch(pixels, self.config.detector)
            found += [
                pick_face(image, image_faces, self.spec.input_size, name, on_multiple, on_no_face)
                for image, image_faces, (_, name) in zip(pixels, faces, batch)
            ]
        return found

    def embed_chips(self, chips: np.ndarray) -> np.ndarray:
        """Embeddings of a batch of aligned uint8 chips (N x S x S x 3), in batches of 32."""
        chips = np.asarray(chips)
        if len(chips) == 0:
            return np.zeros((0, self.spec.embedding_dim), np.float32)
        parts = [
            self._embed_fn(self.spec.prepare(chips[i : i + BATCH_SIZE])).numpy()
            for i in range(0, len(chips), BATCH_SIZE)
        ]
        return np.concatenate(parts)

    def embed(self, images: Sequence[Any], on_no_face: str = "error") -> tuple[np.ndarray, list[FaceChip]]:
        """Detect, align and embed a list of images: embeddings (N x D) and the face found in each."""
        found = self.detect_many(images, on_no_face=on_no_face)
        return self.embed_chips(np.stack([f.chip for f in found]) if found else np.zeros(0)), found

    def score(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Similarity scores in [0, 1] of paired rows of two embedding batches."""
        a = np.asarray(a, np.float32).reshape(-1, self.spec.embedding_dim)
        b = np.asarray(b, np.float32).reshape(-1, self.spec.embedding_dim)
        return self._score_fn(a, b).numpy()

    def verify(self, img1: Any, img2: Any, threshold: float | None = None, return_chips: bool = False) -> dict:
        """Are these two faces the same person? The original design's contract plus boxes and timing."""
        result = self.verify_many([(img1, img2)], threshold, return_chips)[0]
        if isinstance(result, Exception):
            raise result
        return result

    def verify_many(
        self,
        pairs: Sequence[tuple[Any, Any]],
        threshold: float | None | Sequence[float | None] = None,
        return_chips: bool = False,
    ) -> list[dict | FaceRegError]:
        """Verify several pairs in one pass: one detection pass over all images (same-size images share MTCNN
        calls), one embedding call for all faces, one head call for all pairs.

        Each entry is that pair's result, as `verify` returns it, or the FaceRegError it raised (unreadable image,
        no face): one bad pair does not fail the others. `threshold` is one value or one per pair.
        """
        thresholds = list(threshold) if isinstance(threshold, Sequence) else [threshold] * len(pairs)
        requests: list[PairRequest | FaceRegError] = []
        for (img1, img2), cut in zip(pairs, thresholds):
            try:
                requests.append(PairRequest.decode(img1, img2, cut, return_chips))
            except FaceRegError as exc:
                requests.append(exc)
        results: list[dict | FaceRegError] = list(requests)  # type: ignore[arg-type]
        ready = [i for i, request in enumerate(requests) if isinstance(request, PairRequest)]
        for i, result in zip(ready, self.verify_decoded([requests[i] for i in ready])):  # type: ignore[misc]
            results[i] = result
        return results

    def verify_decoded(self, requests: Sequence["PairRequest"]) -> list[dict | FaceRegError]:
        """`verify_many` on pairs already decoded (PairRequest.decode): the batched core behind every verification."""
        start = time.perf_counter()
        pixels = [image for request in requests for image in request.pixels]
        faces = face_locations_batch(pixels, self.config.detector) if pixels else []
        found: list[list[FaceChip] | FaceRegError] = []
        for i, request in enumerate(requests):
            try:
                found.append([
                    pick_face(image, image_faces, self.spec.input_size, name)
                    for image, image_faces, name in zip(request.pixels, faces[2 * i : 2 * i + 2], request.names)
                ])
            except FaceRegError as exc:
                found.append(exc)
        detected = time.perf_counter()
        ok = [i for i, f in enumerate(found) if not isinstance(f, FaceRegError)]
        chips = [chip.chip for i in ok for chip in found[i]]  # type: ignore[union-attr]
        embeddings = self.embed_chips(np.stack(chips)) if chips else np.zeros((0, self.spec.embedding_dim))
        embedded = time.perf_counter()
        scores = self.score(embeddings[0::2], embeddings[1::2]) if chips else np.zeros(0)
        done = time.perf_counter()
        timing = {
            "detect_align": 1000 * (detected - start),
            "embed": 1000 * (embedded - detected),
            "head": 1000 * (done - embedded),
            "total": 1000 * (done - start),
        }
        results: list[dict | FaceRegError] = list(found)  # type: ignore[arg-type]
        for k, i in enumerate(ok):
            request, pair = requests[i], found[i]
            threshold = self.threshold if request.threshold is None else float(request.threshold)
            score = float(scores[k])
            result = {
                "is_match": score >= threshold,
                "score": score,
                "threshold": threshold,
                "distance": float(np.linalg.norm(embeddings[2 * k] - embeddings[2 * k + 1])),
                "faces": [_face_info(f) for f in pair],
                "warnings": _warnings(pair, request.names),
                "backbone": self.config.backbone,
                "timing_ms": dict(timing, pairs_in_batch=len(requests)) if len(requests) > 1 else dict(timing),
            }
            if request.return_chips:
                result["chips"] = [f.chip for f in pair]
            results[i] = result
        return results

    def enroll(self, anchors: Sequence[Any]) -> AnchorSet:
        """Embed anchor images once; images without a face are skipped and listed."""
        chips, names, faces, skipped = [], [], [], []
        for i, image in enumerate(anchors):
            name = _name_of(image, f"anchor {i + 1}")
            try:
                found = self.detect(image, name)
            except NoFaceError as exc:
                skipped.append(str(exc))
                continue
            chips.append(found.chip)
            names.append(name)
            faces.append(found.face)
        if not chips:
            raise NoFaceError(f"none of the {len(anchors)} anchor images shows a face")
        return AnchorSet(self.embed_chips(np.stack(chips)), names, faces, skipped)

    def verify_against_anchors(
        self,
        probe: Any,
        anchors: AnchorSet | Sequence[Any],
        detection_threshold: float | None = None,
        verification_threshold: float = 0.5,
    ) -> dict:
        """The original design's folder check: enough anchors must score above the detection threshold."""
        detection_threshold = self.threshold if detection_threshold is None else float(detection_threshold)
        start = time.perf_counter()
        anchor_set = anchors if isinstance(anchors, AnchorSet) else self.enroll(anchors)
        found = self.detect(probe, "probe")
        probe_embedding = self.embed_chips(found.chip[None])
        scores = self.score(np.repeat(probe_embedding, len(anchor_set), axis=0), anchor_set.embeddings)
        detections = int(np.sum(scores > detection_threshold))
        verification = detections / len(anchor_set)
        return {
            "is_match": verification > verification_threshold,
            "verification": verification,
            "detections": detections,
            "anchors": len(anchor_set),
            "scores": [{"anchor": n, "score": float(s)} for n, s in zip(anchor_set.names, scores)],
            "detection_threshold": detection_threshold,
            "verification_threshold": float(verification_threshold),
            "skipped_anchors": anchor_set.skipped,
            "probe_face": _face_info(found),
            "warnings": _warnings([found], [_name_of(probe, "probe")]),
            "timing_ms": {"total": 1000 * (time.perf_counter() - start)},
        }


@dataclass
class PairRequest:
    """One pair to verify, decoded: its pixels, the names its errors and warnings use, its threshold."""

    pixels: tuple[np.ndarray, np.ndarray]
    names: tuple[str, str]
    threshold: float | None = None
    return_chips: bool = False

    @classmethod
    def decode(cls, img1: Any, img2: Any, threshold: float | None = None, return_chips: bool = False) -> "PairRequest":
        """Decode both images (ImageDecodeError names the one that fails)."""
        names = (_name_of(img1, "image 1"), _name_of(img2, "image 2"))
        return cls((load_image(img1, name=names[0]), load_image(img2, name=names[1])), names, threshold, return_chips)


def _face_info(found: FaceChip) -> dict:
    return {
        "box": [int(v) for v in found.face.box],
        "confidence": float(found.face.confidence),
        "low_confidence": bool(found.face.low_confidence),
        "faces_found": int(found.faces_found),
    }


def _warnings(found: Sequence[FaceChip], names: Sequence[str]) -> list[str]:
    warnings = []
    for f, name in zip(found, names):
        if f.face.low_confidence:
            warnings.append(f"{name}: face found with low confidence ({f.face.confidence:.2f}); "
                            "check that the box shows a face, or use a clearer, more frontal photo")
        if f.faces_found > 1:
            warnings.append(f"{name}: {f.faces_found} faces found; used the largest")
    return warnings


@functools.lru_cache(maxsize=1)
def _default_verifier() -> Verifier:
    from .default_model import load_default_model

    return Verifier(*load_default_model())

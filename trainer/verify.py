"""Face verification with a FaceReg Siamese model: embed faces once, score pairs on batches."""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .errors import NoFaceError
from .faces import DETECT_BATCH, Face, FaceChip, face_locations_batch, pick_face
from .images import load_image
from .model_io import ModelConfig, load_model_dir
from .networks import backbone_spec, siamese_parts

BATCH_SIZE = 32


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

    def __init__(self, model, config: ModelConfig) -> None:
        import tensorflow as tf

        self.model = model
        self.config = config
        self.spec = backbone_spec(config.backbone)
        embedding, head = siamese_parts(model)
        distance = model.get_layer("l1_distance")
        size, dim = self.spec.input_size, self.spec.embedding_dim

        @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)])
        def embed(x):
            if not config.flip:
                return embedding(x, training=False)
            both = embedding(tf.concat([x, tf.reverse(x, axis=[2])], axis=0), training=False)
            plain, mirrored = tf.split(both, 2, axis=0)
            return (plain + mirrored) / 2

        @tf.function(input_signature=[tf.TensorSpec([None, dim], tf.float32)] * 2)
        def score(a, b):
            return tf.reshape(head(distance([a, b])), [-1])

        self._embed_fn: Callable = embed
        self._score_fn: Callable = score

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
        threshold = self.threshold if threshold is None else float(threshold)
        start = time.perf_counter()
        found = self.detect_many([img1, img2], ["image 1", "image 2"])
        detected = time.perf_counter()
        embeddings = self.embed_chips(np.stack([f.chip for f in found]))
        embedded = time.perf_counter()
        score = float(self.score(embeddings[:1], embeddings[1:])[0])
        done = time.perf_counter()
        result = {
            "is_match": score >= threshold,
            "score": score,
            "threshold": threshold,
            "distance": float(np.linalg.norm(embeddings[0] - embeddings[1])),
            "faces": [_face_info(f) for f in found],
            "warnings": _warnings(found, [_name_of(img1, "image 1"), _name_of(img2, "image 2")]),
            "backbone": self.config.backbone,
            "timing_ms": {
                "detect_align": 1000 * (detected - start),
                "embed": 1000 * (embedded - detected),
                "head": 1000 * (done - embedded),
                "total": 1000 * (done - start),
            },
        }
        if return_chips:
            result["chips"] = [f.chip for f in found]
        return result

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

"""Verification metrics: pair lists, 10-fold accuracy, ROC AUC, EER, TAR at FAR, threshold sweeps."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn import metrics as skm

from .errors import FaceRegError
from .faces import DETECT_BATCH


# Where LFW lives: $FACEREG_LFW, else ../shared/data/lfw beside the repository. Tests and benchmarks use this.
LFW_DIR = Path(os.environ.get("FACEREG_LFW", Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw"))


class PairsFormatError(FaceRegError):
    """A pairs file that is not in the expected format."""


@dataclass(frozen=True)
class Pair:
    """Two image paths, whether they show the same person, and the fold they belong to."""

    path1: Path
    path2: Path
    same: bool
    fold: int


def read_pairs_tsv(pairs_file: str | Path, images_dir: str | Path) -> list[Pair]:
    """Read `path1<TAB>path2<TAB>same<TAB>fold` lines (paths relative to images_dir)."""
    root = Path(images_dir)
    pairs = []
    for number, line in enumerate(Path(pairs_file).read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 4 or fields[2] not in {"0", "1"} or not fields[3].strip().isdigit():
            raise PairsFormatError(
                f"{pairs_file}:{number}: expected path1<TAB>path2<TAB>same(0/1)<TAB>fold(0-9), got {line!r}"
            )
        pairs.append(Pair(root / fields[0], root / fields[1], fields[2] == "1", int(fields[3])))
    if not pairs:
        raise PairsFormatError(f"{pairs_file} holds no pairs")
    return pairs


def read_lfw_pairs(lfw_dir: str | Path, pairs_name: str = "pairs.txt") -> list[Pair]:
    """Read one of LFW's own pairs files (View 2 `pairs.txt` by default; View 1 files get fold 0)."""
    root = Path(lfw_dir)
    lines = (root / pairs_name).read_text().split("\n")
    header = lines[0].split()
    folds, per_fold = (int(header[0]), int(header[1])) if len(header) == 2 else (1, int(header[0]))

    def image(name: str, n: str) -> Path:
        return root / "images" / name / f"{name}_{int(n):04d}.jpg"

    pairs = []
    for line in lines[1:]:
        fields = line.split()
        if not fields:
            continue
        fold = len(pairs) // (2 * per_fold)
        if len(fields) == 3:
            pairs.append(Pair(image(fields[0], fields[1]), image(fields[0], fields[2]), True, fold))
        elif len(fields) == 4:
            pairs.append(Pair(image(fields[0], fields[1]), image(fields[2], fields[3]), False, fold))
        else:
            raise PairsFormatError(f"{root / pairs_name}: unexpected line {line!r}")
    if len(pairs) != folds * 2 * per_fold:
        raise PairsFormatError(f"{root / pairs_name}: expected {folds * 2 * per_fold} pairs, found {len(pairs)}")
    return pairs


def best_accuracy_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold (score >= t means same) with the best accuracy on these pairs."""
    order = np.argsort(scores)
    s, y = scores[order], labels[order].astype(bool)
    # Accepting everything from index i on: true accepts of positives at or above, rejects below.
    positives_above = np.concatenate([np.cumsum(y[::-1])[::-1], [0]])
    negatives_below = np.concatenate([[0], np.cumsum(~y)])
    correct = positives_above + negatives_below
    i = int(np.argmax(correct))
    if i == 0:
        return float(s[0])
    if i == len(s):
        return float(np.nextafter(s[-1], np.inf))
    return float((s[i - 1] + s[i]) / 2)


def tar_at_far(scores: np.ndarray, labels: np.ndarray, far: float) -> float:
    """True-accept rate at the largest false-accept rate not above `far`."""
    fpr, tpr, _ = skm.roc_curve(labels, scores)
    return float(tpr[fpr <= far].max())


def equal_error_rate(scores: np.ndarray, labels: np.ndarray) -> float:
    """The rate where false accepts equal false rejects (interpolated on the ROC curve)."""
    fpr, tpr, _ = skm.roc_curve(labels, scores)
    fnr = 1 - tpr
    i = int(np.argmin(np.abs(fnr - fpr)))
    return float((fpr[i] + fnr[i]) / 2)


def kfold_accuracy(scores: np.ndarray, labels: np.ndarray, folds: np.ndarray) -> tuple[float, float, list[float]]:
    """Accuracy per fold with the threshold chosen on the other folds: mean, std and the list."""
    accuracies = []
    for k in np.unique(folds):
        train, test = folds != k, folds == k
        t = best_accuracy_threshold(scores[train], labels[train])
        accuracies.append(float(np.mean((scores[test] >= t) == labels[test])))
    return float(np.mean(accuracies)), float(np.std(accuracies)), accuracies


def kfold_correct(scores: np.ndarray, labels: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Per pair: decided right at the threshold chosen on the other folds (LFW's protocol)."""
    correct = np.zeros(len(scores), bool)
    for k in np.unique(folds):
        t = best_accuracy_threshold(scores[folds != k], labels[folds != k])
        correct[folds == k] = (scores[folds == k] >= t) == labels[folds == k]
    return correct


def verification_report(
    scores: np.ndarray, labels: np.ndarray, folds: np.ndarray | None = None, threshold: float | None = None
) -> dict[str, float | int | list[float]]:
    """Every verification metric FaceReg reports for scores where higher means 'same'."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    report: dict[str, float | int | list[float]] = {
        "pairs": int(len(scores)),
        "auc": float(skm.roc_auc_score(labels, scores)),
        "eer": equal_error_rate(scores, labels),
        "tar_at_far_1e-3": tar_at_far(scores, labels, 1e-3),
        "tar_at_far_1e-2": tar_at_far(scores, labels, 1e-2),
    }
    if folds is not None and len(np.unique(folds)) > 1:
        mean, std, per_fold = kfold_accuracy(scores, labels, np.asarray(folds))
        report.update(accuracy_mean=mean, accuracy_std=std, accuracy_folds=per_fold)
    if threshold is not None:
        predicted = scores >= threshold
        report.update(
            threshold=float(threshold),
            accuracy_at_threshold=float(np.mean(predicted == labels)),
            **operating_point(scores, labels, threshold),
            precision=float(skm.precision_score(labels, predicted, zero_division=0)),
            recall=float(skm.recall_score(labels, predicted, zero_division=0)),
            f1=float(skm.f1_score(labels, predicted, zero_division=0)),
            genuine_pairs=int(labels.sum()),
            impostor_pairs=int((~labels).sum()),
            true_accepts=int((predicted & labels).sum()),
            false_accepts=int((predicted & ~labels).sum()),
        )
    return report


def operating_point(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    """The false-accept rate (impostor pairs scoring >= threshold) and true-accept rate a threshold gives."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    if labels.all() or not labels.any():
        raise ValueError("an operating point needs both genuine and impostor pairs")
    return {
        "far_at_threshold": float(np.mean(scores[~labels] >= threshold)),
        "tar_at_threshold": float(np.mean(scores[labels] >= threshold)),
    }


def threshold_sweep(scores: np.ndarray, labels: np.ndarray, target_far: float | None = None) -> float:
    """The threshold with the best F1, or the lowest one whose false-accept rate is at most target_far."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    if target_far is not None:
        fpr, _, thresholds = skm.roc_curve(labels, scores)
        return float(thresholds[fpr <= target_far].min())
    precision, recall, thresholds = skm.precision_recall_curve(labels, scores)
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    return float(thresholds[int(np.argmax(f1))])


@dataclass
class AlignedImages:
    """Every image of a pair list once, aligned to face chips, and those where no face was found."""

    paths: list[Path]
    chips: np.ndarray
    no_face: list[str]
    several_faces: int = 0
    on_multiple: str = "largest"
    low_confidence: int = 0  # images whose face is the best candidate below the detector's confidence bar
    turned: np.ndarray | None = None  # per image: is the face used turned (trainer.pose.is_turned)?

    @classmethod
    def from_chips(cls, paths: list[Path], found: list, on_multiple: str) -> "AlignedImages":
        """Collect the FaceChip of each path (faces_found 0: a central crop) with the counts reports need."""
        from .pose import is_turned

        no_face = [str(p) for p, f in zip(paths, found) if f.faces_found == 0]
        several = sum(f.faces_found > 1 for f in found)
        low = sum(f.faces_found > 0 and f.face.low_confidence for f in found)
        turned = np.array([is_turned(f.face.landmarks) for f in found])
        return cls(paths, np.stack([f.chip for f in found]), no_face, several, on_multiple, low, turned)


@dataclass
class PairEmbeddings:
    """Embeddings of both sides of a pair list, with labels, folds and the aligned images they came from."""

    a: np.ndarray
    b: np.ndarray
    labels: np.ndarray
    folds: np.ndarray
    aligned: AlignedImages


def align_pair_images(verifier, pairs: list[Pair], progress=None, on_multiple: str = "largest") -> AlignedImages:
    """Detect and align every image of a pair list once (no face: aligned from a central crop).

    `on_multiple` picks the face of an image with several: "largest" as in verification, or "central" for
    datasets of crops centred on their subject (LFW: "detected and centered" by its construction).
    """
    paths = sorted({p for pair in pairs for p in (pair.path1, pair.path2)})
    found = []
    for start in range(0, len(paths), DETECT_BATCH):
        found += verifier.detect_many(paths[start : start + DETECT_BATCH], on_no_face="center", on_multiple=on_multiple)
        if progress is not None and (len(found) % 100 == 0 or len(found) == len(paths)):
            progress(len(found), len(paths))
    return AlignedImages.from_chips(paths, found, on_multiple)


def embed_pairs(verifier, pairs: list[Pair], aligned: AlignedImages | None = None, progress=None) -> PairEmbeddings:
    """Embed both sides of every pair, aligning each image once unless `aligned` is given."""
    aligned = aligned or align_pair_images(verifier, pairs, progress)
    table = verifier.embed_chips(aligned.chips)
    index = {p: i for i, p in enumerate(aligned.paths)}
    return PairEmbeddings(
        a=table[[index[p.path1] for p in pairs]],
        b=table[[index[p.path2] for p in pairs]],
        labels=np.array([p.same for p in pairs]),
        folds=np.array([p.fold for p in pairs]),
        aligned=aligned,
    )


def euclidean_scores(e: PairEmbeddings) -> np.ndarray:
    """Negated Euclidean distances, so that higher means 'same' as for the head's scores."""
    return -np.linalg.norm(e.a - e.b, axis=1)


def evaluate_embeddings(verifier, e: PairEmbeddings, metric: str = "head") -> dict:
    """The verification report of embedded pairs, scored by the model's head or by Euclidean distance."""
    if metric == "head":
        report = verification_report(verifier.score(e.a, e.b), e.labels, e.folds, verifier.threshold)
    elif metric == "euclidean":
        report = verification_report(euclidean_scores(e), e.labels, e.folds)
    else:
        raise ValueError(f"metric must be 'head' or 'euclidean', not {metric!r}")
    report.update(
        metric=metric,
        images=len(e.aligned.paths),
        no_face=len(e.aligned.no_face),
        low_confidence_faces=e.aligned.low_confidence,
        no_face_policy="aligned from a central crop of the image (half its width and height)",
        several_faces=e.aligned.several_faces,
        several_faces_policy=f"the {e.aligned.on_multiple} face",
    )
    return report

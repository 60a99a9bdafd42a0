"""Pick the 5-point alignment template that dlib's face network likes best, on LFW View 1 (DevTrain).

Run from the repo root:  python -m benchmarks.align_template  [--grid-pairs 200] [--confirm 3]

Every image is detected once with MTCNN (the landmarks are cached in memory); each candidate template aligns
150 x 150 chips that dlib's own ResNet (dlib-bin, face_recognition_models) embeds; the Euclidean distance of
each pair is scored by ROC AUC and best-threshold accuracy. Candidates: ArcFace's template scaled about the
chip centre and shifted up (a cross of scales and shifts through the lead's 1.15 / 24 px, on a subsample of
pairs: dlib embeds 3-8 chips/s on 2 cores), the template measured from dlib's own chips (MTCNN landmarks
mapped through `dlib.get_face_chip_details` of dlib's 5-point shape predictor), and dlib's own chips as a
reference. The best candidates (by AUC) are then confirmed on all 2200 pairs. ~45 min on 2 busy cores.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import dlib
import face_recognition_models
import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from trainer.evaluate import LFW_DIR, read_lfw_pairs
from trainer.faces import Face, align_face, arcface_template, central_face, face_locations
from trainer.images import load_image

REPO_ROOT = Path(__file__).resolve().parent.parent
CHIP = 150
SCALES = (1.05, 1.15, 1.25)
SHIFTS_PX = (12, 24, 30)
CENTRE = (1.15, 24)

Pair = tuple[Path, Path, bool]


def subsample(pairs: list[Pair], count: int) -> list[Pair]:
    """Evenly spaced pairs, half matched and half mismatched."""
    picked = []
    for same in (True, False):
        group = [pair for pair in pairs if pair[2] == same]
        picked += [group[i] for i in np.linspace(0, len(group) - 1, count // 2).round().astype(int)]
    return picked


def dlib_chip_matrix(image: np.ndarray, face: Face, predictor: dlib.shape_predictor) -> np.ndarray:
    """The 2 x 3 affine that dlib.get_face_chip applies (5-point shape, 150 px, padding 0.25)."""
    x, y, w, h = face.box
    shape = predictor(image, dlib.rectangle(x, y, x + w, y + h))
    details = dlib.get_face_chip_details(shape, CHIP, 0.25)
    rect, angle = details.rect, details.angle
    centre = np.array([(rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    corners = np.array([[rect.left(), rect.top()], [rect.right(), rect.top()], [rect.right(), rect.bottom()]])
    source = (corners - centre) @ rotation.T + centre
    target = np.array([[0, 0], [details.cols - 1, 0], [details.cols - 1, details.rows - 1]])
    return cv2.getAffineTransform(source.astype(np.float32), target.astype(np.float32))


def scores(distances: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """Best-threshold accuracy and ROC AUC of distances (smaller = same person)."""
    fpr, tpr, _ = roc_curve(same, -distances)
    positives, negatives = same.sum(), (~same).sum()
    accuracy = ((tpr * positives + (1 - fpr) * negatives) / (positives + negatives)).max()
    return float(accuracy), float(roc_auc_score(same, -distances))


class Bench:
    """Loads and detects each image once and embeds each (candidate, image) chip once, on first use."""

    def __init__(self):
        self.predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location())
        self.network = dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())
        self.images: dict[Path, np.ndarray] = {}
        self.faces: dict[Path, Face | None] = {}
        self.dlib_matrices: dict[Path, np.ndarray] = {}
        self.embeddings: dict[tuple[str, Path], np.ndarray] = {}

    def usable(self, pairs: list[Pair]) -> list[Pair]:
        """The pairs whose two images both have a face (detecting images not seen yet)."""
        for path in sorted({p for a, b, _ in pairs for p in (a, b)} - self.faces.keys()):
            image = load_image(path)
            faces = face_locations(image)
            self.faces[path] = central_face(faces, image.shape) if faces else None
            if self.faces[path] is not None:
                self.images[path] = image
                self.dlib_matrices[path] = dlib_chip_matrix(image, self.faces[path], self.predictor)
        return [pair for pair in pairs if self.faces[pair[0]] and self.faces[pair[1]]]

    def dlib_template(self) -> np.ndarray:
        """Median position of the MTCNN landmarks inside dlib's own chips, in [0, 1] coordinates."""
        mapped = [cv2.transform(self.faces[p].landmarks[None], self.dlib_matrices[p])[0] for p in self.images]
        return (np.median(mapped, axis=0) / CHIP).astype(np.float32)

    def evaluate(self, name: str, chip_of, pairs: list[Pair]) -> tuple[float, float]:
        """Accuracy and AUC of dlib embeddings of the chips `chip_of(path)` over pairs."""
        paths = sorted({p for a, b, _ in pairs for p in (a, b)} - {p for n, p in self.embeddings if n == name})
        vectors = self.network.compute_face_descriptor([chip_of(p) for p in paths]) if paths else []
        self.embeddings.update({(name, p): np.asarray(v) for p, v in zip(paths, vectors)})
        distances = np.array([np.linalg.norm(self.embeddings[name, a] - self.embeddings[name, b]) for a, b, _ in pairs])
        print(f"  {name}: {len(paths)} chips embedded", flush=True)
        return scores(distances, np.array([same for _, _, same in pairs]))

    def template_chips(self, template: np.ndarray):
        """Chip maker aligning the cached landmarks onto a template."""
        return lambda path: align_face(self.images[path], self.faces[path], CHIP, template)

    def dlib_chips(self, path: Path) -> np.ndarray:
        """dlib's own chip of an image's central face."""
        return cv2.warpAffine(self.images[path], self.dlib_matrices[path], (CHIP, CHIP), flags=cv2.INTER_LINEAR)


def main() -> None:
    """Print the template table on a subsample, then confirm the best candidates on all pairs."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grid-pairs", type=int, default=200, help="pairs for the grid (half matched)")
    parser.add_argument("--confirm", type=int, default=3, help="best template candidates rerun on all pairs")
    args = parser.parse_args()

    started = time.perf_counter()
    all_pairs = [(p.path1, p.path2, p.same) for p in read_lfw_pairs(LFW_DIR, "pairsDevTrain.txt")]
    bench = Bench()
    pairs = bench.usable(subsample(all_pairs, args.grid_pairs))
    print(f"grid: {len(pairs)} pairs with faces ({time.perf_counter() - started:.0f} s)", flush=True)
    measured = bench.dlib_template()
    print("template measured in dlib's chips:", np.round(measured, 4).tolist(), flush=True)

    grid = sorted({(s, CENTRE[1]) for s in SCALES} | {(CENTRE[0], d) for d in SHIFTS_PX})
    candidates = {f"ArcFace x{s} up {d} px": arcface_template(s, d / CHIP) for s, d in grid}
    candidates["measured in dlib chips"] = measured
    rows = {name: bench.evaluate(name, bench.template_chips(t), pairs) for name, t in candidates.items()}
    rows["(reference) dlib's own chips"] = bench.evaluate("dlib", bench.dlib_chips, pairs)
    print_table(f"{len(pairs)} DevTrain pairs ({time.perf_counter() - started:.0f} s)", rows)

    best = sorted(candidates, key=lambda name: rows[name][1], reverse=True)[: args.confirm]
    pairs = bench.usable(all_pairs)
    confirmed = {name: bench.evaluate(name, bench.template_chips(candidates[name]), pairs) for name in best}
    print_table(f"all {len(pairs)} of {len(all_pairs)} DevTrain pairs with faces "
                f"({time.perf_counter() - started:.0f} s)", confirmed)
    choice = max(best, key=lambda name: confirmed[name][1])
    print(f"\nchoice: {choice}: {np.round(candidates[choice], 4).tolist()}")


def print_table(title: str, rows: dict[str, tuple[float, float]]) -> None:
    """A markdown table of accuracy and AUC per candidate."""
    print(f"\n### {title}\n\n| template | accuracy | ROC AUC |\n|---|---|---|")
    for name, (accuracy, auc) in rows.items():
        print(f"| {name} | {accuracy:.4f} | {auc:.4f} |")


if __name__ == "__main__":
    main()

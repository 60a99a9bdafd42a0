"""What a training run reports: validation metrics (metrics.json, facereg.json's summary) and PNG plots."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from sklearn import metrics as skm

METRICS_FILE = "metrics.json"
ROC_PLOT = "roc.png"
SCORES_PLOT = "scores.png"


METRIC_NAMES = ("accuracy", "f1", "precision", "recall", "roc_auc", "eer", "tar_at_far_1e-2")  # summary_metrics' keys


def summary_metrics(report: dict[str, Any]) -> dict[str, float]:
    """The metrics of a `verification_report` that facereg.json (and so the model card) carries."""
    return {
        "accuracy": report["accuracy_at_threshold"],
        "f1": report["f1"],
        "precision": report["precision"],
        "recall": report["recall"],
        "roc_auc": report["auc"],
        "eer": report["eer"],
        "tar_at_far_1e-2": report["tar_at_far_1e-2"],
    }


COUNT_KEYS = ("pairs", "genuine_pairs", "impostor_pairs", "true_accepts", "false_accepts")


def evaluation_counts(report: dict[str, Any], data: str) -> dict[str, Any]:
    """What facereg.json's "evaluation" holds: which pairs the metrics were measured on, and the counts behind
    accuracy, precision and recall at the threshold (the model card's confidence intervals need them)."""
    return {"data": data, **{key: int(report[key]) for key in COUNT_KEYS}}


def write_metrics(folder: Path, metrics: dict[str, Any]) -> Path:
    """Write metrics.json into a model folder."""
    path = Path(folder) / METRICS_FILE
    path.write_text(json.dumps(metrics, indent=2) + "\n")
    return path


def write_plots(folder: Path, scores: np.ndarray, labels: np.ndarray, threshold: float) -> list[Path]:
    """Write roc.png (ROC curve, the threshold marked) and scores.png (genuine and impostor histograms)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = np.asarray(labels).astype(bool)
    folder = Path(folder)
    fpr, tpr, _ = skm.roc_curve(labels, scores)
    far, tar = float(np.mean(scores[~labels] >= threshold)), float(np.mean(scores[labels] >= threshold))
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(fpr, tpr, label=f"ROC (AUC {skm.auc(fpr, tpr):.4f})")
    ax.plot([0, 1], [0, 1], ":", color="gray")
    ax.plot([far], [tar], "o", color="red", label=f"threshold {threshold:.3f}")
    ax.set(xlabel="false accept rate", ylabel="true accept rate", title="Validation ROC")
    ax.legend(loc="lower right")
    fig.savefig(folder / ROC_PLOT, dpi=100, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(0.0, 1.0, 41)
    ax.hist(scores[labels], bins=bins, alpha=0.6, label=f"genuine ({labels.sum()})")
    ax.hist(scores[~labels], bins=bins, alpha=0.6, label=f"impostor ({(~labels).sum()})")
    ax.axvline(threshold, color="red", linestyle="--", label=f"threshold {threshold:.3f}")
    ax.set(xlabel="similarity score", ylabel="pairs", title="Validation scores")
    ax.legend()
    fig.savefig(folder / SCORES_PLOT, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return [folder / ROC_PLOT, folder / SCORES_PLOT]

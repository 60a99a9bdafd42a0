"""The embedded default model: dlib's pretrained ResNet plus a small head trained on LFW View 1 DevTrain.

The head's weights and threshold live in `default_model/head.json` (a few KB), written by
`python -m trainer fit-default --lfw ../shared/data/lfw`, which runs `fit_default_head` below.
`default_model/lfw_view2.json` holds its LFW View 2 figures, the README's table (tests/test_export.py checks they
agree); `export_default(folder)` (`python -m trainer export-default DIR`) writes it as a publishable model folder.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import keras
import numpy as np

from .evaluate import align_pair_images, best_accuracy_threshold, embed_pairs, read_lfw_pairs, verification_report
from .head import fit_head
from .model_io import ModelConfig, save_model_dir, utc_now
from .networks import HEAD_L2, build_embedding, build_siamese, siamese_parts
from .report import METRIC_NAMES, evaluation_counts, summary_metrics

HEAD_FILE = Path(__file__).parent / "default_model" / "head.json"
LFW_VIEW2_FILE = Path(__file__).parent / "default_model" / "lfw_view2.json"
BACKBONE = "dlib_resnet"
TRAINING_DATA = "LFW View 1 DevTrain (pairsDevTrain.txt)"
EVALUATION_DATA = ("LFW View 1 DevTest (pairsDevTest.txt), people and pairs the head never saw, "
                   "threshold chosen on DevTrain")
DEVTEST_GENUINE_PAIRS = 500  # pairsDevTest.txt: 500 pairs of the same person, then 500 of different people
REPRODUCE = "python -m trainer fit-default --lfw ../shared/data/lfw"
HEAD_EPOCHS, HEAD_LEARNING_RATE, HEAD_BATCH_SIZE = 300, 0.05, 128  # how the default head is trained
# What the default head may learn (trainer.networks.HEADS) and its penalty. People-disjoint cross-validation on
# View 1 DevTrain (`python -m benchmarks.view1_accuracy`): every head on the L1 components, free, pulled toward
# uniform or tied, stays behind the backbone's own Euclidean distance (98.73-98.95 % against 99.09 %), so the head
# is tied on the squared components: a logistic function of the squared Euclidean distance, which ranks every pair
# as the backbone's distance does, on any photos (two parameters: they set the score scale and the threshold).
HEAD_KIND, HEAD_PENALTY = "tied_squared", 0.0
# Test-time flip: it raises the backbone distance's accuracy on DevTrain itself (98.86 -> 99.18 %,
# `python -m benchmarks.view1_choices`), so it no longer waits for DevTest to decide.
HEAD_FLIP = True
# Personalisation (`train`, head only) frees the head's weights, pulled toward the default's equal ones with the
# strength the previous head's L2 penalty had (not measured anew: see README, Personalisation).
PERSONAL_PENALTY = HEAD_L2


def load_default_model(head_file: Path = HEAD_FILE, head: str | None = None) -> tuple[keras.Model, ModelConfig]:
    """Build the default Siamese model and its config from the pretrained backbone and head.json.

    head: what the head may learn from here on (networks.HEADS), over the saved head's components and starting
    from its weights; default: the saved head's own kind. Personalisation passes "uniform" (PERSONAL_PENALTY), so
    that a user's pairs can weigh the components, pulled toward the default's equal weights.
    """
    saved = json.loads(head_file.read_text())
    saved_kind = saved.get("head", "free")
    head_kind = head or saved_kind
    penalty = saved.get("penalty", HEAD_L2) if head_kind == saved_kind else PERSONAL_PENALTY
    power = 2 if saved_kind == "tied_squared" else 1
    model = build_siamese(build_embedding(saved["backbone"]), head=head_kind, penalty=penalty, power=power)
    _, head = siamese_parts(model)
    head.set_weights([np.asarray(saved["kernel"], np.float32)[:, None], np.asarray([saved["bias"]], np.float32)])
    metrics = {name: value for name, value in saved["metrics"].items() if name in METRIC_NAMES}
    config = ModelConfig(
        backbone=saved["backbone"],
        threshold=saved["threshold"],
        flip=saved["flip"],
        detector=saved["detector"],
        metrics=metrics,
        evaluation=saved.get("evaluation") or _devtest_counts(saved["metrics"]),
        benchmarks=[lfw_view2_table(default=True)],
        dataset=TRAINING_DATA,
        source="embedded default",
        created=saved.get("created"),  # when its head was fitted (not when this process loaded it); None if unknown
    )
    return model, config


def _devtest_counts(metrics: dict) -> dict:
    """The DevTest counts behind a head.json written before it stored them, from its rates and DevTest's 500/500."""
    pairs = int(metrics["validation_pairs"])
    genuine, impostor = DEVTEST_GENUINE_PAIRS, pairs - DEVTEST_GENUINE_PAIRS
    true_accepts = round(metrics["recall"] * genuine)
    false_accepts = round(true_accepts / metrics["precision"]) - true_accepts if metrics["precision"] else 0
    if round(metrics["accuracy"] * pairs) != true_accepts + impostor - false_accepts:
        return {}  # they do not fit DevTest's split: the card then says the counts are not known
    return {"data": EVALUATION_DATA, "pairs": pairs, "genuine_pairs": genuine, "impostor_pairs": impostor,
            "true_accepts": true_accepts, "false_accepts": false_accepts}


def lfw_view2_table(default: bool) -> dict:
    """LFW View 2 figures as a model card shows them: the default model's and its backbone's, or the backbone's."""
    saved = json.loads(LFW_VIEW2_FILE.read_text())
    if default:
        note = ("This model on LFW View 2, the standard benchmark, which it never saw (its head was trained on View 1 "
                "DevTrain), next to its backbone alone.")
    else:
        note = ("The pretrained backbone alone on LFW View 2, the standard benchmark, as context: not this fine-tuned "
                "model, which was not measured there.")
    rows = [saved["default"], saved["backbone"]] if default else [saved["backbone"]]
    return {"name": saved["name"], "note": note, "protocol": saved["protocol"], "command": saved["command"],
            "columns": saved["columns"], "rows": rows}


def export_default(folder: str | Path) -> Path:
    """Write the embedded default model as a FaceReg model folder (model.keras, facereg.json, saved_model/,
    README.md with its LFW View 2 table), ready for `hub_tools.push_model`."""
    from hub_tools import build_model_card

    model, config = load_default_model()
    folder = save_model_dir(model, config, folder)
    build_model_card(config.to_json()).save(folder / "README.md")
    return folder


def fit_default_head(
    lfw_dir: str | Path,
    out_file: Path = HEAD_FILE,
    *,
    epochs: int = HEAD_EPOCHS,
    learning_rate: float = HEAD_LEARNING_RATE,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> dict:
    """Train the default head (HEAD_KIND) on DevTrain pairs, pick its threshold there, report DevTest, write head.json."""
    from .verify import Verifier

    train_pairs = read_lfw_pairs(lfw_dir, "pairsDevTrain.txt")
    test_pairs = read_lfw_pairs(lfw_dir, "pairsDevTest.txt")
    embedding = build_embedding(BACKBONE)
    model = build_siamese(embedding, head=HEAD_KIND, penalty=HEAD_PENALTY)
    verifier = Verifier(model, ModelConfig(BACKBONE, flip=HEAD_FLIP), precision="float32")  # the same head anywhere
    log("detecting and aligning the View 1 images")
    # LFW images are crops centred on their subject: in an image with several faces, the central one is the subject.
    aligned = align_pair_images(
        verifier, train_pairs + test_pairs, progress=lambda i, n: log(f"aligned {i}/{n}") if i % 1000 == 0 else None,
        on_multiple="central",
    )
    train = embed_pairs(verifier, train_pairs, aligned)
    test = embed_pairs(verifier, test_pairs, aligned)
    fit_head(model, train.a, train.b, train.labels, epochs=epochs, batch_size=HEAD_BATCH_SIZE,
             learning_rate=learning_rate, seed=seed, verbose=0)
    threshold = best_accuracy_threshold(verifier.score(train.a, train.b), train.labels)
    report = verification_report(verifier.score(test.a, test.b), test.labels, threshold=threshold)
    log(f"{HEAD_KIND} head: DevTest accuracy {report['accuracy_at_threshold']:.4f}, AUC {report['auc']:.5f}")
    kernel, bias = siamese_parts(model)[1].get_weights()
    saved = {
        "backbone": BACKBONE,
        "detector": "mtcnn",
        "flip": HEAD_FLIP,
        "threshold": threshold,
        "head": HEAD_KIND,
        "penalty": HEAD_PENALTY,
        "kernel": [round(float(v), 7) for v in kernel[:, 0]],
        "bias": float(bias[0]),
        "metrics": {
            "evaluated_on": "LFW View 1 DevTest (pairsDevTest.txt), threshold chosen on DevTrain",
            **summary_metrics(report),
            "far_at_threshold": report["far_at_threshold"],
            "tar_at_threshold": report["tar_at_threshold"],
        },
        "evaluation": evaluation_counts(report, EVALUATION_DATA),
        "training": {
            "data": TRAINING_DATA,
            "images_without_detected_face": len(aligned.no_face),
            "images_with_low_confidence_face": aligned.low_confidence,
            "images_with_several_faces": aligned.several_faces,
            "face_used_in_images_with_several": aligned.on_multiple,
            "epochs": epochs,
            "learning_rate": learning_rate,
            "seed": seed,
            "reproduce": REPRODUCE,
        },
        "created": utc_now(),  # when this head was fitted
    }
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(json.dumps(saved, indent=1) + "\n")
    log(f"wrote {out_file}: {HEAD_KIND} head, flip={HEAD_FLIP}, threshold={threshold:.4f}")
    return saved

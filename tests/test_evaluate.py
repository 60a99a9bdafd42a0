"""Verification metrics and pair files."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from tests.conftest import lfw_image, needs_lfw

from trainer.evaluate import (
    PairsFormatError,
    best_accuracy_threshold,
    equal_error_rate,
    kfold_accuracy,
    operating_point,
    read_lfw_pairs,
    read_pairs_tsv,
    tar_at_far,
    threshold_sweep,
    verification_report,
)


def _scores(n=400, separation=2.0, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2 == 0
    scores = rng.normal(size=n) + separation * labels
    return scores, labels


def test_best_accuracy_threshold_separates_separable_scores():
    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    labels = np.array([0, 0, 0, 1, 1, 1])
    t = best_accuracy_threshold(scores, labels)
    assert 0.3 < t <= 0.7
    assert np.all((scores >= t) == labels)


def test_kfold_accuracy_chooses_threshold_on_other_folds():
    scores, labels = _scores()
    folds = np.arange(len(scores)) % 10
    mean, std, per_fold = kfold_accuracy(scores, labels, folds)
    assert len(per_fold) == 10
    assert 0.75 < mean < 0.95 and std > 0
    # Shifting one fold's scores hurts that fold, since its threshold comes from the others.
    shifted = scores.copy()
    shifted[folds == 3] += 3
    assert kfold_accuracy(shifted, labels, folds)[2][3] < per_fold[3]


def test_report_metrics_agree_with_definitions():
    scores, labels = _scores(separation=1.5)
    report = verification_report(scores, labels, np.arange(len(scores)) % 10, threshold=0.75)
    assert report["auc"] == pytest.approx(roc_auc_score(labels, scores))
    predicted = scores >= 0.75
    assert report["accuracy_at_threshold"] == pytest.approx(np.mean(predicted == labels))
    far = np.mean(predicted[~labels])
    frr = np.mean(~predicted[labels])
    assert min(far, frr) - 0.05 <= report["eer"] <= max(far, frr) + 0.05
    assert 0 <= report["tar_at_far_1e-3"] <= report["tar_at_far_1e-2"] <= 1
    # the counts behind accuracy, precision and recall, which model cards turn into confidence intervals
    assert (report["genuine_pairs"], report["impostor_pairs"]) == (labels.sum(), (~labels).sum())
    accepted = report["true_accepts"] + report["false_accepts"]
    assert report["true_accepts"] == np.sum(predicted & labels) and accepted == np.sum(predicted)
    assert report["precision"] == pytest.approx(report["true_accepts"] / accepted)


def test_operating_point_counts_accepted_impostors_and_genuine_pairs():
    scores = np.array([0.1, 0.4, 0.6, 0.9, 0.3, 0.55, 0.7, 0.95])
    labels = np.array([False, False, False, False, True, True, True, True])
    assert operating_point(scores, labels, 0.5) == {"far_at_threshold": 0.5, "tar_at_threshold": 0.75}
    assert operating_point(scores, labels, 0.6) == {"far_at_threshold": 0.5, "tar_at_threshold": 0.5}  # >= accepts
    assert operating_point(scores, labels, 1.0) == {"far_at_threshold": 0.0, "tar_at_threshold": 0.0}
    # verification_report carries the operating point of its threshold, and it agrees with TAR at FAR.
    random_scores, random_labels = _scores(separation=2.5)
    report = verification_report(random_scores, random_labels, threshold=1.2)
    assert report["far_at_threshold"] == pytest.approx(np.mean(random_scores[~random_labels] >= 1.2))
    assert report["tar_at_threshold"] <= tar_at_far(random_scores, random_labels, report["far_at_threshold"])
    with pytest.raises(ValueError, match="both genuine and impostor"):
        operating_point(scores[:4], labels[:4], 0.5)


def test_tar_at_far_and_eer_on_perfect_scores():
    scores = np.array([0.0, 0.1, 0.9, 1.0])
    labels = np.array([False, False, True, True])
    assert tar_at_far(scores, labels, 1e-3) == 1.0
    assert equal_error_rate(scores, labels) == 0.0


def test_threshold_sweep_best_f1_and_target_far():
    scores, labels = _scores(separation=2.5, seed=1)
    t_f1 = threshold_sweep(scores, labels)
    t_far = threshold_sweep(scores, labels, target_far=0.01)
    assert np.mean(scores[~labels] >= t_far) <= 0.01
    assert t_far > t_f1


def test_read_pairs_tsv(tmp_path):
    (tmp_path / "pairs.tsv").write_text("a.jpg\tb.jpg\t1\t0\nc.jpg\td.jpg\t0\t3\n")
    pairs = read_pairs_tsv(tmp_path / "pairs.tsv", tmp_path)
    assert [(p.path1.name, p.same, p.fold) for p in pairs] == [("a.jpg", True, 0), ("c.jpg", False, 3)]
    (tmp_path / "bad.tsv").write_text("a.jpg b.jpg 1 0\n")
    with pytest.raises(PairsFormatError, match="bad.tsv:1"):
        read_pairs_tsv(tmp_path / "bad.tsv", tmp_path)


def test_read_lfw_view2_pairs(lfw_dir):
    pairs = read_lfw_pairs(lfw_dir)
    assert len(pairs) == 6000
    assert sum(p.same for p in pairs) == 3000
    assert sorted(set(p.fold for p in pairs)) == list(range(10))
    assert all(p.path1.is_file() and p.path2.is_file() for p in pairs[:50] + pairs[-50:])
    dev = read_lfw_pairs(lfw_dir, "pairsDevTrain.txt")
    assert len(dev) == 2200 and {p.fold for p in dev} == {0}


@needs_lfw
def test_align_pair_images_central_policy_uses_the_subject(tmp_path, lfw_dir):
    """An LFW-like crop with a larger face beside its subject: `central` embeds the subject, `largest` the other."""
    import cv2

    from trainer.evaluate import Pair, align_pair_images, embed_pairs, euclidean_scores
    from trainer.images import load_image
    from trainer.verify import Verifier

    subject, other = load_image(lfw_image("Colin_Powell", 1)), load_image(lfw_image("Tony_Blair", 1))
    canvas = np.full((400, 1000, 3), 255, np.uint8)
    canvas[75:325, 375:625] = subject  # centred
    canvas[:, 640:] = cv2.resize(other, (360, 400))[:, :360]  # larger, off to the right
    crowded = tmp_path / "crowded.png"
    cv2.imwrite(str(crowded), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    pairs = [Pair(crowded, lfw_image("Colin_Powell", 2), True, 0)]
    verifier = Verifier.default()
    distances = {}
    for policy in ("largest", "central"):
        aligned = align_pair_images(verifier, pairs, on_multiple=policy)
        assert aligned.several_faces == 1 and aligned.on_multiple == policy
        distances[policy] = -euclidean_scores(embed_pairs(verifier, pairs, aligned))[0]
    assert distances["central"] < 0.6 < distances["largest"]

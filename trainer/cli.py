"""`python -m trainer` (installed: `facereg`): verify two faces, evaluate on pair lists, rebuild or export the
default model, fine-tune on a dataset, collect faces from a camera or video."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import FaceRegError


def _load_verifier(args: argparse.Namespace):
    from .verify import Verifier

    return Verifier.from_dir(args.model) if args.model else Verifier.default()


def cmd_verify(args: argparse.Namespace) -> int:
    """Verify two face images."""
    result = _load_verifier(args).verify(args.image1, args.image2, threshold=args.threshold)
    if args.json:
        print(json.dumps(result))
        return 0
    verdict = "SAME person" if result["is_match"] else "DIFFERENT people"
    print(f"{verdict}: score {result['score']:.4f} (threshold {result['threshold']:.4f}), "
          f"{result['timing_ms']['total']:.0f} ms")
    for warning in result["warnings"]:
        print(f"warning: {warning}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Evaluate a model on a pairs file."""
    from .evaluate import align_pair_images, embed_pairs, evaluate_embeddings, read_lfw_pairs, read_pairs_tsv

    if args.lfw:
        pairs = read_lfw_pairs(args.lfw)
    elif args.pairs and args.images:
        pairs = read_pairs_tsv(args.pairs, args.images)
    else:
        raise FaceRegError("give --pairs PAIRS.tsv with --images DIR, or --lfw DIR")
    verifier = _load_verifier(args)

    def progress(done: int, total: int) -> None:
        print(f"\raligned {done}/{total} images", end="", file=sys.stderr, flush=True)

    on_multiple = args.on_multiple or ("central" if args.lfw else "largest")
    aligned = align_pair_images(verifier, pairs, None if args.json else progress, on_multiple=on_multiple)
    embedded = embed_pairs(verifier, pairs, aligned)
    report = evaluate_embeddings(verifier, embedded, args.metric)
    report.setdefault("accuracy_at_threshold", None)
    report.setdefault("accuracy_mean", None)
    report.setdefault("accuracy_std", None)
    if args.json:
        print(json.dumps(report))
        return 0
    print(file=sys.stderr)
    print(f"pairs: {report['pairs']} ({len(set(embedded.folds.tolist()))} folds), scored by {args.metric}")
    if report["accuracy_mean"] is not None:
        print(f"accuracy (10-fold, threshold chosen on the other folds): "
              f"{100 * report['accuracy_mean']:.2f} +/- {100 * report['accuracy_std']:.2f} %")
    if report["accuracy_at_threshold"] is not None:
        print(f"accuracy at the model's threshold {report['threshold']:.4f}: {100 * report['accuracy_at_threshold']:.2f} %")
    print(f"ROC AUC {report['auc']:.5f}, EER {100 * report['eer']:.2f} %, "
          f"TAR at FAR 1e-3 {100 * report['tar_at_far_1e-3']:.2f} %")
    if report["accuracy_at_threshold"] is not None:
        print(f"at that threshold: FAR {100 * report['far_at_threshold']:.2f} % (impostor pairs accepted), "
              f"TAR {100 * report['tar_at_threshold']:.2f} %")
    print(f"images without a detected face: {report['no_face']} of {report['images']} ({report['no_face_policy']}); "
          f"with a low-confidence face (below the detector's bar, above its floor): {report['low_confidence_faces']}")
    print(f"images with several faces: {report['several_faces']} ({report['several_faces_policy']} was used)")
    return 0


def cmd_fit_default(args: argparse.Namespace) -> int:
    """Retrain the embedded default head on LFW View 1."""
    from .default_model import fit_default_head

    options = {"epochs": args.epochs, "learning_rate": args.learning_rate}
    fit_default_head(args.lfw, seed=args.seed, **{k: v for k, v in options.items() if v is not None})
    return 0


def cmd_export_default(args: argparse.Namespace) -> int:
    """Write the embedded default model as a FaceReg model folder."""
    from .default_model import export_default

    if args.dir.exists() and (not args.dir.is_dir() or any(args.dir.iterdir())):
        raise FaceRegError(f"{args.dir} exists and is not an empty folder: give a new folder to export into")
    folder = export_default(args.dir)
    print(f"wrote {folder}: publish it with `python -m hub_tools push-model {folder} USER/facereg`")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Fine-tune a Siamese model on a FaceReg dataset and write (and push) the model folder."""
    from hub_tools import HubError

    from .train import train

    try:
        result = train(args.dataset, args.backbone, args.epochs, args.output, push_to=args.push_to,
                       resume=args.resume, token=args.token, seed=args.seed, unfreeze=args.unfreeze,
                       target_far=args.target_far, checkpoint_every=args.checkpoint_every,
                       learning_rate=args.learning_rate, private=not args.public, cache_dir=args.cache_dir)
    except HubError as exc:
        raise FaceRegError(str(exc)) from exc
    m = result.metrics
    print(f"wrote {result.output}: threshold {result.threshold:.4f}; validation ({m['pairs']} pairs) F1 {m['f1']:.4f}, "
          f"accuracy {m['accuracy_at_threshold']:.4f}, ROC AUC {m['auc']:.4f}, EER {100 * m['eer']:.2f} %")
    if result.no_face or result.corrupt:
        print(f"skipped {len(result.no_face)} images without a face and {len(result.corrupt)} unreadable images")
    if result.url:
        print(f"pushed to {result.url}")
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    """Save face crops from a camera or video file into a dataset folder."""
    from .collect import collect

    result = collect(args.source, args.label, args.out, every=args.every, max_faces=args.max, progress=print)
    print(f"saved {len(result.saved)} faces into {Path(args.out) / args.label} "
          f"({result.frames} frames sampled, {result.no_face} without a face)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `python -m trainer`."""
    prog = "facereg" if Path(sys.argv[0]).name == "facereg" else "python -m trainer"  # the installed command
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    verify = sub.add_parser("verify", help="are these two faces the same person?")
    verify.add_argument("image1")
    verify.add_argument("image2")
    verify.add_argument("--threshold", type=float, help="decision threshold (default: the model's tuned one)")
    verify.set_defaults(func=cmd_verify)

    evaluate = sub.add_parser("evaluate", help="accuracy, ROC AUC, EER and TAR on a pairs file")
    evaluate.add_argument("--pairs", type=Path, help="lines path1<TAB>path2<TAB>same(0/1)<TAB>fold(0-9)")
    evaluate.add_argument("--images", type=Path, help="folder the pair paths are relative to")
    evaluate.add_argument("--lfw", type=Path, help="LFW folder: evaluate on its View 2 pairs.txt")
    evaluate.add_argument("--metric", choices=["head", "euclidean"], default="head",
                          help="score pairs with the model's head (default) or plain Euclidean distance")
    evaluate.add_argument("--on-multiple", choices=["largest", "central"],
                          help="face used in images with several: the largest (default), or the one nearest the "
                               "centre (default with --lfw: LFW images are crops centred on their subject)")
    evaluate.set_defaults(func=cmd_evaluate)

    fit = sub.add_parser("fit-default", help="retrain the embedded default head on LFW View 1 DevTrain")
    fit.add_argument("--lfw", type=Path, required=True)
    fit.add_argument("--epochs", type=int, help="default: HEAD_EPOCHS in trainer/default_model.py")
    fit.add_argument("--learning-rate", type=float, help="default: HEAD_LEARNING_RATE in trainer/default_model.py")
    fit.add_argument("--seed", type=int, default=0)
    fit.set_defaults(func=cmd_fit_default)

    export = sub.add_parser("export-default", help="write the embedded default model as a publishable model folder")
    export.add_argument("dir", type=Path, help="a new (or empty) folder")
    export.set_defaults(func=cmd_export_default)

    train = sub.add_parser("train", help="fine-tune on a dataset of anchor/positive/negative faces, tune the threshold")
    train.add_argument("--dataset", required=True, help="a Hub dataset repo id, or a folder with anchor/ positive/ negative/")
    train.add_argument("--backbone", required=True, help="dlib_resnet (pretrained; head only) or classic (from scratch)")
    train.add_argument("--epochs", type=int, required=True)
    train.add_argument("--output", type=Path, required=True, help="the FaceReg model folder to write")
    train.add_argument("--push-to", metavar="REPO", help="publish the model folder to this model repo at the end")
    train.add_argument("--public", action="store_true", help="make the pushed repo public (default: private)")
    train.add_argument("--token", help="Hugging Face token (default: HF_TOKEN or the stored login)")
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint of an interrupted run")
    train.add_argument("--unfreeze", type=int, default=0, metavar="K",
                       help="dlib_resnet: also fine-tune the last K residual blocks")
    train.add_argument("--target-far", type=float, help="threshold for this false-accept rate (default: best F1)")
    train.add_argument("--checkpoint-every", type=int, default=10, metavar="EPOCHS")
    train.add_argument("--learning-rate", type=float, help="initial Adam learning rate (default: per mode)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--cache-dir", type=Path, help="face cache (default: $FACEREG_CACHE or ~/.cache/facereg/faces)")
    train.set_defaults(func=cmd_train)

    collect = sub.add_parser("collect", help="save face crops from a camera or a video file into a dataset folder")
    collect.add_argument("--source", required=True, help="a camera index (0) or a video file")
    collect.add_argument("--label", required=True, choices=["anchor", "positive", "negative"])
    collect.add_argument("--out", type=Path, required=True, help="the dataset folder (images go in OUT/LABEL/)")
    collect.add_argument("--every", type=float, default=1.0, metavar="SECONDS", help="sample a frame this often")
    collect.add_argument("--max", type=int, metavar="N", help="stop after N faces")
    collect.set_defaults(func=cmd_collect)

    for command in (verify, evaluate):
        command.add_argument("--model", type=Path, help="a FaceReg model folder (default: the embedded model)")
        command.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; errors become one line on stderr and a non-zero exit status."""
    args = build_parser().parse_args(argv)
    from .serving import configure_cpu

    configure_cpu()  # before TensorFlow runs: half the CPUs per operation, the embedding's two passes side by side
    try:
        return args.func(args)
    except (FaceRegError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

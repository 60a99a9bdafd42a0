"""`python -m space`: start the FaceReg app on 127.0.0.1:7860 with the embedded default model (or FACEREG_MODEL_REPO).

`python -m space deploy USER/SPACE [--private] [--token T]` publishes the app as a Hugging Face Space instead
(space/deploy.py).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import threading

import space  # noqa: F401  (applies FACEREG_HUB_ENDPOINT first)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; the environment variables Gradio and Spaces use are the defaults."""
    parser = argparse.ArgumentParser(prog="python -m space", description=__doc__.splitlines()[0],
                                     epilog="python -m space deploy USER/SPACE: publish the app as a Hugging Face "
                                            "Space (python -m space deploy --help)")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument("--data-dir", help="where visitors' workspaces live (default: $FACEREG_DATA_DIR or a folder "
                                           "in the system's temp directory; emptied at start)")
    parser.add_argument("--no-warmup", action="store_true", help="load the model on the first request, not at start")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Build and launch the app: TensorFlow is imported first, then the model loads and its networks are traced in the
    background while the page is up."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["deploy"]:
        from space.deploy import main as deploy

        sys.exit(deploy(argv[1:]))
    args = parse_args(argv)
    from space.models import INFERENCE_PROCESS_ENV, Models
    from trainer.serving import configure_cpu, configure_memory

    configure_memory()  # before any server thread allocates: a flat RSS under load
    models = Models()
    if os.environ.get(INFERENCE_PROCESS_ENV, "1").strip() != "0":
        models.start_inference_process()  # first: it loads the model while this process imports the rest
    # TensorFlow is imported here, in one thread, before the server starts threads that need it: when the warm-up and
    # a first visitor's request imported it at once, one of them got a partially initialized module and the process
    # was left broken ("Registering two gradient with name ...") (tests/test_app_startup.py).
    configure_cpu()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("facereg").setLevel(logging.INFO)
    from space.app import build_app, launch
    from space.workspace import Workspaces

    demo = build_app(models, Workspaces(args.data_dir))
    if not args.no_warmup:
        threading.Thread(target=_warm_up, args=(models,), name="facereg-warmup", daemon=True).start()
    launch(demo, server_name=args.host, server_port=args.port)


def _warm_up(models) -> None:
    """Load the default model now; a failure is logged and reported again on first use."""
    try:
        models.warm_up()
        logging.getLogger("facereg.space").info("model ready: %s", models.default_source.describe())
    except Exception as exc:  # noqa: BLE001 - reported to the user when an action needs the model
        logging.getLogger("facereg.space").warning("model not loaded at start: %s", exc)


if __name__ == "__main__":
    main()

"""What Gradio itself costs a /verify request: the app's endpoint with its networks taken out, under the same load.

Run from the repo root:  python -m benchmarks.gradio_floor [--clients 8] [--duration 20]

A stand-in app (a subprocess) has /verify's inputs and outputs, built and launched as `space.app` builds and
launches them (the same components, `preprocess=False`, concurrency and queue settings), and a handler that reads
the two uploaded files and returns answers of the real app's shape and size (two inline JPEG chips, a verdict, the
details) without detecting or embedding anything. `benchmarks.bench_app`'s gradio_client clients load it with LFW
pairs. The server CPU and the clients' CPU a request are the floor under the app's own figures (`bench_app`'s
"server CPU ms a pair" and "clients' CPU ms a pair"): what the app spends above it is its handler and its networks.
The stand-in is a benchmark's measuring device, not a test double: no test uses it.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))


def serve(port: int) -> None:
    """The stand-in app: /verify as space.app wires it, answering without networks."""
    import gradio as gr
    import numpy as np

    from space.actions import verdict_markdown
    from space.app import QUEUE_POLL_S, VERIFY
    from space.components import chips_html, face_image
    from space.state import image_path

    rng = np.random.default_rng(0)
    chips = chips_html([rng.integers(0, 256, (150, 150, 3), dtype=np.uint8) for _ in range(2)],
                       ("Aligned face 1", "Aligned face 2"))
    verdict = verdict_markdown(True, "score **0.990** vs threshold 0.500")

    def verify(image1, image2, threshold):
        for image in (image1, image2):
            Path(image_path(image, "a face")).read_bytes()
        details = {"is_match": True, "score": 0.99, "threshold": threshold, "distance": 0.3,
                   "faces": [{"box": [60, 60, 120, 140], "confidence": 0.99, "low_confidence": False,
                              "faces_found": 1}] * 2, "warnings": [], "backbone": "none",
                   "timing_ms": {"detect_align": 0.0, "embed": 0.0, "head": 0.0, "total": 0.0}, "elapsed_ms": 0.0}
        return chips, verdict, 0.99, 0.0, details

    with gr.Blocks() as demo:
        image1, image2 = face_image("Face 1"), face_image("Face 2")
        threshold = gr.Slider(0, 1, value=0.5, step=0.001)
        button = gr.Button("Verify")
        outputs = [gr.HTML(), gr.Markdown(), gr.Number(precision=4), gr.Number(precision=0), gr.JSON()]
        button.click(verify, [image1, image2, threshold], outputs, api_name="verify", preprocess=False, **VERIFY)
    demo.queue(default_concurrency_limit=2)
    demo._queue.sleep_when_free = QUEUE_POLL_S
    demo.launch(server_name="127.0.0.1", server_port=port, max_file_size=10 * 1024 * 1024)


def main(argv: list[str] | None = None) -> int:
    """Start the stand-in, load it, print a table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the stand-in's own process
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0

    from benchmarks.bench_app import CLIENT_OPTIONS, Pairs, cpu_s, first_answer, load, percentile
    from space.testing import free_port, http_stack
    from trainer.evaluate import LFW_DIR, read_lfw_pairs

    CLIENT_OPTIONS["ssl_verify"] = False  # as bench_app runs its clients
    lfw_pairs = read_lfw_pairs(LFW_DIR)
    genuine = next(p for p in lfw_pairs if p.same)
    pairs = Pairs([(p.path1, p.path2) for p in lfw_pairs])
    port = free_port()
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen([sys.executable, "-m", "benchmarks.gradio_floor", "--serve", str(port)],
                                  cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}/"
        try:
            first_answer(url, (genuine.path1, genuine.path2), 0.5, server, timeout=120)
            server_cpu, client_cpu = cpu_s(server.pid), time.process_time()
            row = load(url, args.clients, args.duration, pairs, 0.5)
            server_cpu, client_cpu = cpu_s(server.pid) - server_cpu, time.process_time() - client_cpu
            stack = http_stack(server.pid)
        finally:
            server.terminate()
            server.wait(30)
    answered = max(1, len(row.latencies))
    print(f"\nGradio's floor: /verify without networks ({stack}), {args.clients} gradio_client clients, "
          f"{args.duration:.0f} s\n")
    print("| requests | errors | requests/s | median ms | p95 ms | server CPU ms a request | "
          "clients' CPU ms a request |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {len(row.latencies)} | {len(row.errors)} | {len(row.latencies) / args.duration:.1f} | "
          f"{statistics.median(row.latencies or [float('nan')]):.0f} | "
          f"{percentile(row.latencies or [float('nan')], 95):.0f} | {1000 * server_cpu / answered:.1f} | "
          f"{1000 * client_cpu / answered:.1f} |")
    return 1 if row.errors else 0


if __name__ == "__main__":
    sys.exit(main())

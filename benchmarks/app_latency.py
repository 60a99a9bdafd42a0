"""Where one visitor's /verify request spends its time, phase by phase, beside `Verifier.verify` alone.

    python -m benchmarks.app_latency [--requests 30]

Starts `python -m space` as `bench_app` does and waits for its first answer. Then, one request at a time on LFW
pairs: gradio_client as an API user calls it (`Client.predict` with `handle_file`), and the same request made step
by step over Gradio's own HTTP protocol on one kept-alive connection and one session, as a browser tab makes it
(upload both files, then post the event and read the answer from the response, as the app's Verify does; or, with
FACEREG_VERIFY_QUEUE=1 set for the app, join the queue and read the server-sent events until `process_completed`),
timing each step; the
app's own `elapsed_ms` output is the time in its handler from the model lookup to the answer, and its `timing_ms`
the networks' part of it. `Verifier.verify` on the same pairs in this process gives the networks' time twice:
before the app starts, and between the app's requests, where the two processes' networks take turns on the same CPU
caches, as the app's networks and its clients do. The server runs with GRADIO_PROFILING=1, and Gradio's own timing of
the phases (queue wait, preprocessing, the handler, postprocessing) of gradio_client's requests to /verify follows
(its profiler times the events of its queue, which gradio_client always joins). Prints medians in tables.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.bench_app import (
    CLIENT_OPTIONS,
    Tab,
    first_answer,
    free_port,
    load_verifier,
    protocol_verify,
    single_stream,
    start_server,
    verify_fn_index,
)
from trainer.evaluate import LFW_DIR, read_lfw_pairs


def protocol_steps(tab: Tab, pair: tuple[Path, Path], threshold: float, fn_index: int, queued: bool
                   ) -> dict[str, float]:
    """Milliseconds of each step of one /verify request over Gradio's HTTP protocol (`bench_app.protocol_verify`),
    and the handler's own time, for a visitor's session (Gradio builds a session's state at its first request: one
    session serves them all)."""
    output, marks = protocol_verify(tab, pair, threshold, fn_index, queued)
    steps = {"upload both files (two POSTs)": 1000 * (marks["uploaded"] - marks["start"])}
    if queued:
        started = marks.get("process_starts", marks["joined"])
        steps |= {
            "post the event: join the queue (POST)": 1000 * (marks["joined"] - marks["uploaded"]),
            "wait until the queue starts it": 1000 * (started - marks["joined"]),
            "start to completed (pre/postprocess and the handler)": 1000 * (marks["process_completed"] - started),
        }
    else:
        steps["post the event, the answer in the response (one POST, no queue)"] = 1000 * (
            marks["done"] - marks["uploaded"])
    return steps | {
        "  of which the handler (its elapsed_ms output)": float(output[3]),
        "    of which decoding and the networks (its timing_ms total)": float(output[4]["timing_ms"]["total"]),
        "total over the protocol": 1000 * (marks["done"] - marks["start"]),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the requests and print the table."""
    import httpx
    from gradio_client import Client, handle_file

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args(argv)
    CLIENT_OPTIONS["ssl_verify"] = False
    lfw = read_lfw_pairs(LFW_DIR)
    pairs = [(p.path1, p.path2) for p in lfw[: 2 * args.requests : 2]]
    genuine = next(p for p in lfw if p.same)
    verifier = load_verifier(None)
    threshold = verifier.threshold
    networks, _ = single_stream(verifier, pairs)
    work = Path(tempfile.mkdtemp(prefix="app-latency-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(port, work, None, {"GRADIO_PROFILING": "1"})  # Gradio's own timing of each phase
    try:
        first_answer(f"{url}/", (genuine.path1, genuine.path2), threshold, server)
        fn_index, queued = verify_fn_index(url)
        client = Client(f"{url}/", verbose=False, **CLIENT_OPTIONS)
        steps: dict[str, list[float]] = {}
        predicted, beside = [], []
        tab = Tab(url)
        try:
            first = protocol_steps(tab, pairs[0], threshold, fn_index, queued)  # the session's first request
            for pair in pairs:
                begin = time.perf_counter()
                client.predict(*(handle_file(str(p)) for p in pair), threshold, api_name="/verify")
                predicted.append(1000 * (time.perf_counter() - begin))
                for name, ms in protocol_steps(tab, pair, threshold, fn_index, queued).items():
                    steps.setdefault(name, []).append(ms)
                begin = time.perf_counter()
                verifier.verify(*pair)
                beside.append(1000 * (time.perf_counter() - begin))
        finally:
            tab.close()
        traces = [trace for trace in httpx.get(f"{url}/gradio_api/profiling/traces").json()
                  if trace.get("fn_name") == "verify"][1:]  # without the session's first request
    finally:
        server.terminate()
        server.wait(timeout=60)
    median = statistics.median
    print(f"\n| one visitor's /verify, {len(pairs)} LFW pairs (median ms) | ms |\n|---|---:|")
    print(f"| `Verifier.verify` in process (the networks), before the app starts | {median(networks):.0f} |")
    print(f"| `Verifier.verify` in process, between the app's requests | {median(beside):.0f} |")
    print(f"| gradio_client `Client.predict` (a new connection per upload) | {median(predicted):.0f} |")
    for name, values in steps.items():
        print(f"| {name} | {median(values):.0f} |")
    event = next(name for name in first if name.startswith("post the event"))
    print(f"| {event}, a session's first request (Gradio builds the session's state) | {first[event]:.0f} |")
    print(f"\n| Gradio's own phases of gradio_client's {len(traces)} requests to /verify, queued (GRADIO_PROFILING, "
          f"median ms) | ms |\n|---|---:|")
    for phase in ("queue_wait", "preprocess", "fn_call", "postprocess", "total"):
        print(f"| {phase} | {median(trace[phase + '_ms'] for trace in traces):.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The app as a user meets it: cold start to the first answer, /verify latency with 1 and 8 clients, server memory.

Run from the repo root:  python -m benchmarks.bench_app [--duration 60] [--clients 1 8] [--model-dir DIR]

Starts `python -m space` in a subprocess (fresh HF_HOME and capture folder), times from the start of the process
to the first /verify answer, then for each client count runs that many `gradio_client` clients in threads, each
calling /verify on its own genuine LFW pair back to back for `--duration` seconds. The server's resident memory (RSS,
from /proc) is sampled every 0.5 s. Prints a markdown table; exits non-zero if any request failed.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from trainer.evaluate import LFW_DIR  # noqa: E402 (FACEREG_LFW, else ../shared/data/lfw)

REPO_ROOT = Path(__file__).resolve().parent.parent
PERSON = "Colin_Powell"  # 236 images: each client gets its own genuine pair


def pair(i: int) -> tuple:
    """Client i's genuine pair, as gradio_client files. Distinct per client: Gradio caches outputs by content, and
    identical answers written concurrently to the same cache file can be read half-written."""
    from gradio_client import handle_file

    return tuple(handle_file(str(LFW_DIR / "images" / PERSON / f"{PERSON}_{n:04d}.jpg")) for n in (2 * i + 1, 2 * i + 2))


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mib(pid: int) -> float:
    """Resident memory of a process, MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class MemorySampler(threading.Thread):
    """Samples a process's RSS every `every` seconds until stopped."""

    def __init__(self, pid: int, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pid, self.every, self.samples = pid, every, []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.samples.append(rss_mib(self.pid))
            except OSError:
                return
            self._stop_event.wait(self.every)

    def stop(self) -> list[float]:
        """Stop sampling; the samples taken."""
        self._stop_event.set()
        self.join()
        return self.samples


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def start_server(port: int, work: Path, model_dir: str | None) -> subprocess.Popen:
    """`python -m space` on port, with a fresh HF_HOME and capture folder."""
    env = {**os.environ, "HF_HOME": str(work / "hf-home"), "FACEREG_CAPTURE_DIR": str(work / "captures"),
           "FACEREG_RUNS_DIR": str(work / "runs"), "GRADIO_ANALYTICS_ENABLED": "False"}
    if model_dir:
        env["FACEREG_MODEL_DIR"] = model_dir
    return subprocess.Popen([sys.executable, "-m", "space", "--port", str(port)], cwd=REPO_ROOT, env=env,
                            stdout=open(work / "server.log", "wb"), stderr=subprocess.STDOUT)


def first_answer(url: str, files: tuple, server: subprocess.Popen, timeout: float = 600) -> float:
    """Wait until /verify answers; the time it took from now."""
    from gradio_client import Client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the app exited with {server.returncode}")
        try:
            client = Client(url, verbose=False)
            client.predict(*files, 0.5, api_name="/verify")
            return time.monotonic()
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.5)
    raise TimeoutError("no answer from the app")


def load(url: str, clients: int, duration: float) -> tuple[list[float], list[str]]:
    """`clients` threads calling /verify back to back for `duration` s: latencies (ms) and errors."""
    from gradio_client import Client

    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    connected = [Client(url, verbose=False) for _ in range(clients)]
    end = time.monotonic() + duration

    def worker(client, files: tuple) -> None:
        while time.monotonic() < end:
            start = time.perf_counter()
            try:
                details = client.predict(*files, 0.5, api_name="/verify")[-1]
                assert "score" in details
                ok = True
            except Exception as exc:  # noqa: BLE001 - counted and reported
                ok = False
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
            if ok:
                with lock:
                    latencies.append(1000 * (time.perf_counter() - start))

    threads = [threading.Thread(target=worker, args=(c, pair(i))) for i, c in enumerate(connected)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load per client count")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--model-dir", help="a FaceReg model folder instead of the embedded default")
    args = parser.parse_args(argv)
    files = pair(0)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-app-") as tmp:
        started = time.monotonic()
        server = start_server(port, Path(tmp), args.model_dir)
        sampler = MemorySampler(server.pid)
        sampler.start()
        try:
            cold_s = first_answer(f"http://127.0.0.1:{port}/", files, server) - started
            rows, failed = [], 0
            for clients in args.clients:
                before = len(sampler.samples)
                latencies, errors = load(f"http://127.0.0.1:{port}/", clients, args.duration)
                memory = sampler.samples[before:] or [rss_mib(server.pid)]
                failed += len(errors)
                rows.append((clients, latencies, errors, memory))
                for error in sorted(set(errors))[:3]:
                    print(f"error with {clients} clients: {error}", file=sys.stderr)
        finally:
            sampler.stop()
            server.terminate()
            server.wait(30)
    print(f"Cold start to the first /verify answer: {cold_s:.1f} s (process start, imports, model load, first call)\n")
    print("| clients | requests | errors | median ms | p95 ms | req/s | server RSS MiB (min / max) |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    for clients, latencies, errors, memory in rows:
        median = statistics.median(latencies) if latencies else float("nan")
        p95 = percentile(latencies, 95) if latencies else float("nan")
        print(f"| {clients} | {len(latencies)} | {len(errors)} | {median:.0f} | {p95:.0f} | "
              f"{len(latencies) / args.duration:.2f} | {min(memory):.0f} / {max(memory):.0f} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Throughput of the local Hub server through the real `huggingface_hub` client, next to a plain file copy.

    python benchmarks/bench_hub.py [--size-mb 200] [--runs 3]

Starts `python -m hub_tools.server` on a free port with a temp data folder on the same disk as the source file,
uploads and downloads one file per run (content changed per run, so nothing is deduplicated), and prints a
markdown table of medians, with the server's peak resident memory (VmHWM, reset before each upload) during uploads.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int, data_dir: Path, token: str) -> subprocess.Popen:
    """Start the server and wait until it answers."""
    process = subprocess.Popen(
        [sys.executable, "-m", "hub_tools.server", "--port", str(port), "--data", str(data_dir), "--token", token],
        cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("server did not start")


def reset_peak_rss(pid: int) -> bool:
    """Reset the kernel's peak-RSS counter of a process (Linux: write 5 to clear_refs); False if not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("VmHWM not found")


def write_source(path: Path, size_mb: int, run: int) -> None:
    """A file of pseudo-random bytes, different for every run."""
    block = os.urandom(MB)
    with path.open("wb") as out:
        out.write(run.to_bytes(8, "little"))
        for _ in range(size_mb):
            out.write(block)
        out.flush()
        os.fsync(out.fileno())


def copy_with_fsync(src: Path, dst: Path) -> None:
    """Plain copy, flushed to disk like the server's blobs."""
    shutil.copyfile(src, dst)
    with dst.open("rb+") as out:
        os.fsync(out.fileno())


def drain(url: str) -> None:
    """GET a URL and discard the body."""
    with urllib.request.urlopen(url) as response:
        while response.read(MB):
            pass


def timed(action: Callable[[], object]) -> float:
    """Seconds one call takes."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-hub-"))
    port, token = free_port(), "hf_bench_token"
    os.environ["FACEREG_HUB_ENDPOINT"] = f"http://127.0.0.1:{port}"
    os.environ["HF_HOME"] = str(work / "hf_home")
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    sys.path.insert(0, str(REPO_ROOT))
    import hub_tools  # noqa: F401  (applies FACEREG_HUB_ENDPOINT before huggingface_hub is imported)
    from huggingface_hub import HfApi, hf_hub_download

    server = start_server(port, work / "data", token)
    results: dict[str, list[float]] = {"copy": [], "upload": [], "download": [], "raw_get": [], "rss": []}
    rss_reset = True
    try:
        api = HfApi(token=token)
        repo_id = "bench/throughput"
        api.create_repo(repo_id)
        source, copy = work / "source.bin", work / "copy.bin"
        for run in range(args.runs):
            write_source(source, args.size_mb, run)
            results["copy"].append(timed(lambda: copy_with_fsync(source, copy)))
            copy.unlink()
            rss_reset &= reset_peak_rss(server.pid)
            results["upload"].append(timed(lambda: api.upload_file(
                path_or_fileobj=str(source), path_in_repo=f"big-{run}.bin", repo_id=repo_id)))
            results["rss"].append(peak_rss_mb(server.pid))
            results["download"].append(timed(lambda: hf_hub_download(
                repo_id, f"big-{run}.bin", local_dir=work / "download", token=token)))
            url = f"http://127.0.0.1:{port}/{repo_id}/resolve/main/big-{run}.bin"
            results["raw_get"].append(timed(lambda: drain(url)))
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)

    size = args.size_mb + 8 / MB
    print(f"\n{args.size_mb} MB file, median of {args.runs} runs, server and client on this machine "
          f"({os.cpu_count()} CPUs)\n")
    print("| operation | median time (s) | throughput (MB/s) |")
    print("|---|---:|---:|")
    for name, label in (("copy", "plain file copy + fsync (same disk)"),
                        ("upload", "upload_file via huggingface_hub (LFS)"),
                        ("download", "hf_hub_download"),
                        ("raw_get", "raw HTTP GET of the resolve URL (server side only)")):
        median = statistics.median(results[name])
        print(f"| {label} | {median:.2f} | {size / median:.0f} |")
    scope = "during the upload" if rss_reset else "since server start (peak reset not permitted)"
    print(f"\nServer peak RSS (VmHWM) {scope}: median {statistics.median(results['rss']):.0f} MiB, "
          f"max {max(results['rss']):.0f} MiB")


if __name__ == "__main__":
    main()

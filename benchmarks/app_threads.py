"""Where the app's CPU goes under load, thread by thread: TensorFlow's and OpenCV's own threads, the inference
workers, Gradio's event loop (uploads, queue, server-sent events, file routes), the request handlers; and the clients.

    python -m benchmarks.app_threads [--clients 8] [--duration 30] [--protocol]

Starts `python -m space` as `bench_app` does, warms it up, then `--clients` gradio_client clients call /verify
back to back on LFW pairs for `--duration` seconds (with `--protocol`, clients that speak Gradio's protocol as the
page does: `bench_app.load_protocol`). The CPU time of each thread of the server and of its inference process
(`trainer.inference_process`, shown as "inference process: ...") is read from /proc/<pid>/task before and after; Python threads are named from `py-spy dump` (needs `py-spy`, in
requirements-bench.txt), the others by their OS name (TensorFlow's inter-op pool is `tf_Compute`; its intra-op
threads, OpenCV's thread pool and other native threads show as `native:python`). Prints CPU milliseconds per
answered pair.
"""
from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_app import (
    CLIENT_OPTIONS,
    Pairs,
    cpu_s,
    first_answer,
    free_port,
    load,
    load_protocol,
    start_server,
)
from trainer.evaluate import LFW_DIR, read_lfw_pairs


def thread_cpu(pid: int) -> dict[str, tuple[int, str, float]]:
    """CPU seconds of each thread of a process and of its descendants (the app's inference process):
    {thread id: (process id, OS name, seconds)} (Linux /proc)."""
    from space.testing import process_tree

    found = {}
    for member in process_tree(pid):
        try:
            tasks = list(Path(f"/proc/{member}/task").iterdir())
        except OSError:
            continue  # it ended
        for task in tasks:
            try:
                found[task.name] = (member, (task / "comm").read_text().strip(), cpu_s(member, task.name))
            except OSError:
                continue  # the thread ended
    return found


def python_thread_names(pid: int) -> dict[str, str]:
    """{native thread id: Python thread name} of a running Python process, from `py-spy dump`."""
    dump = subprocess.run(["py-spy", "dump", "--nonblocking", "-p", str(pid)], capture_output=True, text=True).stdout
    names = {}
    for tid, name in re.findall(r'^Thread (\S+) \(\w+\): "([^"]+)"', dump, re.MULTILINE):
        names[str(int(tid, 16)) if tid.startswith("0x") else tid] = name
    return names


def main(argv: list[str] | None = None) -> int:
    """Run the load and print CPU per pair by thread group."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--protocol", action="store_true", help="clients that speak the page's protocol")
    args = parser.parse_args(argv)
    CLIENT_OPTIONS["ssl_verify"] = False
    pairs = read_lfw_pairs(LFW_DIR)
    genuine = next(p for p in pairs if p.same)
    work = Path(tempfile.mkdtemp(prefix="app-threads-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    server = start_server(port, work, None)
    try:
        first_answer(url, (genuine.path1, genuine.path2), 0.5, server)
        todo = Pairs([(p.path1, p.path2) for p in pairs[100:]])
        clients = load_protocol if args.protocol else load
        clients(url, args.clients, 5, todo, 0.5)  # warm: every batch size traced, every thread started
        before, clients_before = thread_cpu(server.pid), time.process_time()
        row = clients(url, args.clients, args.duration, todo, 0.5)
        after, clients_cpu = thread_cpu(server.pid), time.process_time() - clients_before
        names = {tid: name for member in {owner for owner, _, _ in after.values()}
                 for tid, name in python_thread_names(member).items()}
    finally:
        server.terminate()
        server.wait(30)
    answered = max(1, len(row.latencies))
    groups: collections.Counter[str] = collections.Counter()
    for tid, (owner, os_name, seconds) in after.items():
        group = re.sub(r"[ _-]?\(?\d+\)?$", "", names.get(tid, f"native:{os_name}"))
        group = group if owner == server.pid else f"inference process: {group}"
        groups[group] += seconds - before.get(tid, (owner, os_name, 0.0))[2]
    print(f"\n{args.clients} clients, {args.duration:.0f} s: {len(row.latencies)} answered, {len(row.errors)} errors, "
          f"{len(row.latencies) / args.duration:.1f} pairs/s\n")
    print("| thread (group) | CPU ms a pair |\n|---|---:|")
    for group, seconds in groups.most_common():
        if seconds * 1000 / answered >= 0.1:
            print(f"| {group} | {1000 * seconds / answered:.1f} |")
    print(f"| **server, all threads** | **{1000 * sum(groups.values()) / answered:.1f}** |")
    kind = "protocol" if args.protocol else "gradio_client"
    print(f"| the {kind} clients (this process) | {1000 * clients_cpu / answered:.1f} |")
    return 1 if row.errors else 0


if __name__ == "__main__":
    sys.exit(main())

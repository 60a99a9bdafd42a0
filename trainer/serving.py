"""Serving many callers at once: one inference worker per `Verifier` batches concurrent verifications.

Many threads (an app's request handlers) call `BatchedVerifier.verify`. Each call decodes its two images in its own
thread, then hands them to the verifier's worker threads (WORKERS), the only threads that run its networks.
Whatever requests are waiting when a worker becomes free are served together by `Verifier.verify_decoded`: one
detection pass over all their images (same-size images share MTCNN calls), one embedding call for all the faces and
one head call for all the pairs. A lone request is served at once (a worker never waits for company), so one caller
pays only for the networks; under load, requests queue while the workers are busy and the next batch takes them all.

    from trainer import Verifier
    batched = Verifier.default().batcher()       # one per Verifier, made on first use
    result = batched.verify("a.jpg", "b.jpg")    # from any thread: the same result as Verifier.verify

A worker thread ends after `IDLE_EXIT_S` seconds without requests and starts again on the next one, so a
`Verifier` that is no longer used (the app switched models) is not kept alive by its worker.

The app runs its default model's BatchedVerifier in a process of its own (`trainer.inference_process`), so that its
web server's threads do not wait for the GIL behind these workers.
"""
from __future__ import annotations

import functools
import math
import os
import queue
import re
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar

if TYPE_CHECKING:
    from .verify import PairRequest, Verifier

T = TypeVar("T")
# Pairs served together at most. Bigger batches cost less CPU a pair in process (`verify_many`), but in the app at 8
# clients batches of up to 8 gave no more pairs/s than batches of 2 and a worse p95 (1.19-1.25 s against 0.88-0.91 s,
# `python -m benchmarks.bench_app`, docs/results-log.md; batches of up to 4 likewise on a faster machine, 2026-12-03):
# with two workers, a long batch holds whatever arrives just after it.
# Batches of 1 (no batching: FACEREG_MAX_PAIRS=1) served fewer pairs/s than batches of 2 (docs/results-log.md).
MAX_PAIRS = int(os.environ.get("FACEREG_MAX_PAIRS", "2"))
IDLE_EXIT_S = 30.0
# Worker threads per Verifier, and batches in flight in the whole process. A batch spends about a quarter of its
# time in Python (MTCNN's box handling, alignment) while TensorFlow's threads wait; a second batch in flight fills
# those gaps. With several Verifiers in one process (an app's default model and its visitors' own), their workers
# share these slots instead of each adding batches that compete for the cores.
WORKERS = int(os.environ.get("FACEREG_INFERENCE_WORKERS", "2"))
NETWORKS = threading.BoundedSemaphore(WORKERS)


@dataclass
class _Job:
    """A verification to batch (request), or any other work for the networks (call), and its caller's future."""

    request: PairRequest | None = None
    call: Callable[[], Any] | None = None
    future: Future = field(default_factory=Future)
    queued: float = field(default_factory=time.perf_counter)


class BatchedVerifier:
    """Verify pairs for many threads at once through worker threads that own a Verifier's networks (WORKERS)."""

    def __init__(
        self, verifier: Verifier, max_pairs: int = MAX_PAIRS, idle_exit_s: float = IDLE_EXIT_S, workers: int = WORKERS
    ) -> None:
        self.verifier = verifier
        self.max_pairs = max(1, int(max_pairs))
        self.idle_exit_s = idle_exit_s
        self.workers = max(1, int(workers))
        self._queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self.batches: list[int] = []  # size of each batch served, most recent last (the last 1000)

    def verify(self, img1: Any, img2: Any, threshold: float | None = None, return_chips: bool = False) -> dict:
        """`Verifier.verify`, served with whatever other requests are waiting; safe to call from many threads."""
        from .verify import PairRequest

        start = time.perf_counter()
        job = _Job(PairRequest.decode(img1, img2, threshold, return_chips))  # decoding errors raise here
        self._submit(job)
        result = job.future.result()
        if isinstance(result, Exception):
            raise result
        result["timing_ms"]["total"] = 1000 * (time.perf_counter() - start)
        return result

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run other work on this model's networks (anchors, capture detection...) on a worker thread, between
        batches, so that it does not compete with verifications for the CPU; its result or exception comes back."""
        job = _Job(call=functools.partial(fn, *args, **kwargs))
        self._submit(job)
        result = job.future.result()
        if isinstance(result, _Raised):
            raise result.error
        return result

    def _submit(self, job: _Job) -> None:
        self._queue.put(job)
        with self._lock:
            if len(self._workers) < self.workers:
                worker = threading.Thread(target=self._run, name="facereg-inference", daemon=True)
                self._workers.append(worker)
                worker.start()

    def _run(self) -> None:
        """The worker: take every waiting verification (up to max_pairs), serve them together, repeat; other work
        runs in its turn; exit when idle."""
        held: _Job | None = None  # a call met while gathering a batch: it runs after that batch
        while True:
            if held is not None:
                job, held = held, None
            else:
                try:
                    job = self._queue.get(timeout=self.idle_exit_s)
                except queue.Empty:
                    with self._lock:  # a request submitted meanwhile is seen here, or starts a new worker
                        if self._queue.empty():
                            self._workers.remove(threading.current_thread())
                            return
                    continue
            if job.call is not None:
                self._run_call(job)
                continue
            jobs = [job]
            while len(jobs) < self.max_pairs:
                try:
                    waiting = self._queue.get_nowait()
                except queue.Empty:
                    break
                if waiting.call is not None:
                    held = waiting
                    break
                jobs.append(waiting)
            self._serve(jobs)

    @staticmethod
    def _run_call(job: _Job) -> None:
        try:
            with NETWORKS:
                result = job.call()  # type: ignore[misc]
            job.future.set_result(result)
        except Exception as exc:  # noqa: BLE001 - raised again in the caller's thread
            job.future.set_result(_Raised(exc))

    def _serve(self, jobs: list[_Job]) -> None:
        started = time.perf_counter()
        self.batches = [*self.batches[-999:], len(jobs)]
        try:
            with NETWORKS:
                results: list[Any] = self.verifier.verify_decoded([job.request for job in jobs])  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001 - a failure of the batch goes to each of its callers
            results = [exc] * len(jobs)
        for job, result in zip(jobs, results):
            if isinstance(result, dict):
                result["timing_ms"]["queued"] = 1000 * (started - job.queued)
            job.future.set_result(result)


@dataclass
class _Raised:
    error: Exception


def usable_cpus() -> int:
    """The CPUs this process may use: those it may run on, capped by a cgroup CPU quota (a container limited to 2
    CPUs on a bigger host, as a Space is, still sees all the host's CPUs)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cpus


def configure_cpu(intra_op: int | None = None, inter_op: int | None = None) -> tuple[int, int]:
    """Size TensorFlow's thread pools: `intra_op` threads inside an operation (default: half the usable CPUs, at
    least 1) and `inter_op` operations side by side (default: the usable CPUs); TF_NUM_INTRAOP_THREADS /
    TF_NUM_INTEROP_THREADS, where set, win.

    The app and the CLI run it first. A `Verifier` made afterwards embeds the plain and the mirrored pass as two calls
    side by side, each on half the CPUs (`side_by_side`): on 2 CPUs, one thread each, which beat one call on two
    threads at batches of 2 to 32 chips (docs/results-log.md, "The app under load"). Must run before TensorFlow
    executes its first operation; once it runs, its settings stay and are returned.
    """
    import tensorflow as tf

    intra_op = intra_op or int(os.environ.get("TF_NUM_INTRAOP_THREADS") or 0) or max(1, usable_cpus() // 2)
    inter_op = inter_op or int(os.environ.get("TF_NUM_INTEROP_THREADS") or 0) or usable_cpus()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError:  # TensorFlow is already running: keep its settings
        pass
    return (tf.config.threading.get_intra_op_parallelism_threads(),
            tf.config.threading.get_inter_op_parallelism_threads())


def side_by_side() -> bool:
    """Whether TensorFlow is sized (by `configure_cpu`) to run two operations at once, each on its share of the CPUs:
    then a Verifier runs its two embedding passes as two calls side by side rather than as one call."""
    import tensorflow as tf

    intra_op = tf.config.threading.get_intra_op_parallelism_threads()
    return 0 < intra_op and 2 * intra_op <= tf.config.threading.get_inter_op_parallelism_threads()


PRECISIONS = ("float32", "bfloat16")


def cpu_has_bfloat16() -> bool:
    """Whether this CPU has bfloat16 dot products (x86's AVX512_BF16 or AMX-BF16), which oneDNN's kernels use."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return re.search(r"\b(avx512_bf16|amx_bf16)\b", flags) is not None


def inference_precision(bfloat16_checked: bool = True) -> str:
    """The precision a Verifier embeds in: FACEREG_PRECISION where set (float32 or bfloat16); by default bfloat16
    where the CPU has bfloat16 instructions and TensorFlow runs on oneDNN (elsewhere it would be slower) and the
    backbone was checked in bfloat16 (`BackboneSpec.bfloat16`, passed as `bfloat16_checked`), else float32.

    In bfloat16 the default model's embedding ran 1.25-1.8x faster on an AVX512_BF16 CPU (1 to 32 chips a call) and
    changed none of its decisions on LFW View 1 DevTest and View 2 (`python -m benchmarks.bench_precision`; README,
    "Speed and memory").
    """
    chosen = os.environ.get("FACEREG_PRECISION", "").strip().lower()
    if chosen:
        if chosen not in PRECISIONS:
            raise ValueError(f"FACEREG_PRECISION={chosen!r}: use one of {', '.join(PRECISIONS)}")
        return chosen
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1").strip() != "0"
    return "bfloat16" if bfloat16_checked and onednn and cpu_has_bfloat16() else "float32"


M_ARENA_MAX = -8  # glibc's mallopt parameter number
MALLOC_ARENAS = 2


def configure_memory(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas for a long-running server (as MALLOC_ARENA_MAX would); whether it applied.

    glibc gives threads that allocate at once arenas of their own, up to 8 per core, and memory freed in one arena
    is not reused by another: a server whose request threads and inference workers allocate image buffers kept
    growing (`python -m benchmarks.bench_app`'s soak). With 2 arenas the freed memory is reused. Call it before the
    server's threads start; MALLOC_ARENA_MAX set in the environment wins; elsewhere than glibc it does nothing.
    """
    import ctypes
    import ctypes.util

    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_ARENA_MAX, int(arenas)))
    except (OSError, AttributeError):
        return False


def warm_up(verifier: Verifier) -> None:
    """Trace the embedding and the head, run the embedding at the batch sizes of one face and of one pair, and build
    MTCNN's detector, ahead of the first request, on blank inputs."""
    import numpy as np

    from .faces import face_locations

    size, dim = verifier.spec.input_size, verifier.spec.embedding_dim
    for chips in (1, 2):  # one face (anchors, captures) and one pair: TensorFlow sets up each batch size on first use
        verifier.embed_chips(np.zeros((chips, size, size, 3), np.uint8))
    verifier.score(np.zeros((1, dim), np.float32), np.zeros((1, dim), np.float32))
    if verifier.config.detector == "mtcnn":
        face_locations(np.zeros((240, 320, 3), np.uint8))  # loads its networks and translates them for OpenCV

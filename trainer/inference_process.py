"""A model's verifications answered by a process of its own, so that a web server and the networks do not share a GIL.

In one Python process, an app's event loop (HTTP, uploads, routing) and its request handlers need the GIL for every
step, and get it back after each system call (a socket's send, a file's stat) only when the inference workers let go
of it, which they hold through MTCNN's box handling between the networks' calls. Under 8 concurrent clients that
wait, not the CPU, held the app under the single stream's rate. A second process has a GIL of its own: the app's
threads hand it each pair's image bytes over a pipe and wait (without the GIL) for the answer, and its own
`BatchedVerifier` batches them as before (`python -m benchmarks.bench_app`; README, "The app under load").

    import functools
    from trainer import Verifier
    from trainer.inference_process import InferenceProcess, ProcessBatcher

    process = InferenceProcess(functools.partial(Verifier.from_dir, "my-model"))  # starts loading now
    verifier = Verifier.from_dir("my-model")
    verifier.use_batcher(ProcessBatcher(verifier, process))
    verifier.batcher().verify("a.jpg", "b.jpg")  # answered by the process, once it has loaded the model

The process (`python -m trainer.inference_process`) loads the model itself (`load`: a picklable callable; nothing of
the parent's model is copied), warms it up and answers on a pool of pipes, one call at a time each. Nothing is written
to disk. It exits when the parent closes it, exits or dies (it reads its standard input, a pipe only the parent holds,
until it closes). Anything else the model does (anchors, captures,
training) stays in the parent, on its own copy of the model.
"""
from __future__ import annotations

import logging
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .errors import FaceRegError

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from .serving import BatchedVerifier
    from .verify import Verifier

CONNECTIONS = 16  # calls in flight at once (the app lets 16 /verify requests in at a time); more wait for a pipe
READY_TIMEOUT_S = 600.0
log = logging.getLogger("facereg.serving")


class InferenceProcessError(FaceRegError):
    """The inference process could not load its model, or ended."""


def _serve(control: Connection, connections: list[Connection]) -> None:
    """The inference process: load the model `control` sends and warm it up, answer on every connection, and exit
    when standard input (the parent's end of a pipe) closes."""
    from .serving import configure_cpu, configure_memory, warm_up

    configure_memory()
    configure_cpu()
    try:
        verifier = control.recv()()  # the parent's `load`
        warm_up(verifier)
        batcher = verifier.batcher()
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which serves in its own process
        control.send(("failed", f"{type(exc).__name__}: {exc}"))
        os._exit(1)
    for connection in connections:
        threading.Thread(target=_answer, args=(batcher, connection), name="facereg-process-answer",
                         daemon=True).start()
    control.send(("ready", os.getpid()))
    sys.stdin.buffer.read()  # the parent never writes: this returns when it closes the pipe, exits or dies
    os._exit(0)  # not sys.exit: no waiting on TensorFlow's threads or the answering threads


def _answer(batcher: BatchedVerifier, connection: Connection) -> None:
    """Answer one pipe's calls, one at a time: (True, result) or (False, the exception)."""
    while True:
        try:
            args, kwargs = connection.recv()
        except (EOFError, OSError):
            return
        try:
            reply: tuple[bool, Any] = (True, batcher.verify(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - raised again in the caller
            reply = (False, exc)
        try:
            connection.send(reply)
        except (EOFError, OSError):
            return
        except Exception:  # noqa: BLE001 - an exception that does not pickle: its message does
            connection.send((False, RuntimeError(f"{type(reply[1]).__name__}: {reply[1]}")))


class InferenceProcess:
    """A model loaded by `load()` in a process of its own, answering `verify` from many threads at once."""

    def __init__(self, load: Callable[[], Verifier], connections: int = CONNECTIONS) -> None:
        # `python -m trainer.inference_process`, not multiprocessing's spawn, which would first run the parent's main
        # script again (a Space's `space/app.py`: all of Gradio). Its pipes are socket pairs passed as descriptors.
        from multiprocessing import Pipe

        self._control, control = Pipe()
        pipes = [Pipe() for _ in range(max(1, connections))]
        descriptors = [control.fileno(), *(child.fileno() for _, child in pipes)]
        root = str(Path(__file__).resolve().parent.parent)
        path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
        self._process = subprocess.Popen([sys.executable, "-m", "trainer.inference_process", *map(str, descriptors)],
                                         stdin=subprocess.PIPE, pass_fds=descriptors,
                                         env={**os.environ, "PYTHONPATH": path})
        for child in (control, *(child for _, child in pipes)):  # the child's ends live in the child now
            child.close()
        self._control.send(load)
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        for parent, _ in pipes:
            self._free.put(parent)
        self._lock = threading.Lock()
        self._state: tuple[str, Any] | None = None

    @property
    def pid(self) -> int:
        """The process's id."""
        return self._process.pid

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> int:
        """Wait until the process has loaded and warmed up its model; its pid (InferenceProcessError if it failed)."""
        with self._lock:
            if self._state is None:
                try:
                    if not self._control.poll(timeout):
                        raise InferenceProcessError(f"the inference process was not ready after {timeout:.0f} s")
                    self._state = self._control.recv()
                except (EOFError, OSError):
                    self._state = ("failed", f"it ended (exit code {self._process.poll()})")
                if self._state[0] == "ready":
                    log.info("inference process ready (pid %s)", self._state[1])
        kind, value = self._state
        if kind != "ready":
            raise InferenceProcessError(f"the inference process could not serve: {value}")
        return value

    def verify(self, img1: Any, img2: Any, threshold: float | None = None, return_chips: bool = False) -> dict:
        """`BatchedVerifier.verify`, answered by the process (after it is ready); its errors are raised here."""
        self.wait_ready()
        connection = self._free.get()
        try:
            connection.send(((img1, img2), {"threshold": threshold, "return_chips": return_chips}))
            ok, value = connection.recv()
        except (EOFError, OSError) as exc:
            with self._lock:
                self._state = ("failed", f"it ended (exit code {self._process.poll()})")
            raise InferenceProcessError("the inference process ended") from exc
        finally:
            self._free.put(connection)
        if not ok:
            raise value
        return value

    def close(self) -> None:
        """Stop the process (it exits when its standard input closes) and wait for it."""
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


class ProcessBatcher:
    """What `Verifier.batcher()` gives for a model that an InferenceProcess serves: its verifications go to the
    process; other work (`call`: anchors, captures) runs on the parent's own copy of the model. Should the process
    fail to start or end, verifications are served here too, and the failure is logged once."""

    def __init__(self, verifier: Verifier, process: InferenceProcess) -> None:
        from .serving import BatchedVerifier

        self.process = process
        self.local = BatchedVerifier(verifier)
        self._failed = False

    @property
    def batches(self) -> list[int]:
        """Sizes of the batches served in this process (the inference process keeps its own)."""
        return self.local.batches

    def verify(self, img1: Any, img2: Any, threshold: float | None = None, return_chips: bool = False) -> dict:
        """`BatchedVerifier.verify`, by the inference process while it serves, else in this process."""
        if not self._failed:
            try:
                return self.process.verify(img1, img2, threshold=threshold, return_chips=return_chips)
            except InferenceProcessError as exc:
                self._failed = True
                log.warning("verifying in the app's own process from now on: %s", exc)
        return self.local.verify(img1, img2, threshold=threshold, return_chips=return_chips)

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`BatchedVerifier.call`, in this process."""
        return self.local.call(fn, *args, **kwargs)


if __name__ == "__main__":
    from multiprocessing.connection import Connection as _Connection

    _control, *_connections = (_Connection(int(descriptor)) for descriptor in sys.argv[1:])
    _serve(_control, _connections)

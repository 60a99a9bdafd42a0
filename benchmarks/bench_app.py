"""The app as visitors meet it, side by side with the networks alone, in one run.

Run from the repo root:  python -m benchmarks.bench_app [--duration 60] [--clients 1 2 4 8] [--soak 300]

1. Bare import: a fresh `python -c "import gradio, tensorflow"`, timed (the floor for a cold start).
2. Single stream: `Verifier.verify` in this process, one pair after another, on LFW pairs (View 2's pairs.txt;
   speed only, no accuracy is read from them).
3. Cold start: `python -m space` in a subprocess (fresh HF_HOME, capture folder and Gradio cache, as a Space starts),
   from process start to the first correct /verify answer.
4. Load: for each client count, that many `gradio_client` clients in threads call /verify back to back for
   `--duration` seconds, every request on a different LFW pair (a shared counter walks through the pairs). For 1
   and 8 clients, the same again over Gradio's own protocol as a browser tab speaks it (`--protocol-clients`):
   the two uploads and the event on one kept-alive connection per visitor (`Tab`): the event posted and its answer read
   from the response, as the app's Verify skips Gradio's queue (or, with `--server-env FACEREG_VERIFY_QUEUE=1`, a
   queue join and its server-sent events, each message read as it arrives). gradio_client always joins the queue
   and looks for the server's messages every 50 ms, so what its callers wait moves in steps.
   Right before and right after each load run, `Verifier.verify` runs in this process again (`--single-between`
   pairs, the app idle): each run is compared with the single stream measured around it, as the machine's speed
   drifts within minutes. For 8 clients, the same load also runs in this process, without HTTP
   (`--in-process-clients`): threads calling the served model's `BatchedVerifier`, as the app's /verify handlers do
   once they have decoded their files. Its row is what the batching and the networks serve without Gradio, its
   uploads, queue and clients.
5. Training: one visitor captures a small dataset of LFW faces into their workspace and trains on it (/train,
   `--train-epochs`); meanwhile another visitor calls /verify back to back. Its latency is printed beside the
   1-client run (training is one job at a time for the whole app; verification must stay responsive).
6. Soak: 8 clients for `--soak` seconds; the server's resident memory (RSS, from /proc, sampled every 0.5 s) at the
   start and the end of that run.
7. Single stream again, after the server has stopped (the machine's speed drifts; both are printed).

Prints markdown tables; exits non-zero if any request failed. A pair where the app rightly answers "no face"
(a few LFW images defeat MTCNN) is counted as answered, in its own column.
"""
from __future__ import annotations

import argparse
import itertools
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from trainer.evaluate import LFW_DIR, read_lfw_pairs  # FACEREG_LFW, else ../shared/data/lfw

REPO_ROOT = Path(__file__).resolve().parent.parent
# gradio_client opens a new httpx client for every upload, call and download, and each loads the CA bundle into a
# TLS context, even for http:// (5 times a call, ~100 ms of CPU on this loaded machine). On http://127.0.0.1 there is
# no certificate to check: ssl_verify=False skips that, so less of the 2 cores the app is measured on goes to the
# load generator (--stock-client keeps gradio_client's default).
CLIENT_OPTIONS: dict = {}


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_s(pid: int, thread: str | None = None) -> float:
    """CPU seconds (user + system) a process, all its threads, or one thread of it (its id) has used so far
    (Linux /proc)."""
    stat = Path(f"/proc/{pid}/stat") if thread is None else Path(f"/proc/{pid}/task/{thread}/stat")
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    """Resident memory of a process, MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def tree_cpu_s(pid: int) -> float:
    """`cpu_s` of a process and its descendants together."""
    from space.testing import process_tree

    total = 0.0
    for member in process_tree(pid):
        try:
            total += cpu_s(member)
        except OSError:
            continue
    return total


def tree_rss_mib(pid: int) -> float:
    """`rss_mib` of a process and its descendants together (pages they share count in each)."""
    from space.testing import process_tree

    total = 0.0
    for member in process_tree(pid):
        try:
            total += rss_mib(member)
        except OSError:
            continue
    return total


class MemorySampler(threading.Thread):
    """Samples the RSS of a process and its descendants every `every` seconds until stopped."""

    def __init__(self, pid: int, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pid, self.every, self.samples = pid, every, []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.samples.append(tree_rss_mib(self.pid))
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


class Pairs:
    """LFW pairs handed out one at a time, each request its own, from any thread."""

    def __init__(self, pairs: list[tuple[Path, Path]]) -> None:
        self.pairs = pairs
        self._next = itertools.count()
        self._lock = threading.Lock()

    def take(self) -> tuple[Path, Path]:
        """The next pair (cycling when all were used)."""
        with self._lock:
            return self.pairs[next(self._next) % len(self.pairs)]


def bare_import_s() -> float:
    """Seconds for a fresh python to `import gradio, tensorflow`."""
    start = time.monotonic()
    subprocess.run([sys.executable, "-c", "import gradio, tensorflow"], check=True, cwd=REPO_ROOT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - start


def load_verifier(model_dir: str | None):
    """The model the app serves, loaded in this process with TensorFlow's threads as the app sets them."""
    from trainer import Verifier, configure_cpu

    configure_cpu()
    return Verifier.from_dir(model_dir) if model_dir else Verifier.default()


def single_stream(verifier, pairs: list[tuple[Path, Path]]) -> tuple[list[float], float]:
    """Milliseconds of `Verifier.verify` on each pair, one after another, in this process (warmed up first), and
    the CPU milliseconds a pair took (all threads), which depend less on what else loads the machine."""
    from trainer.errors import NoFaceError

    verifier.verify(*pairs[0])
    times = []
    cpu = time.process_time()
    for pair in pairs:
        start = time.perf_counter()
        try:
            verifier.verify(*pair)
        except NoFaceError:
            pass
        times.append(1000 * (time.perf_counter() - start))
    return times, 1000 * (time.process_time() - cpu) / len(pairs)


def start_server(port: int, work: Path, model_dir: str | None, extra_env: dict[str, str] | None = None
                 ) -> subprocess.Popen:
    """`python -m space` on port, with a fresh HF_HOME, capture folder and Gradio cache (and `extra_env` set), as a
    Space starts.

    A fresh Gradio cache matters: Gradio keeps each upload under a folder named for its bytes, and an upload of bytes
    it already holds (the benchmark's LFW images, from an earlier run) replaces that file, which ext4 makes the event
    loop wait for (it writes the new file out first)."""
    env = {**os.environ, "HF_HOME": str(work / "hf-home"), "FACEREG_DATA_DIR": str(work / "workspaces"),
           "GRADIO_TEMP_DIR": str(work / "gradio"), "GRADIO_ANALYTICS_ENABLED": "False", **(extra_env or {})}
    if model_dir:
        env["FACEREG_MODEL_DIR"] = model_dir
    return subprocess.Popen([sys.executable, "-m", "space", "--port", str(port)], cwd=REPO_ROOT, env=env,
                            stdout=open(work / "server.log", "wb"), stderr=subprocess.STDOUT)


def first_answer(url: str, pair: tuple[Path, Path], threshold: float, server: subprocess.Popen,
                 timeout: float = 600) -> float:
    """Wait until /verify answers a genuine pair correctly; the monotonic time of that answer."""
    from gradio_client import Client, handle_file

    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the app exited with {server.returncode}")
        try:
            client = Client(url, verbose=False, **CLIENT_OPTIONS)
        except Exception as exc:  # noqa: BLE001 - not up yet
            last = exc
            time.sleep(0.2)
            continue
        details = client.predict(*(handle_file(str(p)) for p in pair), threshold, api_name="/verify")[-1]
        if not details["is_match"]:
            raise RuntimeError(f"the first answer is wrong: {details}")
        return time.monotonic()
    raise TimeoutError(f"no answer from the app (last: {last!r})")


class Row:
    """What one load run measured."""

    def __init__(self, clients: int, duration: float, kind: str = "gradio_client") -> None:
        self.clients, self.duration, self.kind = clients, duration, kind
        self.latencies: list[float] = []  # ms, answered requests
        self.handler: list[float] = []  # ms spent in the app's /verify handler (its elapsed_ms)
        self.batch_sizes: list[int] = []
        self.no_face = 0
        self.errors: list[str] = []
        self.memory: list[float] = []
        self.server_cpu_s = 0.0  # CPU the server process used during the run
        self.client_cpu_s = 0.0  # CPU this process (the clients) used during the run
        self.single_ms: list[float] = []  # `Verifier.verify` in this process right before and right after the run

    def add(self, elapsed: float, details: dict) -> None:
        """An answered request: its latency (ms) and the app's details output."""
        self.latencies.append(elapsed)
        self.handler.append(details["elapsed_ms"])
        self.batch_sizes.append(details["timing_ms"].get("pairs_in_batch", 1))

    def failed(self, elapsed: float, exc: Exception) -> None:
        """A request that raised: the app's rightful "no face" answer, or an error."""
        if "no face" in str(exc):
            self.latencies.append(elapsed)
            self.no_face += 1
        else:
            self.errors.append(f"{type(exc).__name__}: {exc}")


def drive(row: Row, askers: list[Callable[[tuple[Path, Path]], dict]], pairs: Pairs) -> Row:
    """One thread per asker (a client's way of calling /verify on a pair, returning the details output), each asking
    back to back on the next pair for `row.duration` s; answers, "no face" answers and errors go into `row`."""
    lock = threading.Lock()
    end = time.monotonic() + row.duration

    def worker(ask: Callable[[tuple[Path, Path]], dict]) -> None:
        while time.monotonic() < end:
            pair = pairs.take()
            start = time.perf_counter()
            try:
                details = ask(pair)
                with lock:
                    row.add(1000 * (time.perf_counter() - start), details)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                with lock:
                    row.failed(1000 * (time.perf_counter() - start), exc)

    threads = [threading.Thread(target=worker, args=(ask,)) for ask in askers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return row


def load(url: str, clients: int, duration: float, pairs: Pairs, threshold: float) -> Row:
    """`clients` gradio_client clients calling /verify back to back for `duration` s, each request on the next
    pair."""
    from gradio_client import Client, handle_file

    connected = [Client(url, verbose=False, **CLIENT_OPTIONS) for _ in range(clients)]
    return drive(Row(clients, duration), [
        lambda pair, client=client: client.predict(*(handle_file(str(p)) for p in pair), threshold,
                                                   api_name="/verify")[-1]
        for client in connected
    ], pairs)


IN_PROCESS = "in process"


def load_in_process(verifier, clients: int, duration: float, pairs: Pairs, threshold: float) -> Row:
    """`clients` threads of this process calling `verifier.batcher().verify` back to back (what the app's /verify
    handlers call, with the aligned chips as they ask for them), each request on the next pair: no HTTP."""
    batcher = verifier.batcher()

    def ask(pair: tuple[Path, Path]) -> dict:
        result = batcher.verify(*pair, threshold=threshold, return_chips=True)
        return {"elapsed_ms": result["timing_ms"]["total"], "timing_ms": result["timing_ms"]}

    return drive(Row(clients, duration, IN_PROCESS), [ask] * clients, pairs)


class Tab:
    """A browser tab's side of Gradio's protocol: one kept-alive HTTP connection to the app and one session.

    It speaks through the standard library's `http.client`, which costs the CPU less a request than httpx (the table's
    "clients' CPU ms a pair"): the clients run on the 2 cores the app is measured on, where a Space's visitors'
    browsers do not."""

    def __init__(self, url: str) -> None:
        import http.client
        import uuid
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=120)
        self.session = uuid.uuid4().hex[:10]

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
                ) -> tuple[int, bytes]:
        """Send a request on the kept-alive connection (opened again once if the server had closed it); its status
        and body."""
        import http.client

        def send() -> tuple[int, bytes]:
            self.connection.request(method, self.prefix + path, body, headers or {})
            response = self.connection.getresponse()
            return response.status, response.read()

        try:
            return send()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            self.connection.close()  # the next request opens it again
            return send()

    def upload(self, path: Path) -> str:
        """Upload a file as the page's image box does; the server's path of the upload."""
        import json
        import uuid

        boundary = uuid.uuid4().hex
        body = b"".join([
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{Path(path).name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n".encode(),
            Path(path).read_bytes(), f"\r\n--{boundary}--\r\n".encode()])
        status, answer = self.request("POST", "/gradio_api/upload", body,
                                      {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        if status != 200:
            raise RuntimeError(f"upload: HTTP {status}: {answer[:200]!r}")
        return json.loads(answer)[0]

    def post_json(self, path: str, payload: dict) -> tuple[int, Any]:
        """POST a JSON body; the status and the decoded answer (None where it is not JSON)."""
        import json

        status, answer = self.request("POST", path, json.dumps(payload).encode(), {"Content-Type": "application/json"})
        try:
            return status, json.loads(answer)
        except ValueError:
            return status, None

    def events(self) -> Iterator[dict]:
        """The session's server-sent events from Gradio's queue, each message as it arrives (on a connection of
        its own, closed when the caller stops reading)."""
        import http.client
        import json

        stream = http.client.HTTPConnection(self.host, self.port, timeout=120)
        try:
            stream.request("GET", f"{self.prefix}/gradio_api/queue/data?session_hash={self.session}")
            response = stream.getresponse()
            if response.status != 200:
                raise RuntimeError(f"queue/data: HTTP {response.status}")
            for line in iter(response.readline, b""):
                if line.startswith(b"data:"):
                    yield json.loads(line[5:])
        finally:
            stream.close()

    def close(self) -> None:
        """Close the connection."""
        self.connection.close()


def protocol_verify(tab: Tab, pair: tuple[Path, Path], threshold: float, fn_index: int, queued: bool = True
                    ) -> tuple[list, dict[str, float]]:
    """One /verify request over Gradio's HTTP protocol, as a browser tab makes it: upload both files, then post the
    event and read the answer from the response, or, where the event is `queued` (`verify_fn_index` says), join the
    queue and read the server-sent events until `process_completed`. The outputs, and the perf_counter time of each
    step ("start", "uploaded", then "joined", "process_starts", "process_completed" where queued, and "done"). An
    error the app reports (or a verdict that says why it could not verify) raises RuntimeError with its message."""
    marks = {"start": time.perf_counter()}
    files = [{"path": tab.upload(path), "orig_name": Path(path).name, "meta": {"_type": "gradio.FileData"}}
             for path in pair]
    marks["uploaded"] = time.perf_counter()
    body = {"data": [*files, threshold], "fn_index": fn_index, "session_hash": tab.session, "event_data": None,
            "trigger_id": None}
    if not queued:  # the browser posts an event that skips the queue and reads the answer from the response
        status, answer = tab.post_json("/gradio_api/run/predict", body)  # the event by its fn_index
        marks["done"] = time.perf_counter()
        if status != 200:
            raise RuntimeError((answer or {}).get("error") or f"HTTP {status}")
        data = answer["data"]
        if data[-1] is None:  # the page's Verify answers a failure with its verdict alone
            raise RuntimeError(data[1])
        return data, marks
    status, _ = tab.post_json("/gradio_api/queue/join", body)
    if status != 200:
        raise RuntimeError(f"queue/join: HTTP {status}")
    marks["joined"] = time.perf_counter()
    completed = None
    for message in tab.events():
        marks.setdefault(message.get("msg"), time.perf_counter())
        if message.get("msg") == "process_completed":
            completed = message
            break
    marks["done"] = time.perf_counter()
    if completed is None:
        raise RuntimeError("the event stream ended without an answer")
    if not completed.get("success", True):
        raise RuntimeError(completed.get("output", {}).get("error") or "the app reported an error")
    return completed["output"]["data"], marks


def verify_fn_index(url: str) -> tuple[int, bool]:
    """The function index of the event the page's Verify button runs on the server, and whether it goes through
    Gradio's queue, from the app's /config."""
    import httpx

    config = httpx.get(f"{url.rstrip('/')}/config").json()
    button = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == "verify-button")
    dependency = next(d for d in config["dependencies"] if [button, "click"] in d["targets"] and d.get("backend_fn"))
    return dependency["id"], dependency.get("queue") is not False


def load_protocol(url: str, clients: int, duration: float, pairs: Pairs, threshold: float) -> Row:
    """`load`, with each client a browser tab's requests over Gradio's protocol (`protocol_verify`), one session
    and one kept-alive connection per client."""
    fn_index, queued = verify_fn_index(url)
    tabs = [Tab(url) for _ in range(clients)]
    try:
        return drive(Row(clients, duration, "protocol"), [
            lambda pair, tab=tab: protocol_verify(tab, pair, threshold, fn_index, queued)[0][-1] for tab in tabs
        ], pairs)
    finally:
        for tab in tabs:
            tab.close()


TRAIN_PEOPLE = ("Colin_Powell", "Tony_Blair", "Donald_Rumsfeld", "Gerhard_Schroeder", "Ariel_Sharon", "Hugo_Chavez")


def during_training(url: str, pairs: Pairs, threshold: float, epochs: int) -> tuple[Row, float]:
    """/verify back to back from one client while another visitor's training run goes on; and the run's seconds."""
    from gradio_client import Client, handle_file

    from tests.conftest import lfw_image

    trainer = Client(url, verbose=False, **CLIENT_OPTIONS)
    faces = {"anchor": [lfw_image(TRAIN_PEOPLE[0], n) for n in range(1, 9)],
             "positive": [lfw_image(TRAIN_PEOPLE[0], n) for n in range(9, 17)],
             "negative": [lfw_image(p, n) for p in TRAIN_PEOPLE[1:] for n in (1, 2)]}
    for category, files in faces.items():
        trainer.predict([handle_file(str(f)) for f in files], category, api_name="/capture")
    started = time.monotonic()
    job = trainer.submit("local", "dlib_resnet", epochs, api_name="/train")
    row = Row(1, 0.0)
    client = Client(url, verbose=False, **CLIENT_OPTIONS)
    while not job.done():
        pair = pairs.take()
        start = time.perf_counter()
        try:
            client.predict(*(handle_file(str(p)) for p in pair), threshold, api_name="/verify")
            row.latencies.append(1000 * (time.perf_counter() - start))
        except Exception as exc:  # noqa: BLE001 - counted and reported
            if "no face" in str(exc):
                row.no_face += 1
            else:
                row.errors.append(f"{type(exc).__name__}: {exc}")
    seconds = time.monotonic() - started
    job.result()  # raises if the training run failed
    row.duration = seconds
    return row, seconds


def load_average() -> str:
    """The 1-minute load average, for the record."""
    return f"{os.getloadavg()[0]:.1f}"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load per client count")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--soak", type=float, default=300.0, help="seconds of the 8-client memory run (0: none)")
    parser.add_argument("--single", type=int, default=40, help="pairs for each single-stream measurement")
    parser.add_argument("--single-between", type=int, default=20,
                        help="pairs for the single stream right before and right after each load run")
    parser.add_argument("--protocol-clients", type=int, nargs="*", default=[1, 8],
                        help="client counts also run over Gradio's protocol as a browser tab speaks it")
    parser.add_argument("--in-process-clients", type=int, nargs="*", default=[8],
                        help="client counts also run in this process through the model's BatchedVerifier (no HTTP)")
    parser.add_argument("--train-epochs", type=int, default=30,
                        help="epochs of the training run /verify is measured during (0: no training run)")
    parser.add_argument("--model-dir", help="a FaceReg model folder instead of the embedded default")
    parser.add_argument("--stock-client", action="store_true", help="gradio_client as it comes (a TLS context a call)")
    parser.add_argument("--server-env", nargs="*", default=[], metavar="NAME=VALUE",
                        help="environment settings for the app's process only (to compare server settings)")
    args = parser.parse_args(argv)
    if not args.stock_client:
        CLIENT_OPTIONS["ssl_verify"] = False
    lfw_pairs = [(p.path1, p.path2) for p in read_lfw_pairs(LFW_DIR)]
    genuine = next(p for p in read_lfw_pairs(LFW_DIR) if p.same)
    pairs = Pairs(lfw_pairs[args.single:])  # the load runs start after the pairs of the single-stream runs
    loads = [load_average()]

    bare_s = bare_import_s()
    verifier = load_verifier(args.model_dir)
    threshold = round(verifier.threshold, 3)  # the app's slider has a step of 0.001
    single, single_cpu = single_stream(verifier, lfw_pairs[: args.single])
    from space.testing import http_stack  # the app's modules, imported after the single stream has run

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    rows: list[Row] = []
    training: tuple[Row, float] | None = None
    with tempfile.TemporaryDirectory(prefix="bench-app-") as tmp:
        started = time.monotonic()
        server = start_server(port, Path(tmp), args.model_dir, dict(item.split("=", 1) for item in args.server_env))
        sampler = MemorySampler(server.pid)
        sampler.start()
        try:
            cold_s = first_answer(url, (genuine.path1, genuine.path2), threshold, server) - started
            stack = http_stack(server.pid)

            def in_process(_url: str, clients: int, duration: float, pairs: Pairs, threshold: float) -> Row:
                return load_in_process(verifier, clients, duration, pairs, threshold)

            counts = {load: args.clients, load_protocol: args.protocol_clients, in_process: args.in_process_clients}
            runs = [(c, args.duration, kind) for c in args.clients for kind in counts if c in counts[kind]]
            runs += [(8, args.soak, load)] if args.soak > 0 else []
            for clients, duration, kind in runs:
                around, _ = single_stream(verifier, lfw_pairs[: args.single_between])
                before, server_cpu, here_cpu = len(sampler.samples), tree_cpu_s(server.pid), time.process_time()
                here_rss = rss_mib(os.getpid())
                row = kind(url, clients, duration, pairs, threshold)
                row.server_cpu_s, row.client_cpu_s = tree_cpu_s(server.pid) - server_cpu, time.process_time() - here_cpu
                row.memory = sampler.samples[before:] or [tree_rss_mib(server.pid)]
                if row.kind == IN_PROCESS:  # this process served: its CPU and memory are the row's "server"
                    row.server_cpu_s, row.client_cpu_s = row.client_cpu_s, 0.0
                    row.memory = [here_rss, rss_mib(os.getpid())]
                row.single_ms = around + single_stream(verifier, lfw_pairs[: args.single_between])[0]
                rows.append(row)
                loads.append(load_average())
                for error in sorted(set(row.errors))[:3]:
                    print(f"error with {clients} clients: {error}", file=sys.stderr)
                if clients == 1 and training is None and args.train_epochs > 0:
                    training = during_training(url, pairs, threshold, args.train_epochs)
                    loads.append(load_average())
        finally:
            sampler.stop()
            server.terminate()
            server.wait(30)
    single_after, single_cpu_after = single_stream(verifier, lfw_pairs[: args.single])

    m = statistics.median
    single_ms = m(single + single_after)
    single_rate = 1000 / single_ms
    print(f"\nLoad average (1 min) at the start, after each run: {', '.join(loads)} ({os.cpu_count()} CPUs)\n")
    print("| single stream, in process | median ms a pair | pairs/s | CPU ms a pair |")
    print("|---|---:|---:|---:|")
    print(f"| `Verifier.verify`, before the app ran ({len(single)} pairs) | {m(single):.0f} | {1000 / m(single):.1f} | "
          f"{single_cpu:.0f} |")
    print(f"| `Verifier.verify`, after the app stopped ({len(single_after)} pairs) | {m(single_after):.0f} | "
          f"{1000 / m(single_after):.1f} | {single_cpu_after:.0f} |")
    print(f"| both together: the single-stream rate | {single_ms:.0f} | {single_rate:.1f} | "
          f"{(single_cpu + single_cpu_after) / 2:.0f} |")
    print(f"\nThe app's HTTP server ran on {stack}.")
    print(f"\nCold start (process start to the first correct /verify answer): {cold_s:.1f} s; a bare "
          f"`import gradio, tensorflow`: {bare_s:.1f} s ({cold_s / bare_s:.2f}x)\n")
    print("| clients | client | duration s | answered (no face) | errors | median ms | p95 ms | in handler, median ms | "
          "mean batch | pairs/s | single stream around it, ms a pair | x single stream | server CPU ms a pair | "
          "clients' CPU ms a pair | server RSS MiB start / end / max |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for row in rows:
        lat = row.latencies or [float("nan")]
        rate = len(row.latencies) / row.duration
        batch = statistics.mean(row.batch_sizes) if row.batch_sizes else float("nan")
        handler = m(row.handler) if row.handler else float("nan")
        around = m(row.single_ms)
        print(f"| {row.clients} | {row.kind} | {row.duration:.0f} | {len(row.latencies)} ({row.no_face}) | "
              f"{len(row.errors)} | {m(lat):.0f} | {percentile(lat, 95):.0f} | {handler:.0f} | {batch:.1f} | "
              f"{rate:.1f} | {around:.0f} | {rate * around / 1000:.2f} | "
              f"{1000 * row.server_cpu_s / max(1, len(row.latencies)):.0f} | "
              f"{1000 * row.client_cpu_s / max(1, len(row.latencies)):.0f} | "
              f"{row.memory[0]:.0f} / {row.memory[-1]:.0f} / {max(row.memory):.0f} |")
    if any(row.kind == IN_PROCESS for row in rows):
        print(f"\nRows \"{IN_PROCESS}\": threads of this process calling the model's `BatchedVerifier`, no HTTP; their "
              "server CPU and RSS are this process's, \"in handler\" is the batcher's time for the request.")
    if args.soak > 0 and rows[-1].memory:
        memory = rows[-1].memory
        marks = [memory[min(len(memory) - 1, round(q * (len(memory) - 1)))] for q in (0, 0.25, 0.5, 0.75, 1)]
        print(f"\nServer RSS over the {args.soak:.0f} s soak at 0, 1/4, 1/2, 3/4 and the end: "
              + " / ".join(f"{v:.0f}" for v in marks) + " MiB")
    one = next((r for r in rows if r.clients == 1 and r.latencies), None)
    if one and training and training[0].latencies:
        during, seconds = training
        print(f"\n| /verify, 1 client | requests | errors | median ms | p95 ms |\n|---|---:|---:|---:|---:|\n"
              f"| no training | {len(one.latencies)} | {len(one.errors)} | {m(one.latencies):.0f} | "
              f"{percentile(one.latencies, 95):.0f} |\n"
              f"| while another visitor trains ({args.train_epochs} epochs, {seconds:.0f} s) | "
              f"{len(during.latencies)} | {len(during.errors)} | {m(during.latencies):.0f} | "
              f"{percentile(during.latencies, 95):.0f} |")
    for row in rows:
        if row.clients == 1 and row.latencies:
            print(f"\n1 client ({row.kind}): median {m(row.latencies):.0f} ms = "
                  f"{m(row.latencies) / m(row.single_ms):.2f}x the in-process `Verifier.verify` around it "
                  f"({m(row.single_ms):.0f} ms)")
    failed = any(row.errors for row in rows) or bool(training and training[0].errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

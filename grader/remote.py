"""The judge's side of the worker: start it, call it, time it out, restart it.

`WorkerPool` owns one worker process at a time for one submission. A call
either returns plain data or raises:

- `StudentCodeError`: the student's code raised (the type and message are
  the student's own, shown to them);
- `WorkerFailure`: the worker timed out, died, exited, broke a limit or
  broke the protocol. The worker is killed and a fresh one is started on
  the next call, so the remaining tests are still graded.

Nothing the worker writes other than the one reply to the current request
is ever interpreted: its output is capped and kept only as a courtesy.
"""

from __future__ import annotations

import os
import secrets
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import wire
from .course import Course, Limits, Unit
from .probes import describe
from .runners import call_seed, check_arguments
from .sandbox import Isolation

START_TIMEOUT_S = 120.0
SIGNAL_MEANING = {
    signal.SIGKILL: "it was killed (SIGKILL): most likely it went over the memory or process limit",
    signal.SIGXCPU: "it used up its CPU time limit",
    signal.SIGXFSZ: "it wrote a file larger than the file size limit",
    signal.SIGSEGV: "it crashed (segmentation fault)",
    signal.SIGABRT: "it aborted",
}


class WorkerFailure(Exception):
    """The worker process failed during a call; the message is for the student."""


class StudentCodeError(Exception):
    """The student's code raised an exception inside the worker."""

    def __init__(self, student_type: str, message: str, tb: str = "", kind: str = "exception"):
        self.student_type = student_type
        self.kind = kind
        self.tb = tb
        text = f"your code raised {student_type}: {message}" if kind == "exception" else message
        super().__init__(text + (f"\n{tb.rstrip()}" if tb else ""))
        self.summary_line = text


class GradingRefused(Exception):
    """Grading cannot be made safe here; the message says what to do."""


class UnitBlocked(Exception):
    """Every test of a unit fails for one reason found before running it."""


class _OutputDrain(threading.Thread):
    """Reads the worker's stdout/stderr, keeping the first `cap` bytes."""

    def __init__(self, fd: int, cap: int):
        super().__init__(daemon=True)
        self.fd, self.cap = fd, cap
        self.kept = bytearray()
        self.dropped = 0

    def run(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except OSError:
                break
            if not chunk:
                break
            room = self.cap - len(self.kept)
            self.kept += chunk[:max(room, 0)]
            self.dropped += max(len(chunk) - max(room, 0), 0)
        os.close(self.fd)

    def take(self) -> str:
        text = self.kept.decode("utf-8", "replace")
        if self.dropped:
            text += f"\n[... {self.dropped} more bytes of output dropped]"
        self.kept = bytearray()
        self.dropped = 0
        return text


class Worker:
    """One worker process."""

    def __init__(self, course: Course, package_dir: Path, mode: str, limits: Limits, uid: int):
        self.course, self.package_dir, self.mode, self.limits, self.uid = course, package_dir, mode, limits, uid
        self.proc: subprocess.Popen | None = None
        self.host_pid: int | None = None
        self.isolation = Isolation()
        self.stray_replies = 0
        self.scratch = Path(tempfile.mkdtemp(prefix="llmfs-worker-"))
        os.chmod(self.scratch, 0o755)

    # -- lifecycle
    def start(self, fork: bool = False) -> None:
        """Start the worker: exec a fresh interpreter, or (`fork`) fork this
        process, which is only safe while it holds nothing secret."""
        req_r, self.req_w = os.pipe()
        self.rep_r, rep_w = os.pipe()
        out_r, out_w = os.pipe()
        grader_parent = str(Path(__file__).resolve().parent.parent)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": grader_parent,
               "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0",
               "PYTHONDONTWRITEBYTECODE": "1"}
        limits = {k: getattr(self.limits, k) for k in ("cpu_s", "memory_mb", "processes", "file_size_mb")}
        init = {"package_dir": str(self.package_dir), "package": self.course.package,
                "modules": {u.id: list(u.modules) for u in self.course.units},
                "forbid": {u.id: list(u.forbid) for u in self.course.units},
                "limits": limits, "mode": self.mode, "uid": self.uid,
                "course_root": str(self.course.root), "new_root": str(self.scratch / "root"),
                "workdir": str(self.scratch)}
        deadline = time.monotonic() + START_TIMEOUT_S
        if fork:
            from . import worker  # imported here, in the judge, before any fork
            pid = os.fork()
            if pid == 0:
                worker.forked(req_r, rep_w, out_w, init)
            self.proc = _Child(pid)
        else:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "grader.worker", str(req_r), str(rep_w)], pass_fds=(req_r, rep_w),
                stdin=subprocess.DEVNULL, stdout=out_w, stderr=out_w, cwd=self.scratch, env=env,
                start_new_session=True)
        for fd in (req_r, rep_w, out_w):
            os.close(fd)
        self.output = _OutputDrain(out_r, self.limits.output_kb * 1024)
        self.output.start()
        if not fork:
            self._send(wire.encode(init), deadline)
        ready = None
        while ready is None:
            msg = self._receive(deadline, "while starting")
            if "host_pid" in msg:
                self.host_pid = int(msg["host_pid"])
            elif "isolation" in msg:
                ready = msg
        self.isolation = Isolation(**ready["isolation"])

    def kill(self) -> None:
        if self.proc is not None:
            if self.host_pid:
                # Killing PID 1 of the worker's namespace kills everything in it; the
                # process outside then reaps it and exits by itself.
                _kill(self.host_pid)
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
            if self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
        if self.mode == "root":
            _wait_until_gone(self.uid)
        for fd in ("req_w", "rep_r"):
            try:
                os.close(getattr(self, fd))
            except (OSError, AttributeError):
                pass
        self.proc = None
        self._cleanup_scratch()

    def _cleanup_scratch(self) -> None:
        import shutil
        root = self.scratch / "root"
        if root.exists() and os.path.ismount(root):  # pragma: no cover - only if a namespace leaked
            return
        shutil.rmtree(self.scratch, ignore_errors=True)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- protocol
    def _send(self, payload: bytes, deadline: float) -> None:
        data = memoryview(struct.pack("<Q", len(payload)) + payload)
        while data:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WorkerFailure(self._timeout_message())
            _, writable, _ = select.select([], [self.req_w], [], remaining)
            if writable:
                try:
                    n = os.write(self.req_w, data[:1 << 16])
                except BrokenPipeError:
                    raise WorkerFailure(self._death_message()) from None
                data = data[n:]

    def _read(self, n: int, deadline: float) -> bytes:
        chunks = []
        while n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WorkerFailure(self._timeout_message())
            readable, _, _ = select.select([self.rep_r], [], [], remaining)
            if not readable:
                continue
            chunk = os.read(self.rep_r, min(n, 1 << 20))
            if not chunk:
                raise WorkerFailure(self._death_message())
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def _receive(self, deadline: float, when: str = "during the call") -> dict:
        (n,) = struct.unpack("<Q", self._read(8, deadline))
        if n > (self.limits.memory_mb << 20):
            raise WorkerFailure("the worker sent a reply larger than its memory limit")
        try:
            msg = wire.decode(self._read(n, deadline))
        except wire.BadMessage as e:
            raise WorkerFailure(f"the worker sent a malformed reply ({e})") from None
        if type(msg) is not dict:
            raise WorkerFailure("the worker sent a malformed reply (not a record)")
        return msg

    def _timeout_message(self) -> str:
        return f"timed out after {self.timeout:g} s"

    def _death_message(self) -> str:
        code = None
        if self.proc is not None:
            try:
                code = self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        if code is None:
            return "the worker stopped answering during the call"
        if self.mode == "root" and code >= 128:
            code = -(code - 128)
        if code < 0:
            sig = signal.Signals(-code)
            return f"the worker died during the call: {SIGNAL_MEANING.get(sig, f'killed by {sig.name}')}"
        return f"worker exited with code {code} during the call (sys.exit/os._exit in student code?)"

    def request(self, req: dict, timeout: float) -> dict:
        self.timeout = timeout
        req_id = secrets.token_hex(8)
        deadline = time.monotonic() + timeout
        self._send(wire.encode({**req, "id": req_id}), deadline)
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == req_id:
                return reply
            self.stray_replies += 1  # a second reply to an earlier request: never an answer


class _Child:
    """The little of subprocess.Popen's interface we use, for a forked child."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
            time.sleep(0.005)
        return self.returncode


def _processes_of(uid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    pids.append(int(entry))
            except OSError:
                pass
    return pids


def _wait_until_gone(uid: int, timeout: float = 10.0) -> None:
    """Killing PID 1 of the worker's namespace makes the kernel kill the rest,
    asynchronously: wait for it, and kill stragglers of the sandbox uid."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = _processes_of(uid)
        if not left:
            return
        for pid in left:
            _kill(pid)
        time.sleep(0.01)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class WorkerPool:
    """The worker for one submission, restarted after every failure."""

    def __init__(self, course: Course, package_dir: Path, *, mode: str, uid: int, limits: Limits,
                 fork_first: bool = False):
        self.course, self.package_dir, self.mode, self.uid, self.limits = course, package_dir, mode, uid, limits
        self.fork_next = fork_first  # only the first worker, started before any test is loaded
        self.worker: Worker | None = None
        self.restarts = 0
        self.started_at = time.monotonic()
        self.isolation = Isolation()

    def _ensure(self) -> Worker:
        if self.worker is None or not self.worker.alive:
            if self.worker is not None:
                self.worker.kill()
                self.restarts += 1
            self.worker = Worker(self.course, self.package_dir, self.mode, self.limits, self.uid)
            try:
                self.worker.timeout = START_TIMEOUT_S
                fork, self.fork_next = self.fork_next, False
                self.worker.start(fork=fork)
            except WorkerFailure as e:
                self.worker.kill()
                self.worker = None
                raise WorkerFailure(f"the worker could not start: {e}") from None
            self.isolation = self.worker.isolation
        return self.worker

    def start(self) -> Isolation:
        return self._ensure().isolation

    def can_read(self, paths: list[str]) -> list[str]:
        reply = self._ensure().request({"op": "can_read", "paths": paths}, timeout=30)
        return list(reply["value"])

    def call(self, unit: Unit, spec, args: list, kwargs: dict, seed: int):
        elapsed = time.monotonic() - self.started_at
        if elapsed > self.limits.submission_timeout_s:
            raise WorkerFailure(f"the submission used up its grading time ({self.limits.submission_timeout_s:g} s)")
        worker = self._ensure()
        try:
            reply = worker.request({"op": "call", "unit": unit.id, "probe": spec.as_plain(), "args": args,
                                    "kwargs": kwargs, "seed": seed}, timeout=unit.limits.call_timeout_s)
        except WorkerFailure:
            worker.kill()
            raise
        finally:
            output = worker.output.take() if worker.output else ""
        if reply.get("ok") is True:
            return reply.get("value")
        kind = reply.get("kind")
        message = str(reply.get("message", ""))
        if kind == "notplain":
            raise StudentCodeError("TypeError", f"returned something that is not plain data: {message}",
                                   kind="notplain")
        if output.strip():
            message += f"\n--- your code printed ---\n{output.strip()[-2000:]}"
        raise StudentCodeError(str(reply.get("type", "Exception")), message, str(reply.get("traceback", "")),
                               kind="exception" if kind != "import" else "import")

    def close(self) -> None:
        if self.worker is not None:
            self.worker.kill()
            self.worker = None


class WorkerRunner:
    """What the ``student`` fixture is under ``llmfs grade``."""

    def __init__(self, pool: WorkerPool, unit: Unit, nodeid: str, blocked: str | None):
        self.pool, self.unit, self.nodeid, self.blocked = pool, unit, nodeid, blocked
        self.calls = 0

    def run(self, probe, *args, **kwargs):
        if self.blocked:
            raise UnitBlocked(self.blocked)
        spec = describe(probe)
        check_arguments(args, kwargs)
        self.calls += 1
        seed = call_seed(self.nodeid, self.calls)
        return self.pool.call(self.unit, spec, list(args), dict(kwargs), seed)


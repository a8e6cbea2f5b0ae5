"""The judge's side of the worker: start it, call it, time it out, restart it.

`WorkerPool` owns one worker process at a time for one submission. A call
either returns plain data or raises:

- `StudentCodeError`: the student's code raised (the type and message are
  the student's own, shown to them);
- `WorkerFailure`: the worker timed out, died, exited, broke a limit or
  broke the protocol. The worker is killed and a fresh one is started on
  the next call, so the remaining tests are still graded.

Nothing the worker writes other than the one reply to the current request
is ever interpreted: its output is capped and kept only as a courtesy, and a
reply larger than the course's `reply_mb` is a worker failure.

A call's time limit is CPU time of the whole sandbox (every process in it),
so load on the machine, or a neighbour graded beside it, cannot make a
correct submission time out. Code that waits instead of computing (sleeps,
blocks on a pipe) is stopped after `WALL_FACTOR` times the limit spent with
no process of the sandbox runnable: time spent runnable but waiting for a
core, as on a busy machine, does not count.
"""

from __future__ import annotations

import os
import re
import secrets
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import wire
from .cgroup import SandboxCgroup, pid_alive
from .course import Course, Limits, Unit
from .failures import Failure, UnitBlocked, WorkerFailure
from .probes import describe
from .runners import call_seed, check_arguments
from .sandbox import Isolation

START_TIMEOUT_S = 120.0
WALL_FACTOR = 5.0     # a call may wait (nothing runnable) this many times its CPU limit
POLL_S = 0.1          # how often the CPU time of a running call is looked at
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SCRATCH_PREFIX = "llmfs-worker-"  # + the judge's pid: a folder per worker, for its new root
SIGNAL_MEANING = {
    signal.SIGKILL: "it was killed (SIGKILL): most likely it went over the memory or process limit",
    signal.SIGXCPU: "it used up its CPU time limit",
    signal.SIGXFSZ: "it wrote a file larger than the file size limit",
    signal.SIGSEGV: "it crashed (segmentation fault)",
    signal.SIGABRT: "it aborted",
}


class StudentCodeError(Failure):
    """The student's code raised an exception inside the worker.

    Its message (the student's own text and traceback) is for public tests.
    Its summary, all a hidden test's report shows, holds no text the
    student's code chose: the exception's type and the line of the student's
    file it came from (a message could carry out what a probe was given)."""

    origin = "student"

    def __init__(self, student_type: str, message: str, tb: str = "", kind: str = "exception", package: str = ""):
        self.student_type = _identifier(student_type)
        self.kind = kind
        self.tb = tb
        text = f"your code raised {student_type}: {message}" if kind == "exception" else message
        where = student_line(tb, package)
        if kind == "exception":
            summary = f"your code raised {self.student_type}" + (f" at {where}" if where else "")
        elif kind == "import":
            summary = f"your package could not be imported: {self.student_type}" + (f" at {where}" if where else "")
        else:
            summary = "your code returned something that is not plain data"
        super().__init__(summary, message=text + (f"\n{tb.rstrip()}" if tb else ""))


_FRAME = re.compile(r'^  File "[^"\n]*/([A-Za-z_]\w*/[A-Za-z_]\w*\.py)", line (\d{1,7})', re.M)


def student_line(tb: str, package: str = "") -> str:
    """'scratchllm/attention.py line 42': the innermost frame of a traceback in a
    package module (not torch's, not the probe's), or '' if there is none."""
    frames = [m for m in _FRAME.finditer(tb) if "site-packages" not in m.group(0) and "/grader/" not in m.group(0)]
    if package:
        frames = [m for m in frames if m.group(1).startswith(package + "/")]
    return f"{frames[-1].group(1)} line {frames[-1].group(2)}" if frames else ""


def _identifier(name: str) -> str:
    """An exception's type name as the report may show it: an identifier, short."""
    return name if re.fullmatch(r"[A-Za-z_][\w.]{0,59}", name) else "an exception"


class GradingRefused(Exception):
    """Grading cannot be made safe here; the message says what to do."""


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
        self.cgroup: SandboxCgroup | None = None
        self.isolation = Isolation()
        self.stray_replies = 0
        self.timeout = START_TIMEOUT_S
        self.clock: CallClock | None = None  # the running call's CPU and waiting time
        self.scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-"))
        os.chmod(self.scratch, 0o755)
        self.ready = False

    # -- lifecycle
    def launch(self) -> None:
        """Start a fresh interpreter (never a fork of the judge: it must hold
        nothing of the judge's memory or environment) and hand it its set-up.
        Returns at once; `wait_ready` waits for it."""
        req_r, self.req_w = os.pipe()
        self.rep_r, rep_w = os.pipe()
        out_r, out_w = os.pipe()
        grader_parent = str(Path(__file__).resolve().parent.parent)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": grader_parent,
               "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0",
               "PYTHONDONTWRITEBYTECODE": "1"}
        limits = {k: getattr(self.limits, k) for k in ("cpu_s", "memory_mb", "processes", "file_size_mb")}
        if self.mode == "root":
            self.cgroup = SandboxCgroup.create(self.limits.memory_mb, self.limits.processes)
        init = {"package_dir": str(self.package_dir), "package": self.course.package,
                "modules": {u.id: list(u.modules) for u in self.course.units},
                "forbid": {u.id: list(u.forbid) for u in self.course.units},
                "forbid_ops": {u.id: list(u.forbid_ops) for u in self.course.units},
                "limits": limits, "mode": self.mode, "uid": self.uid,
                "course_root": str(self.course.root), "new_root": str(self.scratch / "root"),
                "workdir": str(self.scratch)}
        self.start_deadline = time.monotonic() + START_TIMEOUT_S
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "grader.worker", str(req_r), str(rep_w)], pass_fds=(req_r, rep_w),
            stdin=subprocess.DEVNULL, stdout=out_w, stderr=out_w, cwd=self.scratch, env=env,
            start_new_session=True)
        if self.cgroup is not None:  # before it reads its set-up, so before any student code
            self.cgroup.add(self.proc.pid)
        for fd in (req_r, rep_w, out_w):
            os.close(fd)
        self.output = _OutputDrain(out_r, self.limits.output_kb * 1024)
        self.output.start()
        self._send(wire.encode(init), self.start_deadline)

    def wait_ready(self) -> None:
        """Wait until the launched worker has confined itself and says so."""
        if self.ready:
            return
        deadline = self.start_deadline
        ready = None
        while ready is None:
            msg = self._receive(deadline, "while starting")
            if "host_pid" in msg:
                self.host_pid = int(msg["host_pid"])
            elif "isolation" in msg:
                ready = msg
        self.isolation = Isolation(**ready["isolation"])
        if self.cgroup is not None:
            self.isolation.in_force.append(self.cgroup.description)
        elif self.mode != "root":
            self.isolation.missing.append("memory and processes limited per process, not for the sandbox as a whole "
                                          "(cgroups need root)")
        else:
            self.isolation.missing.append("no cgroup could be made: memory and processes limited per process only")
        self.ready = True

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
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None
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
        data = memoryview(wire.frame(payload))
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
            readable, _, _ = select.select([self.rep_r], [], [], min(remaining, POLL_S))
            if not readable:
                if self.clock is not None and self.proc is not None:
                    self.clock.tick(self.proc.pid)
                continue
            chunk = os.read(self.rep_r, min(n, 1 << 20))
            if not chunk:
                raise WorkerFailure(self._death_message())
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def _receive(self, deadline: float, when: str = "during the call") -> dict:
        n = wire.frame_length(self._read(wire.FRAME_HEADER.size, deadline))
        if n > (self.limits.reply_mb << 20):
            raise WorkerFailure(f"the result is larger than the {self.limits.reply_mb} MB a reply may be "
                                f"(reply_mb in course.toml)")
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

    def request(self, req: dict, timeout: float, cpu_limited: bool = True) -> dict:
        """Send one request and wait for its reply: at most `timeout` s of the
        sandbox's CPU time (see `CallClock`), or `timeout` s of wall-clock time
        if not `cpu_limited`."""
        self.wait_ready()
        self.timeout = timeout
        wall = timeout
        if cpu_limited and self.proc is not None:
            self.clock = CallClock(self.proc.pid, timeout)
            wall = max(self.limits.submission_timeout_s, timeout * WALL_FACTOR)  # a backstop only
        req_id = secrets.token_hex(8)
        deadline = time.monotonic() + wall
        try:
            self._send(wire.encode({**req, "id": req_id}), deadline)
            while True:
                reply = self._receive(deadline)
                if reply.get("id") == req_id:
                    return reply
                self.stray_replies += 1  # a second reply to an earlier request: never an answer
        finally:
            self.clock = None


class CallClock:
    """The time one call has used: CPU seconds of the whole sandbox, and
    seconds spent waiting (no process of the sandbox runnable). Looked at
    every `POLL_S` while the judge waits for the reply."""

    def __init__(self, root: int, allowed: float):
        self.root, self.allowed = root, allowed
        self.start_cpu, _ = _tree_usage(root)
        self.waited = 0.0
        self.last = time.monotonic()

    def tick(self, root: int) -> None:
        now = time.monotonic()
        cpu, runnable = _tree_usage(root)
        if not runnable:
            self.waited += now - self.last
        self.last = now
        if cpu - self.start_cpu > self.allowed:
            raise WorkerFailure(f"timed out: used up its {self.allowed:g} s of CPU time for this call")
        if self.waited > self.allowed * WALL_FACTOR:
            raise WorkerFailure(f"timed out: waited {self.waited:.0f} s for something, and the limit is "
                                f"{self.allowed:g} s of CPU time (is the code sleeping or blocked?)")


def _tree_usage(root: int) -> tuple[float, bool]:
    """User + system CPU seconds of `root` and all its descendants, including
    children they have reaped, and whether any of them is runnable. In a PID
    namespace every process, orphans too, stays a descendant of the worker,
    so nothing escapes the count. Walks the tree through each thread's
    `children` file: a handful of reads, not a scan of /proc."""
    total, runnable, todo, seen = 0, False, [root], set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue  # it just exited; its time is now its parent's
        fields = stat[stat.rfind(b")") + 2:].split()
        total += sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
        runnable = runnable or fields[0] == b"R"
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                    todo += [int(c) for c in f.read().split()]
            except OSError:
                pass
    return total / CLOCK_TICKS, runnable


def sweep_stale_scratch() -> None:
    """Remove the scratch folders of judges that were killed before they could."""
    import shutil

    for folder in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*-*"):
        owner = folder.name[len(SCRATCH_PREFIX):].split("-", 1)[0]
        if owner.isdigit() and not pid_alive(int(owner)) and not os.path.ismount(folder / "root"):
            shutil.rmtree(folder, ignore_errors=True)


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
    """The worker for one submission: restarted after every failure, and
    replaced when the next call belongs to a unit with other limits."""

    def __init__(self, course: Course, package_dir: Path, *, mode: str, uid: int, seed_secret: bytes = b""):
        self.course, self.package_dir, self.mode, self.uid = course, package_dir, mode, uid
        self.seed_secret = seed_secret
        self.worker: Worker | None = None
        self.restarts = 0
        self.started_at = time.monotonic()
        self.isolation = Isolation()
        self.limits_used: dict[str, Limits] = {}  # unit -> the limits its calls ran under
        sweep_stale_scratch()

    def launch(self, limits: Limits) -> None:
        """Start a worker now, without waiting for it (it loads torch meanwhile)."""
        if self.worker is None:
            self.worker = Worker(self.course, self.package_dir, self.mode, limits, self.uid)
            self.worker.launch()

    def _ensure(self, limits: Limits) -> Worker:
        w = self.worker
        if w is not None and (w.limits != limits or not w.alive):
            if w.limits == limits:
                self.restarts += 1  # it failed (and was killed, or died): not a change of unit
            w.kill()
            self.worker = w = None
        try:
            if w is None:
                self.launch(limits)
                w = self.worker
                assert w is not None
            w.wait_ready()
        except WorkerFailure as e:
            if self.worker is not None:
                self.worker.kill()
            self.worker = None
            raise WorkerFailure(f"the worker could not start: {e}") from None
        self.isolation = w.isolation
        return w

    def start(self, limits: Limits) -> Isolation:
        return self._ensure(limits).isolation

    def can_read(self, paths: list[str]) -> list[str]:
        worker = self.worker if self.worker is not None else self._ensure(self.course.defaults)
        reply = worker.request({"op": "can_read", "paths": paths}, timeout=30, cpu_limited=False)
        return list(reply["value"])

    def call(self, unit: Unit, spec, args: list, kwargs: dict, seed: int):
        budget = self.course.defaults.submission_timeout_s
        if time.monotonic() - self.started_at > budget:
            raise WorkerFailure(f"the submission used up its grading time ({budget:g} s)")
        worker = self._ensure(unit.limits)
        self.limits_used[unit.id] = unit.limits
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
                                   kind="notplain", package=self.course.package)
        if output.strip():
            message += f"\n--- your code printed ---\n{output.strip()[-2000:]}"
        raise StudentCodeError(str(reply.get("type", "Exception")), message, str(reply.get("traceback", "")),
                               kind="exception" if kind != "import" else "import", package=self.course.package)

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
        seed = call_seed(self.nodeid, self.calls, self.pool.seed_secret)
        return self.pool.call(self.unit, spec, list(args), dict(kwargs), seed)


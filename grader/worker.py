"""The worker: the only process that runs student code under `llmfs grade`.

Started by the judge as ``python -m grader.worker IN_FD OUT_FD``. It reads
framed requests from IN_FD and writes exactly one framed reply per request
to OUT_FD; its stdout and stderr go to a pipe the judge caps and keeps only
as a courtesy for the student. Everything it sends is plain data encoded by
`grader.wire`; the judge decodes it into exact plain types.

Always a fresh interpreter, never a fork of the judge: it starts with
nothing of the judge's memory or environment. Start-up, in order: trusted
imports; confinement (`grader.sandbox`);
then, and only then, at the first call, the student's package.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback

import torch

from . import forbid, probes, runners, sandbox, targets, wire

MAX_FRAME = 1 << 30
TRACEBACK_CHARS = 4000


# ----------------------------------------------------------------- framing

def write_frame(fd: int, payload: bytes) -> None:
    data = wire.frame(payload)
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def read_exact(fd: int, n: int) -> bytes:
    chunks = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> bytes:
    n = wire.frame_length(read_exact(fd, wire.FRAME_HEADER.size))
    if n > MAX_FRAME:
        raise ValueError("frame too large")
    return read_exact(fd, n)


# ----------------------------------------------------------------- serving

def _describe_exception(e: BaseException) -> tuple[str, str]:
    try:
        name = type(e).__name__
        if isinstance(e, SystemExit):
            return name, f"sys.exit({e.code!r}) was called during the call"
        return name, str(e)[:2000]
    except BaseException:  # a student's __str__ may itself raise
        return "Exception", "(the exception could not be shown)"


# Frames a student's traceback leaves out: the grader's and the import machinery's.
HIDDEN_FRAMES = (os.path.dirname(os.path.abspath(__file__)), os.path.dirname(importlib.__file__), "<frozen importlib")


def _traceback(e: BaseException) -> str:
    """The traceback as the student should read it: their frames (and the
    probe's, and torch's), not the grader's or the import machinery's."""
    try:
        frames = [f for f in traceback.extract_tb(e.__traceback__)
                  if not f.filename.startswith(HIDDEN_FRAMES)]
        text = "Traceback (most recent call last):\n" if frames else ""
        text += "".join(traceback.format_list(frames)) + "".join(traceback.format_exception_only(type(e), e))
        return text[-TRACEBACK_CHARS:]
    except BaseException:
        return ""


class Server:
    def __init__(self, package_dir: str, package: str, modules: dict, forbids: dict, forbid_ops: dict | None = None):
        self.package_dir = package_dir
        self.package_name = package
        self.modules = modules
        # unit -> the check that fails a call running one of that unit's forbidden operators
        self.operator_checks = {unit: forbid.OperatorCheck(unit, ops, forbids.get(unit, ()))
                                for unit, ops in (forbid_ops or {}).items()}
        self.pkg = None
        self.import_errors: dict[str, tuple[str, str, str, str]] = {}  # module -> ImportFailed's arguments

    def load(self):
        if self.pkg is None:
            target = targets.Target("submission", (targets.Path(self.package_dir),))
            self.pkg = targets.load_package(target, self.package_name)
        return self.pkg

    def import_unit(self, unit: str):
        pkg = self.load()
        for m in self.modules.get(unit, ()):
            if m in self.import_errors:
                raise ImportFailed(*self.import_errors[m])
            try:
                targets.import_modules(pkg, [m])
            except BaseException as e:  # SyntaxError, an exception at import time, sys.exit...
                name, msg = _describe_exception(e)
                self.import_errors[m] = (m, name, f"{name}: {msg}", _traceback(e))
                raise ImportFailed(*self.import_errors[m]) from None
        return pkg

    def call(self, req: dict) -> dict:
        unit = req["unit"]
        try:
            pkg = self.import_unit(unit)
        except ImportFailed as e:
            return {"ok": False, "kind": "import", "type": e.exc_type,
                    "message": f"could not import {self.package_name}.{e.module}: {e.message}",
                    "traceback": e.tb}
        try:
            fn = probes.rebuild(req["probe"])
            runners.seed_everything(int(req["seed"]))
            check = self.operator_checks.get(unit) or forbid.OperatorCheck(unit, ())
            with check.active():
                value = fn(pkg, *req["args"], **req["kwargs"])
        except BaseException as e:
            name, msg = _describe_exception(e)
            return {"ok": False, "kind": "exception", "type": name, "message": msg, "traceback": _traceback(e)}
        try:
            wire.check_plain(value, "the result")
        except wire.NotPlainData as e:
            return {"ok": False, "kind": "notplain", "type": "TypeError", "message": str(e), "traceback": ""}
        return {"ok": True, "value": value}


class ImportFailed(Exception):
    def __init__(self, module: str, exc_type: str, message: str, tb: str):
        super().__init__(message)
        self.module, self.exc_type, self.message, self.tb = module, exc_type, message, tb


def can_read(paths: list[str]) -> list[str]:
    readable = []
    for p in paths:
        try:
            if os.path.isdir(p):
                os.listdir(p)
            else:
                with open(p, "rb") as f:
                    f.read(1)
            readable.append(p)
        except OSError:
            pass
    return readable


def serve(fd_in: int, fd_out: int, server: Server, isolation: sandbox.Isolation) -> None:
    write_frame(fd_out, wire.encode({"ok": True, "isolation": isolation.as_plain(), "pid": os.getpid()}))
    while True:
        try:
            req = wire.decode(read_frame(fd_in))
        except EOFError:
            os._exit(0)
        op = req.get("op")
        if op == "call":
            reply = server.call(req)
        elif op == "can_read":
            reply = {"ok": True, "value": can_read(req["paths"])}
        else:
            reply = {"ok": False, "kind": "protocol", "type": "ValueError", "message": f"unknown op {op!r}",
                     "traceback": ""}
        reply["id"] = req.get("id")
        try:
            payload = wire.encode(reply)
        except wire.NotPlainData as e:  # pragma: no cover - checked above
            payload = wire.encode({"id": req.get("id"), "ok": False, "kind": "notplain", "type": "TypeError",
                                   "message": str(e), "traceback": ""})
        sys.stdout.flush()
        sys.stderr.flush()
        write_frame(fd_out, payload)


def _exit_code(status: int) -> int:
    """A child's wait status as an exit code, 128+N for death by signal N."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _reap_until(child: int) -> int:
    """Wait for `child`, reaping any other process meanwhile; its exit code."""
    while True:
        pid, status = os.waitpid(-1, 0)
        if pid == child:
            return _exit_code(status)


def main(argv: list[str]) -> None:
    fd_in, fd_out = int(argv[0]), int(argv[1])
    run(fd_in, fd_out, wire.decode(read_frame(fd_in)))


def run(fd_in: int, fd_out: int, init: dict) -> None:
    """Set up the worker described by `init`, then serve requests until EOF."""
    sandbox.die_with_parent()  # if the judge dies, so does the sandbox
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    server = Server(init["package_dir"], init["package"], init["modules"], init["forbid"], init.get("forbid_ops"))
    isolation = sandbox.Isolation()
    isolation.in_force.append("separate process")
    limits = init["limits"]
    staged = os.path.dirname(init["package_dir"])
    mode = init["mode"]

    if mode in ("root", "userns"):
        # Three processes: this one stays outside and tells the judge the pid of the
        # second, which is PID 1 of a new PID namespace and only reaps; the third serves.
        # Killing the second kills everything the student's code started.
        # A user namespace keeps counting processes against the real user: count them while we still can.
        existing = sandbox.processes_of_this_user() if mode == "userns" else None
        sandbox.enter_namespaces(user=mode == "userns")
        # The outer process holds the write end of this pipe until it dies: its end of
        # file tells the namespace's PID 1 (which cannot see its parent's pid) that it is alone.
        outer_alive, outer_holds = os.pipe()
        init_pid = os.fork()
        if init_pid:
            os.close(outer_alive)
            write_frame(fd_out, wire.encode({"ok": True, "host_pid": init_pid}))
            for fd in (fd_in, fd_out):
                os.close(fd)
            os._exit(_reap_until(init_pid))
        os.close(outer_holds)
        sandbox.die_with_parent(outer_alive)
        sandbox.build_root(init["new_root"], staged, sandbox.Path(init["course_root"]))
        server.package_dir = f"{sandbox.SANDBOX_HOME}/{init['package']}"
        os.makedirs(sandbox.SANDBOX_WORKDIR, exist_ok=True)
        if mode == "root":
            os.chown(sandbox.SANDBOX_WORKDIR, init["uid"], init["uid"])
        os.chdir(sandbox.SANDBOX_WORKDIR)
        sandbox.scrub_environment(sandbox.SANDBOX_WORKDIR)
        sandbox.apply_limits(limits, isolation)
        if mode == "root":
            sandbox.drop_privileges(init["uid"])
            sandbox.limit_processes(int(limits["processes"]))
            who = f"unprivileged user (uid {init['uid']})"
        else:
            sandbox.lock_down_user_namespace()
            sandbox.no_new_privs()
            sandbox.limit_processes(int(limits["processes"]), existing)
            who = "unprivileged user namespace (no capabilities, mounts locked)"
        sandbox.die_with_parent(outer_alive)  # again: a change of credentials cleared it
        server_pid = os.fork()
        if server_pid:
            for fd in (fd_in, fd_out, 0, 1, 2):
                os.close(fd)
            os._exit(_reap_until(server_pid))
        sandbox.die_with_parent()  # if PID 1 dies, the kernel kills the whole namespace anyway
        os.close(outer_alive)
        isolation.in_force += ["network off (own network namespace)",
                               "hidden files unreachable (own root filesystem; no course folder)",
                               who,
                               "own PID and IPC namespaces (all processes and shared memory go with the worker)",
                               f"read-only root; /tmp and /dev/shm capped at {sandbox.TMPFS_MB} MB, thrown away"]
    else:
        workdir = init["workdir"]
        os.chdir(workdir)
        sandbox.scrub_environment(workdir)
        sandbox.apply_limits(limits, isolation)
        sandbox.limit_processes(int(limits["processes"]))
        isolation.in_force.append("fresh temporary working directory")
        isolation.missing += ["hidden files readable: without user namespaces or root, student code can read "
                              "grader/hidden/ and solutions/; grade as root (in a container) or on a Linux "
                              "kernel that allows unprivileged user namespaces",
                              "network not disabled (needs namespaces)",
                              "disk use not capped beyond the file size limit (needs namespaces)"]
    isolation.in_force.append("scrubbed environment")
    serve(fd_in, fd_out, server, isolation)


if __name__ == "__main__":
    # Serve as the module grader.worker (the copy sys.modules names), not as __main__, a second copy.
    from grader import worker
    worker.main(sys.argv[1:])

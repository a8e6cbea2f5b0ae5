"""A cgroup for one sandbox: its memory, its processes and its CPU share, as a whole.

Resource limits (`setrlimit`) are per process: five children of a worker may
each use the whole memory limit. A cgroup counts the sandbox as one: every
process the worker starts is in it and cannot leave (the cgroup file system
does not exist inside the sandbox's root). Each sandbox also gets an equal
CPU share, so a submission that starts thirty busy processes slows only
itself, not a neighbour graded beside it.

Only root can make cgroups here. Both layouts are handled: cgroup v2 (one
unified tree) and v1 (one tree per controller, as on many CI machines).
Where neither works, `SandboxCgroup.create` returns None and the caller
falls back to per-process limits, and the report says so.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PREFIX = "llmfs-"
_serial = itertools.count()


def _own_path(controller: str) -> str | None:
    """This process's cgroup path for a v1 controller ("" for v2's line)."""
    try:
        lines = Path("/proc/self/cgroup").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers.split(",") == [controller] or (controller == "" and controllers == ""):
            return path
    return None


def pid_alive(pid: int) -> bool:
    """Is there a process `pid` (ours or another user's)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_members(folder: Path, timeout: float = 10.0) -> None:
    procs = folder / "cgroup.procs"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pids = [int(p) for p in procs.read_text(encoding="ascii").split()]
        except OSError:
            return
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.01)


def _remove(folder: Path) -> None:
    _kill_members(folder)
    for _ in range(100):
        try:
            folder.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:  # members still exiting
            time.sleep(0.01)


def _sweep_stale(parent: Path) -> None:
    """Remove cgroups left by judges that were killed before they could clean up."""
    try:
        entries = list(parent.glob(PREFIX + "*"))
    except OSError:
        return
    for folder in entries:
        owner = folder.name[len(PREFIX):].split("-", 1)[0]
        if owner.isdigit() and not pid_alive(int(owner)):
            _remove(folder)


class SandboxCgroup:
    """The cgroup folders (one for v2, one per controller for v1) of one sandbox."""

    def __init__(self, folders: list[Path], version: int, description: str):
        self.folders, self.version, self.description = folders, version, description

    @classmethod
    def create(cls, memory_mb: int, processes: int) -> SandboxCgroup | None:
        if os.geteuid() != 0:
            return None
        name = f"{PREFIX}{os.getpid()}-{next(_serial)}"
        for make in (cls._v2, cls._v1):
            try:
                made = make(name, memory_mb, processes)
            except OSError:
                made = None
            if made is not None:
                return made
        return None

    @classmethod
    def _v2(cls, name: str, memory_mb: int, processes: int) -> SandboxCgroup | None:
        if not (ROOT / "cgroup.controllers").is_file():
            return None
        own = _own_path("")
        if own is None:
            return None
        parent = ROOT / own.lstrip("/")
        wanted = {"memory", "pids", "cpu"}
        if not wanted <= set((parent / "cgroup.subtree_control").read_text(encoding="ascii").split()):
            return None  # enabling controllers here would need this cgroup to have no processes
        _sweep_stale(parent)
        folder = parent / name
        folder.mkdir()
        made = cls([folder], 2, "")
        try:
            (folder / "memory.max").write_text(str(memory_mb << 20), encoding="ascii")
            if (folder / "memory.swap.max").exists():
                (folder / "memory.swap.max").write_text("0", encoding="ascii")
            (folder / "pids.max").write_text(str(processes), encoding="ascii")
            (folder / "cpu.weight").write_text("100", encoding="ascii")
        except OSError:
            made.remove()
            raise
        made.description = f"cgroup v2 for the whole sandbox: {memory_mb} MB, {processes} processes, own CPU share"
        return made

    @classmethod
    def _v1(cls, name: str, memory_mb: int, processes: int) -> SandboxCgroup | None:
        settings = {"memory": [("memory.limit_in_bytes", str(memory_mb << 20))],
                    "pids": [("pids.max", str(processes))],
                    "cpu": [("cpu.shares", "1024")]}
        folders: list[Path] = []
        made = cls(folders, 1, "")
        try:
            for controller, values in settings.items():
                own = _own_path(controller)
                mount = ROOT / controller
                if own is None or not (mount / "cgroup.procs").is_file():
                    made.remove()
                    return None
                parent = mount / own.lstrip("/")
                _sweep_stale(parent)
                folder = parent / name
                folder.mkdir()
                folders.append(folder)
                for key, value in values:
                    (folder / key).write_text(value, encoding="ascii")
                swap = folder / "memory.memsw.limit_in_bytes"
                if swap.exists():
                    try:
                        swap.write_text(str(memory_mb << 20), encoding="ascii")
                    except OSError:
                        pass  # swap accounting is off: memory.limit_in_bytes is the limit
        except OSError:
            made.remove()
            raise
        made.description = f"cgroup v1 for the whole sandbox: {memory_mb} MB, {processes} processes, own CPU share"
        return made

    def add(self, pid: int) -> None:
        """Put `pid` (and so everything it starts from now on) in this cgroup."""
        for folder in self.folders:
            (folder / "cgroup.procs").write_text(str(pid), encoding="ascii")

    def members(self) -> list[int]:
        pids: set[int] = set()
        for folder in self.folders:
            try:
                pids.update(int(p) for p in (folder / "cgroup.procs").read_text(encoding="ascii").split())
            except OSError:
                pass
        return sorted(pids)

    def remove(self) -> None:
        """Kill whatever is left in the cgroup and delete it."""
        for folder in self.folders:
            _remove(folder)
        self.folders = []

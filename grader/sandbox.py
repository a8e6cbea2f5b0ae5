"""Confining the worker process before it touches student code.

Called inside the worker after its own (trusted) imports and before the
student's package is imported. Three modes (`choose_mode` picks one):

``root`` (Gradescope, CI, a container), and ``userns`` (a normal user on a
Linux kernel that allows unprivileged user namespaces) give the same sandbox:
  - new mount, network, PID and IPC namespaces: no network but a downed
    loopback; the worker is PID 1 of its own namespace, so killing it kills
    every process the student started; System V shared memory dies with it;
  - a fresh, read-only root filesystem made of read-only bind mounts of the
    system and Python directories only, plus the staged submission and
    size-capped tmpfs for /tmp and /dev/shm (the only writable places),
    entered with pivot_root and the old root detached: the course folder,
    grader/hidden/ and solutions/ do not exist there;
  - as root, an unprivileged uid of its own; as a normal user, a nested user
    namespace in which every mount is locked and no capability is left;
    no_new_privs in both.
As root the judge also puts the sandbox in a cgroup of its own (memory,
processes and a CPU share for the whole sandbox; see `grader.cgroup`).

``user`` (macOS, or a kernel without user namespaces): resource limits, a
scrubbed environment and a fresh temporary working directory. Files cannot
be hidden, so the judge refuses to grade hidden tests unless --insecure.

Every step that worked is recorded in `Isolation.in_force`.
"""

from __future__ import annotations

import ctypes
import os
import platform
import resource
import sys
from dataclasses import dataclass, field
from pathlib import Path

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
CLONE_NEWPID = 0x20000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
MNT_DETACH = 2
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "arm64": 41}.get(platform.machine())
PR_CAPBSET_DROP = 24
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
PR_SET_NO_NEW_PRIVS = 38
PR_SET_PDEATHSIG = 1

# What the worker needs to see of the host, besides Python's own folders.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/etc")
DEVICES = ("null", "zero", "random", "urandom", "full")
SANDBOX_HOME = "/sandbox"          # inside the new root: the staged submission
SANDBOX_WORKDIR = "/tmp/work"      # inside the new root: the working directory
TMPFS_MB = 256


class SandboxError(Exception):
    pass


@dataclass
class Isolation:
    in_force: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def as_plain(self) -> dict:
        return {"in_force": list(self.in_force), "missing": list(self.missing)}


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise SandboxError(f"{what}: {os.strerror(err)}")


def _mount(libc, src: str, dst: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(libc.mount(src.encode(), dst.encode(), fstype.encode() if fstype else None, flags,
                      data.encode() if data else None), f"mount {src} on {dst}")


def apply_limits(limits: dict, isolation: Isolation) -> None:
    """Resource limits for this process and its children (CPU, memory, files, processes)."""
    mb = 1 << 20
    pairs = [
        (resource.RLIMIT_CPU, (int(limits["cpu_s"]), int(limits["cpu_s"]) + 5)),
        (resource.RLIMIT_AS, (int(limits["memory_mb"]) * mb,) * 2),
        (resource.RLIMIT_FSIZE, (int(limits["file_size_mb"]) * mb,) * 2),
        (resource.RLIMIT_CORE, (0, 0)),
        (resource.RLIMIT_NOFILE, (256, 256)),
    ]
    for res, value in pairs:
        resource.setrlimit(res, value)
    isolation.in_force.append(f"limits: {limits['cpu_s']} CPU s, {limits['memory_mb']} MB memory, "
                              f"{limits['file_size_mb']} MB files, {limits['processes']} processes")


def processes_of_this_user() -> int:
    """How many processes this process's uid has (as /proc shows them here)."""
    uid = os.getuid()
    count = 0
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.stat(f"/proc/{d}").st_uid == uid:
                    count += 1
            except OSError:
                pass
    return count


def limit_processes(extra: int, existing: int | None = None) -> None:
    """RLIMIT_NPROC counts every process of the (real) uid, so allow what
    exists (`existing`, counted now if not given) plus `extra`."""
    n = (processes_of_this_user() if existing is None else existing) + extra
    resource.setrlimit(resource.RLIMIT_NPROC, (n, n))


def scrub_environment(workdir: str) -> None:
    keep = {"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": workdir, "TMPDIR": workdir, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
    os.environ.clear()
    os.environ.update(keep)


def protected_roots(course_root: Path) -> list[Path]:
    """Folders that hold hidden tests or solutions: the course graded, and the
    checkout the grader itself runs from (they differ when grading a copy)."""
    kit = Path(__file__).resolve().parent.parent
    return sorted({course_root.resolve(), kit})


def python_dirs(course_root: Path) -> list[str]:
    """Folders Python loads code from, minus anything that would expose the course."""
    roots = protected_roots(course_root)
    candidates = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    candidates.update(p for p in sys.path if p)
    prefixes = [Path(p).resolve() for p in (sys.prefix, sys.base_prefix)]
    out = []
    for c in candidates:
        p = Path(c).resolve()
        if not p.is_dir():
            continue
        inside_course = any(p == root or root in p.parents for root in roots)
        above_course = any(p in root.parents for root in roots)
        inside_prefix = any(p == pre or pre in p.parents for pre in prefixes)
        if above_course or (inside_course and not inside_prefix):
            continue
        out.append(str(p))
    # Keep only the outermost of nested folders.
    out.sort(key=len)
    kept: list[str] = []
    for folder in out:
        if not any(folder == k or folder.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(folder)
    return kept


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="ascii") as f:
        f.write(text)


def enter_namespaces(user: bool = False) -> None:
    """unshare mount, network, PID and IPC namespaces, and with `user` a user
    namespace in which this (unprivileged) process is root. The caller must
    fork: only children of this process live in the new PID namespace."""
    libc = _libc()
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC
    if not user:
        _check(libc.unshare(flags), "unshare")
        return
    uid, gid = os.geteuid(), os.getegid()
    _check(libc.unshare(flags | CLONE_NEWUSER), "unshare (user namespace)")
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"0 {uid} 1")
    _write("/proc/self/gid_map", f"0 {gid} 1")


def user_namespaces_work() -> bool:
    """Can this process make a user namespace with the others it needs? Tried
    in a throwaway child, so nothing here changes."""
    pid = os.fork()
    if pid == 0:
        try:
            enter_namespaces(user=True)
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def lock_down_user_namespace(inner_uid: int = 1000) -> None:
    """Give up the root of our user namespace: enter a nested one, where every
    mount made above is locked (no unmounting to reveal, no remounting
    read-write), become an ordinary uid there and drop every capability."""
    libc = _libc()
    _check(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS), "unshare (nested user namespace)")
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{inner_uid} 0 1")
    _write("/proc/self/gid_map", f"{inner_uid} 0 1")
    drop_capabilities()


def drop_capabilities() -> None:
    """Empty the bounding, effective, permitted and inheritable capability sets."""
    libc = _libc()
    for cap in range(64):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            break  # past the last capability this kernel knows
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()                 # two (effective, permitted, inheritable) triples
    _check(libc.capset(header, data), "capset")


def build_root(new_root: str, staged: str, course_root: Path, tmpfs_mb: int = TMPFS_MB) -> None:
    """Make `new_root` a minimal filesystem and pivot into it (in a new mount namespace)."""
    libc = _libc()
    _mount(libc, "none", "/", None, MS_REC | MS_PRIVATE)
    os.makedirs(new_root, exist_ok=True)
    _mount(libc, "llmfs", new_root, "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=755")
    for d in ("/tmp", "/dev/shm", "/proc"):
        os.makedirs(new_root + d, exist_ok=True)
    # The only writable places: /tmp and /dev/shm, size-capped, thrown away with the sandbox.
    # Mounted first, so that what is bound below them (a virtual environment in /tmp, as
    # CI makes) stays visible on top.
    _mount(libc, "llmfs-tmp", new_root + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmpfs_mb}m,mode=1777")
    _mount(libc, "llmfs-shm", new_root + "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmpfs_mb}m,mode=1777")

    def bind(src: str, dst_rel: str | None = None, readonly: bool = True, is_file: bool = False):
        dst = new_root + (dst_rel if dst_rel is not None else src)
        if is_file:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            open(dst, "a").close()
        else:
            os.makedirs(dst, exist_ok=True)
        _mount(libc, src, dst, None, MS_BIND | MS_REC)
        if readonly:
            _mount(libc, src, dst, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_REC)

    for d in SYSTEM_DIRS:
        if os.path.isdir(d) and not os.path.islink(d):
            bind(d)
        elif os.path.islink(d):
            os.symlink(os.readlink(d), new_root + d)
    for d in python_dirs(course_root):
        bind(d)
    for dev in DEVICES:
        if os.path.exists(f"/dev/{dev}"):
            bind(f"/dev/{dev}", readonly=False, is_file=True)
    bind(staged, SANDBOX_HOME)
    _mount(libc, "proc", new_root + "/proc", "proc", MS_NOSUID | MS_NODEV)
    # pivot_root, not chroot: the old root leaves the mount namespace entirely,
    # so there is nothing outside the new root to climb back to.
    old = new_root + "/.old-root"
    os.makedirs(old, exist_ok=True)
    if SYS_PIVOT_ROOT is None:  # pragma: no cover - an architecture we have not mapped
        raise SandboxError(f"pivot_root: unknown system call number on {platform.machine()}")
    _check(libc.syscall(SYS_PIVOT_ROOT, new_root.encode(), old.encode()), "pivot_root")
    os.chdir("/")
    _check(libc.umount2(b"/.old-root", MNT_DETACH), "umount the old root")
    os.rmdir("/.old-root")
    _mount(libc, "llmfs", "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def drop_privileges(uid: int) -> None:
    """Become `uid` (root only), with no groups and no way back."""
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    no_new_privs()


def no_new_privs() -> None:
    """No execve() from here on can gain privileges (setuid binaries, file capabilities)."""
    _check(_libc().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(no_new_privs)")


def die_with_parent(parent_alive: int | None = None) -> None:
    """SIGKILL this process when its parent dies (the judge, or the process above).

    If the parent died before the request took effect, exit now. The parent's
    pid tells, except for PID 1 of a namespace, whose parent is outside it:
    that one passes `parent_alive`, the read end of a pipe whose write end
    only the parent holds (end of file means the parent is gone)."""
    import select
    import signal
    parent = os.getppid()
    _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)
    if parent_alive is not None and select.select([parent_alive], [], [], 0)[0]:
        os._exit(1)

"""Attacks on the sandbox as a whole, for tests/test_sandbox.py.

Each is the reference attention.py whose `causal_mask` answers honestly only
if the attack worked, and raises NotImplementedError (the control) if it did
not. So an attack that fails scores exactly what the control scores, and one
that works scores more: the tests compare each with the control.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

from adversarial import with_causal_mask, with_heads_branch

# The modules the attacks import. A course copy that allows them lets each attack
# past the static check (grader.forbid), so that what stops it is the sandbox.
ATTACK_MODULES = ("os", "ctypes", "signal", "zlib", "time")


def let_attacks_past_the_static_check(course: Path) -> None:
    toml = course / "course.toml"
    text = toml.read_text(encoding="utf-8")
    extra = "".join(f'"{m}", ' for m in ATTACK_MODULES)
    text, n = re.subn(r"(?m)^(\[imports\]\nallow = \[)", lambda m: m.group(1) + extra, text, count=1)
    assert n == 1, "course.toml has no [imports] allow list to extend"
    toml.write_text(text, encoding="utf-8")

HONEST = "return torch.tril(torch.ones(T, T, dtype=torch.bool))"
CONTROL = 'raise NotImplementedError("u04: causal_mask")'
CANARY_VAR = "LLMFS_KIT_CANARY"
CANARY = "judge-secret-9f1c"  # in the judge's environment; no worker may see it


def if_attack_worked(attack: str) -> str:
    """causal_mask: run `attack` (sets `worked`), answer honestly only if it worked."""
    return with_causal_mask(f"worked = False\n{attack}\nif worked:\n    {HONEST}\n{CONTROL}")


# Read the judge's environment: the worker's own, every process's that /proc shows,
# and the memory of its own environment block (a forked worker would hold the judge's).
READ_ENVIRONMENT = if_attack_worked(f"""
import os
seen = " ".join(f"{{k}}={{v}}" for k, v in os.environ.items())
for pid in os.listdir("/proc"):
    for name in ("environ", "cmdline"):
        try:
            with open(f"/proc/{{pid}}/{{name}}", "rb") as f:
                seen += f.read().decode("latin-1")
        except OSError:
            pass
try:
    with open("/proc/self/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    start, end = int(fields[-5]), int(fields[-4])  # env_start, env_end
    with open("/proc/self/mem", "rb") as f:
        f.seek(start)
        seen += f.read(end - start).decode("latin-1")
except (OSError, ValueError, IndexError):
    pass
worked = {CANARY!r} in seen
""")

# Tell from torch's seed which public test is calling, as if to cheat in that test only.
GUESS_THE_TEST = if_attack_worked("""
import zlib
names = [f"test_causal_mask_allows_the_past_and_the_diagonal[{T}]#{i}" for i in range(1, 4)]
worked = torch.initial_seed() in {zlib.crc32(n.encode()) for n in names}
""")

# Five children each holding 900 MB: under every per-process limit, over the sandbox's.
MEMORY_IN_CHILDREN = if_attack_worked("""
import os
children = []
for _ in range(5):
    pid = os.fork()
    if pid == 0:
        import signal, time
        hog = b"x" * (900 << 20)
        time.sleep(1.5)  # all five alive at once
        os.kill(os.getpid(), signal.SIGTERM)  # alive until now: end as only this child can
    children.append(pid)
worked = all(os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) == -15 for p in children)
""")

# A System V shared memory segment, left behind on purpose.
SHARED_MEMORY = if_attack_worked("""
import ctypes
libc = ctypes.CDLL(None)
libc.shmget.restype = ctypes.c_int
shm_id = libc.shmget(0, 48 << 20, 0o1000 | 0o600)  # IPC_PRIVATE, 48 MB, IPC_CREAT
worked = False  # the segment is the attack: it must not outlive the sandbox
""")

# A result larger than any reply may be (40 MB; replies are capped at 32 MB).
HUGE_REPLY = with_causal_mask("return torch.ones(40 << 20, dtype=torch.bool)")

# Thirty busy processes for the rest of this submission's grading: they must slow
# only this submission, never a neighbour graded at the same time.
BUSY_NEIGHBOUR = with_heads_branch("""
import os
for _ in range(30):
    try:
        if os.fork() == 0:
            while True:
                pass
    except OSError:
        break
raise NotImplementedError("u04: reject bad n_heads")
""")

# Waits instead of computing: caught by the wall-clock limit, not the CPU one (only
# for T = 7, so that it costs one timeout, not one per causal-mask test).
SLEEPER = with_causal_mask(f"if T == 7:\n    import time\n    time.sleep(3600)\n{CONTROL}")


def old_seed(name: str, index: int) -> int:
    """The seed a probe call had before seeds were keyed: crc32 of its test name."""
    return zlib.crc32(f"{name}#{index}".encode("utf-8"))


def takeover(solutions_file: str) -> str:
    """Append code to a reference module the judge will load (a normal user's files)."""
    return if_attack_worked(f"""
try:
    with open({solutions_file!r}, "a", encoding="utf-8") as f:
        f.write("\\n# taken over by a submission\\n")
    worked = True
except OSError:
    worked = False
""")


def plant_pth(site_packages: str) -> str:
    """Leave a .pth file where the next Python of this user runs it at start-up."""
    return if_attack_worked(f"""
import os
try:
    os.makedirs({site_packages!r}, exist_ok=True)
    with open(os.path.join({site_packages!r}, "llmfs_owned.pth"), "w", encoding="utf-8") as f:
        f.write("import os; os.environ['OWNED'] = '1'\\n")
    worked = True
except OSError:
    worked = False
""")


def reach_the_judge(judge_word: str) -> str:
    """Find the judge among the processes /proc shows, read its environment, signal it."""
    return if_attack_worked(f"""
import os, signal
worked = False
for pid in os.listdir("/proc"):
    if not pid.isdigit() or int(pid) == os.getpid():
        continue
    try:
        with open(f"/proc/{{pid}}/cmdline", "rb") as f:
            cmdline = f.read()
        if {judge_word!r}.encode() not in cmdline:
            continue
        with open(f"/proc/{{pid}}/environ", "rb") as f:
            worked = worked or {CANARY!r}.encode() in f.read()
        os.kill(int(pid), signal.SIGSTOP)
        os.kill(int(pid), signal.SIGCONT)
        worked = True
    except OSError:
        pass
""")


# Sends text out through an exception's message (it could be anything the probe was given).
LEAK_MARK = "LEAKED-THROUGH-THE-MESSAGE"
LEAK_THROUGH_MESSAGE = with_causal_mask(f"raise ValueError({LEAK_MARK!r} * 100)")

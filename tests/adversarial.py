"""Sample submissions that attack the grader, for tests/test_grading.py.

Each is the reference attention.py with one spot replaced by an attack (and
sometimes code run at import). The *honest part* of every attack is the
rest of the unit, so each must score exactly what its control scores: the
same spot simply not written (raising NotImplementedError).

- Attacks on the answer itself replace the body of `causal_mask`, which only
  the causal-mask tests call (ATTACKS, control "control").
- Attacks on the worker process (crashes, hangs, bombs) replace the branch of
  `MultiHeadAttention.__init__` that rejects n_heads not dividing d_model,
  which one hidden test reaches (PROCESS_ATTACKS, control "control_heads"), so
  each costs one worker restart, not six.
"""

from __future__ import annotations

import os
import textwrap
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = (ROOT / "solutions" / "scratchllm" / "attention.py").read_text(encoding="utf-8")
HONEST_BODY = "    return torch.tril(torch.ones(T, T, dtype=torch.bool))\n"
assert HONEST_BODY in REFERENCE, "the reference causal_mask changed; update tests/adversarial.py"


HEADS_BRANCH = '            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")\n'
assert HEADS_BRANCH in REFERENCE, "the reference MultiHeadAttention changed; update tests/adversarial.py"


def with_heads_branch(body: str) -> str:
    return REFERENCE.replace(HEADS_BRANCH, textwrap.indent(textwrap.dedent(body).strip("\n"), " " * 12) + "\n")


def with_causal_mask(body: str, at_import: str = "") -> str:
    src = REFERENCE.replace(HONEST_BODY, textwrap.indent(textwrap.dedent(body).strip("\n"), "    ") + "\n")
    return src + ("\n\n# --- run at import ---\n" + textwrap.dedent(at_import) if at_import else "")


def hidden_file(name: str) -> str:
    return str(ROOT / "grader" / "hidden" / name)


# name -> attention.py source. All score like the control.
ATTACKS = {
    "control": with_causal_mask('raise NotImplementedError("u04: causal_mask")'),
    "always_equal": with_causal_mask(
        "class Anything:\n    def __eq__(self, other):\n        return True\n    def __ne__(self, other):\n"
        "        return False\nreturn Anything()"),
    "tensor_subclass": with_causal_mask(
        "class Liar(torch.Tensor):\n    def __eq__(self, other):\n        return True\n"
        "    def __ne__(self, other):\n        return False\n"
        "return torch.zeros(T, T, dtype=torch.bool).as_subclass(Liar)"),
    "float_subclass": with_causal_mask(
        "class Near(float):\n    def __eq__(self, other):\n        return True\nreturn Near(1.0)"),
    "monkeypatch": with_causal_mask("return torch.zeros(T, T, dtype=torch.bool)", at_import="""
        import numpy, pytest
        torch.allclose = lambda *a, **k: True
        torch.equal = lambda *a, **k: True
        torch.isclose = lambda a, b, *r, **k: torch.ones_like(a, dtype=torch.bool)
        torch.Tensor.eq = lambda self, other: torch.ones_like(self, dtype=torch.bool)
        torch.Tensor.ne = lambda self, other: torch.zeros_like(self, dtype=torch.bool)
        numpy.testing.assert_allclose = lambda *a, **k: None
        pytest.approx = lambda *a, **k: a[0]
        try:
            import grader.testing
            grader.testing.assert_close = lambda *a, **k: None
        except ImportError:  # the sandbox has no grader to patch
            pass
    """),
    "fake_results": with_causal_mask('raise NotImplementedError("u04: causal_mask")', at_import="""
        print('{"schema": 1, "score": 10, "max_score": 10, "units": [], "tests": []}')
        print("57 passed, 0 failed")
        import sys
        sys.stderr.write("PASSED\\n" * 100)
    """),
    "forged_files": with_causal_mask('raise NotImplementedError("u04: causal_mask")', at_import=f"""
        import json, os
        fake = json.dumps({{"schema": 1, "score": 10, "max_score": 10, "units": [], "tests": []}})
        for d in (".", "/tmp", {str(ROOT)!r}, {str(ROOT / 'tests')!r}):
            for name in ("grades.csv", "report.json", "results.json", "forged.json"):
                try:
                    with open(os.path.join(d, name), "w") as f:
                        f.write(fake)
                except OSError:
                    pass
    """),
    "import_reference": with_causal_mask(f"""
        import importlib.util
        spec = importlib.util.spec_from_file_location(
            "stolen", {str(ROOT / 'solutions' / 'scratchllm' / 'attention.py')!r})
        stolen = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(stolen)
        return stolen.causal_mask(T)
    """),
    "read_hidden_tests": with_causal_mask(f"""
        import glob
        found = glob.glob({hidden_file('*.py')!r})
        text = open({hidden_file('test_u04_attention_hidden.py')!r}, encoding="utf-8").read()
        return torch.tril(torch.ones(T, T, dtype=torch.bool)) if "causal_mask" in text else None
    """),
}


PROCESS_ATTACKS = {
    "control_heads": with_heads_branch('raise NotImplementedError("u04: reject bad n_heads")'),
    "crash": with_heads_branch("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)"),
    "hang": with_heads_branch("while True:\n    pass"),
    "sys_exit": with_heads_branch("import sys\nsys.exit(0)"),
    # Leaves with exit code 0 without raising SystemExit: the process becomes a Python that exits at once.
    "os_exit": with_heads_branch("import os, sys\nos.execv(sys.executable, [sys.executable, '-c', 'pass'])"),
    "base_exception": with_heads_branch("class Escape(BaseException):\n    pass\nraise Escape('bye')"),
    "keyboard_interrupt": with_heads_branch("raise KeyboardInterrupt"),
    "memory_bomb": with_heads_branch("hog = [bytearray(1 << 34)]  # 16 GB"),
    "fork_bomb": with_heads_branch("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"),
    "huge_output": with_heads_branch(
        "import sys\nline = 'x' * (1 << 20)\nfor _ in range(1024):\n    sys.stdout.write(line)\n"
        "raise NotImplementedError('printed 1 GB')"),
    "fill_disk": with_heads_branch(
        "import os, tempfile\nblock = b'0' * (1 << 20)\n"
        "for d in ('.', tempfile.gettempdir()):\n"
        "    for i in range(8):\n"
        "        try:\n"
        "            with open(os.path.join(d, f'fill{i}'), 'wb') as f:\n"
        "                for _ in range(1024):\n"
        "                    f.write(block)\n"
        "        except OSError:\n"
        "            break\n"
        "raise NotImplementedError('disk full')"),
}


def network_attack(port: int) -> str:
    """Reaches a server the test runs on this machine's loopback, then answers honestly."""
    return with_causal_mask(f"""
        import socket
        socket.create_connection(("127.0.0.1", {port}), timeout=2).close()
        return torch.tril(torch.ones(T, T, dtype=torch.bool))
    """)

# Attacks that succeed unless files are hidden (root only): as a normal user they are
# expected to get the honest answer, and the report must say files were readable.
NEEDS_FILE_HIDING = {"import_reference", "read_hidden_tests"}

# Other submissions, with what each should score.
STATIC_FORBIDDEN = REFERENCE.replace(
    "    return softmax(scores, dim=-1) @ v\n",
    "    return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)\n")
RUNTIME_FORBIDDEN = REFERENCE.replace(
    "    return softmax(scores, dim=-1) @ v\n",
    "    return scores.log_softmax(dim=-1).exp() @ v\n")
SYNTAX_ERROR = REFERENCE.replace("def causal_mask(T: int) -> Tensor:", "def causal_mask(T: int) -> Tensor")
RAISES_AT_IMPORT = REFERENCE + "\nraise RuntimeError('broken at import')\n"
SECOND_REPLY = with_causal_mask("""
    _state["armed"] = True
    return torch.tril(torch.ones(T, T, dtype=torch.bool))
""", at_import="""
    import grader.worker as _w
    import grader.wire as _wire
    _state = {"armed": False}
    _write = _w.write_frame
    def _twice(fd, payload):
        _write(fd, payload)
        if _state["armed"]:  # after answering a causal_mask call, send a forged second answer
            _state["armed"] = False
            forged = {"id": _wire.decode(payload)["id"], "ok": True, "value": torch.zeros(3)}
            _write(fd, _wire.encode(forged))
    _w.write_frame = _twice
""")


SOFTMAX_BODY = REFERENCE[REFERENCE.index("    m = x.amax(dim=dim, keepdim=True)\n"):
                         REFERENCE.index("\n\n\ndef causal_mask")] + "\n"
SDPA_BODY = "    return softmax(scores, dim=-1) @ v\n"
MHA_CLASS = "class MultiHeadAttention(nn.Module):"
assert SDPA_BODY in REFERENCE and MHA_CLASS in REFERENCE, "the reference changed; update tests/adversarial.py"


def with_softmax(body: str, at_import: str = "") -> str:
    src = REFERENCE.replace(SOFTMAX_BODY, textwrap.indent(textwrap.dedent(body).strip("\n"), "    ") + "\n")
    return src + ("\n\n" + textwrap.dedent(at_import) if at_import else "")


# Ways to have torch do the unit's work (issue 9 section 1). Each scores no more than
# "control_softmax" (softmax left unwritten), and every failure is one line naming what
# was used. Those the static scan refuses score 0 (the whole unit is refused); the others
# fail at run time, where the forbidden operator runs.
FORBID_ATTACKS = {
    "control_softmax": with_softmax('raise NotImplementedError("u04: softmax")'),
    "private_softmax": with_softmax("return torch._softmax(x, dim, False)"),
    "c_special_softmax": with_softmax("return torch._C._special.special_softmax(x, dim)"),
    "c_tensorbase_softmax": with_softmax("return torch._C.TensorBase.softmax(x, dim)"),
    "ops_softmax": with_softmax("return torch.ops.aten._softmax(x, dim, False)"),
    "c_nn_sdpa": REFERENCE.replace(SDPA_BODY, "    return torch._C._nn.scaled_dot_product_attention(q, k, v, "
                                              "attn_mask=mask)\n"),
    "ops_sdpa": REFERENCE.replace(SDPA_BODY, "    return torch.ops.aten.scaled_dot_product_attention(q, k, v, "
                                             "attn_mask=mask)\n"),
    "wrapped": with_softmax("return torch.nn.functional.softmax.__wrapped__(x, dim)"),
    "bases": with_softmax("return Mine.__bases__[0](dim)(x)", at_import="class Mine(torch.nn.Softmax):\n    pass\n"),
    "defining_module": REFERENCE.replace(MHA_CLASS, "class MultiHeadAttention(torch.nn.modules.activation."
                                                    "MultiheadAttention):"),
    "gc_objects": with_softmax("""
        import gc
        for o in gc.get_objects():
            if type(o).__name__ in ("OperatorCheck", "RuntimeGuards"):
                o.exact, o.prefixes, o.current = set(), (), set()
        return x.log_softmax(dim).exp()
    """),
    # UTF-7 reads "+AAo-" as a newline: a str-based scan sees a comment where Python runs code.
    "utf7_coding": "# -*- coding: utf-7 -*-\n" + with_softmax(
        "# +AAo-    return torch._softmax(x, dim, False)\n"
        "raise NotImplementedError('u04: softmax')"),
    # Pass the static scan, fail at run time: public neighbours and aliases it cannot resolve.
    "log_softmax_exp": with_softmax("return x.log_softmax(dim).exp()"),
    "softmax_module": with_softmax("return torch.nn.Softmax(dim)(x)"),
    "method_through_a_list": with_softmax("return [x][0].log_softmax(dim).exp()"),
}
FORBID_RUNTIME = {"log_softmax_exp", "softmax_module", "method_through_a_list"}


def write_submission(folder: Path, name: str, source: str, *, crlf_bom: bool = False) -> Path:
    pkg = folder / name / "scratchllm"
    pkg.mkdir(parents=True)
    data = source.encode("utf-8")
    if crlf_bom:
        data = b"\xef\xbb\xbf" + source.replace("\n", "\r\n").encode("utf-8")
    (pkg / "attention.py").write_bytes(data)
    return pkg.parent


def write_zip(folder: Path, name: str, entries: dict[str, bytes], symlink: str | None = None) -> Path:
    path = folder / f"{name}.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for arcname, data in entries.items():
            zf.writestr(arcname, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, "/etc/passwd")
    return path


def write_symlinked(folder: Path, name: str) -> Path:
    pkg = folder / name / "scratchllm"
    pkg.mkdir(parents=True)
    os.symlink(ROOT / "solutions" / "scratchllm" / "attention.py", pkg / "attention.py")
    return pkg.parent

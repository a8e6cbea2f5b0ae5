"""The two layers of `grader.forbid`: the static scan and the operator check.

- Every bypass of issue 9 section 1 is refused, each with one line naming the
  file, the line and what was used; honest code written in the usual ways
  (self._cache, super().__init__(), os.path.join, relative imports) passes.
- The references and the stubs of every ready unit pass the scan.
- Hostile files (a 200 kB attribute chain, odd encodings) get a clean refusal.
- Each unit's `forbid_ops` is derived from what torch really runs: every
  forbidden torch API is called on sample inputs under a recording dispatch
  mode, and what it runs must meet the unit's `forbid_ops` (or the API is
  listed below as caught by the static scan only, with the reason), so the
  lists cannot rot when torch changes.
- Under `OperatorCheck`, a forbidden operator fails the call whatever Python
  name reached it, in a backward pass too, even if student code catches it.
"""

from __future__ import annotations

import textwrap

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from grader import forbid
from grader.course import load_course
from grader.targets import resolve_target

from kit import ROOT

COURSE = load_course(ROOT / "course.toml")
FILE = "scratchllm/attention.py"


def rules(unit: str = "u04", **extra) -> forbid.Rules:
    u = COURSE.unit(unit)
    exercises = COURSE.exercises / COURSE.package
    files = {p.stem: p for p in exercises.glob("*.py")}
    base = forbid.rules_for(COURSE, u, files)
    for k, v in extra.items():
        setattr(base, k, v)
    return base


def scan(source: str | bytes, unit: str = "u04") -> list[forbid.Violation]:
    data = source if isinstance(source, bytes) else textwrap.dedent(source).encode("utf-8")
    return forbid.check_module(data, FILE, rules(unit))


# ------------------------------------------------------------------ layer 1: the static scan

# name -> (u04 module source, words the one message must hold)
BYPASSES = {
    "private_softmax": ("import torch\ny = torch._softmax(x, -1, False)", "torch._softmax is a private name"),
    "c_nn_sdpa": ("import torch\ny = torch._C._nn.scaled_dot_product_attention(q, k, v)", "torch._C is a private"),
    "c_tensorbase_softmax": ("import torch\ny = torch._C.TensorBase.softmax(x, -1)", "torch._C is a private"),
    "c_special_softmax": ("import torch\ny = torch._C._special.special_softmax(x, -1)", "torch._C is a private"),
    "private_from_import": ("from torch._C import _nn\ny = _nn.gelu(x)", "torch._C is a private"),
    "literal_getattr_private": ("import torch\nf = getattr(torch, '_softmax')", "torch._softmax is a private"),
    "ops_softmax": ("import torch\ny = torch.ops.aten._softmax(x, -1, False)", "torch.ops"),
    "ops_sdpa": ("from torch import ops\ny = ops.aten.scaled_dot_product_attention(q, k, v)", "torch.ops"),
    "library": ("import torch.library\n", "torch.library"),
    "compile": ("import torch\nf = torch.compile(g)", "torch.compile"),
    "wrapped": ("import torch.nn.functional as F\nf = F.softmax.__wrapped__", "__wrapped__"),
    "bases": ("import torch\nclass A(torch.nn.Linear):\n    pass\nB = A.__bases__[0]", "__bases__"),
    "mro_dunder": ("x = type(q).__mro__", "__mro__"),
    "subclasses": ("x = object.__subclasses__()", "__subclasses__"),
    "dict": ("import torch\nd = torch.nn.functional.__dict__", "__dict__"),
    "globals_attr": ("def f():\n    pass\ng = f.__globals__", "__globals__"),
    "class_attr": ("x = q.__class__", "__class__"),
    "defining_module": ("import torch\nm = torch.nn.modules.activation.MultiheadAttention(8, 2)",
                        "torch.nn.modules.activation.MultiheadAttention (that is torch.nn.MultiheadAttention)"),
    "public_alias_sdpa": ("from torch.nn import functional as fn\ny = fn.scaled_dot_product_attention(q, k, v)",
                          "torch.nn.functional.scaled_dot_product_attention, which unit u04 forbids"),
    "gc": ("import gc\nobjs = gc.get_objects()", "gc is not among the imports"),
    "importlib": ("import importlib\nm = importlib.import_module('torch')", "importlib is not among"),
    "sys_modules": ("import sys\nm = sys.modules", "sys is not among"),
    "torch_sys": ("import torch\nm = torch.sys.modules['torch']", "torch.sys is the module sys"),
    "torch_builtins": ("import torch\ne = torch.builtins.eval", "torch.builtins is the module builtins"),
    "dataclasses_inspect": ("import dataclasses\nf = dataclasses.inspect.currentframe()",
                            "dataclasses.inspect is the module inspect"),
    "pathlib_os": ("import pathlib\npathlib.os.system('true')", "pathlib.os is the module os"),
    "os_beyond_path": ("import os.path\nos.system('true')", "os.system is not among"),
    "ctypes": ("import ctypes\n", "ctypes is not among"),
    "inspect": ("import inspect\n", "inspect is not among"),
    "builtins": ("import builtins\n", "builtins is not among"),
    "dunder_import": ("m = __import__('torch')", "__import__ imports a module"),
    "eval": ("y = eval('1 + 1')", "eval runs code"),
    "exec": ("exec('y = 1')", "exec runs code"),
    "compile_builtin": ("c = compile('1', 'f', 'eval')", "compile builds code"),
    "globals": ("g = globals()", "globals hands out"),
    "vars": ("import torch\nv = vars(torch)", "vars hands out"),
    "locals": ("def f():\n    return locals()", "locals hands out"),
    "computed_getattr": ("import torch\nf = getattr(torch, 'soft' + 'max')", "getattr with a computed"),
    "getattr_as_value": ("import functools\nimport torch\nf = functools.reduce(getattr, ['_C'], torch)",
                         "getattr with a computed"),
    "setattr_computed": ("setattr(q, name, 1)", "setattr with a computed"),
    "builtins_name": ("b = __builtins__", "__builtins__ is not allowed"),
    "frames": ("g = (i for i in [])\nf = g.gi_frame", "reaches Python's frames"),
    "traceback_frame": ("try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    f = e.__traceback__", "__traceback__"),
    "star_import": ("from torch import *", "import *"),
    "torch_dispatch": ("import torch\nclass T(torch.Tensor):\n    @classmethod\n"
                       "    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):\n        return 0",
                       "defines __torch_dispatch__"),
    "torch_function": ("import torch\nclass T(torch.Tensor):\n    __torch_function__ = None", "__torch_function__"),
    "dispatch_hook_by_type": ("import torch\nT = type('T', (torch.Tensor,), {'__torch_dispatch__': f})",
                              "names __torch_dispatch__"),
    "metaclass": ("class M(type):\n    pass\nclass A(metaclass=M):\n    pass", "metaclass"),
    "pickle": ("import numpy as np\nx = np.load('w.npy', allow_pickle=True)", "allow_pickle must be written False"),
    "unsafe_load": ("import torch\nx = torch.load('w.pt', weights_only=False)", "weights_only must be written True"),
    "type_hints_eval": ("import typing\nh = typing.get_type_hints(f)", "typing.get_type_hints is off limits"),
    "private_on_other": ("def f(m):\n    return m._parameters", "_parameters is private"),
    "self_rebound": ("import torch\nclass A:\n    def f(self):\n        self = torch\n        return self._C",
                     "torch._C is a private"),
    "self_undefined_private": ("class A:\n    def f(self):\n        return self._C", "_C is private"),
    "self_default": ("import torch\ndef f(self=torch):\n    return self._C", "_C is private"),
    "own_module_reexport": ("from .data import sys\n", "sys is not among"),
    "own_module_attribute": ("from . import data\nrun = data.os.system", "os.system is not among"),
    "package_private": ("import scratchllm\nm = scratchllm._importlib", "scratchllm._importlib is a private"),
    "relative_beyond": ("from .. import grader\n", "outside the course package"),
    "tensor_method": ("def f(x):\n    return x.softmax(-1)", "x.softmax (that is torch.Tensor.softmax)"),
}


@pytest.mark.parametrize("name", sorted(BYPASSES))
def test_each_bypass_is_refused_with_one_line_naming_file_and_line(name):
    source, words = BYPASSES[name]
    found = scan(source)
    assert found, f"{name} passed the scan"
    text = [str(v) for v in found]
    assert any(words in t for t in text), text
    for t in text:
        assert "\n" not in t and t.startswith(f"{FILE} line "), t


@pytest.mark.parametrize("source", [
    "import torch\nfrom torch import Tensor, nn\nimport torch.nn.functional as F\nimport math\n",
    "class Cache:\n    def __init__(self):\n        self._store = {}\n    def get(self, k):\n        return self._store.get(k)\n",
    "import torch\nclass Block(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n"
    "        torch.nn.Module.__init__(self)\n",
    "import os.path\np = os.path.join('a', 'b')\n",
    "import os\nos.makedirs('out', exist_ok=True)\n",
    "from .data import exact_match_accuracy\n",
    "from .embeddings import RotaryEmbedding\n",
    "x = getattr(obj, 'weight', None)\nok = hasattr(obj, 'bias')\n",
    "if __name__ == '__main__':\n    print(__doc__)\n",
    "import numpy as np\nw = np.load('w.npy', allow_pickle=False)\n",
    "import torch\nckpt = torch.load('c.pt', map_location='cpu', weights_only=True)\n",
    "from dataclasses import dataclass\n@dataclass\nclass C:\n    n: int = 1\n",
    "name = type(q).__name__\n",
    "import torch\ny = torch.exp(x - x.amax(-1, keepdim=True))\n",
])
def test_honest_code_passes(source):
    assert scan(source) == []


@pytest.mark.parametrize("target", ["solutions", "exercises"])
def test_the_references_and_stubs_of_every_ready_unit_pass(target):
    t = resolve_target(COURSE, target)
    names = sorted({p.stem for d in t.dirs for p in d.glob("*.py")})
    for u in COURSE.ready_units:
        assert forbid.unit_problems(COURSE, u, t.module_file, names) == [], u.id


def test_the_deny_list_still_names_the_api_used():
    found = scan("import torch.nn.functional as F\ndef f(x):\n    return F.softmax(x, -1)\n")
    assert [(v.line, v.api) for v in found] == [(3, "torch.nn.functional.softmax")]
    assert "uses torch.nn.functional.softmax, which unit u04 forbids" in str(found[0])


def test_code_another_unit_imports_is_held_to_the_rules(tmp_path):
    """A u06 submission whose attention.py (u04) reaches a private name is refused
    under u06 too: its code runs in u06's calls."""
    pkg = tmp_path / "scratchllm"
    pkg.mkdir()
    for p in (COURSE.exercises / COURSE.package).glob("*.py"):
        (pkg / p.name).write_bytes(p.read_bytes())
    with (pkg / "attention.py").open("a", encoding="utf-8") as f:
        f.write("\n_k = torch._C\n")
    names = [p.stem for p in pkg.glob("*.py")]
    found = forbid.unit_problems(COURSE, COURSE.unit("u06"), lambda m: pkg / f"{m}.py", names)
    assert [str(v) for v in found] == [
        f"scratchllm/attention.py line {len((pkg / 'attention.py').read_text(encoding='utf-8').splitlines())}: "
        f"torch._C is a private name of torch; course code may use only public names"]


# -- the bytes, as Python decodes them


@pytest.mark.parametrize("data, words", [
    (b"# -*- coding: utf-7 -*-\nx = 1\n", "declares the encoding utf-7"),
    (b"#!/usr/bin/env python\n# vim: set fileencoding=latin-1 :\nx = 1\n", "declares the encoding iso-8859-1"),
    (b"\xef\xbb\xbf# coding: latin-1\nx = 1\n", "coding line Python refuses"),
    (b"x = 1\ny = '\xe9'\n", "line 2: is not UTF-8 text"),
])
def test_encodings_other_than_utf8_are_refused(data, words):
    found = forbid.check_module(data, FILE, rules())
    assert len(found) == 1 and words in str(found[0]), found


def test_the_utf7_smuggle_is_refused():
    # In UTF-7, "+AAo-" is a newline: Python runs the line a str-based scan sees as a comment.
    data = b"# -*- coding: utf-7 -*-\nimport torch\n# +AAo-y = torch._softmax(x, -1, False)\n"
    assert "declares the encoding utf-7" in str(forbid.check_module(data, FILE, rules())[0])


def test_utf8_with_bom_and_crlf_is_fine():
    assert forbid.check_module(b"\xef\xbb\xbfimport torch\r\nx = torch.ones(3)\r\n", FILE, rules()) == []


@pytest.mark.parametrize("data", [
    b"x = a" + b".a" * 100_000,                       # a 200 kB attribute chain
    b"x = " + b"-" * 200_000 + b"1",                  # 200 kB of unary minus
    b"x = " + b"(" * 5000 + b"1" + b")" * 5000,       # nested too deep for the parser
    b"x = [" + b"[" * 900 + b"]" * 900 + b"]",        # deep but parseable
])
def test_hostile_files_get_a_clean_answer(data):
    found = forbid.check_module(data, FILE, rules())  # must not raise
    assert all("\n" not in str(v) for v in found)


# ------------------------------------------------------------------ layer 2: the operator check

X = torch.randn(2, 3, 4, 8)
Y = torch.randn(2, 4, 8)
IDS = torch.randint(0, 10, (2, 5))
W = torch.randn(10, 8)
LOGITS, TARGETS = torch.randn(5, 10), torch.randint(0, 10, (5,))


def _mha_forward():
    m = nn.MultiheadAttention(8, 2)
    y = Y.transpose(0, 1)
    return F.multi_head_attention_forward(y, y, y, 8, 2, m.in_proj_weight, m.in_proj_bias, None, None, False, 0.0,
                                          m.out_proj.weight, m.out_proj.bias)


def _optimizer_step(cls, **kw):
    p = torch.randn(3, 4, requires_grad=True)
    p.grad = torch.ones_like(p)
    cls([p], lr=0.1, **kw).step()


def _grads():
    p = torch.randn(3, 4, requires_grad=True)
    p.grad = torch.ones_like(p)
    return [p]


def _scaler_step():
    p = torch.randn(3, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1)
    scaler = torch.amp.GradScaler("cpu")
    scaler.scale(p.sum()).backward()
    scaler.step(opt)
    scaler.update()


# A call of each forbidden torch API on small inputs.
SAMPLES = {
    "torch.nn.Embedding": lambda: nn.Embedding(10, 8)(IDS),
    "torch.nn.functional.embedding": lambda: F.embedding(IDS, W),
    "torch.embedding": lambda: torch.embedding(W, IDS),
    "torch.nn.EmbeddingBag": lambda: nn.EmbeddingBag(10, 8)(IDS),
    "torch.nn.functional.embedding_bag": lambda: F.embedding_bag(IDS, W),
    "torch.embedding_bag": lambda: torch.embedding_bag(W, IDS.flatten(), torch.tensor([0, 5]), False, 1),
    "torch.nn.functional.scaled_dot_product_attention": lambda: F.scaled_dot_product_attention(X, X, X),
    "torch.nn.functional.multi_head_attention_forward": _mha_forward,
    "torch.nn.MultiheadAttention": lambda: nn.MultiheadAttention(8, 2, batch_first=True)(Y, Y, Y),
    "torch.softmax": lambda: torch.softmax(X, -1),
    "torch.nn.functional.softmax": lambda: F.softmax(X, -1),
    "torch.Tensor.softmax": lambda: X.softmax(-1),
    "torch.special.softmax": lambda: torch.special.softmax(X, -1),
    "torch.nn.LayerNorm": lambda: nn.LayerNorm(8)(Y),
    "torch.nn.functional.layer_norm": lambda: F.layer_norm(Y, (8,)),
    "torch.layer_norm": lambda: torch.layer_norm(Y, (8,)),
    "torch.native_layer_norm": lambda: torch.native_layer_norm(Y, (8,), None, None, 1e-5),
    "torch.nn.RMSNorm": lambda: nn.RMSNorm(8)(Y),
    "torch.nn.functional.rms_norm": lambda: F.rms_norm(Y, (8,)),
    "torch.rms_norm": lambda: torch.rms_norm(Y, (8,)),
    "torch.nn.GroupNorm": lambda: nn.GroupNorm(2, 4)(Y),
    "torch.nn.functional.group_norm": lambda: F.group_norm(Y, 2),
    "torch.group_norm": lambda: torch.group_norm(Y, 2),
    "torch.nn.functional.instance_norm": lambda: F.instance_norm(Y),
    "torch.instance_norm": lambda: torch.instance_norm(Y, None, None, None, None, True, 0.1, 1e-5, False),
    "torch.nn.functional.batch_norm": lambda: F.batch_norm(Y, None, None, training=True),
    "torch.batch_norm": lambda: torch.batch_norm(Y, None, None, None, None, True, 0.1, 1e-5, False),
    "torch.nn.GELU": lambda: nn.GELU()(Y),
    "torch.nn.functional.gelu": lambda: F.gelu(Y),
    "torch.nn.SiLU": lambda: nn.SiLU()(Y),
    "torch.nn.functional.silu": lambda: F.silu(Y),
    "torch.nn.GLU": lambda: nn.GLU()(Y),
    "torch.nn.functional.glu": lambda: F.glu(Y),
    "torch.nn.TransformerEncoderLayer": lambda: nn.TransformerEncoderLayer(8, 2, 16, batch_first=True)(Y),
    "torch.nn.TransformerDecoderLayer": lambda: nn.TransformerDecoderLayer(8, 2, 16, batch_first=True)(Y, Y),
    "torch.nn.TransformerEncoder": lambda: nn.TransformerEncoder(
        nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), 1, enable_nested_tensor=False)(Y),
    "torch.nn.TransformerDecoder": lambda: nn.TransformerDecoder(
        nn.TransformerDecoderLayer(8, 2, 16, batch_first=True), 1)(Y, Y),
    "torch.nn.Transformer": lambda: nn.Transformer(8, 2, 1, 1, 16, batch_first=True)(Y, Y),
    # u07
    "torch.nn.functional.cross_entropy": lambda: F.cross_entropy(LOGITS, TARGETS),
    "torch.nn.functional.log_softmax": lambda: F.log_softmax(X, -1),
    "torch.nn.functional.nll_loss": lambda: F.nll_loss(LOGITS, TARGETS),
    "torch.nn.CrossEntropyLoss": lambda: nn.CrossEntropyLoss()(LOGITS, TARGETS),
    "torch.nn.NLLLoss": lambda: nn.NLLLoss()(LOGITS, TARGETS),
    "torch.logsumexp": lambda: torch.logsumexp(X, -1),
    "torch.log_softmax": lambda: torch.log_softmax(X, -1),
    "torch.Tensor.log_softmax": lambda: X.log_softmax(-1),
    "torch.Tensor.logsumexp": lambda: X.logsumexp(-1),
    "torch.special.logsumexp": lambda: torch.special.logsumexp(X, -1),
    "torch.special.log_softmax": lambda: torch.special.log_softmax(X, -1),
    "torch.optim.AdamW": lambda: _optimizer_step(torch.optim.AdamW),
    "torch.optim.Adam": lambda: _optimizer_step(torch.optim.Adam),
    "torch.optim.adamw.adamw": lambda: _optimizer_step(torch.optim.AdamW),
    "torch.optim.adam.adam": lambda: _optimizer_step(torch.optim.Adam),
    "torch.nn.utils.clip_grad_norm_": lambda: nn.utils.clip_grad_norm_(_grads(), 1.0),
    "torch.nn.utils.clip_grad_norm": lambda: nn.utils.clip_grad_norm_(_grads(), 1.0),
    "torch.nn.utils.clip_grad_value_": lambda: nn.utils.clip_grad_value_(_grads(), 1.0),
    "torch.nn.utils.clip_grads_with_norm_": lambda: nn.utils.clip_grads_with_norm_(_grads(), 1.0, torch.tensor(2.0)),
    "torch.nn.utils.get_total_norm": lambda: nn.utils.get_total_norm([torch.ones(3)]),
    "torch.amp.GradScaler": _scaler_step,
    "torch.cuda.amp.GradScaler": _scaler_step,
    "torch.cpu.amp.GradScaler": _scaler_step,
}

# Forbidden APIs whose work no distinctive operator shows, so only the static
# scan (which resolves every name, aliases included) catches them.
STATIC_ONLY = {
    "torch": "u01 is numpy only: any use of torch is refused by name",
    "torch.nn.RMSNorm": "on CPU, rms_norm decomposes into pow, mean and rsqrt, as a student's own does",
    "torch.nn.functional.rms_norm": "as torch.nn.RMSNorm",
    "torch.rms_norm": "as torch.nn.RMSNorm",
    "torch.optim.AdamW": "the default (single-tensor) AdamW step runs the ops a hand-written one runs",
    "torch.optim.Adam": "as torch.optim.AdamW",
    "torch.optim.adamw.adamw": "as torch.optim.AdamW",
    "torch.optim.adam.adam": "as torch.optim.AdamW",
    "torch.optim.adamw": "a module: refused by name",
    "torch.optim.adam": "a module: refused by name",
    "torch.optim.lr_scheduler": "a module: schedules are arithmetic on numbers, not tensor operators",
    "torch._fused_adamw_": "private: refused by the scan as such (its operator is in forbid_ops too)",
    "torch._fused_adam_": "as torch._fused_adamw_",
}


def _record(fn) -> set[str]:
    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.add(func._schema.name)
            return func(*args, **(kwargs or {}))

    seen: set[str] = set()
    with Recorder():
        fn()
    return seen


def _torch_entries():
    for u in COURSE.ready_units:
        for api in u.forbid:
            if api.split(".")[0] == "torch":
                yield u, api


@pytest.mark.parametrize("unit, api", list(_torch_entries()), ids=[f"{u.id}-{a}" for u, a in _torch_entries()])
def test_forbid_ops_meet_what_each_forbidden_api_runs(unit, api):
    check = forbid.OperatorCheck(unit.id, unit.forbid_ops)
    if api in STATIC_ONLY:
        return
    assert api in SAMPLES, f"add a sample call of {api} to SAMPLES (or to STATIC_ONLY, with the reason)"
    ran = _record(SAMPLES[api])
    hit = sorted(op for op in ran if check.forbidden(op))
    assert hit, f"{api} ran {sorted(ran)}, none of them in {unit.id}'s forbid_ops"


def test_every_forbid_op_is_a_real_operator():
    known = {name.split(".")[0] for name in torch._C._dispatch_get_all_op_names()}
    for u in COURSE.ready_units:
        for op in u.forbid_ops:
            hit = any(k.startswith(op[:-1]) for k in known) if op.endswith("*") else op.split(".")[0] in known
            assert hit, f"{u.id}: {op} matches no operator of torch {torch.__version__}"


def test_static_only_apis_really_run_no_forbidden_operator():
    """If torch grows a fused kernel for one of them, move it out of STATIC_ONLY."""
    for u, api in _torch_entries():
        if api in STATIC_ONLY and api in SAMPLES:
            check = forbid.OperatorCheck(u.id, u.forbid_ops)
            assert not any(check.forbidden(op) for op in _record(SAMPLES[api])), api


class Twice(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return torch.softmax(g, -1)  # the forbidden work hides in the backward pass


U04 = COURSE.unit("u04")
RUN_TIME_BYPASSES = {
    "torch._softmax": lambda: torch._softmax(X, -1, False),
    "torch.ops.aten._softmax": lambda: torch.ops.aten._softmax(X, -1, False),
    "log_softmax().exp()": lambda: X.log_softmax(-1).exp(),
    "torch._C._nn.scaled_dot_product_attention": lambda: torch._C._nn.scaled_dot_product_attention(X, X, X),
    "torch.ops.aten.scaled_dot_product_attention": lambda: torch.ops.aten.scaled_dot_product_attention(X, X, X),
    "torch._C.TensorBase.softmax": lambda: torch._C.TensorBase.softmax(X, -1),
    "torch._C._special.special_softmax": lambda: torch._C._special.special_softmax(X, -1),
    "MultiheadAttention, eval": lambda: nn.MultiheadAttention(8, 2, batch_first=True).eval()(Y, Y, Y),
    "a softmax in backward": lambda: Twice.apply(X.clone().requires_grad_(True)).sum().backward(),
}


@pytest.mark.parametrize("name", sorted(RUN_TIME_BYPASSES))
def test_a_forbidden_operator_fails_the_call_whatever_reached_it(name):
    check = forbid.OperatorCheck("u04", U04.forbid_ops, U04.forbid)
    with pytest.raises(forbid.ForbiddenOperatorError, match=r"your code ran aten::\w+ .*unit u04") as e:
        with check.active():
            with torch.no_grad() if "eval" in name else torch.enable_grad():
                RUN_TIME_BYPASSES[name]()
    assert "\n" not in str(e.value)


def test_u05_bypasses_fail_at_run_time():
    u = COURSE.unit("u05")
    check = forbid.OperatorCheck("u05", u.forbid_ops, u.forbid)
    for fn in (lambda: torch._C._VariableFunctions.layer_norm(Y, (8,)), lambda: torch._C._nn.gelu(Y),
               lambda: torch._C._nn.silu(Y), lambda: torch.ops.aten.native_layer_norm(Y, (8,), None, None, 1e-5)):
        with pytest.raises(forbid.ForbiddenOperatorError):
            with check.active():
                fn()


def test_a_tensor_subclass_handling_operators_itself_fails_the_call():
    def handler(cls, func, types, args=(), kwargs=None):
        plain = [a.as_subclass(torch.Tensor) if isinstance(a, torch.Tensor) else a for a in args]
        return torch.softmax(plain[0], -1)  # would run with the mode off

    hook = "__torch_" + "dispatch__"
    sneaky = type("Sneaky", (torch.Tensor,), {hook: classmethod(handler)})
    check = forbid.OperatorCheck("u04", U04.forbid_ops, U04.forbid)
    with pytest.raises(forbid.ForbiddenOperatorError, match="tensor subclass"):
        with check.active():
            torch.Tensor._make_subclass(sneaky, torch.ones(3)) + 1


def test_catching_the_error_does_not_help():
    check = forbid.OperatorCheck("u04", U04.forbid_ops, U04.forbid)
    with pytest.raises(forbid.ForbiddenOperatorError, match="aten::_softmax"):
        with check.active():
            try:
                X.softmax(-1)
            except Exception:
                pass


def test_honest_work_and_the_reference_softmax_pass():
    check = forbid.OperatorCheck("u04", U04.forbid_ops, U04.forbid)
    with check.active():
        x = X.clone().requires_grad_(True)
        e = torch.exp(x - x.amax(-1, keepdim=True))
        (e / e.sum(-1, keepdim=True)).sum().backward()
    assert check.hits == []
    with check.active():  # leaving the block leaves nothing behind
        pass
    torch.softmax(X, -1)  # outside the block: the judge's oracles may use anything


def test_the_message_names_the_operator_and_the_public_api():
    check = forbid.OperatorCheck("u04", U04.forbid_ops, U04.forbid)
    text = check.message("aten::_softmax")
    assert "aten::_softmax" in text and "torch.nn.functional.softmax" in text or "torch.softmax" in text
    assert "scaled_dot_product_attention" in check.message("aten::_scaled_dot_product_flash_attention_for_cpu")


# ------------------------------------------------------------------ the schema


@pytest.mark.parametrize("edit, key, words", [
    (('forbid_ops = ["aten::_softmax"', 'forbid_ops = ["softmax"'), "forbid_ops", "is not an operator name"),
    (('allow = [\n', 'allow = [\n    "os path",\n'), "imports.allow", "is not a module or dotted name"),
    (('[imports]\n', '[imports]\nallowed = []\n'), "imports.allowed", "unknown key"),
])
def test_a_broken_imports_or_forbid_ops_entry_names_the_key_and_line(edit, key, words):
    from grader.course import CourseError, parse_course

    text = (ROOT / "course.toml").read_text(encoding="utf-8")
    assert edit[0] in text
    with pytest.raises(CourseError, match=rf"course\.toml:\d+: .*{key}.*{words}"):
        parse_course(text.replace(edit[0], edit[1], 1), ROOT / "course.toml", check_modules=False)

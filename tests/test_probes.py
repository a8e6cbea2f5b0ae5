"""Probes must be shippable to a worker; the in-process runner enforces the same rules."""

import math
import types

import pytest
import torch

from grader.probes import ProbeError, describe, rebuild
from grader.runners import InProcessRunner, StudentResultError

SCALE = 3.0
NOT_PLAIN = object()


def helper(x):
    return x * SCALE


def good_probe(pkg, x):
    return helper(torch.as_tensor(x)) + math.pi


def uses_unplain_global(pkg):
    return NOT_PLAIN


def no_args():
    return 1


def make_closure():
    y = 2

    def inner(pkg):
        return y
    return inner


def test_a_probe_ships_with_its_helpers_modules_and_constants():
    spec = describe(good_probe)
    assert dict(spec.imports) == {"torch": "torch", "math": "math"}
    assert dict(spec.constants) == {"SCALE": 3.0}
    rebuilt = rebuild(spec.as_plain())
    assert rebuilt(None, 2.0).item() == pytest.approx(6.0 + math.pi)


@pytest.mark.parametrize("probe, words", [
    (uses_unplain_global, "global NOT_PLAIN"),
    (no_args, "first argument"),
    (make_closure(), "module level"),
    (lambda pkg: 1, "module level"),
    (len, "plain function"),
])
def test_unshippable_probes_are_refused(probe, words):
    with pytest.raises(ProbeError) as e:
        describe(probe)
    assert words in str(e.value)


def returns_subclass(pkg):
    class Sneaky(torch.Tensor):
        pass
    return pkg.value.as_subclass(Sneaky)


def mutates_argument(pkg, t):
    t.add_(1)
    return t.sum().item()


def fake_package():
    return types.SimpleNamespace(value=torch.ones(2), __name__="fakepkg")


def test_in_process_refuses_a_tensor_subclass_result():
    runner = InProcessRunner(fake_package, (), "your")
    with pytest.raises(StudentResultError) as e:
        runner.run(returns_subclass)
    assert "torch.Tensor subclass" in str(e.value) and "Sneaky" in str(e.value)


def test_in_process_arguments_are_copies():
    runner = InProcessRunner(fake_package, (), "your")
    t = torch.zeros(3)
    assert runner.run(mutates_argument, t) == 3.0
    assert torch.equal(t, torch.zeros(3))

"""Plain data: what may cross between the judge and the worker, and its codec."""

import math

import numpy as np
import pytest
import torch

from grader import wire


class SneakyTensor(torch.Tensor):
    def __eq__(self, other):
        return True


class SneakyFloat(float):
    def __eq__(self, other):
        return True


class AlwaysEqual:
    def __eq__(self, other):
        return True


SAMPLES = [
    None, True, 0, -(2**80), 1.5, math.inf, -0.0, 1 + 2j, "héllo\r\n✓", b"\x00\xff",
    torch.arange(6, dtype=torch.float32).reshape(2, 3), torch.tensor([1, 2], dtype=torch.int64),
    torch.tensor([True, False]), torch.randn(2, 2, dtype=torch.float64), torch.zeros(0, 3),
    torch.randn(3).to(torch.bfloat16), torch.randn(4, 4)[:, 1],  # non-contiguous
    np.arange(4, dtype=np.int32), np.float64(2.5), np.zeros((2, 0)),
    [1, (2.0, "x"), {"a": [torch.ones(1)], 3: None}],
]


@pytest.mark.parametrize("value", SAMPLES, ids=lambda v: type(v).__name__)
def test_round_trip_keeps_value_and_exact_type(value):
    back = wire.decode(wire.encode(value))
    assert type(back) is type(value)
    if isinstance(value, torch.Tensor):
        assert back.dtype == value.dtype and back.shape == value.shape and torch.equal(back, value)
    elif isinstance(value, np.ndarray):
        assert back.dtype == value.dtype and np.array_equal(back, value)
    elif isinstance(value, float) and math.isinf(value):
        assert back == value
    elif isinstance(value, list):
        assert back[2][3] is None and torch.equal(back[2]["a"][0], torch.ones(1)) and back[1] == (2.0, "x")
    else:
        assert back == value


def test_requires_grad_survives():
    t = torch.ones(2, requires_grad=True)
    assert wire.decode(wire.encode(t)).requires_grad


@pytest.mark.parametrize("value, words", [
    (torch.ones(2).as_subclass(SneakyTensor), "torch.Tensor subclass"),
    (SneakyFloat(1.0), "float subclass"),
    (AlwaysEqual(), "AlwaysEqual"),
    ([1, AlwaysEqual()], "[1]"),
    ({"k": object()}, "['k']"),
    ({(1, 2): 3}, "keys must be str or int"),
    (np.array([object()]), "dtype object"),
    (torch.ones(2).to_sparse(), "layout"),
    (lambda: 1, "function"),
])
def test_non_plain_data_is_refused_with_its_place_and_type(value, words):
    with pytest.raises(wire.NotPlainData) as e:
        wire.encode(value)
    assert words in str(e.value)


@pytest.mark.parametrize("data", [b"", b"\x00" * 8, wire.encode(1)[:-1], wire.encode(1) + b"x",
                                  b'\x0b\x00\x00\x00\x00\x00\x00\x00{"t":"eval"}'])
def test_malformed_bytes_are_refused(data):
    with pytest.raises(wire.BadMessage):
        wire.decode(data)


def test_decoding_cannot_build_objects():
    # A header naming a numpy object dtype must not unpickle anything.
    header = b'{"t":"array","dtype":"|O","shape":[1],"b":0}'
    blob = b"\x80\x04N."
    data = len(header).to_bytes(4, "little") + (1).to_bytes(4, "little") + header + \
        len(blob).to_bytes(8, "little") + blob
    with pytest.raises(wire.BadMessage):
        wire.decode(data)

"""Plain data, and how it crosses between processes.

Only plain data may cross the trust boundary: ``None``, ``bool``, ``int``,
``float``, ``complex``, ``str``, ``bytes``, ``torch.Tensor``,
``numpy.ndarray``, numpy scalars, and lists, tuples and dicts (with str or
int keys) of those. Types are checked *exactly*: a subclass of float or of
Tensor is refused, because a subclass can override comparisons.

The encoding is our own and pickles nothing: a JSON header describing the
tree, followed by the raw bytes of every tensor, array and bytes value.
Decoding builds fresh objects of the exact plain types, so whatever the
sender was, the receiver holds only plain data.
"""

from __future__ import annotations

import json
import struct

import numpy as np
import torch

MAX_DEPTH = 32

_TORCH_DTYPES = {
    str(d).removeprefix("torch."): d
    for d in (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64,
              torch.complex128, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
              torch.bool)
}
_NUMPY_KINDS = set("biufc")  # bool, signed, unsigned, float, complex: never object or str


class NotPlainData(TypeError):
    """A value that may not cross the boundary; the message says where and why."""


def _qualname(x) -> str:
    t = type(x)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def _refuse(x, where: str) -> NotPlainData:
    for base, label in ((torch.Tensor, "torch.Tensor"), (np.ndarray, "numpy.ndarray"),
                        (bool, "bool"), (int, "int"), (float, "float"), (str, "str"),
                        (bytes, "bytes"), (list, "list"), (tuple, "tuple"), (dict, "dict")):
        if isinstance(x, base):
            return NotPlainData(f"{where} is a {label} subclass {_qualname(x)}; expected {label}")
    return NotPlainData(f"{where} is a {_qualname(x)}; only tensors, arrays, numbers, strings, bytes "
                        f"and lists/tuples/dicts of those are plain data")


def check_plain(x, where: str = "the value", depth: int = 0) -> None:
    """Raise NotPlainData unless `x` is plain data, with exact types throughout."""
    if depth > MAX_DEPTH:
        raise NotPlainData(f"{where} is nested more than {MAX_DEPTH} levels deep")
    t = type(x)
    if x is None or t in (bool, int, float, complex, str, bytes):
        return
    if t is torch.Tensor:
        if x.layout != torch.strided or str(x.dtype).removeprefix("torch.") not in _TORCH_DTYPES:
            raise NotPlainData(f"{where} is a tensor of dtype {x.dtype}, layout {x.layout}; not supported")
        return
    if t is np.ndarray:
        if x.dtype.kind not in _NUMPY_KINDS:
            raise NotPlainData(f"{where} is an array of dtype {x.dtype}; only numeric and bool arrays")
        return
    if isinstance(x, np.generic) and t is np.dtype(t).type and np.dtype(t).kind in _NUMPY_KINDS:
        return
    if t in (list, tuple):
        for i, item in enumerate(x):
            check_plain(item, f"{where}[{i}]", depth + 1)
        return
    if t is dict:
        for k, v in x.items():
            if type(k) not in (str, int):
                raise NotPlainData(f"{where} has a key of type {_qualname(k)}; keys must be str or int")
            check_plain(v, f"{where}[{k!r}]", depth + 1)
        return
    raise _refuse(x, where)


def copy_plain(x):
    """A deep copy of plain data (tensors cloned and detached from any graph
    only if they do not require grad), so a callee cannot mutate the caller's
    inputs."""
    t = type(x)
    if t is torch.Tensor:
        c = x.detach().clone()
        return c.requires_grad_(x.requires_grad) if x.is_floating_point() or x.is_complex() else c
    if t is np.ndarray:
        return x.copy()
    if t is list:
        return [copy_plain(v) for v in x]
    if t is tuple:
        return tuple(copy_plain(v) for v in x)
    if t is dict:
        return {k: copy_plain(v) for k, v in x.items()}
    return x


# ------------------------------------------------------------------ codec


def encode(x) -> bytes:
    """Serialize plain data (checked first) into bytes."""
    check_plain(x)
    blobs: list[bytes] = []

    def blob(b: bytes) -> int:
        blobs.append(b)
        return len(blobs) - 1

    def enc(v):
        t = type(v)
        if v is None:
            return {"t": "none"}
        if t is bool:
            return {"t": "bool", "v": v}
        if t is int:
            return {"t": "int", "v": str(v)}
        if t is float:
            return {"t": "float", "v": v.hex()}
        if t is complex:
            return {"t": "complex", "v": [v.real.hex(), v.imag.hex()]}
        if t is str:
            return {"t": "str", "b": blob(v.encode("utf-8", "surrogatepass"))}
        if t is bytes:
            return {"t": "bytes", "b": blob(v)}
        if t is torch.Tensor:
            d = v.detach().cpu().contiguous()
            dtype = str(d.dtype).removeprefix("torch.")
            raw = d.view(torch.int16) if d.dtype == torch.bfloat16 else d
            return {"t": "tensor", "dtype": dtype, "shape": list(d.shape),
                    "grad": bool(v.requires_grad), "b": blob(raw.numpy().tobytes())}
        if t is np.ndarray:
            a = np.ascontiguousarray(v)
            return {"t": "array", "dtype": a.dtype.str, "shape": list(a.shape), "b": blob(a.tobytes())}
        if isinstance(v, np.generic):
            return {"t": "npscalar", "dtype": v.dtype.str, "b": blob(v.tobytes())}
        if t is list:
            return {"t": "list", "v": [enc(i) for i in v]}
        if t is tuple:
            return {"t": "tuple", "v": [enc(i) for i in v]}
        if t is dict:
            return {"t": "dict", "v": [[enc(k), enc(val)] for k, val in v.items()]}
        raise _refuse(v, "value")  # pragma: no cover - check_plain ran first

    header = json.dumps(enc(x), separators=(",", ":")).encode("utf-8")
    parts = [struct.pack("<II", len(header), len(blobs)), header]
    for b in blobs:
        parts.append(struct.pack("<Q", len(b)))
        parts.append(b)
    return b"".join(parts)


class BadMessage(ValueError):
    """Bytes that do not decode into plain data."""


def decode(data: bytes, max_depth: int = MAX_DEPTH):
    """Rebuild plain data from `encode`'s bytes, creating only exact plain types."""
    try:
        hlen, nblobs = struct.unpack_from("<II", data, 0)
        pos = 8
        header = json.loads(data[pos:pos + hlen].decode("utf-8"))
        pos += hlen
        blobs = []
        for _ in range(nblobs):
            (n,) = struct.unpack_from("<Q", data, pos)
            pos += 8
            if pos + n > len(data):
                raise BadMessage("truncated")
            blobs.append(data[pos:pos + n])
            pos += n
        if pos != len(data):
            raise BadMessage("trailing bytes")
        return _dec(header, blobs, 0, max_depth)
    except BadMessage:
        raise
    except Exception as e:  # any malformed input is one kind of error to the caller
        raise BadMessage(f"{type(e).__name__}: {e}") from None


def _dec(node, blobs, depth, max_depth):
    if depth > max_depth:
        raise BadMessage("nested too deeply")
    if type(node) is not dict:
        raise BadMessage("malformed node")
    t = node["t"]
    if t == "none":
        return None
    if t == "bool":
        if type(node["v"]) is not bool:
            raise BadMessage("bad bool")
        return bool(node["v"])
    if t == "int":
        return int(str(node["v"]))
    if t == "float":
        return float.fromhex(str(node["v"]))
    if t == "complex":
        re_, im = node["v"]
        return complex(float.fromhex(str(re_)), float.fromhex(str(im)))
    if t == "str":
        return bytes(blobs[node["b"]]).decode("utf-8", "surrogatepass")
    if t == "bytes":
        return bytes(blobs[node["b"]])
    if t == "tensor":
        dtype = _TORCH_DTYPES[node["dtype"]]
        shape = [int(s) for s in node["shape"]]
        raw = bytearray(blobs[node["b"]])
        storage = torch.int16 if dtype == torch.bfloat16 else dtype
        n = 1
        for s in shape:
            n *= s
        if n == 0:
            tensor = torch.empty(shape, dtype=storage)
        else:
            tensor = torch.frombuffer(raw, dtype=storage).reshape(shape)
        if dtype == torch.bfloat16:
            tensor = tensor.view(torch.bfloat16)
        tensor = tensor.clone()
        if node.get("grad") is True and (tensor.is_floating_point() or tensor.is_complex()):
            tensor.requires_grad_(True)
        return tensor
    if t == "array":
        dtype = np.dtype(str(node["dtype"]))
        if dtype.kind not in _NUMPY_KINDS:
            raise BadMessage(f"array dtype {dtype} not allowed")
        shape = tuple(int(s) for s in node["shape"])
        return np.frombuffer(bytes(blobs[node["b"]]), dtype=dtype).reshape(shape).copy()
    if t == "npscalar":
        dtype = np.dtype(str(node["dtype"]))
        if dtype.kind not in _NUMPY_KINDS:
            raise BadMessage(f"scalar dtype {dtype} not allowed")
        return np.frombuffer(bytes(blobs[node["b"]]), dtype=dtype)[0]
    if t == "list":
        return [_dec(i, blobs, depth + 1, max_depth) for i in node["v"]]
    if t == "tuple":
        return tuple(_dec(i, blobs, depth + 1, max_depth) for i in node["v"])
    if t == "dict":
        out = {}
        for k, v in node["v"]:
            key = _dec(k, blobs, depth + 1, max_depth)
            if type(key) not in (str, int):
                raise BadMessage("dict key must be str or int")
            out[key] = _dec(v, blobs, depth + 1, max_depth)
        return out
    raise BadMessage(f"unknown node type {t!r}")


# ----------------------------------------------------------------- framing
# On the pipes between judge and worker, each message is one frame: its length
# as 8 bytes (little-endian), then the message.

FRAME_HEADER = struct.Struct("<Q")


def frame(payload: bytes) -> bytes:
    """`payload` with its length in front, ready to write to a pipe."""
    return FRAME_HEADER.pack(len(payload)) + payload


def frame_length(header: bytes) -> int:
    """The length a frame's 8-byte header announces."""
    return FRAME_HEADER.unpack(header)[0]

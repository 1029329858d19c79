"""The compact model format the ``onnx_interp`` WASM task runs: values, ops in order, f32 weights.

All fields are little-endian. A model is::

    b"GAIAONNX" u32 version, n_values, n_ops, input, output, n_weights
    n_values x (u32 rank, u32 dims[MAX_RANK], u32 offset)      offset: first weight, NONE for an activation
    n_ops    x (u32 opcode, out, in0, in1, in2, i32 params[4])  an absent input is NONE
    n_weights x f32

An activation's dims are those of one sample (the batch dimension is left out); a constant's are its
own. Ops run in order; each writes its ``out`` activation. The task's input is the model followed by
``u32 n`` and ``n`` samples of the input activation (f32); its output is ``n`` samples of the output.
"""

from __future__ import annotations

import enum
import math
import struct

import attrs
import numpy as np

MAGIC = b"GAIAONNX"
VERSION = 1
MAX_RANK = 6
#: The most values and ops a model may have (onnx_interp.c's MAX_VALUES and MAX_OPS).
MAX_VALUES = MAX_OPS = 4096
#: An absent input, or the offset of an activation.
NONE = 0xFFFFFFFF
_HEADER = struct.Struct("<8s6I")
_VALUE = struct.Struct(f"<{MAX_RANK + 2}I")
_OP = struct.Struct("<5I4i")


class Opcode(enum.IntEnum):
    """What an op computes (params in brackets)."""

    GEMM = 1  #: out = in0 . in1 (+ in2) [trans_b, rows per sample, k, n]
    CONV = 2  #: 2-D convolution, OIHW weights in1, optional bias in2 [stride, pad]
    MAXPOOL = 3  #: [kernel, stride]
    AVGPOOL = 4  #: [kernel, stride]
    RELU = 5
    SIGMOID = 6
    TANH = 7
    SOFTMAX = 8  #: over rows of [cols] values
    ADD = 9  #: in1 is an activation of the same shape, or a constant of one sample's shape
    MUL = 10  #: as ADD
    VIEW = 11  #: the same data with another shape (Flatten, Reshape)


@attrs.frozen
class Value:
    """A tensor: an activation (dims of one sample) or a constant (``data`` set, dims its own)."""

    dims: tuple[int, ...]
    data: np.ndarray | None = attrs.field(default=None, eq=False)

    @property
    def size(self) -> int:
        """Elements (of one sample, for an activation)."""
        return math.prod(self.dims)


@attrs.frozen
class Op:
    """One step of the graph."""

    opcode: Opcode
    out: int
    inputs: tuple[int, ...]
    params: tuple[int, ...] = attrs.field(default=(), converter=lambda p: tuple(p) + (0,) * (4 - len(p)))


@attrs.frozen
class Graph:
    """A model: its values, its ops in running order, which value is the input and which the output."""

    values: tuple[Value, ...]
    ops: tuple[Op, ...]
    input: int
    output: int

    @property
    def input_dims(self) -> tuple[int, ...]:
        """One sample's input shape."""
        return self.values[self.input].dims

    @property
    def output_dims(self) -> tuple[int, ...]:
        """One sample's output shape."""
        return self.values[self.output].dims

    @property
    def parameters(self) -> int:
        """How many weights the model holds."""
        return sum(v.size for v in self.values if v.data is not None)

    def encode(self) -> bytes:
        """The model in the compact format (the same graph always gives the same bytes)."""
        records, weights, offset = [], [], 0
        for value in self.values:
            dims = list(value.dims) + [0] * (MAX_RANK - len(value.dims))
            if value.data is None:
                records.append(_VALUE.pack(len(value.dims), *dims, NONE))
            else:
                records.append(_VALUE.pack(len(value.dims), *dims, offset))
                weights.append(np.ascontiguousarray(value.data, dtype="<f4").reshape(-1))
                offset += value.size
        ops = [_OP.pack(op.opcode, op.out, *(list(op.inputs) + [NONE] * (3 - len(op.inputs))), *op.params)
               for op in self.ops]
        header = _HEADER.pack(MAGIC, VERSION, len(self.values), len(self.ops), self.input, self.output, offset)
        body = np.concatenate(weights).tobytes() if weights else b""
        return b"".join([header, *records, *ops, body])


def decode(data: bytes) -> Graph:
    """A model from the compact format; ValueError saying what is wrong when it is not one."""
    if len(data) < _HEADER.size or not data.startswith(MAGIC):
        raise ValueError("not a GAIA model (no GAIAONNX header)")
    _, version, n_values, n_ops, input_, output, n_weights = _HEADER.unpack_from(data)
    if version != VERSION:
        raise ValueError(f"model format version {version}, this GAIA reads version {VERSION}")
    at = _HEADER.size
    end = at + n_values * _VALUE.size + n_ops * _OP.size + 4 * n_weights
    if end != len(data):
        raise ValueError(f"model is {len(data)} bytes, its header says {end}")
    weights = np.frombuffer(data, dtype="<f4", count=n_weights, offset=end - 4 * n_weights)
    values = []
    for _ in range(n_values):
        rank, *fields = _VALUE.unpack_from(data, at)
        at += _VALUE.size
        if rank > MAX_RANK:
            raise ValueError(f"a value has rank {rank} (at most {MAX_RANK})")
        dims, offset = tuple(fields[:rank]), fields[MAX_RANK]
        size = math.prod(dims)
        if offset != NONE and offset + size > n_weights:
            raise ValueError("a constant lies outside the weights")
        values.append(Value(dims, None if offset == NONE else weights[offset:offset + size].reshape(dims)))
    ops = []
    for _ in range(n_ops):
        opcode, out, *rest = _OP.unpack_from(data, at)
        at += _OP.size
        ops.append(Op(Opcode(opcode), out, tuple(i for i in rest[:3] if i != NONE), tuple(rest[3:])))
    return Graph(tuple(values), tuple(ops), input_, output)

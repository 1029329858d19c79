"""ONNX files to :class:`~gaia_core.models.graph.Graph`: the operator subset of MLPs and small CNNs.

The file is parsed and checked with the ``onnx`` package, its shapes fixed by ``onnx.shape_inference``
(the batch dimension set to the file's own, or 1), and each node lowered to the ops the ``onnx_interp``
task runs. Nodes whose inputs are all constants (``Constant``, ``Transpose`` of weights, shape
arithmetic) are evaluated here with ``onnx.reference``, and ``Shape`` of an activation is its fixed
shape; a shape left open by the whole-model inference is inferred again for its node once these are
known. Anything else is refused with one line that names the operator and the node.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference
from onnx.reference import ReferenceEvaluator

from gaia_core.errors import ValidationError
from gaia_core.models.graph import MAX_OPS, MAX_RANK, MAX_VALUES, Graph, Op, Opcode, Value

#: Operators that run on activations (what ``gaia model import`` accepts).
RUNNABLE = ("Add", "AveragePool", "BatchNormalization", "Conv", "Div", "Dropout", "Flatten", "Gemm",
            "GlobalAveragePool", "Identity", "MatMul", "MaxPool", "Mul", "Relu", "Reshape", "Sigmoid", "Softmax",
            "Squeeze", "Sub", "Tanh", "Unsqueeze")
#: Operators also accepted when all their inputs are constants: evaluated at import.
FOLDABLE = (*RUNNABLE, "Cast", "Concat", "Constant", "Gather", "Shape", "Slice", "Transpose")
#: The largest constant import evaluates or makes (elements).
MAX_CONSTANT = 1 << 26
#: The most multiply-adds (or window comparisons) a windowed op evaluated at import may take: onnx.reference
#: runs them at some 3e7 per second.
MAX_FOLD_WORK = 1 << 26
#: The largest activation of one sample (elements): onnx_interp's limit for a whole batch's buffer.
MAX_ACTIVATION = 1 << 28
_ELEMENTWISE = {"Relu": Opcode.RELU, "Sigmoid": Opcode.SIGMOID, "Tanh": Opcode.TANH}
_VIEWS = ("Flatten", "Reshape", "Squeeze", "Unsqueeze")
_ALIASES = ("Identity", "Dropout")


class ModelError(ValidationError):
    """An ONNX file GAIA cannot run."""


def import_onnx(data: bytes, *, source: str = "model.onnx") -> Graph:
    """The graph of an ONNX file's bytes; ModelError naming what is not supported and where."""
    model = _parse(data, source)
    return _Lowering(model, source).run()


def _parse(data: bytes, source: str) -> onnx.ModelProto:
    """The checked model with its shapes inferred; ModelError when it is not a usable ONNX file."""
    try:
        model = onnx.load_model_from_string(data)
    except Exception:  # noqa: BLE001 - protobuf raises DecodeError and others on garbage
        model = None
    if model is None or not model.ir_version or not model.graph.node:
        raise ModelError(f"{source} is not an ONNX model", hint="export it with torch.onnx.export, skl2onnx or tf2onnx")
    external = next((t.name or "?" for t in _tensors(model.graph) if t.data_location == onnx.TensorProto.EXTERNAL),
                    None)
    if external is not None:
        raise ModelError(f"{source}: tensor {external!r} keeps its data in an external file; GAIA reads no file a "
                         "model names", hint="save the model with its weights inside it: save_as_external_data=False")
    newest = onnx.defs.onnx_opset_version()
    opset = _opset(model)
    if not 1 <= opset <= newest:
        raise ModelError(f"{source} uses ONNX opset {opset}; this onnx package knows opsets 1 to {newest}",
                         hint="export the model with an opset this onnx release knows, or upgrade onnx")
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as exc:
        raise ModelError(f"{source} is not a valid ONNX model: {_first_line(exc)}",
                         hint="check it with onnx.checker.check_model and export it again") from None
    weights = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    if len(inputs) != 1 or len(model.graph.output) != 1:
        raise ModelError(f"{source} has {len(inputs)} input(s) and {len(model.graph.output)} output(s); "
                         "GAIA runs models with one of each", hint="export the model with a single input and output")
    _fix_batch(inputs[0], source)
    del model.graph.value_info[:]
    try:
        return shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except Exception as exc:  # noqa: BLE001 - InferenceError and the checker's errors alike
        raise ModelError(f"{source}: shape inference failed: {_first_line(exc)}",
                         hint="export the model with fixed input shapes") from None


def _fix_batch(value: onnx.ValueInfoProto, source: str) -> None:
    """Give the input a fixed batch dimension (its own, or 1); ModelError on a dynamic or non-float input."""
    tensor = value.type.tensor_type
    if not value.type.HasField("tensor_type") or tensor.elem_type != onnx.TensorProto.FLOAT:
        raise ModelError(f"{source}: input {value.name!r} is not a float32 tensor",
                         hint="GAIA models take one float32 tensor, the first dimension being the batch")
    dims = tensor.shape.dim
    if len(dims) < 2 or len(dims) > MAX_RANK + 1:
        raise ModelError(f"{source}: input {value.name!r} has rank {len(dims)}; GAIA needs a batch dimension "
                         f"and 1 to {MAX_RANK} more", hint="export with the input shaped [batch, features...]")
    for i, dim in enumerate(dims[1:], 1):
        if not dim.HasField("dim_value") or dim.dim_value <= 0:
            raise ModelError(f"{source}: dimension {i} of input {value.name!r} is dynamic "
                             f"({dim.dim_param or '?'}); only the batch dimension may be",
                             hint="export the model with a fixed input shape besides the batch")
    if not dims[0].HasField("dim_value") or dims[0].dim_value <= 0:
        dims[0].Clear()
        dims[0].dim_value = 1


def _opset(model: onnx.ModelProto) -> int:
    """The version of the default (ai.onnx) operator set the model imports."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


def _first_line(exc: BaseException) -> str:
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    return text if len(text) <= 300 else text[:297] + "..."


class _Lowering:
    """One pass over an inferred model's nodes, building the graph's values and ops."""

    def __init__(self, model: onnx.ModelProto, source: str) -> None:
        self.model, self.source = model, source
        self.opset = _opset(model)
        graph = model.graph
        self.shapes = {v.name: _dims(v) for v in (*graph.input, *graph.value_info, *graph.output)
                       if v.type.tensor_type.HasField("shape")}
        self.consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        weights = set(self.consts)
        self.input_name = next(i.name for i in graph.input if i.name not in weights)
        self.batch = self.shapes[self.input_name][0]
        self.values: list[Value] = []
        self.ops: list[Op] = []
        self.slots: dict[str, int] = {}
        self.node: onnx.NodeProto | None = None
        self.slots[self.input_name] = self._activation(self.input_name)

    # ------------------------------------------------------------------ the walk

    def run(self) -> Graph:
        handlers: dict[str, Callable[[], None]] = {
            "Gemm": self._gemm, "MatMul": self._matmul, "Conv": self._conv, "MaxPool": self._pool,
            "AveragePool": self._pool, "GlobalAveragePool": self._global_pool, "Softmax": self._softmax,
            "Add": self._binary, "Mul": self._binary, "Sub": self._binary, "Div": self._binary,
            "BatchNormalization": self._batch_norm,
            **dict.fromkeys(_ELEMENTWISE, self._elementwise), **dict.fromkeys(_VIEWS, self._view),
            **dict.fromkeys(_ALIASES, self._alias),
        }
        for node in self.model.graph.node:
            self.node = node
            if node.domain not in ("", "ai.onnx"):
                self._refuse(f"operator {node.domain}.{node.op_type} is not supported", _supported_hint())
            inputs = [name for name in node.input if name]
            if all(name in self.consts for name in inputs) and node.op_type in FOLDABLE:
                self._fold(node)
            elif node.op_type == "Shape" and inputs[0] in self.slots:
                self._shape_of()
            elif node.op_type in handlers:
                for name in inputs:
                    if name not in self.consts and name not in self.slots:
                        self._refuse(f"input {name!r} comes from an output GAIA does not run")
                handlers[node.op_type]()
            elif node.op_type in FOLDABLE:
                self._refuse(f"{node.op_type} of an activation is not supported (only of constants)",
                             _supported_hint())
            else:
                self._refuse(f"operator {node.op_type} is not supported", _supported_hint())
        self.node = None
        if len(self.ops) > MAX_OPS or len(self.values) > MAX_VALUES:
            raise ModelError(f"{self.source} lowers to {len(self.ops):,} ops over {len(self.values):,} values; the "
                             f"interpreter runs at most {MAX_OPS:,} of each", hint="export a smaller model")
        output = self.model.graph.output[0].name
        if output not in self.slots:
            raise ModelError(f"{self.source}: output {output!r} does not depend on the input",
                             hint="export a model whose output is computed from its input")
        return Graph(tuple(self.values), tuple(self.ops), self.slots[self.input_name], self.slots[output])

    def _refuse(self, what: str, hint: str = "") -> NoReturn:
        node = self.node
        where = f" (node {node.name or node.output[0]!r}, {node.op_type})" if node is not None else ""
        raise ModelError(f"{self.source}{where}: {what}", hint=hint or None)

    # ------------------------------------------------------------------ values

    def _activation(self, name: str) -> int:
        """A new activation slot for ``name``, whose inferred shape must keep the batch first and be fixed."""
        dims = self.shapes.get(name)
        if (dims is None or any(d <= 0 for d in dims)) and self.node is not None:
            self._infer_node()
            dims = self.shapes.get(name)
        if dims is None or any(d <= 0 for d in dims):
            self._refuse(f"the shape of {name!r} is dynamic and could not be fixed",
                         "export the model with fixed shapes (only the batch dimension may vary)")
        if len(dims) < 2 or dims[0] != self.batch:
            self._refuse(f"{name!r} has shape {list(dims)}: it mixes the samples of the batch "
                         f"(batch {self.batch})", "GAIA runs a model sample by sample: keep the batch dimension first")
        if len(dims) - 1 > MAX_RANK:
            self._refuse(f"{name!r} has rank {len(dims)} (at most {MAX_RANK + 1})")
        if math.prod(dims[1:]) > MAX_ACTIVATION:
            self._refuse(f"{name!r} has shape {list(dims)}: {math.prod(dims[1:]):,} values per sample, "
                         f"the interpreter holds at most {MAX_ACTIVATION:,}", "export a smaller model")
        self.values.append(Value(tuple(dims[1:])))
        return len(self.values) - 1

    def _infer_node(self) -> None:
        """Infer the current node's output shapes from its inputs' now known shapes and constants.

        The whole-model inference leaves a shape open when it depends on a value computed in the graph
        (a ``Reshape`` to ``Concat(Shape(x)[0], -1)``); once such values are folded to constants, this
        node's own inference fixes it.
        """
        node = self.node
        assert node is not None
        types, data = {}, {}
        for name in filter(None, node.input):
            if name in self.consts:
                array = self.consts[name]
                types[name] = onnx.helper.make_tensor_type_proto(
                    onnx.helper.np_dtype_to_tensor_dtype(array.dtype), array.shape)
                data[name] = numpy_helper.from_array(array, name)
            elif name in self.slots:
                full = (self.batch, *self.values[self.slots[name]].dims)
                types[name] = onnx.helper.make_tensor_type_proto(onnx.TensorProto.FLOAT, full)
        try:
            schema = onnx.defs.get_schema(node.op_type, self.opset, node.domain)
            outputs = shape_inference.infer_node_outputs(schema, node, types, data,
                                                         opset_imports=list(self.model.opset_import))
        except Exception:  # noqa: BLE001 - an inference error leaves the shape open, refused by the caller
            return
        for name, type_proto in outputs.items():
            shape = type_proto.tensor_type.shape
            if type_proto.tensor_type.HasField("shape"):
                self.shapes[name] = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in shape.dim)

    def _constant(self, array: np.ndarray) -> int:
        """A new constant slot holding ``array`` as float32."""
        if array.ndim > MAX_RANK:
            self._refuse(f"a constant has rank {array.ndim} (at most {MAX_RANK})")
        data = np.ascontiguousarray(array, dtype=np.float32)
        if not np.all(np.isfinite(data)):
            self._refuse("a weight is NaN or infinite", "export the model again from a trained checkpoint")
        self.values.append(Value(tuple(data.shape), data))
        return len(self.values) - 1

    def _emit(self, opcode: Opcode, inputs: tuple[int, ...], params: tuple[int, ...] = (),
              output: str | None = None) -> int:
        """Append an op writing a new activation (the node's first output unless ``output``); its slot."""
        assert self.node is not None
        name = output or self.node.output[0]
        out = self._activation(name)
        self.ops.append(Op(opcode, out, inputs, params))
        self.slots[name] = out
        return out

    def _act(self, index: int) -> tuple[int, tuple[int, ...]]:
        """The slot and one-sample dims of the node's ``index``-th input, which must be an activation."""
        assert self.node is not None
        name = self.node.input[index]
        if name not in self.slots:
            self._refuse(f"input {index} ({name!r}) must be the model's data, not a constant")
        slot = self.slots[name]
        return slot, self.values[slot].dims

    def _const(self, index: int, what: str) -> np.ndarray | None:
        """The node's ``index``-th input as a constant array (None when absent); refused when not constant."""
        assert self.node is not None
        if index >= len(self.node.input) or not self.node.input[index]:
            return None
        name = self.node.input[index]
        if name not in self.consts:
            self._refuse(f"the {what} ({name!r}) must be a constant (a weight), not computed from the input")
        return self.consts[name]

    def _attrs(self) -> dict[str, Any]:
        assert self.node is not None
        return {a.name: onnx.helper.get_attribute_value(a) for a in self.node.attribute}

    def _out_dims(self) -> tuple[int, ...]:
        assert self.node is not None
        return self.shapes.get(self.node.output[0], ())[1:]

    # ------------------------------------------------------------------ constants

    def _fold(self, node: onnx.NodeProto) -> None:
        """Evaluate a node whose inputs are all constants with onnx's reference evaluator, once its outputs'
        inferred sizes are known to fit :data:`MAX_CONSTANT` (a small file can name a huge product)."""
        inputs = [name for name in node.input if name]
        if any(self._fold_size(name) is None for name in node.output if name):
            self._infer_node()
        for name in filter(None, node.output):
            size = self._fold_size(name)
            if size is None:
                self._refuse("the size of its result cannot be inferred before evaluating it",
                             "export the model with constant folding: do_constant_folding=True in torch.onnx.export")
            if size > MAX_CONSTANT:
                self._refuse(f"a constant of {size:,} elements is too large (at most {MAX_CONSTANT:,})")
        work = self._fold_work(node)
        if work > MAX_FOLD_WORK:
            self._refuse(f"evaluating it on its constant inputs takes {work:,} multiply-adds (at most "
                         f"{MAX_FOLD_WORK:,})", "fold it when exporting, or feed it the model's input")
        sub = onnx.helper.make_model(
            onnx.helper.make_graph([node], "fold", [_info(name, self.consts[name]) for name in inputs],
                                   [onnx.helper.make_value_info(name, onnx.TypeProto()) for name in node.output]),
            opset_imports=list(self.model.opset_import))
        try:
            results = ReferenceEvaluator(sub).run(None, {name: self.consts[name] for name in inputs})
        except Exception as exc:  # noqa: BLE001 - any failure of the reference evaluator
            self._refuse(f"cannot evaluate it on its constant inputs: {_first_line(exc)}")
        for name, value in zip(node.output, results, strict=False):
            self.consts[name] = np.asarray(value)

    def _fold_work(self, node: onnx.NodeProto) -> int:
        """Multiply-adds or comparisons of a windowed op (Conv, pools) on constants; 0 for the others."""
        out = self._fold_size(node.output[0]) or 0
        if node.op_type == "Conv":
            weights = self.consts[node.input[1]]
            return out * (weights.size // max(weights.shape[0], 1) if weights.ndim else 1)
        if node.op_type in ("MaxPool", "AveragePool"):
            return out * math.prod(self._attrs().get("kernel_shape", [1]))
        return 0

    def _fold_size(self, name: str) -> int | None:
        """The element count of ``name`` by the inferred shapes; None when a dimension is not known."""
        dims = self.shapes.get(name)
        return None if dims is None or any(d < 0 for d in dims) else math.prod(dims)

    def _shape_of(self) -> None:
        """``Shape`` of an activation: its fixed shape, the batch counted as the model's own (for a Reshape)."""
        assert self.node is not None
        full = (self.batch, *self.values[self.slots[self.node.input[0]]].dims)
        attrs = self._attrs()
        self.consts[self.node.output[0]] = np.array(full[attrs.get("start", 0):attrs.get("end", len(full))],
                                                    dtype=np.int64)

    # ------------------------------------------------------------------ operators

    def _alias(self) -> None:
        assert self.node is not None
        if self.node.op_type == "Dropout" and self._attrs().get("training_mode"):
            self._refuse("Dropout in training mode is not supported", "export the model in eval mode")
        if self.node.op_type == "Dropout" and len(self.node.input) > 2 and self.node.input[2]:
            mode = self._const(2, "training mode")
            if mode is not None and bool(np.asarray(mode).any()):
                self._refuse("Dropout in training mode is not supported", "export the model in eval mode")
        self.slots[self.node.output[0]] = self._act(0)[0]

    def _view(self) -> None:
        slot, dims = self._act(0)
        assert self.node is not None
        if self.node.op_type == "Flatten" and self._attrs().get("axis", 1) == 0:
            self._refuse("Flatten with axis 0 mixes the samples of the batch", "flatten from axis 1")
        out = self._emit(Opcode.VIEW, (slot,))
        if self.values[out].size != math.prod(dims):
            self._refuse("the new shape does not hold the same number of values")

    def _elementwise(self) -> None:
        assert self.node is not None
        self._emit(_ELEMENTWISE[self.node.op_type], (self._act(0)[0],))

    def _gemm(self) -> None:
        attrs = self._attrs()
        slot, dims = self._act(0)
        if attrs.get("transA", 0):
            self._refuse("Gemm with transA=1 on the data is not supported", "transpose the weights instead")
        weights = self._const(1, "weight matrix B")
        assert weights is not None
        trans_b = int(attrs.get("transB", 0))
        k, n = (weights.shape[1], weights.shape[0]) if trans_b else weights.shape
        if len(dims) != 1 or dims[0] != k:
            self._refuse(f"data of shape {list(dims)} per sample does not match weights {list(weights.shape)}")
        alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
        bias = self._const(2, "bias C")
        self._linear(slot, alpha * weights if alpha != 1.0 else weights, trans_b, 1, k, n,
                     None if bias is None else beta * bias)

    def _matmul(self) -> None:
        slot, dims = self._act(0)
        weights = self._const(1, "right-hand matrix")
        assert weights is not None
        if weights.ndim != 2 or dims[-1] != weights.shape[0]:
            self._refuse(f"MatMul of data {list(dims)} per sample by {list(weights.shape)} is not supported",
                         "the right-hand side must be a 2-D weight matrix whose rows match the data's last axis")
        self._linear(slot, weights, 0, math.prod(dims[:-1]), weights.shape[0], weights.shape[1], None)

    def _linear(self, slot: int, weights: np.ndarray, trans_b: int, rows: int, k: int, n: int,
                bias: np.ndarray | None) -> None:
        inputs = [slot, self._constant(weights)]
        if bias is not None:
            try:
                row = np.broadcast_to(bias, (1, n)).reshape(n)
            except ValueError:
                self._refuse(f"bias of shape {list(bias.shape)} does not broadcast to one row of {n}")
            inputs.append(self._constant(row))
        self._emit(Opcode.GEMM, tuple(inputs), (trans_b, rows, k, n))

    def _conv(self) -> None:
        attrs = self._attrs()
        slot, dims = self._act(0)
        weights = self._const(1, "weights W")
        assert weights is not None
        if len(dims) != 3 or weights.ndim != 4:
            self._refuse(f"only 2-D convolutions are supported (data {list(dims)} per sample)")
        if attrs.get("group", 1) != 1:
            self._refuse(f"grouped convolution (group={attrs['group']}) is not supported",
                         "export with group=1: GAIA runs no depthwise or grouped convolutions")
        if any(d != 1 for d in attrs.get("dilations", [1, 1])):
            self._refuse(f"dilations {list(attrs['dilations'])} are not supported", "use dilations 1")
        if weights.shape[1] != dims[0]:
            self._refuse(f"weights {list(weights.shape)} do not match {dims[0]} input channels")
        kh, kw = weights.shape[2], weights.shape[3]
        stride = self._square("strides", attrs.get("strides", [1, 1]))
        pad = self._padding(attrs, kh, kw, stride)
        bias = self._const(2, "bias B")
        inputs = [slot, self._constant(weights)] + ([] if bias is None else [self._constant(bias.reshape(-1))])
        self._emit(Opcode.CONV, tuple(inputs), (stride, pad))
        self._check_out((weights.shape[0], (dims[1] + 2 * pad - kh) // stride + 1,
                         (dims[2] + 2 * pad - kw) // stride + 1))

    def _pool(self) -> None:
        attrs = self._attrs()
        slot, dims = self._act(0)
        assert self.node is not None
        if len(dims) != 3:
            self._refuse(f"only 2-D pooling is supported (data {list(dims)} per sample)")
        if len([o for o in self.node.output if o]) > 1:
            self._refuse("the Indices output of MaxPool is not supported")
        k = self._square("kernel_shape", attrs.get("kernel_shape", []))
        stride = self._square("strides", attrs.get("strides", [1, 1]))
        if any(attrs.get("pads", [0])) or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID", "NOTSET",
                                                                                   "VALID"):
            self._refuse("padded pooling is not supported", "pool without padding")
        if attrs.get("ceil_mode", 0):
            self._refuse("ceil_mode=1 is not supported", "use ceil_mode=0")
        if any(d != 1 for d in attrs.get("dilations", [1, 1])):
            self._refuse(f"dilations {list(attrs['dilations'])} are not supported", "use dilations 1")
        if attrs.get("storage_order", 0):
            self._refuse("storage_order=1 is not supported")
        opcode = Opcode.MAXPOOL if self.node.op_type == "MaxPool" else Opcode.AVGPOOL
        self._emit(opcode, (slot,), (k, stride))
        self._check_out((dims[0], (dims[1] - k) // stride + 1, (dims[2] - k) // stride + 1))

    def _global_pool(self) -> None:
        slot, dims = self._act(0)
        if len(dims) != 3 or dims[1] != dims[2]:
            self._refuse(f"GlobalAveragePool needs square 2-D maps (data {list(dims)} per sample)")
        self._emit(Opcode.AVGPOOL, (slot,), (dims[1], 1))

    def _softmax(self) -> None:
        slot, dims = self._act(0)
        rank = len(dims) + 1
        axis = int(self._attrs().get("axis", -1 if self.opset >= 13 else 1))
        axis = axis + rank if axis < 0 else axis
        if axis == 0:
            self._refuse("Softmax over axis 0 mixes the samples of the batch", "take the softmax over features")
        if self.opset >= 13 and axis != rank - 1:
            self._refuse(f"Softmax over axis {axis} is not supported, only over the last axis ({rank - 1})")
        self._emit(Opcode.SOFTMAX, (slot,), (math.prod(dims[axis - 1:]),))

    def _binary(self) -> None:
        assert self.node is not None
        op = self.node.op_type
        left, right = self.node.input[0], self.node.input[1]
        if left in self.slots and right in self.slots:
            if op in ("Sub", "Div"):
                self._refuse(f"{op} of two activations is not supported", _supported_hint())
            a, b = self.values[self.slots[left]], self.values[self.slots[right]]
            if a.dims != b.dims:
                self._refuse(f"{op} of activations of different shapes {list(a.dims)} and {list(b.dims)}")
            self._emit(Opcode.ADD if op == "Add" else Opcode.MUL, (self.slots[left], self.slots[right]))
            return
        if right in self.slots and op in ("Sub", "Div"):
            self._refuse(f"{op} of a constant by the data is not supported", _supported_hint())
        data, const = (left, right) if left in self.slots else (right, left)
        c = self.consts[const].astype(np.float32)
        slot = self.slots[data]
        self._affine(slot, {"Add": (None, c), "Sub": (None, -c), "Mul": (c, None), "Div": (1 / c, None)}[op])

    def _batch_norm(self) -> None:
        if self._attrs().get("training_mode", 0):
            self._refuse("BatchNormalization in training mode is not supported", "export the model in eval mode")
        slot, dims = self._act(0)
        params = [self._const(i, what) for i, what in enumerate(("scale", "bias", "mean", "variance"), 1)]
        scale, bias, mean, var = (np.asarray(p, dtype=np.float64) for p in params)
        factor = scale / np.sqrt(var + float(self._attrs().get("epsilon", 1e-5)))
        shape = (-1,) + (1,) * (len(dims) - 1)
        self._affine(slot, (factor.reshape(shape), (bias - mean * factor).reshape(shape)))

    def _affine(self, slot: int, terms: tuple[np.ndarray | None, np.ndarray | None]) -> None:
        """``x * scale + shift`` with constants broadcast to one sample (one op when one term is absent)."""
        assert self.node is not None
        dims = self.values[slot].dims
        scale, shift = (None if t is None else self._per_sample(t, dims) for t in terms)
        if scale is not None:
            out_name = self.node.output[0] if shift is None else self.node.output[0] + "\0scaled"
            if shift is not None:
                self.shapes[out_name] = self.shapes[self.node.output[0]]
            slot = self._emit(Opcode.MUL, (slot, self._constant(scale)), output=out_name)
        if shift is not None:
            self._emit(Opcode.ADD, (slot, self._constant(shift)))
        self._check_out(dims)

    def _per_sample(self, const: np.ndarray, dims: tuple[int, ...]) -> np.ndarray:
        """``const`` broadcast to one sample of shape ``dims``; refused if it needs more (or varies by sample)."""
        if math.prod(dims) > MAX_CONSTANT:
            self._refuse(f"constant of shape {list(const.shape)} would be repeated over a sample of "
                         f"{math.prod(dims):,} values (at most {MAX_CONSTANT:,})")
        try:
            if np.broadcast_shapes(const.shape, (1, *dims)) != (1, *dims):
                raise ValueError
            return np.broadcast_to(const, (1, *dims)).reshape(dims)
        except ValueError:
            self._refuse(f"constant of shape {list(const.shape)} does not broadcast to a sample {list(dims)}")

    # ------------------------------------------------------------------ helpers

    def _square(self, name: str, values: list[int]) -> int:
        if len(values) != 2 or values[0] != values[1] or values[0] <= 0:
            self._refuse(f"{name} {list(values)} are not supported; only equal sizes on both axes")
        return int(values[0])

    def _padding(self, attrs: dict[str, Any], kh: int, kw: int, stride: int) -> int:
        auto = attrs.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            if stride != 1 or kh != kw or kh % 2 == 0:
                self._refuse(f"auto_pad={auto} with stride {stride} and kernel {kh}x{kw} pads unevenly",
                             "use explicit equal pads")
            return (kh - 1) // 2
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        if auto == "VALID" or not any(pads):
            return 0
        if len(set(pads)) != 1:
            self._refuse(f"pads {pads} are not supported; only the same padding on every side")
        return int(pads[0])

    def _check_out(self, expected: tuple[int, ...]) -> None:
        if self._out_dims() != tuple(expected):
            self._refuse(f"output shape {list(self._out_dims())} per sample, GAIA computes {list(expected)}")


def _dims(value: onnx.ValueInfoProto) -> tuple[int, ...]:
    """The inferred dims of a value (-1 for one that is not fixed)."""
    shape = value.type.tensor_type.shape
    return tuple(d.dim_value if d.HasField("dim_value") else -1 for d in shape.dim)


def _tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every tensor stored in ``graph``: initializers and node attributes, subgraphs' included."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        for attr in node.attribute:
            yield from (attr.t, *attr.tensors)
            for sparse in (attr.sparse_tensor, *attr.sparse_tensors):
                yield from (sparse.values, sparse.indices)
            for sub in (attr.g, *attr.graphs):
                yield from _tensors(sub)


def _info(name: str, array: np.ndarray) -> onnx.ValueInfoProto:
    """A value description for ``array`` (its dtype and shape)."""
    elem = onnx.helper.np_dtype_to_tensor_dtype(array.dtype)
    return onnx.helper.make_tensor_value_info(name, elem, array.shape)


def _supported_hint() -> str:
    return "GAIA runs " + ", ".join(RUNNABLE) + "; it folds " + ", ".join(
        sorted(set(FOLDABLE) - set(RUNNABLE))) + " of constants; see docs/models.md"

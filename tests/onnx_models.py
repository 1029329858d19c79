"""Small ONNX models built with ``onnx.helper`` (no downloads), and onnxruntime's outputs for them."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _weights(rng: np.random.Generator, **arrays: tuple[int, ...]) -> list[onnx.TensorProto]:
    return [numpy_helper.from_array((rng.standard_normal(shape) * 0.5).astype(np.float32), name)
            for name, shape in arrays.items()]


def model(nodes: list[onnx.NodeProto], inputs: dict[str, list[int | str]], outputs: dict[str, list[int | str]],
          initializers: Sequence[onnx.TensorProto] = (), opset: int = OPSET) -> onnx.ModelProto:
    """A model of ``nodes`` with float inputs and outputs of the given shapes."""
    graph = helper.make_graph(nodes, "test", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s)
                                              for n, s in inputs.items()],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs.items()],
                              list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def mlp_gemm(rng: np.random.Generator) -> onnx.ModelProto:
    """Gemm (B transposed, alpha, beta), Relu, Gemm, Softmax: what torch exports for nn.Linear layers."""
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1, name="fc1"),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["z"], alpha=0.5, beta=2.0, name="fc2"),
             helper.make_node("Softmax", ["z"], ["y"])]
    return model(nodes, {"x": ["N", 12]}, {"y": ["N", 10]}, _weights(rng, w1=(32, 12), b1=(32,), w2=(32, 10),
                                                                        b2=(1, 10)))


def mlp_matmul(rng: np.random.Generator) -> onnx.ModelProto:
    """MatMul + Add (sklearn-onnx's and older exporters' dense layers), Tanh, Sigmoid, Mul/Sub/Div by constants."""
    nodes = [helper.make_node("Sub", ["x", "mean"], ["c"]), helper.make_node("Div", ["c", "scale"], ["s"]),
             helper.make_node("MatMul", ["s", "w1"], ["m1"]), helper.make_node("Add", ["b1", "m1"], ["a1"]),
             helper.make_node("Tanh", ["a1"], ["t"]), helper.make_node("MatMul", ["t", "w2"], ["m2"]),
             helper.make_node("Add", ["m2", "b2"], ["a2"]), helper.make_node("Sigmoid", ["a2"], ["g"]),
             helper.make_node("Mul", ["g", "gain"], ["y"])]
    weights = _weights(rng, mean=(6,), w1=(6, 16), b1=(16,), w2=(16, 3), b2=(3,), gain=(1, 3))
    weights.append(numpy_helper.from_array(np.array([2.0, 0.5, 1.0, 4.0, 3.0, 1.5], np.float32), "scale"))
    return model(nodes, {"x": ["batch", 6]}, {"y": ["batch", 3]}, weights)


def cnn(rng: np.random.Generator) -> onnx.ModelProto:
    """Conv (padded), Relu, MaxPool, Conv (stride 2), AveragePool, Flatten, Gemm: a small CNN at batch 1."""
    nodes = [helper.make_node("Conv", ["x", "k1", "c1"], ["a"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
             helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", ["p", "k2"], ["b"], strides=[2, 2]),
             helper.make_node("AveragePool", ["b"], ["q"], kernel_shape=[1, 1]),
             helper.make_node("Flatten", ["q"], ["f"]),
             helper.make_node("Gemm", ["f", "dw", "db"], ["y"], transB=1)]
    return model(nodes, {"x": [1, 2, 12, 12]}, {"y": [1, 5]},
                 _weights(rng, k1=(4, 2, 3, 3), c1=(4,), k2=(6, 4, 2, 2), dw=(5, 54), db=(5,)))


def cnn_exported(rng: np.random.Generator) -> onnx.ModelProto:
    """What exporters add around a CNN: BatchNormalization, Identity, Dropout, a Constant shape for Reshape,
    a Transpose of constant weights, GlobalAveragePool, and an Add of two activations (a skip connection)."""
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [1, -1])
    nodes = [helper.make_node("Conv", ["x", "k1"], ["a"], auto_pad="SAME_UPPER"),
             helper.make_node("BatchNormalization", ["a", "gamma", "beta", "mu", "var"], ["n"], epsilon=1e-3),
             helper.make_node("Relu", ["n"], ["r"]), helper.make_node("Identity", ["r"], ["i"]),
             helper.make_node("Add", ["i", "a"], ["s"]),
             helper.make_node("Dropout", ["s"], ["d"]), helper.make_node("GlobalAveragePool", ["d"], ["g"]),
             helper.make_node("Constant", [], ["target"], value=shape),
             helper.make_node("Reshape", ["g", "target"], ["f"]),
             helper.make_node("Transpose", ["wt"], ["w"], perm=[1, 0]),
             helper.make_node("MatMul", ["f", "w"], ["y"])]
    weights = _weights(rng, k1=(3, 1, 3, 3), gamma=(3,), beta=(3,), mu=(3,), wt=(4, 3))
    weights.append(numpy_helper.from_array(rng.uniform(0.5, 2, 3).astype(np.float32), "var"))
    return model(nodes, {"x": [1, 1, 6, 6]}, {"y": [1, 4]}, weights)


def dynamic_flatten(rng: np.random.Generator) -> onnx.ModelProto:
    """torch's ``x.view(x.size(0), -1)`` exported with a dynamic batch: Shape, Gather, Unsqueeze, Concat,
    Reshape; then a Gemm and, at opset 11, a Softmax that flattens from its axis."""
    def const(name: str, values: int | list[int]) -> onnx.TensorProto:
        return numpy_helper.from_array(np.array(values, np.int64), name)

    nodes = [helper.make_node("Shape", ["x"], ["shape"]),
             helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n"], ["n1"], axes=[0]),
             helper.make_node("Concat", ["n1", "minus_one"], ["target"], axis=0),
             helper.make_node("Reshape", ["x", "target"], ["f"]),
             helper.make_node("Gemm", ["f", "w", "b"], ["z"], transB=1),
             helper.make_node("Reshape", ["z", "split"], ["z3"]),
             helper.make_node("Softmax", ["z3"], ["y"], axis=1)]
    weights = [*_weights(rng, w=(8, 18), b=(8,)), const("zero", 0), const("minus_one", [-1]),
               const("split", [-1, 2, 4])]
    return model(nodes, {"x": ["N", 2, 3, 3]}, {"y": ["N", 2, 4]}, weights, opset=11)


#: Builders of the accepted models, by name.
ACCEPTED: dict[str, Callable[[np.random.Generator], onnx.ModelProto]] = {
    "mlp_gemm": mlp_gemm, "mlp_matmul": mlp_matmul, "cnn": cnn, "cnn_exported": cnn_exported,
    "dynamic_flatten": dynamic_flatten}


def samples(proto: onnx.ModelProto, n: int, seed: int = 1) -> np.ndarray:
    """``n`` random float32 samples for ``proto``'s input."""
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim[1:]]
    return np.random.default_rng(seed).standard_normal((n, *dims)).astype(np.float32)


def onnxruntime_outputs(proto: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """onnxruntime's output for ``x``, sample by sample when the model's batch dimension is fixed."""
    import onnxruntime

    session = onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    fixed = proto.graph.input[0].type.tensor_type.shape.dim[0].HasField("dim_value")
    if fixed:
        return np.concatenate([session.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])
    return np.asarray(session.run(None, {name: x})[0])

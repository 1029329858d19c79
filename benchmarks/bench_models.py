"""Imported ONNX models as GAIA inference tasks against onnxruntime, measured in one run.

Prints ``<measure>: gaia=X baseline=Y ratio=Z`` lines, for an MLP (64-256-256-10) and a small CNN
(1x28x28: conv 8 3x3 -> relu -> maxpool 2 -> conv 16 3x3 -> relu -> maxpool 2 -> dense 10), both built
with ``onnx.helper`` and imported with ``gaia_core.models``:

* samples per second of one inference task (``onnx_interp.wasm`` on the gaia_tensor host API, run by
  the WASM runner: instantiation, input copy and all) vs onnxruntime on one thread
  (``intra_op_num_threads=1``) on the same batch — higher is better;
* the largest absolute difference of the task's outputs from onnxruntime's (target <= 1e-5; the
  baseline column is that target).

Timings are the best of REPEATS runs. Run: ``python benchmarks/bench_models.py`` (seconds).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
from measures import best_time, line
from onnx import TensorProto, helper, numpy_helper

from gaia_core.commands.model import interpreter_module
from gaia_core.config import Config, Home
from gaia_core.model import Task
from gaia_core.models.batches import task_input
from gaia_core.models.onnx_import import import_onnx
from gaia_core.roles import NodeContext
from gaia_runner_wasm import WasmRunner

REPEATS = 15
BATCH = 256


def _weights(rng: np.random.Generator, **shapes: tuple[int, ...]) -> list[onnx.TensorProto]:
    return [numpy_helper.from_array((rng.standard_normal(s) / np.sqrt(np.prod(s[1:]))).astype(np.float32), n)
            for n, s in shapes.items()]


def _model(nodes: list[onnx.NodeProto], x: list[int | str], y: list[int | str],
           weights: list[onnx.TensorProto]) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "bench", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, y)], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def mlp(rng: np.random.Generator) -> onnx.ModelProto:
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h1"], transB=1), helper.make_node("Relu", ["h1"], ["r1"]),
             helper.make_node("Gemm", ["r1", "w2", "b2"], ["h2"], transB=1), helper.make_node("Relu", ["h2"], ["r2"]),
             helper.make_node("Gemm", ["r2", "w3", "b3"], ["z"], transB=1), helper.make_node("Softmax", ["z"], ["y"])]
    return _model(nodes, ["N", 64], ["N", 10],
                  _weights(rng, w1=(256, 64), b1=(256,), w2=(256, 256), b2=(256,), w3=(10, 256), b3=(10,)))


def cnn(rng: np.random.Generator) -> onnx.ModelProto:
    nodes = [helper.make_node("Conv", ["x", "k1", "c1"], ["a1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a1"], ["r1"]),
             helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", ["p1", "k2", "c2"], ["a2"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a2"], ["r2"]),
             helper.make_node("MaxPool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p2"], ["f"]), helper.make_node("Gemm", ["f", "w", "b"], ["y"], transB=1)]
    return _model(nodes, ["N", 1, 28, 28], ["N", 10],
                  _weights(rng, k1=(8, 1, 3, 3), c1=(8,), k2=(16, 8, 3, 3), c2=(16,), w=(10, 784), b=(10,)))


def measure(name: str, proto: onnx.ModelProto, runner: WasmRunner) -> None:
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim[1:]]
    x = np.random.default_rng(1).standard_normal((BATCH, *dims)).astype(np.float32)
    task = Task.create(interpreter_module(), input=task_input(import_onnx(proto.SerializeToString()).encode(), x),
                       entry="infer")
    result = runner.run(task)
    assert result.ok, result.message
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    expected = session.run(None, {"x": x})[0]
    got = np.frombuffer(result.output, dtype="<f4").reshape(expected.shape)
    gaia_s = best_time(lambda: runner.run(task), REPEATS)
    ort_s = best_time(lambda: session.run(None, {"x": x}), REPEATS)
    line(f"onnx {name} inference samples/s (batch {BATCH}, one task vs onnxruntime 1 thread)",
         BATCH / gaia_s, BATCH / ort_s)
    line(f"onnx {name} max abs error vs onnxruntime (target 1e-5)", float(np.abs(got - expected).max()), 1e-5)


def main() -> None:
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        runner = WasmRunner(NodeContext(config=Config(), home=Home(Path(tmp) / "home")))
        try:
            measure("mlp 64-256-256-10", mlp(rng), runner)
            measure("cnn 28x28 conv8-pool-conv16-pool-dense", cnn(rng), runner)
        finally:
            runner.close()


if __name__ == "__main__":
    main()

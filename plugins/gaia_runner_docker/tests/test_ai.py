"""A real AI framework task: ONNX Runtime inference of the digits model in a locally built image, checked by
redundancy with a tolerance comparator (containers are not bit-deterministic)."""

from __future__ import annotations

import io
from collections.abc import Callable

import attrs
import docker
import numpy as np
import pytest
from test_conformance import oci

from gaia_core.model import Limits, Status, TaskResult
from gaia_core.verification import Tolerance, quorum_of
from gaia_runner_docker import DockerRunner
from gaia_runner_docker.images import ImageError, onnx_image

onnx = pytest.importorskip("onnx")
workloads = pytest.importorskip("gaia_runner_wasm.workloads", reason="the digits data ship with gaia-runner-wasm")

TOLERANCE = Tolerance(rtol=1e-4, atol=1e-6)
INFER = "python3 /opt/gaia/infer.py"


def node(n: int) -> str:
    return f"{n:064x}"


def replica(result: TaskResult, n: int, output: bytes | None = None) -> TaskResult:
    """``result`` as node ``n`` returned it (optionally with another output)."""
    from gaia_core.hashing import content_id

    if output is None:
        return attrs.evolve(result, node_id=node(n))
    return attrs.evolve(result, node_id=node(n), output=output, output_id=content_id(output))


# ------------------------------------------------------------------ the comparator


def test_tolerance_agrees_on_nearby_floats_only() -> None:
    a = np.array([0.25, 0.5, 1e-9], "<f4")
    assert TOLERANCE.agree(a.tobytes(), (a * (1 + 1e-6)).astype("<f4").tobytes())
    assert not TOLERANCE.agree(a.tobytes(), (a + 1e-3).astype("<f4").tobytes())
    assert not TOLERANCE.agree(a.tobytes(), a[:2].tobytes())
    assert not TOLERANCE.agree(np.array([np.nan], "<f4").tobytes(), np.array([np.nan], "<f4").tobytes())
    assert not TOLERANCE.agree(b"abc", b"abc")  # not float32 data


def test_quorum_with_tolerance_accepts_jitter_and_flags_a_forgery() -> None:
    exact = np.linspace(0.0, 1.0, 40, dtype="<f4")
    base = TaskResult(task_id="ab" * 32, status=Status.OK)
    results = [replica(base, 1, exact.tobytes()),
               replica(base, 2, np.nextafter(exact, np.float32(2)).astype("<f4").tobytes()),
               replica(base, 3, (exact[::-1]).tobytes())]
    assert quorum_of(results, k=3).canonical is None  # bitwise, no two agree
    decided = quorum_of(results, k=3, tolerance=TOLERANCE)
    assert decided.canonical in {results[0].output_id, results[1].output_id}
    assert decided.agreeing == (node(1), node(2)) and decided.disagreeing == (node(3),)


# ------------------------------------------------------------------ inference in containers


@pytest.fixture(scope="module")
def onnx_img(client: docker.DockerClient) -> str:
    pytest.importorskip("onnxruntime", reason="the AI image is built from this machine's onnxruntime")
    try:
        return onnx_image(client)
    except ImageError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, np.ndarray, np.ndarray]:
    """The digits MLP trained by the WASM training task, as an ONNX file, with held-out rows and labels."""
    from gaia_core.config import Config, Home
    from gaia_core.roles import NodeContext
    from gaia_runner_wasm import WasmRunner

    train, test = workloads.load_digits().split(test_fraction=0.2)
    runner = WasmRunner(NodeContext(config=Config(extra={"runner_wasm": {"disk_cache": False}}),
                                    home=Home(tmp_path_factory.mktemp("wasm-home"))))
    try:
        result = runner.run(workloads.train_task(workloads.Mlp.init(64, 32, 10), train.x, train.y, epochs=20))
    finally:
        runner.close()
    assert result.ok, result.message
    model, _ = workloads.decode_train(result.output, workloads.Mlp.init(64, 32, 10))
    return _to_onnx(model), np.asarray(test.x, "<f4").reshape(-1, 64), np.asarray(test.y)


def _to_onnx(model: object) -> bytes:
    """The MLP (x·W1 + b1, ReLU, ·W2 + b2, softmax) as an ONNX graph."""
    from onnx import TensorProto, helper, numpy_helper

    n_in, n_h, n_out = model.n_in, model.n_hidden, model.n_out  # type: ignore[attr-defined]
    params = np.asarray(model.params, "<f4")  # type: ignore[attr-defined]
    sizes = np.cumsum([n_in * n_h, n_h, n_h * n_out])
    w1, b1, w2, b2 = np.split(params, sizes)
    weights = [numpy_helper.from_array(w1.reshape(n_in, n_h), "w1"), numpy_helper.from_array(b1, "b1"),
               numpy_helper.from_array(w2.reshape(n_h, n_out), "w2"), numpy_helper.from_array(b2, "b2")]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h0"]), helper.make_node("Add", ["h0", "b1"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["h"]), helper.make_node("MatMul", ["h", "w2"], ["z0"]),
             helper.make_node("Add", ["z0", "b2"], ["z"]), helper.make_node("Softmax", ["z"], ["y"])]
    graph = helper.make_graph(nodes, "digits", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", n_in])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", n_out])], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _input(model: bytes, x: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, model=np.frombuffer(model, np.uint8), x=x)
    return buffer.getvalue()


def test_onnx_inference_in_containers_verified_by_redundancy(make_runner: Callable[..., DockerRunner],
                                                             onnx_img: str,
                                                             digits: tuple[bytes, np.ndarray, np.ndarray]) -> None:
    model, x, labels = digits
    runner = make_runner(onnx_img)
    task = attrs.evolve(oci(onnx_img, INFER, _input(model, x)), limits=Limits(memory_bytes=512 << 20, timeout_s=120))
    first = runner.run(task)
    assert first.status is Status.OK, first.message
    probs = np.frombuffer(first.output, "<f4").reshape(-1, 10)
    assert (probs.argmax(axis=1) == labels).mean() >= 0.9

    import onnxruntime

    host = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert TOLERANCE.agree(first.output, np.ascontiguousarray(host, "<f4").tobytes())

    second = runner.run(task)
    forged = probs.copy()
    forged[:, [0, 1]] = forged[:, [1, 0]]  # a worker that swapped two classes
    replicas = [replica(first, 1), replica(second, 2), replica(first, 3, forged.astype("<f4").tobytes())]
    decided = quorum_of(replicas, k=3, tolerance=TOLERANCE)
    assert decided.agreeing == (node(1), node(2)) and decided.disagreeing == (node(3),)
    assert decided.verdict(node(3), task.id).status.value == "invalid"

"""Imported models run as WASM inference tasks (onnx_interp.wasm on the gaia_tensor host API).

Outputs are checked against onnxruntime within 1e-5, two runs against each other byte for byte, and
``gaia model run`` end to end: on this machine (``--local``) and through a devnet of two real nodes
with redundancy 2 (both nodes must return the same bytes).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import onnx
import onnx_models
import pytest
from nodes import gaia as gaia_process, running_devnet
from test_bad_input import gaia, one_error

from gaia_core.commands.model import interpreter_module
from gaia_core.config import Home
from gaia_core.model import Limits, Status, Task
from gaia_core.models.batches import task_input
from gaia_core.models.onnx_import import import_onnx
from gaia_core.roles import NodeContext

pytest.importorskip("onnxruntime")
wasm = pytest.importorskip("gaia_runner_wasm")
if find_spec("gaia_runner_wasm.tensor_host") is None:
    pytest.skip("the tensor host API (gaia_runner_wasm.tensor_host) is not installed", allow_module_level=True)


@pytest.fixture
def runner(node_context: NodeContext) -> Iterator[wasm.WasmRunner]:
    made = wasm.WasmRunner(node_context)
    yield made
    made.close()


def _task(model: bytes, x: np.ndarray) -> Task:
    return Task.create(interpreter_module(), input=task_input(model, x), entry="infer", limits=Limits())


@pytest.mark.parametrize("name", sorted(onnx_models.ACCEPTED))
def test_the_interpreter_task_matches_onnxruntime_and_itself(runner: wasm.WasmRunner, name: str) -> None:
    proto = onnx_models.ACCEPTED[name](np.random.default_rng(11))
    graph = import_onnx(proto.SerializeToString())
    x = onnx_models.samples(proto, 7)
    first, second = runner.run(_task(graph.encode(), x)), runner.run(_task(graph.encode(), x))
    assert first.ok, first.message
    expected = onnx_models.onnxruntime_outputs(proto, x)
    got = np.frombuffer(first.output, dtype="<f4").reshape(expected.shape)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert second.output == first.output and first.fuel_used > 0


@pytest.mark.parametrize(("damage", "message"), [
    (lambda data: data[:40], "infer: the input is shorter than its model"),
    (lambda data: b"GAIAONNY" + data[8:], "infer: the input does not start with a GAIA model"),
    (lambda data: data[:-4], "infer: the batch does not match the model's input shape"),
    (lambda data: data[:32 + 28] + b"\xff\xff\xff\x7f" + data[32 + 32:], "infer: a constant lies outside the weights"),
])
def test_a_damaged_task_input_is_refused_by_the_task_with_a_message(runner: wasm.WasmRunner, damage,
                                                                    message: str) -> None:
    proto = onnx_models.mlp_gemm(np.random.default_rng(0))
    good = _task(import_onnx(proto.SerializeToString()).encode(), onnx_models.samples(proto, 2))
    result = runner.run(Task.create(good.module, input=damage(good.input), entry="infer", limits=Limits()))
    assert result.status == Status.INVALID and result.message.endswith(message), result


def test_random_damage_to_a_model_never_escapes_the_sandbox(runner: wasm.WasmRunner) -> None:
    """200 task inputs with bytes of the model changed at random: each ends ok, refused or trapped, no error."""
    proto = onnx_models.cnn_exported(np.random.default_rng(0))
    model = import_onnx(proto.SerializeToString()).encode()
    x = onnx_models.samples(proto, 2)
    rng = np.random.default_rng(2024)
    seen = set()
    for _ in range(200):
        damaged = bytearray(model)
        for at in rng.integers(8, len(model) - 4 * 60, size=int(rng.integers(1, 4))):  # header, values, ops
            damaged[at] = int(rng.integers(0, 256))
        result = runner.run(Task.create(interpreter_module(), input=task_input(bytes(damaged), x), entry="infer",
                                        limits=Limits(fuel=10**9, memory_bytes=64 << 20)))
        assert result.status in (Status.OK, Status.INVALID, Status.TRAP, Status.OUT_OF_MEMORY), result
        seen.add(result.status)
    assert Status.INVALID in seen


def test_fields_of_a_model_set_to_edge_values_are_refused_or_run(runner: wasm.WasmRunner) -> None:
    """400 task inputs with one or two u32 fields of the model's header, value records or op records set to an
    edge value (0, 1, 2^31, 2^32-1, NONE, n_values, 2^28 ...) or nudged by -2..2: each runs or is refused by
    the interpreter's own checks, never trapped in a host call nor out of memory."""
    proto = onnx_models.cnn_exported(np.random.default_rng(0))
    model = import_onnx(proto.SerializeToString()).encode()
    x = onnx_models.samples(proto, 2)
    n_values, n_ops = struct.unpack_from("<2I", model, 12)
    ops_at = 32 + 32 * n_values
    fields = [20, 24, 28, *range(32, ops_at, 4), *range(ops_at, ops_at + 36 * n_ops, 4)]
    edges = [0, 1, 2, 3, 7, 1 << 16, 1 << 28, (1 << 28) + 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF,
             n_values - 1, n_values]
    rng = np.random.default_rng(15)
    seen = set()
    for _ in range(400):
        damaged = bytearray(model)
        for _ in range(int(rng.integers(1, 3))):
            at = int(rng.choice(fields))
            nudged = struct.unpack_from("<I", damaged, at)[0] + int(rng.integers(-2, 3))
            struct.pack_into("<I", damaged, at, (int(rng.choice(edges)) if rng.random() < 0.8 else nudged) % (1 << 32))
        result = runner.run(Task.create(interpreter_module(), input=task_input(bytes(damaged), x), entry="infer",
                                        limits=Limits(fuel=10**9, memory_bytes=64 << 20)))
        assert result.status in (Status.OK, Status.INVALID), result
        seen.add(result.status)
    assert seen == {Status.OK, Status.INVALID}


@pytest.fixture
def cnn_files(tmp_path: Path) -> tuple[onnx.ModelProto, Path, Path]:
    """A CNN exported at batch 1, its .onnx file and 10 samples in an .npy file."""
    proto = onnx_models.cnn(np.random.default_rng(5))
    onnx.save(proto, tmp_path / "cnn.onnx")
    np.save(tmp_path / "x.npy", onnx_models.samples(proto, 10))
    return proto, tmp_path / "cnn.onnx", tmp_path / "x.npy"


def test_model_run_local_splits_the_samples_into_tasks_and_joins_the_outputs(
        capsys: pytest.CaptureFixture[str], gaia_home: Home, tmp_path: Path,
        cnn_files: tuple[onnx.ModelProto, Path, Path]) -> None:
    proto, model_file, samples = cnn_files
    assert gaia(capsys, "model", "import", str(model_file))[0] == 0
    code, out = gaia(capsys, "model", "run", "cnn", "--input", str(samples), "--local", "--batch-size", "4",
                     "--output", str(tmp_path / "y.npy"))
    assert code == 0 and "10 output(s) of shape [5] written to" in out, out
    expected = onnx_models.onnxruntime_outputs(proto, np.load(samples))
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, rtol=1e-5, atol=1e-5)
    code, out = gaia(capsys, "model", "run", "cnn", "--input", str(samples), "--local", "--json")
    summary = json.loads(out)
    assert code == 0 and summary["shape"] == [10, 5] and summary["job"] is None
    np.testing.assert_allclose(np.array(summary["outputs"]), expected, rtol=1e-5, atol=1e-5)
    code, out = gaia(capsys, "model", "run", "cnn", "--input", str(samples), "--local", "--fuel", "1000")
    assert code == 7 and "task 0 of 1 ended out_of_fuel" in one_error(out)


def test_model_run_through_a_devnet_with_redundancy_two(tmp_path: Path,
                                                        cnn_files: tuple[onnx.ModelProto, Path, Path]) -> None:
    proto, model_file, samples = cnn_files
    with running_devnet(tmp_path / "devnet", 2) as homes:
        gaia_process(homes[0], "model", "import", str(model_file), "--name", "digits-cnn")
        proc = gaia_process(homes[0], "model", "run", "digits-cnn", "--input", str(samples), "--batch-size", "3",
                            "--redundancy", "2", "--output", str(tmp_path / "y.json"), "--json", timeout=120)
        summary = json.loads(proc.stdout)
        assert summary["shape"] == [10, 5] and summary["job"] and "4 task(s) submitted" in proc.stderr
        np.testing.assert_allclose(np.array(json.loads((tmp_path / "y.json").read_text())),
                                   onnx_models.onnxruntime_outputs(proto, np.load(samples)), rtol=1e-5, atol=1e-5)
        np.save(tmp_path / "wrong.npy", np.zeros((2, 3), np.float32))
        wrong = gaia_process(homes[0], "model", "run", "digits-cnn", "--input", str(tmp_path / "wrong.npy"),
                             check=False)
        assert wrong.returncode == 6 and "model digits-cnn takes (N, 2, 12, 12)" in wrong.stderr
        jobs = json.loads(gaia_process(homes[0], "task", "list", "--json").stdout)
        assert len(jobs) == 1  # the wrong input submitted nothing
        rows = json.loads(gaia_process(homes[0], "task", "result", summary["job"], "--json").stdout)
        assert len(rows) == 4 and all("output_hex" not in row for row in rows)  # saved, so released
        starved = gaia_process(homes[0], "model", "run", "digits-cnn", "--input", str(samples), "--fuel", "1000",
                               check=False, timeout=120)
        assert starved.returncode == 7 and "task 0 of 1 failed" in starved.stderr, starved.stderr
        job = starved.stderr.split()[1].rstrip(":")
        rows = json.loads(gaia_process(homes[0], "task", "result", job, "--json").stdout)
        assert rows[0]["status"] == "out_of_fuel"  # kept on the node, to look at or retry

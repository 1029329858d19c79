"""``gaia model import|ls|rm``: ONNX files checked and lowered (gaia_core.models), refusals in one line, the store.

The lowered graph is checked against onnxruntime through a numpy evaluation of the format written
here (the WASM interpreter is checked against onnxruntime in test_model_run.py).
"""

from __future__ import annotations

import json
import stat
import tracemalloc
from pathlib import Path

import numpy as np
import onnx
import onnx_models
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from onnx import TensorProto, helper, numpy_helper
from test_bad_input import gaia, one_error

from gaia_core.config import Home
from gaia_core.models import graph as graph_format
from gaia_core.models.graph import Graph, Opcode
from gaia_core.models.onnx_import import ModelError, import_onnx

pytest.importorskip("onnxruntime")


def _windows(x: np.ndarray, k: tuple[int, int], stride: int) -> np.ndarray:
    """(n, c, oh, ow, kh, kw) windows of x (n, c, h, w)."""
    return sliding_window_view(x, k, axis=(2, 3))[:, :, ::stride, ::stride]


def evaluate(graph: Graph, x: np.ndarray) -> np.ndarray:
    """The graph's output for samples ``x``, computed with numpy in float64 (the format's meaning)."""
    n = len(x)
    data: dict[int, np.ndarray] = {graph.input: x.astype(np.float64)}
    for op in graph.ops:
        a = data[op.inputs[0]]
        const = [graph.values[i].data for i in op.inputs[1:]]
        p = op.params
        if op.opcode == Opcode.GEMM:
            w = const[0].T if p[0] else const[0]
            y = a.reshape(n * p[1], p[2]) @ w + (const[1] if len(const) > 1 else 0)
        elif op.opcode == Opcode.CONV:
            w = const[0]
            padded = np.pad(a, ((0, 0), (0, 0), (p[1], p[1]), (p[1], p[1])))
            y = np.einsum("ncyxij,ocij->noyx", _windows(padded, w.shape[2:], p[0]), w)
            y = y + (const[1].reshape(1, -1, 1, 1) if len(const) > 1 else 0)
        elif op.opcode in (Opcode.MAXPOOL, Opcode.AVGPOOL):
            win = _windows(a, (p[0], p[0]), p[1])
            y = win.max(axis=(4, 5)) if op.opcode == Opcode.MAXPOOL else win.mean(axis=(4, 5))
        elif op.opcode == Opcode.RELU:
            y = np.maximum(a, 0)
        elif op.opcode == Opcode.SIGMOID:
            y = 1 / (1 + np.exp(-a))
        elif op.opcode == Opcode.TANH:
            y = np.tanh(a)
        elif op.opcode == Opcode.SOFTMAX:
            rows = a.reshape(-1, p[0])
            e = np.exp(rows - rows.max(axis=1, keepdims=True))
            y = e / e.sum(axis=1, keepdims=True)
        elif op.opcode in (Opcode.ADD, Opcode.MUL):
            b = const[0] if const[0] is not None else data[op.inputs[1]]
            b = b.reshape(a.shape[1:]) if const[0] is not None else b
            y = a + b if op.opcode == Opcode.ADD else a * b
        else:
            y = a
        data[op.out] = np.asarray(y).reshape((n, *graph.values[op.out].dims))
    return data[graph.output]


def _graph_of(proto: onnx.ModelProto) -> Graph:
    return import_onnx(proto.SerializeToString(), source="test.onnx")


@pytest.mark.parametrize("name", sorted(onnx_models.ACCEPTED))
def test_the_lowered_graph_computes_what_onnxruntime_does(name: str) -> None:
    proto = onnx_models.ACCEPTED[name](np.random.default_rng(7))
    graph = _graph_of(proto)
    x = onnx_models.samples(proto, 9)
    np.testing.assert_allclose(evaluate(graph, x), onnx_models.onnxruntime_outputs(proto, x), rtol=1e-5, atol=1e-5)
    data = graph.encode()
    assert graph_format.decode(data).encode() == data  # the format round-trips byte for byte
    assert _graph_of(proto).encode() == data  # and the same file gives the same bytes (the same model id)


def test_constant_only_nodes_are_folded_at_import() -> None:
    graph = _graph_of(onnx_models.cnn_exported(np.random.default_rng(0)))
    assert [op.opcode.name for op in graph.ops] == ["CONV", "MUL", "ADD", "RELU", "ADD", "AVGPOOL", "VIEW", "GEMM"]
    assert graph.input_dims == (1, 6, 6) and graph.output_dims == (4,)


# ---------------------------------------------------------------- refusals, one line each


def _conv_model(**attrs: object) -> onnx.ModelProto:
    w = numpy_helper.from_array(np.ones((2, 2, 3, 3), np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv0", **attrs)
    return onnx_models.model([node], {"x": [1, 2, 8, 8]}, {"y": [1, 2, "h", "w"]}, [w])


def _unary(op: str, out: list[int | str] | None = None, **attrs: object) -> onnx.ModelProto:
    return onnx_models.model([helper.make_node(op, ["x"], ["y"], name="n0", **attrs)], {"x": ["N", 4, 3]},
                             {"y": out or ["N", 4, 3]})


REFUSED = [
    (lambda: _unary("Exp"), "test.onnx (node 'n0', Exp): operator Exp is not supported"),
    (lambda: _conv_model(dilations=[2, 2]), "(node 'conv0', Conv): dilations [2, 2] are not supported"),
    (lambda: _conv_model(pads=[1, 0, 1, 0]), "(node 'conv0', Conv): pads [1, 0, 1, 0] are not supported"),
    (lambda: _conv_model(strides=[1, 2]), "(node 'conv0', Conv): strides [1, 2] are not supported"),
    (lambda: onnx_models.model(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="g", group=2)], {"x": [1, 2, 5, 5]}, {"y": [1, 2, 3, 3]},
        [numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "w")]),
     "(node 'g', Conv): grouped convolution (group=2) is not supported"),
    (lambda: _unary("Softmax", axis=0), "Softmax over axis 0 mixes the samples of the batch"),
    (lambda: _unary("Softmax", axis=1), "Softmax over axis 1 is not supported, only over the last axis (2)"),
    (lambda: _unary("Transpose", ["N", 3, 4], perm=[0, 2, 1]),
     "Transpose of an activation is not supported (only of constants)"),
    (lambda: onnx_models.model([helper.make_node("Relu", ["x"], ["y"])], {"x": ["N", "features"]},
                               {"y": ["N", "features"]}),
     "dimension 1 of input 'x' is dynamic (features); only the batch dimension may be"),
    (lambda: onnx_models.model([helper.make_node("Add", ["x", "z"], ["y"])], {"x": ["N", 3], "z": ["N", 3]},
                               {"y": ["N", 3]}), "has 2 input(s) and 1 output(s); GAIA runs models with one of each"),
    (lambda: onnx_models.model([helper.make_node("MatMul", ["w", "x"], ["y"], name="mm")], {"x": [1, 3]},
                               {"y": [2, 3]}, [numpy_helper.from_array(np.ones((2, 1), np.float32), "w")]),
     "(node 'mm', MatMul)"),
    (lambda: onnx_models.model([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], pads=[1, 1, 1, 1])],
                               {"x": [1, 1, 4, 4]}, {"y": [1, 1, 5, 5]}), "padded pooling is not supported"),
]


@pytest.mark.parametrize(("build", "message"), REFUSED, ids=[m[:40] for _, m in REFUSED])
def test_what_gaia_cannot_run_is_refused_naming_the_node(build, message: str) -> None:
    with pytest.raises(ModelError) as caught:
        _graph_of(build())
    assert message in str(caught.value) and "\n" not in caught.value.message


def test_bad_weights_and_non_onnx_files_are_refused() -> None:
    with pytest.raises(ModelError, match="is not an ONNX model"):
        import_onnx(b"\x89PNG not a model at all", source="cat.png")
    proto = onnx_models.mlp_gemm(np.random.default_rng(0))
    proto.graph.initializer[0].float_data[:] = []
    proto.graph.initializer[0].raw_data = np.full((32, 12), np.nan, np.float32).tobytes()
    with pytest.raises(ModelError, match="a weight is NaN or infinite"):
        _graph_of(proto)


def test_a_tensor_with_external_data_is_refused_and_the_file_it_names_never_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # onnx reads a relative location from the working directory
    (tmp_path / "secret.bin").write_bytes(np.arange(16, dtype=np.float32).tobytes())
    weights = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4, 4], data_location=TensorProto.EXTERNAL)
    weights.external_data.add(key="location", value="secret.bin")
    as_initializer = onnx_models.model([helper.make_node("MatMul", ["x", "w"], ["y"])], {"x": ["N", 4]},
                                       {"y": ["N", 4]}, [weights])
    as_constant = onnx_models.model([helper.make_node("Constant", [], ["w"], value=weights),
                                     helper.make_node("MatMul", ["x", "w"], ["y"])], {"x": ["N", 4]}, {"y": ["N", 4]})
    for proto in (as_initializer, as_constant):
        with pytest.raises(ModelError, match="tensor 'w' keeps its data in an external file"):
            _graph_of(proto)


def test_a_constant_too_large_is_refused_before_it_is_evaluated() -> None:
    column = numpy_helper.from_array(np.ones((1 << 13, 1), np.float32), "a")
    row = numpy_helper.from_array(np.ones((1, 1 << 14), np.float32), "b")
    outer = onnx_models.model([helper.make_node("Add", ["a", "b"], ["c"], name="outer"),
                               helper.make_node("MatMul", ["x", "c"], ["y"])], {"x": ["N", 1 << 13]},
                              {"y": ["N", 1 << 14]}, [column, row])
    tracemalloc.start()
    try:
        with pytest.raises(ModelError, match=r"\(node 'outer', Add\): a constant of 134,217,728 elements is too"):
            _graph_of(outer)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20  # the 512 MiB sum was never made


def test_huge_declared_shapes_are_refused_before_anything_that_size_is_made() -> None:
    huge = [1, 4, 1 << 15, 1 << 15]  # 16 GiB per sample, in a file of a few hundred bytes
    one = numpy_helper.from_array(np.ones((1,), np.float32), "c")
    shifted = onnx_models.model([helper.make_node("Add", ["x", "c"], ["y"])], {"x": huge}, {"y": huge}, [one])
    tracemalloc.start()
    try:
        with pytest.raises(ModelError, match=r"'x' has shape \[1, 4, 32768, 32768\]: 4,294,967,296 values per "
                                             r"sample, the interpreter holds at most 268,435,456"):
            _graph_of(shifted)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20
    # within the interpreter's limit, a constant is still not repeated over 2^27 values per sample
    large = [1, 2, 1 << 13, 1 << 13]
    shifted = onnx_models.model([helper.make_node("Add", ["x", "c"], ["y"])], {"x": large}, {"y": large}, [one])
    with pytest.raises(ModelError, match="would be repeated over a sample of 134,217,728 values"):
        _graph_of(shifted)


def test_a_windowed_op_too_slow_to_evaluate_at_import_is_refused() -> None:
    # 1 MiB of constants, 825 million multiply-adds in onnx.reference's Conv (half a minute here)
    image = numpy_helper.from_array(np.ones((1, 1, 512, 512), np.float32), "image")
    kernel = numpy_helper.from_array(np.ones((1, 1, 64, 64), np.float32), "kernel")
    folded = onnx_models.model([helper.make_node("Conv", ["image", "kernel"], ["c"], name="slow"),
                                helper.make_node("Reshape", ["c", "shape"], ["flat"]),
                                helper.make_node("MatMul", ["x", "flat"], ["y"])], {"x": ["N", 449 * 449]},
                               {"y": ["N", 1]},
                               [image, kernel, numpy_helper.from_array(np.array([449 * 449, 1]), "shape")])
    with pytest.raises(ModelError, match=r"\(node 'slow', Conv\): evaluating it on its constant inputs takes "
                                         r"825,757,696 multiply-adds"):
        _graph_of(folded)


def test_a_model_longer_than_the_interpreter_runs_is_refused_at_import() -> None:
    nodes = [helper.make_node("Relu", [f"h{i}" if i else "x"], [f"h{i + 1}" if i < 4099 else "y"]) for i in range(4100)]
    chain = onnx_models.model(nodes, {"x": ["N", 4]}, {"y": ["N", 4]})
    with pytest.raises(ModelError, match="lowers to 4,100 ops over 4,101 values; the interpreter runs at most 4,096"):
        _graph_of(chain)


def test_an_opset_onnx_does_not_know_is_refused() -> None:
    proto = _unary("Relu")
    proto.opset_import[0].version = onnx.defs.onnx_opset_version() + 1
    with pytest.raises(ModelError, match=r"uses ONNX opset \d+; this onnx package knows opsets 1 to"):
        _graph_of(proto)


# ---------------------------------------------------------------- the commands and the store


@pytest.fixture
def onnx_file(tmp_path: Path) -> Path:
    path = tmp_path / "digits.onnx"
    onnx.save(onnx_models.mlp_gemm(np.random.default_rng(3)), path)
    return path


def test_import_keeps_one_private_copy_per_content_and_ls_rm_follow_names(capsys: pytest.CaptureFixture[str],
                                                                          gaia_home: Home, onnx_file: Path) -> None:
    code, out = gaia(capsys, "model", "import", str(onnx_file), "--json")
    assert code == 0, out
    model = json.loads(out)
    assert (model["name"], model["input_dims"], model["output_dims"]) == ("digits", [12], [10])
    assert gaia(capsys, "model", "import", str(onnx_file), "--name", "copy")[0] == 0
    root = gaia_home.root / "models"
    assert sorted(p.name for p in root.iterdir()) == sorted([f"{model['id']}.gaiam", "copy.json", "digits.json"])
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in root.iterdir())
    listed = json.loads(gaia(capsys, "model", "ls", "--json")[1])
    assert [(m["name"], m["id"]) for m in listed] == [("copy", model["id"]), ("digits", model["id"])]
    code, out = gaia(capsys, "model", "rm", model["id"][:8])
    assert code == 2 and "matches 2 models: copy, digits" in one_error(out)
    assert gaia(capsys, "model", "rm", "copy")[0] == 0
    assert (root / f"{model['id']}.gaiam").exists()  # still named "digits"
    assert gaia(capsys, "model", "rm", "digits")[0] == 0
    assert list(root.iterdir()) == []
    assert "no models" in gaia(capsys, "model", "ls")[1]


def test_importing_under_a_taken_name_replaces_its_model(capsys: pytest.CaptureFixture[str], gaia_home: Home,
                                                         onnx_file: Path, tmp_path: Path) -> None:
    old = json.loads(gaia(capsys, "model", "import", str(onnx_file), "--json")[1])
    onnx.save(onnx_models.cnn(np.random.default_rng(0)), tmp_path / "cnn.onnx")
    new = json.loads(gaia(capsys, "model", "import", str(tmp_path / "cnn.onnx"), "--name", "digits", "--json")[1])
    assert new["id"] != old["id"] and new["input_dims"] == [2, 12, 12]
    assert sorted(p.name for p in (gaia_home.root / "models").iterdir()) == [f"{new['id']}.gaiam", "digits.json"]


@pytest.mark.parametrize(("content", "message"), [
    (b"not a model", "Error: bad.onnx is not an ONNX model"),
    (None, "Error: bad.onnx (node 'n0', Exp): operator Exp is not supported"),
])
def test_import_of_a_bad_file_is_one_line_and_exit_6(capsys: pytest.CaptureFixture[str], gaia_home: Home,
                                                    tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(content if content is not None else _unary("Exp").SerializeToString())
    code, out = gaia(capsys, "model", "import", str(path))
    assert code == 6 and one_error(out).startswith(message)
    assert not (gaia_home.root / "models").exists() or not list((gaia_home.root / "models").iterdir())


@pytest.mark.parametrize(("samples", "message"), [
    (np.zeros((3, 7), np.float32), "has shape [3, 7]; model digits takes (N, 12)"),
    (np.zeros((0, 12), np.float32), "has shape [0, 12]; model digits takes (N, 12)"),
    (np.array(["a"] * 12), "holds <U1, not numbers"),
    (np.full((2, 12), np.inf, np.float32), "holds NaN or infinite values"),
    (None, "is not a NumPy .npy array"),
    ("npz", "is an archive of arrays, not one .npy array"),
])
def test_run_refuses_bad_samples_before_sending_anything(capsys: pytest.CaptureFixture[str], gaia_home: Home,
                                                         onnx_file: Path, tmp_path: Path,
                                                         samples: np.ndarray | str | None, message: str) -> None:
    assert gaia(capsys, "model", "import", str(onnx_file))[0] == 0
    path = tmp_path / "x.npy"
    if samples is None:
        path.write_text("1,2,3\n")
    elif isinstance(samples, str):
        with path.open("wb") as out:
            np.savez(out, a=np.zeros((1, 12)))
    else:
        np.save(path, samples)
    code, out = gaia(capsys, "model", "run", "digits", "--input", str(path))
    assert code == 6 and message in one_error(out), out


def test_run_of_an_unknown_model_or_bad_output_name_is_a_usage_error(capsys: pytest.CaptureFixture[str],
                                                                     gaia_home: Home, tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((1, 12), np.float32))
    code, out = gaia(capsys, "model", "run", "nope", "--input", str(tmp_path / "x.npy"))
    assert code == 2 and one_error(out).startswith("Error: no model 'nope'")
    code, out = gaia(capsys, "model", "run", "nope", "--input", str(tmp_path / "x.npy"), "--output", "o.csv")
    assert code == 2 and "must end in .npy or .json" in one_error(out)
    code, out = gaia(capsys, "model", "run", "nope", "--input", str(tmp_path / "x.npy"), "--output",
                     str(tmp_path / "missing" / "y.npy"))
    assert code == 2 and "no directory" in one_error(out)  # found out before the job runs, not after
    code, out = gaia(capsys, "model", "run", "nope", "--input", str(tmp_path / "absent.npy"))
    assert code == 2 and "samples file" in one_error(out) and "does not exist" in out
    code, out = gaia(capsys, "model", "import", str(tmp_path / "absent.onnx"))
    assert code == 2 and "ONNX file" in one_error(out) and "does not exist" in out


def test_a_corrupt_stored_model_is_found_out(capsys: pytest.CaptureFixture[str], gaia_home: Home, onnx_file: Path,
                                             tmp_path: Path) -> None:
    model = json.loads(gaia(capsys, "model", "import", str(onnx_file), "--json")[1])
    stored = gaia_home.root / "models" / f"{model['id']}.gaiam"
    stored.write_bytes(stored.read_bytes()[:-4] + b"\0\0\0\0")
    np.save(tmp_path / "x.npy", np.zeros((1, 12), np.float32))
    code, out = gaia(capsys, "model", "run", "digits", "--input", str(tmp_path / "x.npy"))
    assert code == 2 and "is corrupt" in one_error(out) and "gaia model rm" in out
    stored.unlink()  # gone: one line, not a traceback
    code, out = gaia(capsys, "model", "run", "digits", "--input", str(tmp_path / "x.npy"))
    assert code == 2 and "cannot be read" in one_error(out) and "No such file" in out and "gaia model rm" in out


def test_a_description_naming_files_outside_the_store_is_ignored(capsys: pytest.CaptureFixture[str],
                                                                   gaia_home: Home, onnx_file: Path) -> None:
    gaia(capsys, "model", "import", str(onnx_file), "--name", "good")
    models = gaia_home.root / "models"
    record = json.loads((models / "good.json").read_text())
    (models / "renamed.json").write_text(json.dumps(record))  # its name says good.json
    (models / "evil.json").write_text(json.dumps({**record, "name": "evil", "id": "../../outside"}))
    code, out = gaia(capsys, "model", "ls", "--json")
    assert code == 0 and [m["name"] for m in json.loads(out)] == ["good"]


def test_an_invalid_name_is_refused(capsys: pytest.CaptureFixture[str], gaia_home: Home, onnx_file: Path) -> None:
    code, out = gaia(capsys, "model", "import", str(onnx_file), "--name", "../up")
    assert code == 2 and "model name '../up' is not valid" in one_error(out)


def test_dims_in_a_refused_model_come_from_onnx_shape_inference() -> None:
    proto = onnx_models.model([helper.make_node("Reshape", ["x", "s"], ["y"], name="r")], {"x": [1, 4]},
                              {"y": [4]}, [numpy_helper.from_array(np.array([4], np.int64), "s")])
    proto.graph.initializer[0].data_type = TensorProto.INT64
    with pytest.raises(ModelError, match=r"'y' has shape \[4\]: it mixes the samples of the batch"):
        _graph_of(proto)

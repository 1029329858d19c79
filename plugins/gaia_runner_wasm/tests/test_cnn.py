"""The CNN task module (cnn.wasm on the tensor host API) against a numpy reference, and federated training."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from gaia_core import demo, plugins
from gaia_core.config import Config, Home
from gaia_core.errors import ValidationError
from gaia_core.identity import Identity
from gaia_core.model import Limits, Status, Task
from gaia_core.roles import NodeContext
from gaia_runner_wasm import WasmRunner, cnn, workloads as w


def _runner(root: Path) -> WasmRunner:
    root.mkdir()
    return WasmRunner(NodeContext(config=Config(), home=Home(root), identity=Identity.generate(),
                                  task_kinds=frozenset({"wasm"})))


@pytest.fixture(scope="module")
def runners(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WasmRunner, WasmRunner]]:
    """Two independent runners (two 'nodes'), shared by the module's tests."""
    root = tmp_path_factory.mktemp("cnn")
    pair = (_runner(root / "a"), _runner(root / "b"))
    yield pair
    for runner in pair:
        runner.close()


# ----------------------------------------------------------------------------- the numpy reference


def _parts(model: cnn.Cnn) -> tuple:
    p = np.asarray(model.params, dtype=np.float32)
    kk, f, feat = model.kernel ** 2, model.filters, model.filters * (model.height // 2) * (model.width // 2)
    wc, bc = p[:f * kk].reshape(f, kk), p[f * kk:f * kk + f]
    rest = p[f * kk + f:]
    return wc, bc, rest[:feat * model.classes].reshape(feat, model.classes), rest[feat * model.classes:]


def _im2col(image, k: int):
    """(k*k) x (h*w) patches of one h x w image, zero padding k//2 (float64)."""
    h, wd = image.shape
    padded = np.pad(image, k // 2)
    return np.stack([padded[i:i + h, j:j + wd].reshape(-1) for i in range(k) for j in range(k)])


def reference_forward(model: cnn.Cnn, x) -> tuple:
    """conv -> ReLU -> 2x2 max-pool -> dense -> softmax in float64; returns (cols, conv, pooled, probs)."""
    wc, bc, wd, bd = (a.astype(np.float64) for a in _parts(model))
    images = np.asarray(x, dtype=np.float64).reshape(-1, model.height, model.width)
    cols = np.stack([_im2col(image, model.kernel) for image in images])
    conv = np.einsum("fk,bkl->bfl", wc, cols) + bc[None, :, None]
    act = np.maximum(conv, 0.0).reshape(len(images), model.filters, model.height // 2, 2, model.width // 2, 2)
    pooled = act.max(axis=(3, 5)).reshape(len(images), -1)
    logits = pooled @ wd + bd
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return cols, conv, pooled, e / e.sum(axis=1, keepdims=True)


def reference_sgd_step(model: cnn.Cnn, x, y, lr: float):
    """The parameters after one full-batch SGD step on the mean cross-entropy, and the loss (float64)."""
    wc, bc, wd, bd = (a.astype(np.float64) for a in _parts(model))
    cols, conv, pooled, probs = reference_forward(model, x)
    n, f, half_h, half_w = len(y), model.filters, model.height // 2, model.width // 2
    loss = -np.log(probs[np.arange(n), y]).mean()
    d = probs.copy()
    d[np.arange(n), y] -= 1.0
    g_wd, g_bd = pooled.T @ d, d.sum(axis=0)
    d_pooled = (d @ wd.T).reshape(n, f, half_h, 1, half_w, 1)
    act = np.maximum(conv, 0.0).reshape(n, f, half_h, 2, half_w, 2)
    chosen = act == act.max(axis=(3, 5), keepdims=True)  # random weights: no ties in a window
    d_conv = (chosen * d_pooled).reshape(n, f, -1) * (conv > 0)
    g_wc, g_bc = np.einsum("bfl,bkl->fk", d_conv, cols), d_conv.sum(axis=(0, 2))
    grads = np.concatenate([g_wc.ravel(), g_bc, g_wd.ravel(), g_bd])
    params = np.concatenate([wc.ravel(), bc, wd.ravel(), bd])
    return params - lr / n * grads, loss


def _digits(count: int) -> w.Dataset:
    return w.load_digits().take(range(count))


# ----------------------------------------------------------------------------- the module against the reference


def test_forward_pass_matches_the_numpy_reference(runners) -> None:
    model = cnn.Cnn.init(8, 8, 6, 10, seed=5)
    data = _digits(40)
    result = runners[0].run(cnn.infer_task(model, data.x))
    assert result.status is Status.OK, result.message
    got = np.frombuffer(result.output, dtype="<f4").reshape(40, 10)
    np.testing.assert_allclose(got, reference_forward(model, data.x)[3], rtol=1e-4, atol=1e-6)


def test_one_training_step_matches_the_numpy_reference(runners) -> None:
    """One epoch with the batch = the whole shard is one SGD step: gradients of every layer checked."""
    model = cnn.Cnn.init(8, 8, 4, 10, seed=2)
    data = _digits(24)
    result = runners[0].run(cnn.train_task(model, data.x, data.y, epochs=1, batch_size=24, learning_rate=0.5))
    assert result.status is Status.OK, result.message
    trained, loss = cnn.decode_train(result.output, model)
    expected, expected_loss = reference_sgd_step(model, data.x, np.asarray(data.y), 0.5)
    np.testing.assert_allclose(np.asarray(trained.params), expected, rtol=1e-4, atol=1e-5)
    assert loss == pytest.approx(expected_loss, rel=1e-4)


def test_two_nodes_train_to_identical_bytes(runners) -> None:
    data = _digits(100)
    task = cnn.train_task(cnn.Cnn.init(8, 8, 8, 10, seed=1), data.x, data.y, epochs=2, seed=9)
    first, second = runners[0].run(task), runners[1].run(task)
    assert first.status is Status.OK and second.status is Status.OK, (first.message, second.message)
    assert first.output == second.output and first.fuel_used == second.fuel_used


def test_federated_rounds_learn_the_digits(runners) -> None:
    """The digits-cnn workload for two rounds of federated averaging over three shards, in process."""
    workload = cnn.DigitsCnn()
    shards, held_out = workload.partition(3, 1, seed=0)
    model = workload.init_model(16, seed=0)
    accuracies = []
    for number in (1, 2):
        tasks = [workload.train_task(model, s, epochs=3, seed=number, limits=Limits(), submitter="", job="cnn")
                 for s in shards]
        results = runners[0].run_many(tasks)
        assert all(r.status is Status.OK for r in results), [r.message for r in results]
        trained = [workload.read_trained(r.output, model) for r in results]
        model = workload.average([m for m, _ in trained], [len(s) for s in shards])
        scored = runners[1].run(workload.infer_task(model, held_out[0], limits=Limits(), submitter="", job="cnn"))
        assert scored.status is Status.OK, scored.message
        accuracies.append(workload.correct(scored.output, model, held_out[0]) / len(held_out[0]))
    assert accuracies[1] >= 0.93, accuracies
    assert all(0.0 < loss < 1.0 for _, loss in trained)


def test_the_plugin_offers_the_workload_gaia_demo_model_cnn_trains() -> None:
    workload = demo.find_workload(plugins.load(["gaia-runner-wasm"]).hook, "digits-cnn")
    assert isinstance(workload, cnn.DigitsCnn)
    assert isinstance(workload.init_model(4, seed=0), cnn.Cnn)


# ----------------------------------------------------------------------------- bad input


def test_bad_models_and_inputs_are_refused_with_a_reason(runners) -> None:
    model = cnn.Cnn.init(8, 8, 2, 10)
    wrong_kernel = struct.pack("<5I", 8, 8, 2, 4, 10) + model.header()[20:]
    bad = [
        (cnn.infer_task(model, _digits(1).x).input[:-4], "infer", "does not match batch"),
        (wrong_kernel + struct.pack("<I", 0), "infer", "bad model header"),
        (w.encode_train(model, _digits(2).x, [1, 2], epochs=1, batch_size=0, learning_rate=0.1), "train",
         "batch size must be in 1..256"),
        (w.encode_train(cnn.Cnn.init(8, 8, 2, 3), _digits(1).x, [2], epochs=1, batch_size=1, learning_rate=0.0),
         "train", "learning rate"),
    ]
    for data, entry, reason in bad:
        result = runners[0].run(Task.create(w.module_bytes("cnn"), entry=entry, input=data))
        assert result.status is Status.INVALID and reason in result.message, (entry, reason, result.message)


def test_shape_mismatches_are_caught_before_sending() -> None:
    model = cnn.Cnn.init(8, 8, 2, 10)
    with pytest.raises(ValidationError, match="needs"):
        cnn.Cnn(8, 8, 3, 3, 10, model.params).header()
    with pytest.raises(ValidationError, match="expected"):
        cnn.decode_train(b"\0" * 8, model)
    with pytest.raises(ValidationError, match="not a multiple"):
        cnn.infer_task(model, [0.0] * 65)

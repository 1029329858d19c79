"""The shipped kernels through the runner: matmul, MLP inference, SGD training on real data."""

from __future__ import annotations

import array
import random

import pytest

from gaia_core.errors import ValidationError
from gaia_core.model import Status, Task
from gaia_runner_wasm import workloads as w


def reference_matmul(a, b, m, k, n):
    return [sum(a[i * k + p] * b[p * n + j] for p in range(k)) for i in range(m) for j in range(n)]


@pytest.mark.parametrize("m, k, n", [(1, 1, 1), (3, 5, 7), (8, 16, 33)])
def test_matmul_matches_reference(runner, m: int, k: int, n: int) -> None:
    rng = random.Random(m * k * n)
    a = [rng.uniform(-1, 1) for _ in range(m * k)]
    b = [rng.uniform(-1, 1) for _ in range(k * n)]
    result = runner.run(w.matmul_task(a, b, m, k, n))
    assert result.status is Status.OK, result.message
    got = w.decode_matrix(result.output)
    assert got.tolist() == pytest.approx(reference_matmul(w.f32(a), w.f32(b), m, k, n), rel=1e-4, abs=1e-5)
    assert result.fuel_used > 0 and result.cpu_s >= 0


def test_matmul_shape_mismatch_is_refused_before_sending() -> None:
    with pytest.raises(ValidationError):
        w.encode_matmul([1.0], [1.0, 2.0], 1, 1, 1)


def test_wasi_command_runs(runner) -> None:
    result = runner.run(Task.create(w.module_bytes("upper"), entry="_start", input=b"hello, gaia"))
    assert result.status is Status.OK, result.message
    assert result.output == b"HELLO, GAIA"


def test_federated_sgd_reaches_90_percent_on_held_out_digits(runner) -> None:
    """Two shards trained in WASM tasks each round, averaged (FedAvg), tested on unseen digits."""
    train, test = w.load_digits().split(test_fraction=0.2, seed=0)
    assert len(train) + len(test) == 1797
    model = w.Mlp.init(w.DIGITS_FEATURES, 32, w.DIGITS_CLASSES, seed=0)
    shards = train.shards(2)
    for round_ in range(3):
        tasks = [w.train_task(model, s.x, s.y, epochs=3, batch_size=16, learning_rate=0.1, seed=round_ + 1)
                 for s in shards]
        results = runner.run_many(tasks)
        assert all(r.status is Status.OK for r in results), [r.message for r in results]
        trained = [w.decode_train(r.output, model) for r in results]
        model = w.average([m for m, _ in trained], [len(s) for s in shards])
    result = runner.run(w.infer_task(model, test.x))
    assert result.status is Status.OK
    acc = w.accuracy(w.predictions(result.output, w.DIGITS_CLASSES), test.y)
    assert acc >= 0.90, f"held-out accuracy {acc:.3f}"


def test_two_runs_give_identical_bytes(runner, make_runner) -> None:
    """Determinism: the same task on two independent runners (two 'nodes') gives the same output."""
    data = w.load_digits().take(range(200))
    task = w.train_task(w.Mlp.init(64, 16, 10, seed=3), data.x, data.y, epochs=2, seed=7)
    other = make_runner()
    first, second = runner.run(task), other.run(task)
    assert first.status is Status.OK and second.status is Status.OK
    assert first.output_id == second.output_id and first.output == second.output
    assert first.fuel_used == second.fuel_used


def test_nan_results_are_canonical(runner) -> None:
    """NaNs from arithmetic come out with the canonical bit pattern on every node."""
    nan_inputs = array.array("f", [float("inf"), float("-inf"), 0.0, float("nan")])
    result = runner.run(w.matmul_task(nan_inputs, [0.0, 1.0, -1.0, 2.0], 1, 4, 1))
    assert result.status is Status.OK
    assert result.output == bytes.fromhex("0000c07f")


def test_train_refuses_bad_labels_before_sending() -> None:
    with pytest.raises(ValidationError):
        w.encode_train(w.Mlp.init(2, 2, 2), [0.0, 0.0], [5], epochs=1, batch_size=1, learning_rate=0.1)


def test_dataset_split_and_shards_are_reproducible() -> None:
    data = w.load_digits()
    a, b = data.split(seed=4), data.split(seed=4)
    assert a[0].y == b[0].y and len(a[1]) == 359
    assert sum(len(s) for s in a[0].shards(3)) == len(a[0])

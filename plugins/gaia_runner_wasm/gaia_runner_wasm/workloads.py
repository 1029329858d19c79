"""Build tasks for the shipped WebAssembly kernels, and read their outputs.

Modules (in ``gaia_runner_wasm/modules``, rebuilt by ``make wasm``):

=========  ==================  =====================================================
module     entries             what it computes
=========  ==================  =====================================================
matmul     ``matmul``          C = A·B, f32, SIMD128 — the compute benchmark kernel
mlp        ``infer``/``train``  batch forward pass / minibatch SGD of a 2-layer MLP
cnn        ``infer``/``train``  the same for a conv-ReLU-pool-dense CNN (tensor host API; :mod:`.cnn`)
upper      ``_start``          a WASI command: stdin upper-cased to stdout
echo       ``echo``            returns its input (hand-written WAT, for tests)
=========  ==================  =====================================================

Numbers travel as little-endian f32/u32 (layouts in docs/task-abi.md); vectors here are
:class:`array.array` (``'f'`` and ``'I'``) so no third-party library is needed. The 8×8 digits
dataset (UCI, CC BY 4.0; see ``data/ATTRIBUTION.md``) is shipped for the training workload.
"""

from __future__ import annotations

import array
import csv
import functools
import gzip
import io
import math
import random
import struct
import sys
from collections.abc import Sequence
from importlib import resources
from typing import Any, Protocol

from attrs import frozen

from gaia_core.plugin_api import Limits, Task, ValidationError

MODULES = ("matmul", "mlp", "cnn", "upper", "echo")
DIGITS_FEATURES = 64
DIGITS_CLASSES = 10


@functools.cache
def module_bytes(name: str) -> bytes:
    """The bytes of a shipped module (one of :data:`MODULES`)."""
    if name not in MODULES:
        raise ValidationError(f"no shipped module {name!r}", hint=f"choose one of {', '.join(MODULES)}")
    return resources.files("gaia_runner_wasm").joinpath("modules", f"{name}.wasm").read_bytes()


def _le(values: array.array) -> bytes:
    if sys.byteorder != "little":
        values = array.array(values.typecode, values)
        values.byteswap()
    return values.tobytes()


def _from_le(typecode: str, data: bytes) -> array.array:
    values = array.array(typecode)
    values.frombytes(data)
    if sys.byteorder != "little":
        values.byteswap()
    return values


def f32(values: Sequence[float]) -> array.array:
    """``values`` as an ``array('f')`` (no copy when it already is one)."""
    return values if isinstance(values, array.array) and values.typecode == "f" else array.array("f", values)


def _task(module: str, entry: str, data: bytes, limits: Limits | None, **kwargs: Any) -> Task:
    return Task.create(module_bytes(module), entry=entry, input=data, limits=limits or Limits(), **kwargs)


# ----------------------------------------------------------------------------- matmul


def encode_matmul(a: Sequence[float], b: Sequence[float], m: int, k: int, n: int) -> bytes:
    """The input of ``matmul``: header (M, K, N) then A[M×K] and B[K×N], row-major."""
    if len(a) != m * k or len(b) != k * n:
        raise ValidationError(f"matmul: A has {len(a)} values and B {len(b)}; expected {m * k} and {k * n}")
    return struct.pack("<3I", m, k, n) + _le(f32(a)) + _le(f32(b))


def decode_matrix(output: bytes) -> array.array:
    """The f32 values of a ``matmul`` output (C, row-major)."""
    return _from_le("f", output)


def matmul_task(a: Sequence[float], b: Sequence[float], m: int, k: int, n: int,
                limits: Limits | None = None, **kwargs: Any) -> Task:
    """A task computing A·B with the shipped SIMD kernel."""
    return _task("matmul", "matmul", encode_matmul(a, b, m, k, n), limits, **kwargs)


# ----------------------------------------------------------------------------- MLP


class Classifier(Protocol):
    """A model the ``infer``/``train`` entries take: ``n_in`` features in, ``n_out`` class probabilities out."""

    @property
    def n_in(self) -> int:
        """Features per sample."""
        ...

    @property
    def n_out(self) -> int:
        """Classes."""
        ...

    def header(self) -> bytes:
        """The model header and parameters, as the module's entries expect them."""
        ...


@frozen
class Mlp:
    """A 2-layer classifier: ReLU hidden layer, softmax output; ``params`` = W1, b1, W2, b2."""

    n_in: int
    n_hidden: int
    n_out: int
    params: array.array

    @staticmethod
    def count(n_in: int, n_hidden: int, n_out: int) -> int:
        """How many parameters a model of this shape has."""
        return n_in * n_hidden + n_hidden + n_hidden * n_out + n_out

    @classmethod
    def init(cls, n_in: int, n_hidden: int, n_out: int, seed: int = 0) -> Mlp:
        """He-initialised weights and zero biases, reproducible from ``seed``."""
        rng = random.Random(seed)
        w1 = [rng.gauss(0.0, math.sqrt(2.0 / n_in)) for _ in range(n_in * n_hidden)]
        w2 = [rng.gauss(0.0, math.sqrt(2.0 / n_hidden)) for _ in range(n_hidden * n_out)]
        return cls(n_in, n_hidden, n_out, array.array("f", w1 + [0.0] * n_hidden + w2 + [0.0] * n_out))

    def header(self) -> bytes:
        """The model header and parameters, as both MLP entries expect them."""
        if len(self.params) != self.count(self.n_in, self.n_hidden, self.n_out):
            raise ValidationError(f"model has {len(self.params)} parameters; its shape needs "
                                  f"{self.count(self.n_in, self.n_hidden, self.n_out)}")
        return struct.pack("<3I", self.n_in, self.n_hidden, self.n_out) + _le(self.params)


def encode_infer(model: Classifier, x: Sequence[float]) -> bytes:
    """The input of ``infer``: model, batch size, then X[batch×n_in]."""
    batch, rest = divmod(len(x), model.n_in)
    if rest:
        raise ValidationError(f"infer: {len(x)} input values is not a multiple of n_in={model.n_in}")
    return model.header() + struct.pack("<I", batch) + _le(f32(x))


def infer_task(model: Mlp, x: Sequence[float], limits: Limits | None = None, **kwargs: Any) -> Task:
    """A task computing class probabilities for the rows of ``x``."""
    return _task("mlp", "infer", encode_infer(model, x), limits, **kwargs)


def predictions(output: bytes, n_out: int) -> list[int]:
    """The predicted class of each row from an ``infer`` output (probabilities[batch×n_out])."""
    probs = _from_le("f", output)
    rows = [probs[r * n_out:(r + 1) * n_out] for r in range(len(probs) // n_out)]
    return [max(range(n_out), key=row.__getitem__) for row in rows]


def encode_train(model: Classifier, x: Sequence[float], y: Sequence[int], *, epochs: int, batch_size: int,
                 learning_rate: float, seed: int = 1) -> bytes:
    """The input of ``train``: model, hyper-parameters, X[n×n_in] and labels y[n]."""
    n = len(y)
    if len(x) != n * model.n_in:
        raise ValidationError(f"train: X has {len(x)} values; {n} labels need {n * model.n_in}")
    if any(not 0 <= label < model.n_out for label in y):
        raise ValidationError(f"train: every label must be in 0..{model.n_out - 1}")
    labels = y if isinstance(y, array.array) and y.typecode == "I" else array.array("I", y)
    return (model.header() + struct.pack("<3IfI", n, epochs, batch_size, learning_rate, seed)
            + _le(f32(x)) + _le(labels))


def train_task(model: Mlp, x: Sequence[float], y: Sequence[int], *, epochs: int = 5, batch_size: int = 16,
               learning_rate: float = 0.1, seed: int = 1, limits: Limits | None = None, **kwargs: Any) -> Task:
    """A task running ``epochs`` of minibatch SGD on (x, y), starting from ``model``."""
    data = encode_train(model, x, y, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed)
    return _task("mlp", "train", data, limits, **kwargs)


def decode_train(output: bytes, model: Mlp) -> tuple[Mlp, float]:
    """The updated model and the last epoch's mean loss from a ``train`` output."""
    values = _from_le("f", output)
    count = Mlp.count(model.n_in, model.n_hidden, model.n_out)
    if len(values) != count + 1:
        raise ValidationError(f"train output has {len(values)} values; expected {count + 1}")
    return Mlp(model.n_in, model.n_hidden, model.n_out, values[:count]), float(values[count])


def average(models: Sequence[Mlp], weights: Sequence[float] | None = None) -> Mlp:
    """The weighted mean of models of one shape (federated averaging)."""
    if not models:
        raise ValidationError("average: no models given")
    first = models[0]
    return Mlp(first.n_in, first.n_hidden, first.n_out, average_params([m.params for m in models], weights))


def average_params(params: Sequence[array.array], weights: Sequence[float] | None = None) -> array.array:
    """The weighted mean of parameter vectors of one length."""
    weights = list(weights) if weights is not None else [1.0] * len(params)
    total = sum(weights)
    return array.array("f", (sum(w * p[i] for p, w in zip(params, weights, strict=True)) / total
                             for i in range(len(params[0]))))


# ----------------------------------------------------------------------------- the digits dataset


@frozen
class Dataset:
    """Samples as a flat ``array('f')`` X[n×features] with labels ``array('I')`` y[n]."""

    x: array.array
    y: array.array
    features: int

    def __len__(self) -> int:
        return len(self.y)

    def take(self, indices: Sequence[int]) -> Dataset:
        """The samples at ``indices``, in that order."""
        f = self.features
        x = array.array("f")
        for i in indices:
            x.extend(self.x[i * f:(i + 1) * f])
        return Dataset(x, array.array("I", (self.y[i] for i in indices)), f)

    def split(self, test_fraction: float = 0.2, seed: int = 0) -> tuple[Dataset, Dataset]:
        """A shuffled (train, test) split, reproducible from ``seed``."""
        order = list(range(len(self)))
        random.Random(seed).shuffle(order)
        cut = len(order) - round(len(order) * test_fraction)
        return self.take(order[:cut]), self.take(order[cut:])

    def shards(self, count: int) -> list[Dataset]:
        """``count`` near-equal contiguous shards (one per federated participant)."""
        bounds = [round(i * len(self) / count) for i in range(count + 1)]
        return [self.take(range(bounds[i], bounds[i + 1])) for i in range(count)]


@functools.cache
def load_digits() -> Dataset:
    """The 1,797 8×8 handwritten digits, pixels scaled to 0..1 (UCI, CC BY 4.0)."""
    raw = resources.files("gaia_runner_wasm").joinpath("data", "digits.csv.gz").read_bytes()
    x, y = array.array("f"), array.array("I")
    for row in csv.reader(io.StringIO(gzip.decompress(raw).decode("ascii"))):
        x.extend(float(v) / 16.0 for v in row[:DIGITS_FEATURES])
        y.append(int(row[DIGITS_FEATURES]))
    return Dataset(x, y, DIGITS_FEATURES)


def accuracy(predicted: Sequence[int], labels: Sequence[int]) -> float:
    """The fraction of ``predicted`` equal to ``labels``."""
    return sum(p == t for p, t in zip(predicted, labels, strict=False)) / max(1, len(labels))


# ----------------------------------------------------------------------------- the demo's workload


class DigitsData:
    """What the digits workloads share: the data split into shards, and scoring an inference output."""

    def partition(self, train_shards: int, test_shards: int, *, seed: int,
                  test_fraction: float = 0.2) -> tuple[list[Dataset], list[Dataset]]:
        """The digits split into ``train_shards`` training and ``test_shards`` held-out shards."""
        train, test = load_digits().split(test_fraction, seed=seed)
        return train.shards(train_shards), test.shards(test_shards)

    def correct(self, output: bytes, model: Classifier, shard: Dataset) -> int:
        """How many of ``shard``'s samples the inference output classifies right."""
        return sum(p == t for p, t in zip(predictions(output, model.n_out), shard.y, strict=False))


class DigitsMlp(DigitsData):
    """The digits classifier trained by federated SGD: the ``digits-mlp`` workload ``gaia demo`` runs.

    Satisfies the kernel's ``FederatedWorkload`` protocol (offered through the ``gaia_workloads`` hook):
    shards are :class:`Dataset` values and models :class:`Mlp` values.
    """

    name = "digits-mlp"

    def init_model(self, hidden: int, *, seed: int) -> Mlp:
        """A fresh 64-``hidden``-10 classifier."""
        return Mlp.init(DIGITS_FEATURES, hidden, DIGITS_CLASSES, seed=seed)

    def train_task(self, model: Mlp, shard: Dataset, *, epochs: int, seed: int, limits: Limits, submitter: str,
                   job: str, batch_size: int = 16, learning_rate: float = 0.1) -> Task:
        """A task running ``epochs`` of minibatch SGD on ``shard``."""
        return train_task(model, shard.x, shard.y, epochs=epochs, batch_size=batch_size,
                          learning_rate=learning_rate, seed=seed, limits=limits, submitter=submitter, job=job)

    def read_trained(self, output: bytes, model: Mlp) -> tuple[Mlp, float]:
        """The trained model and its last epoch's mean loss."""
        return decode_train(output, model)

    def average(self, models: Sequence[Mlp], weights: Sequence[float]) -> Mlp:
        """Federated averaging, weighted by shard size."""
        return average(models, weights)

    def infer_task(self, model: Mlp, shard: Dataset, *, limits: Limits, submitter: str, job: str) -> Task:
        """A task classifying ``shard``'s samples."""
        return infer_task(model, shard.x, limits=limits, submitter=submitter, job=job)

"""The ``cnn`` task module's model, its tasks, and ``digits-cnn``: a small CNN trained by federated averaging.

The network is conv (``filters`` × ``kernel``², stride 1, same padding) → ReLU → 2×2 max-pool → dense →
softmax, on one-channel images; the WASM module (``modules/src/cnn_task.c``) runs every tensor operation
through the deterministic tensor host API, so two honest nodes return the same bytes. Layouts are in
docs/task-abi.md; inputs are encoded like the MLP's (:func:`~gaia_runner_wasm.workloads.encode_train`).
"""

from __future__ import annotations

import array
import math
import random
import struct
from collections.abc import Sequence
from typing import Any

import attrs
from attrs import frozen

from gaia_core.plugin_api import Limits, Task, ValidationError
from gaia_runner_wasm.workloads import (
    DIGITS_CLASSES,
    Dataset,
    DigitsData,
    _from_le,
    _le,
    average_params,
    encode_infer,
    encode_train,
    module_bytes,
)

#: The digits are 8×8 one-channel images.
DIGITS_SIDE = 8


@frozen
class Cnn:
    """conv → ReLU → 2×2 max-pool → dense → softmax; ``params`` = Wc[filters×kernel²], bc, Wd[features×classes], bd."""

    height: int
    width: int
    filters: int
    kernel: int
    classes: int
    params: array.array

    @property
    def n_in(self) -> int:
        """Pixels per image."""
        return self.height * self.width

    @property
    def n_out(self) -> int:
        """Classes."""
        return self.classes

    @staticmethod
    def count(height: int, width: int, filters: int, kernel: int, classes: int) -> int:
        """How many parameters a model of this shape has."""
        features = filters * (height // 2) * (width // 2)
        return filters * kernel * kernel + filters + features * classes + classes

    @classmethod
    def init(cls, height: int, width: int, filters: int, classes: int, *, kernel: int = 3, seed: int = 0) -> Cnn:
        """He-initialised weights and zero biases, reproducible from ``seed``."""
        rng = random.Random(seed)
        features = filters * (height // 2) * (width // 2)
        wc = [rng.gauss(0.0, math.sqrt(2.0 / (kernel * kernel))) for _ in range(filters * kernel * kernel)]
        wd = [rng.gauss(0.0, math.sqrt(2.0 / features)) for _ in range(features * classes)]
        return cls(height, width, filters, kernel, classes,
                   array.array("f", wc + [0.0] * filters + wd + [0.0] * classes))

    def header(self) -> bytes:
        """The model header and parameters, as both CNN entries expect them."""
        expected = self.count(self.height, self.width, self.filters, self.kernel, self.classes)
        if len(self.params) != expected:
            raise ValidationError(f"CNN model has {len(self.params)} parameters; its shape needs {expected}")
        return struct.pack("<5I", self.height, self.width, self.filters, self.kernel, self.classes) + _le(self.params)


def infer_task(model: Cnn, x: Sequence[float], limits: Limits | None = None, **kwargs: Any) -> Task:
    """A task computing class probabilities for the images in ``x`` (flat, ``n_in`` values each)."""
    return Task.create(module_bytes("cnn"), entry="infer", input=encode_infer(model, x), limits=limits or Limits(),
                       **kwargs)


def train_task(model: Cnn, x: Sequence[float], y: Sequence[int], *, epochs: int = 5, batch_size: int = 16,
               learning_rate: float = 0.2, seed: int = 1, limits: Limits | None = None, **kwargs: Any) -> Task:
    """A task running ``epochs`` of minibatch SGD on (x, y), starting from ``model``."""
    data = encode_train(model, x, y, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed)
    return Task.create(module_bytes("cnn"), entry="train", input=data, limits=limits or Limits(), **kwargs)


def decode_train(output: bytes, model: Cnn) -> tuple[Cnn, float]:
    """The updated model and the last epoch's mean loss from a ``train`` output."""
    values = _from_le("f", output)
    count = len(model.params)
    if len(values) != count + 1:
        raise ValidationError(f"CNN train output has {len(values)} values; expected {count + 1}")
    return attrs.evolve(model, params=values[:count]), float(values[count])


def average(models: Sequence[Cnn], weights: Sequence[float] | None = None) -> Cnn:
    """The weighted mean of models of one shape (federated averaging)."""
    if not models:
        raise ValidationError("average: no models given")
    return attrs.evolve(models[0], params=average_params([m.params for m in models], weights))


class DigitsCnn(DigitsData):
    """The digits CNN trained by federated averaging: the ``digits-cnn`` workload (``gaia demo --model cnn``).

    Satisfies the kernel's ``FederatedWorkload`` protocol: shards are :class:`Dataset` values and models
    :class:`Cnn` values; ``hidden`` is the number of convolution filters.
    """

    name = "digits-cnn"

    def init_model(self, hidden: int, *, seed: int) -> Cnn:
        """A fresh CNN with ``hidden`` 3×3 filters over the 8×8 digits."""
        return Cnn.init(DIGITS_SIDE, DIGITS_SIDE, hidden, DIGITS_CLASSES, seed=seed)

    def train_task(self, model: Cnn, shard: Dataset, *, epochs: int, seed: int, limits: Limits, submitter: str,
                   job: str, batch_size: int = 16, learning_rate: float = 0.2) -> Task:
        """A task running ``epochs`` of minibatch SGD on ``shard``."""
        return train_task(model, shard.x, shard.y, epochs=epochs, batch_size=batch_size,
                          learning_rate=learning_rate, seed=seed, limits=limits, submitter=submitter, job=job)

    def read_trained(self, output: bytes, model: Cnn) -> tuple[Cnn, float]:
        """The trained model and its last epoch's mean loss."""
        return decode_train(output, model)

    def average(self, models: Sequence[Cnn], weights: Sequence[float]) -> Cnn:
        """Federated averaging, weighted by shard size."""
        return average(models, weights)

    def infer_task(self, model: Cnn, shard: Dataset, *, limits: Limits, submitter: str, job: str) -> Task:
        """A task classifying ``shard``'s samples."""
        return infer_task(model, shard.x, limits=limits, submitter=submitter, job=job)

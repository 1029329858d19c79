"""Inference inputs and outputs: an array of samples split into task inputs, the tasks' outputs joined."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from gaia_core.errors import TaskError, ValidationError
from gaia_core.models.graph import Graph


def load_samples(path: Path, graph: Graph, *, name: str) -> np.ndarray:
    """The samples in an .npy file as float32 ``(n, *input)``; one sample may leave out the batch axis.

    ValidationError, saying what shape the model takes, when the file is not an array of that shape.
    """
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ValidationError(f"{path} is not a NumPy .npy array ({exc})",
                              hint="save the samples with numpy.save(path, array)") from None
    if not isinstance(array, np.ndarray):
        array.close()  # an .npz archive of several arrays
        raise ValidationError(f"{path} is an archive of arrays, not one .npy array",
                              hint="save the samples with numpy.save(path, array)")
    if array.dtype.kind not in "fiub":
        raise ValidationError(f"{path} holds {array.dtype}, not numbers", hint="save a float32 array of samples")
    want = graph.input_dims
    if array.shape == want:
        array = array[np.newaxis]
    if array.shape[1:] != want or array.shape[0] == 0:
        shown = ", ".join(map(str, want))
        raise ValidationError(f"{path} has shape {list(array.shape)}; model {name} takes (N, {shown})",
                              hint=f"give an array of N samples of shape ({shown})")
    samples = np.ascontiguousarray(array, dtype=np.float32)
    if not np.all(np.isfinite(samples)):
        raise ValidationError(f"{path} holds NaN or infinite values", hint="give finite samples")
    return samples


def split(samples: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """The samples in batches of ``batch_size`` (the last may be smaller), one per task."""
    return np.array_split(samples, list(range(batch_size, len(samples), batch_size)))


def task_input(model: bytes, batch: np.ndarray) -> bytes:
    """A task's input: the model, ``u32 n``, then the ``n`` samples as little-endian f32."""
    return model + struct.pack("<I", len(batch)) + batch.astype("<f4").tobytes()


def join_outputs(outputs: list[bytes], counts: list[int], graph: Graph) -> np.ndarray:
    """The tasks' outputs as one float32 array ``(sum(counts), *output)``; TaskError when one is malformed."""
    width = int(np.prod(graph.output_dims)) * 4
    for i, (output, count) in enumerate(zip(outputs, counts, strict=True)):
        if len(output) != count * width:
            raise TaskError(f"task {i} answered {len(output)} bytes for {count} samples of {width} bytes",
                            hint="the node that ran it is faulty; run the job again")
    joined = np.frombuffer(b"".join(outputs), dtype="<f4").astype(np.float32)
    return joined.reshape((sum(counts), *graph.output_dims))

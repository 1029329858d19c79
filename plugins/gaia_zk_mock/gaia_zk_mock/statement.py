"""What a mock-groth16 proof commits to, and the bytes it derives and signs.

The *statement* is what a real zero-knowledge proof of a WASM run would prove: this module
(``module_id``) run on this input (``input_id``) under these limits by this node produced
this status and output (``output_id``) using this much fuel. The commitment is the Merkle
root (gaia-native, RFC 9162 shape over BLAKE3) of those fields, one leaf each, in
:data:`LEAVES` order. Wall time, CPU time, memory and energy are measurements, not part of
the statement.
"""

from __future__ import annotations

import functools

import attrs

from gaia_core.plugin_api import (
    Limits,
    Proof,
    Task,
    TaskResult,
    ValidationError,
    blake3_digest,
    codec,
    content_id,
    merkle_root,
)

#: Size of the simulated proof body: a Groth16 proof is three group elements (A, C in G1,
#: B in G2); on BLS12-381 in compressed form that is 48 + 96 + 48 = 192 bytes.
BODY_BYTES = 192
#: The leaves of the commitment, in order.
LEAVES = ("task_id", "module_id", "input_id", "limits", "node_id", "status", "output_id", "fuel_used")
_BODY_DOMAIN = b"gaia/mock-groth16/body/v1"
_SIGN_DOMAIN = "gaia/mock-groth16/proof/v1"


def output_id(result: TaskResult) -> str:
    """The id of the result's output: hashed from the bytes when present, else the claimed id.

    A result whose bytes and ``output_id`` disagree is refused with a ValidationError.
    """
    if not result.output:
        return result.output_id
    actual = content_id(result.output)
    if result.output_id and result.output_id != actual:
        raise ValidationError(f"result output bytes hash to {actual}, not its output_id {result.output_id}")
    return actual


def commitment(task: Task, result: TaskResult, node_id: str, output: str) -> bytes:
    """The Merkle root over the statement's leaves (see :data:`LEAVES`), with output id ``output``."""
    leaves = [
        bytes.fromhex(task.id),
        bytes.fromhex(task.module_id),
        bytes.fromhex(task.input_id),
        _limits_leaf(task.limits),
        bytes.fromhex(node_id),
        result.status.value.encode(),
        bytes.fromhex(output),
        result.fuel_used.to_bytes(8, "big"),  # fuel below 2**64 is checked by prove()
    ]
    return merkle_root(leaves)


@functools.lru_cache(maxsize=1024)
def _limits_leaf(limits: Limits) -> bytes:
    """The statement's leaf for ``limits`` (cached: a job's tasks share a few limits)."""
    fields = attrs.astuple(limits, recurse=False)
    return codec.canonical_bytes([*fields[:-1], sorted(limits.capabilities)])


def body(commitment_root: bytes) -> bytes:
    """The simulated proof body: :data:`BODY_BYTES` derived from the commitment, so any change shows."""
    blocks = (blake3_digest(_BODY_DOMAIN + bytes([i]) + commitment_root) for i in range(-(-BODY_BYTES // 32)))
    return b"".join(blocks)[:BODY_BYTES]


def signed_bytes(proof: Proof) -> bytes:
    """The bytes the node signs: every field of the proof except the signature."""
    return signing_bytes(proof.scheme, proof.task_id, proof.node_id, proof.commitment, proof.body,
                         proof.proving_s, proof.simulated, proof.created_at)


def signing_bytes(scheme: str, task_id: str, node_id: str, commitment_root: bytes, proof_body: bytes,
                  proving_s: float, simulated: bool, created_at: float) -> bytes:
    """:func:`signed_bytes` of a proof with these fields, before the proof is built."""
    return codec.canonical_bytes([_SIGN_DOMAIN, scheme, task_id, node_id, commitment_root, proof_body,
                                  proving_s, simulated, created_at])

"""The prover conformance suite passes a small correct prover and fails broken ones."""

from __future__ import annotations

import inspect
from typing import Any

import attrs
import pytest

from gaia_core.codec import canonical_bytes
from gaia_core.hashing import blake3_digest
from gaia_core.identity import Identity, verify_signature
from gaia_core.model import Proof, Task, TaskResult, Verdict
from gaia_core.roles import NodeContext
from gaia_core.testing.conformance.prover import ProverTests, sample_result, sample_task


class SignedDigestProver:
    """A minimal correct prover: the node signs a digest of the statement."""

    scheme = "signed-digest"

    def __init__(self, identity: Identity) -> None:
        self.identity = identity

    @staticmethod
    def _digest(task: Task, result: TaskResult) -> bytes:
        return blake3_digest(canonical_bytes([task.id, result.task_id, result.node_id, result.status.value,
                                              result.output_id, result.fuel_used]))

    def prove(self, task: Task, result: TaskResult) -> Proof:
        digest = self._digest(task, result)
        return Proof(scheme=self.scheme, task_id=task.id, node_id=self.identity.node_id, commitment=digest,
                     body=b"", signature=self.identity.sign(canonical_bytes([self.scheme, digest])))

    def verify(self, proof: Proof, task: Task, result: TaskResult) -> Verdict:
        digest = self._digest(task, result)
        ok = (proof.scheme == self.scheme and proof.task_id == task.id == result.task_id
              and proof.node_id == result.node_id and proof.commitment == digest and proof.body == b""
              and (not result.output or blake3_digest(result.output).hex() == result.output_id)
              and verify_signature(proof.node_id, proof.signature, canonical_bytes([proof.scheme, digest])))
        return Verdict("valid" if ok else "invalid", "" if ok else "digest, node or signature differ",
                       task.id, self.scheme)


class AcceptsAnything(SignedDigestProver):
    """Broken: every proof is valid."""

    def verify(self, proof: Proof, task: Task, result: TaskResult) -> Verdict:
        return Verdict("valid", "trust me", task.id, self.scheme)


class RaisesOnGarbage(SignedDigestProver):
    """Broken: malformed fields raise instead of giving an invalid verdict."""

    def verify(self, proof: Proof, task: Task, result: TaskResult) -> Verdict:
        if len(proof.signature) != 64:
            raise ValueError("bad signature length")
        return super().verify(proof, task, result)


class IgnoresTheOutput(SignedDigestProver):
    """Broken: the proof does not cover the output."""

    @staticmethod
    def _digest(task: Task, result: TaskResult) -> bytes:
        return blake3_digest(canonical_bytes([task.id, result.node_id, result.fuel_used]))


class ClaimsAnotherTask(SignedDigestProver):
    """Broken: proofs name the wrong task."""

    def prove(self, task: Task, result: TaskResult) -> Proof:
        return attrs.evolve(super().prove(task, result), task_id="0" * 64)


class TestSignedDigestProver(ProverTests):
    @pytest.fixture
    def prover(self, node_context: NodeContext) -> SignedDigestProver:
        assert node_context.identity is not None
        return SignedDigestProver(node_context.identity)


CHECKS = sorted(name for name in dir(ProverTests) if name.startswith("test_"))


def run_check(name: str, prover: SignedDigestProver) -> None:
    """Call one of the suite's checks directly, with the fixtures it asks for."""
    task = sample_task()
    result = sample_result(task, prover.identity.node_id)
    available: dict[str, Any] = {"prover": prover, "task": task, "result": result}
    method = getattr(ProverTests(), name)
    if "proof" in inspect.signature(method).parameters:
        available["proof"] = prover.prove(task, result)
    method(**{p: available[p] for p in inspect.signature(method).parameters})


def failing_checks(prover: SignedDigestProver) -> set[str]:
    failed = set()
    for name in CHECKS:
        try:
            run_check(name, prover)
        except (AssertionError, ValueError):
            failed.add(name)
    return failed


def test_direct_calls_pass_for_the_correct_prover() -> None:
    assert failing_checks(SignedDigestProver(Identity.generate())) == set()


def test_a_prover_that_accepts_anything_fails_every_rejection_check() -> None:
    failed = failing_checks(AcceptsAnything(Identity.generate()))
    assert failed == {name for name in CHECKS if "reject" in name or "malformed" in name}


def test_a_prover_that_raises_on_garbage_fails() -> None:
    assert "test_malformed_fields_are_invalid_not_errors" in failing_checks(RaisesOnGarbage(Identity.generate()))


def test_a_proof_that_ignores_the_output_fails() -> None:
    failed = failing_checks(IgnoresTheOutput(Identity.generate()))
    assert {"test_rejects_another_output", "test_rejects_another_status_or_fuel"} <= failed


def test_a_proof_naming_another_task_fails() -> None:
    failed = failing_checks(ClaimsAnotherTask(Identity.generate()))
    assert {"test_proof_names_scheme_task_and_node", "test_valid_proof_verifies"} <= failed

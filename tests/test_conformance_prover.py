"""The prover conformance suite passes a small correct prover and fails broken ones."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import attrs
import pytest

from gaia_core.codec import canonical_bytes
from gaia_core.errors import ValidationError
from gaia_core.hashing import blake3_digest
from gaia_core.identity import verify_signature
from gaia_core.model import Proof, Task, TaskResult, Verdict
from gaia_core.roles import NodeContext
from gaia_core.testing.conformance.prover import ProverTests, sample_result, sample_task


class SignedDigestProver:
    """A minimal correct prover: the node signs a digest of the statement and every field of the proof."""

    scheme = "signed-digest"

    def __init__(self, context: NodeContext) -> None:
        assert context.identity is not None
        self.identity = context.identity

    @staticmethod
    def _digest(task: Task, result: TaskResult) -> bytes:
        return blake3_digest(canonical_bytes([task.id, result.task_id, result.node_id, result.status.value,
                                              result.output_id, result.fuel_used]))

    @staticmethod
    def _signed(proof: Proof) -> bytes:
        return canonical_bytes([proof.scheme, proof.task_id, proof.node_id, proof.commitment, proof.body,
                                proof.proving_s, proof.simulated, proof.created_at])

    def prove(self, task: Task, result: TaskResult) -> Proof:
        if result.node_id != self.identity.node_id:
            raise ValidationError("this node did not run that result")
        unsigned = Proof(scheme=self.scheme, task_id=task.id, node_id=self.identity.node_id,
                         commitment=self._digest(task, result), body=b"", proving_s=0.001)
        return attrs.evolve(unsigned, signature=self.identity.sign(self._signed(unsigned)))

    def verify(self, proof: Proof, task: Task, result: TaskResult) -> Verdict:
        ok = (proof.scheme == self.scheme and proof.task_id == task.id == result.task_id
              and proof.node_id == result.node_id and proof.commitment == self._digest(task, result)
              and proof.body == b"" and (not result.output or blake3_digest(result.output).hex() == result.output_id)
              and verify_signature(proof.node_id, proof.signature, self._signed(proof)))
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


class NamesAnotherNode(SignedDigestProver):
    """Broken: proves any result, naming whichever node the result names."""

    def prove(self, task: Task, result: TaskResult) -> Proof:
        proof = Proof(scheme=self.scheme, task_id=task.id, node_id=result.node_id,
                      commitment=self._digest(task, result), body=b"", proving_s=0.001)
        return attrs.evolve(proof, signature=self.identity.sign(self._signed(proof)))


class UnsignedTimes(SignedDigestProver):
    """Broken: the signature leaves out proving_s and created_at."""

    @staticmethod
    def _signed(proof: Proof) -> bytes:
        return canonical_bytes([proof.scheme, proof.task_id, proof.node_id, proof.commitment, proof.body,
                                proof.simulated])


class UnsignedSimulatedFlag(SignedDigestProver):
    """Broken: the signature leaves out the simulated flag, so a mock proof can pass as a real one."""

    @staticmethod
    def _signed(proof: Proof) -> bytes:
        return canonical_bytes([proof.scheme, proof.task_id, proof.node_id, proof.commitment, proof.body,
                                proof.proving_s, proof.created_at])


class TestSignedDigestProver(ProverTests):
    @pytest.fixture
    def make_prover(self) -> Callable[[NodeContext], SignedDigestProver]:
        return SignedDigestProver


CHECKS = sorted(name for name in dir(ProverTests) if name.startswith("test_"))


def run_check(name: str, prover: SignedDigestProver, context: NodeContext) -> None:
    """Call one of the suite's checks directly, with the fixtures it asks for."""
    task = sample_task()
    result = sample_result(task, prover.identity.node_id)
    available: dict[str, Any] = {"prover": prover, "task": task, "result": result, "node_context": context}
    method = getattr(ProverTests(), name)
    if "proof" in inspect.signature(method).parameters:
        available["proof"] = prover.prove(task, result)
    method(**{p: available[p] for p in inspect.signature(method).parameters})


def failing_checks(broken: type[SignedDigestProver], context: NodeContext) -> set[str]:
    failed = set()
    for name in CHECKS:
        try:
            run_check(name, broken(context), context)
        except Exception:  # an assertion, or an error a test reports
            failed.add(name)
    return failed


def test_direct_calls_pass_for_the_correct_prover(node_context: NodeContext) -> None:
    assert failing_checks(SignedDigestProver, node_context) == set()


def test_a_prover_that_accepts_anything_fails_every_rejection_check(node_context: NodeContext) -> None:
    failed = failing_checks(AcceptsAnything, node_context)
    assert failed == {name for name in CHECKS if "reject" in name or "malformed" in name}


@pytest.mark.parametrize(("broken", "caught"), [
    (RaisesOnGarbage, {"test_malformed_fields_are_invalid_not_errors"}),
    (IgnoresTheOutput, {"test_rejects_another_output", "test_rejects_another_status_or_fuel"}),
    (ClaimsAnotherTask, {"test_proof_names_scheme_task_and_node", "test_valid_proof_verifies"}),
    (NamesAnotherNode, {"test_never_proves_for_another_node"}),
    (UnsignedTimes, {"test_rejects_changed_times"}),
    (UnsignedSimulatedFlag, {"test_rejects_a_flipped_simulated_flag"}),
], ids=lambda x: x.__name__ if isinstance(x, type) else None)
def test_the_suite_fails_a_broken_prover(broken: type[SignedDigestProver], caught: set[str],
                                         node_context: NodeContext) -> None:
    assert caught <= failing_checks(broken, node_context)

"""MockProver: a SIMULATED Groth16-shaped prover behind GAIA's real prover hook.

What is real: the commitment (a Merkle root over the statement, see :mod:`.statement`),
the Ed25519 signature by the proving node, and every check :meth:`MockProver.verify`
makes. What is simulated: the 192-byte body (derived from the commitment, not a SNARK)
and the proving time (a configurable model). A valid mock proof shows that a known node
signed a claim about a run; it does not show that the run happened.
"""

from __future__ import annotations

import hmac
import random
import threading
import time

from gaia_core.plugin_api import (
    Identity,
    IdentityError,
    NodeContext,
    Proof,
    Task,
    TaskResult,
    ValidationError,
    Verdict,
    VerdictStatus,
    verify_signature,
)
from gaia_zk_mock import settings as settings_mod
from gaia_zk_mock.settings import Settings
from gaia_zk_mock.statement import BODY_BYTES, body, commitment, output_id, signed_bytes, signing_bytes

SCHEME = "mock-groth16"
_WRONG_OUTPUT = "0" * 64


class MockProver:
    """Proves and verifies ``mock-groth16`` proofs. Thread-safe."""

    scheme = SCHEME

    def __init__(self, identity: Identity | None, settings: Settings | None = None) -> None:
        self.identity = identity
        self.settings = settings or Settings()
        self._random = random.Random(self.settings.seed)
        self._lock = threading.Lock()

    @classmethod
    def from_context(cls, context: NodeContext) -> MockProver:
        """Build from the node's identity and its ``[zk_mock]`` config table."""
        return cls(context.identity, settings_mod.load(context.config.section(settings_mod.TABLE)))

    def prove(self, task: Task, result: TaskResult) -> Proof:
        """Commit to the statement, derive the simulated body, wait the simulated time and sign.

        Raises IdentityError without a node identity, ValidationError for a result that is
        not this node's result of ``task``.
        """
        if self.identity is None:
            raise IdentityError(f"{SCHEME} needs the node's identity to sign proofs",
                                hint="run `gaia init`, or build the prover with a NodeContext holding an identity")
        node_id = self.identity.node_id
        if result.task_id != task.id:
            raise ValidationError(f"result is for task {result.task_id}, not {task.id}")
        if result.fuel_used >= 1 << 64:
            raise ValidationError(f"fuel_used {result.fuel_used} does not fit the statement's 64 bits")
        if result.node_id != node_id:
            raise ValidationError(f"result names node {result.node_id or '(none)'}, but this node is {node_id}",
                                  hint="set result.node_id to this node's id before proving")
        invalid, wrong, slow = self._inject()
        root = commitment(task, result, node_id, _WRONG_OUTPUT if wrong else output_id(result))
        proof_body = body(root)
        if invalid:
            proof_body = bytes([proof_body[0] ^ 0xFF]) + proof_body[1:]
        proving_s = self.settings.proving_s(result.fuel_used, slow=slow)
        if self.settings.simulate_time and proving_s > 0:
            time.sleep(proving_s)
        proving_s, created_at = float(proving_s), time.time()
        signature = self.identity.sign(signing_bytes(SCHEME, task.id, node_id, root, proof_body, proving_s, True,
                                                     created_at))
        return Proof(scheme=SCHEME, task_id=task.id, node_id=node_id, commitment=root, body=proof_body,
                     signature=signature, proving_s=proving_s, simulated=True, created_at=created_at)

    def verify(self, proof: Proof, task: Task, result: TaskResult) -> Verdict:
        """Check ``proof`` against ``task`` and ``result``; every failure is an ``invalid`` verdict with a reason."""
        try:
            reason = self._check(proof, task, result)
        except Exception as exc:  # a verifier never raises: malformed input is an invalid proof
            reason = f"malformed proof, task or result ({type(exc).__name__}: {exc})"
        task_id = getattr(proof, "task_id", "")
        if reason:
            return Verdict(VerdictStatus.INVALID, reason, task_id if isinstance(task_id, str) else "", SCHEME)
        return Verdict(VerdictStatus.VALID, "SIMULATED proof: commitment, node signature and body check out "
                       "(a mock proof does not prove the execution)", task_id, SCHEME)

    def _check(self, proof: Proof, task: Task, result: TaskResult) -> str:
        """The first reason ``proof`` is invalid, or ``""`` when it is valid."""
        if not isinstance(proof, Proof) or not isinstance(task, Task) or not isinstance(result, TaskResult):
            return "expected a Proof, a Task and a TaskResult"
        if proof.scheme != SCHEME:
            return f"proof scheme is {proof.scheme!r}, not {SCHEME!r}"
        if not proof.simulated:
            return f"a {SCHEME} proof must be marked simulated"
        if proof.task_id != task.id:
            return f"proof is for task {proof.task_id}, not {task.id}"
        if result.task_id != task.id:
            return f"result is for task {result.task_id}, not {task.id}"
        if proof.node_id != result.node_id:
            return f"proof was made by node {proof.node_id}, but the result names node {result.node_id or '(none)'}"
        if not verify_signature(proof.node_id, proof.signature, signed_bytes(proof)):
            return f"signature is not node {proof.node_id}'s (forged, altered, or an unknown node key)"
        try:
            claimed_output = output_id(result)
        except ValidationError as exc:
            return str(exc)
        expected = commitment(task, result, proof.node_id, claimed_output)
        if not hmac.compare_digest(proof.commitment, expected):
            return ("commitment does not match the task and result"
                    " (module, input, limits, status, output or fuel differ)")
        if len(proof.body) != BODY_BYTES or not hmac.compare_digest(proof.body, body(expected)):
            return f"proof body fails its integrity check ({len(proof.body)} bytes)"
        return ""

    def _inject(self) -> tuple[bool, bool, bool]:
        """Draw the configured failures for one proof: (invalid body, wrong commitment, slow)."""
        s = self.settings
        if not (s.invalid_rate or s.wrong_commitment_rate or s.slow_rate):
            return False, False, False  # no failures configured: nothing to draw
        with self._lock:
            draws = [self._random.random() for _ in range(3)]
        return draws[0] < s.invalid_rate, draws[1] < s.wrong_commitment_rate, draws[2] < s.slow_rate

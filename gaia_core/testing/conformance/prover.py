"""Conformance suite for the prover role (:class:`gaia_core.roles.Prover`).

Subclass :class:`ProverTests` in your plugin's tests and provide a ``make_prover`` fixture returning
the callable your :class:`~gaia_core.roles.ProverSpec` registers (every suite asks for
``make_<role>``, the factory of its spec); the suite builds the prover from the ``node_context``
fixture, whose identity is the proving node::

    from gaia_core.testing.conformance.prover import ProverTests

    class TestMyProver(ProverTests):
        @pytest.fixture
        def make_prover(self):
            return MyProver

The checks, security first: a proof names the scheme, the task and the proving node, and a prover
never makes a proof that names another node (asked to prove a result that names another node, it
refuses or its proof names itself and does not verify); a proof verifies against the task and
result it was made for, also after a trip through the codec; it is ``invalid`` (with a reason,
never an exception) against another output, status, fuel, task or node, with another scheme, a
forged signature, a tampered commitment or body, changed times (``proving_s``, ``created_at``) or
a flipped ``simulated`` flag, or with truncated, empty or oversized fields; a run that failed (a
trap) can be proven too.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import pytest

from gaia_core.codec import decode, encode
from gaia_core.errors import GaiaError
from gaia_core.hashing import content_id
from gaia_core.identity import Identity
from gaia_core.model import Limits, Proof, Task, TaskResult, Verdict
from gaia_core.roles import NodeContext, Prover

ProverFactory = Callable[[NodeContext], Prover]

#: Bytes standing in for a module; provers commit to its id, they never run it.
MODULE = b"\x00asm\x01\x00\x00\x00 conformance module"


def sample_task(input: bytes = b"conformance input") -> Task:
    """A task as a node would prove it (module bytes dropped)."""
    return Task.create(MODULE, input=input, limits=Limits(fuel=5_000_000)).without_module()


def sample_result(task: Task, node_id: str, output: bytes = b"conformance output") -> TaskResult:
    """An ``ok`` result of ``task`` run by ``node_id``."""
    return TaskResult(task_id=task.id, status="ok", node_id=node_id, output=output,
                      output_id=content_id(output), fuel_used=1_234_567, wall_s=0.01)


def _flip(data: bytes, index: int = 0) -> bytes:
    """``data`` with one byte changed (or one byte added when empty)."""
    if not data:
        return b"\x01"
    i = index % len(data)
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]


def assert_invalid(verdict: Verdict) -> None:
    """``verdict`` is an invalid Verdict that says why."""
    assert isinstance(verdict, Verdict), f"verify returned {type(verdict).__name__}, not a Verdict"
    assert verdict.status == "invalid", f"expected invalid, got {verdict.status}: {verdict.reason}"
    assert verdict.reason, "an invalid verdict must say why"


class ProverTests:
    """The prover contract. Subclass as ``Test<Name>`` and provide the ``prover`` fixture."""

    @pytest.fixture
    def make_prover(self) -> ProverFactory:
        """Override: return the callable that builds your prover from a NodeContext."""
        raise NotImplementedError("subclass ProverTests and provide a `make_prover` fixture")

    @pytest.fixture
    def prover(self, make_prover: ProverFactory, node_context: NodeContext) -> Prover:
        return make_prover(node_context)

    @pytest.fixture
    def task(self) -> Task:
        return sample_task()

    @pytest.fixture
    def result(self, task: Task, node_context: NodeContext) -> TaskResult:
        assert node_context.identity is not None
        return sample_result(task, node_context.identity.node_id)

    @pytest.fixture
    def proof(self, prover: Prover, task: Task, result: TaskResult) -> Proof:
        return prover.prove(task, result)

    # -- what a proof says -------------------------------------------------------------

    def test_satisfies_the_protocol(self, prover: Prover) -> None:
        assert isinstance(prover, Prover)
        assert isinstance(prover.scheme, str) and prover.scheme

    def test_proof_names_scheme_task_and_node(self, prover: Prover, proof: Proof, task: Task,
                                              result: TaskResult) -> None:
        assert isinstance(proof, Proof)
        assert proof.scheme == prover.scheme
        assert proof.task_id == task.id
        assert proof.node_id == result.node_id

    def test_never_proves_for_another_node(self, prover: Prover, task: Task, result: TaskResult,
                                           node_context: NodeContext) -> None:
        assert node_context.identity is not None
        me, other = node_context.identity.node_id, Identity.generate().node_id
        theirs = attrs.evolve(result, node_id=other)
        try:
            proof = prover.prove(task, theirs)
        except GaiaError:
            return  # refusing is right: this node did not run it
        assert proof.node_id == me, f"the proof names node {proof.node_id[:12]}, not the proving node {me[:12]}"
        assert_invalid(prover.verify(proof, task, theirs))

    def test_valid_proof_verifies(self, prover: Prover, proof: Proof, task: Task, result: TaskResult) -> None:
        verdict = prover.verify(proof, task, result)
        assert verdict.status == "valid", verdict.reason
        assert verdict.ok and verdict.task_id == task.id and verdict.scheme == prover.scheme

    def test_proof_survives_the_codec(self, prover: Prover, proof: Proof, task: Task, result: TaskResult) -> None:
        wire_task = decode(encode(task), Task)
        wire_result = decode(encode(result), TaskResult)
        assert prover.verify(decode(encode(proof), Proof), wire_task, wire_result).ok

    def test_failed_runs_can_be_proven(self, prover: Prover, task: Task, result: TaskResult) -> None:
        trap = attrs.evolve(result, status="trap", output=b"", output_id="", message="unreachable")
        assert prover.verify(prover.prove(task, trap), task, trap).ok

    # -- what a proof must not accept ----------------------------------------------------

    def test_rejects_another_output(self, prover: Prover, proof: Proof, task: Task, result: TaskResult) -> None:
        other = b"another output"
        assert_invalid(prover.verify(proof, task, attrs.evolve(result, output=other, output_id=content_id(other))))

    def test_rejects_output_bytes_that_do_not_match_the_output_id(
            self, prover: Prover, proof: Proof, task: Task, result: TaskResult) -> None:
        assert_invalid(prover.verify(proof, task, attrs.evolve(result, output=_flip(result.output))))

    def test_rejects_another_status_or_fuel(self, prover: Prover, proof: Proof, task: Task,
                                            result: TaskResult) -> None:
        assert_invalid(prover.verify(proof, task, attrs.evolve(result, fuel_used=result.fuel_used + 1)))
        assert_invalid(prover.verify(proof, task, attrs.evolve(result, status="out_of_fuel")))

    def test_rejects_a_proof_for_another_task(self, prover: Prover, proof: Proof, task: Task,
                                              result: TaskResult) -> None:
        for other in (attrs.evolve(task, input=b"another input"), attrs.evolve(task, limits=Limits(fuel=5_000_001))):
            assert_invalid(prover.verify(proof, other, attrs.evolve(result, task_id=other.id)))
        assert_invalid(prover.verify(proof, task, attrs.evolve(result, task_id=sample_task(b"x").id)))

    def test_rejects_another_scheme(self, prover: Prover, proof: Proof, task: Task, result: TaskResult) -> None:
        assert_invalid(prover.verify(attrs.evolve(proof, scheme=prover.scheme + "-other"), task, result))

    def test_rejects_a_forged_signature(self, prover: Prover, proof: Proof, task: Task, result: TaskResult) -> None:
        assert_invalid(prover.verify(attrs.evolve(proof, signature=_flip(proof.signature)), task, result))
        forger = Identity.generate()
        assert_invalid(prover.verify(attrs.evolve(proof, signature=forger.sign(proof.signature)), task, result))

    def test_rejects_another_nodes_claim(self, prover: Prover, proof: Proof, task: Task, result: TaskResult) -> None:
        other = Identity.generate().node_id
        assert_invalid(prover.verify(attrs.evolve(proof, node_id=other), task, attrs.evolve(result, node_id=other)))
        assert_invalid(prover.verify(proof, task, attrs.evolve(result, node_id=other)))
        unknown = "f" * 64  # not a point on the curve: no node has this key
        assert_invalid(prover.verify(attrs.evolve(proof, node_id=unknown), task, attrs.evolve(result, node_id=unknown)))

    def test_rejects_a_tampered_commitment_or_body(self, prover: Prover, proof: Proof, task: Task,
                                                   result: TaskResult) -> None:
        assert_invalid(prover.verify(attrs.evolve(proof, commitment=_flip(proof.commitment)), task, result))
        assert_invalid(prover.verify(attrs.evolve(proof, body=_flip(proof.body, -1)), task, result))

    def test_rejects_changed_times(self, prover: Prover, proof: Proof, task: Task, result: TaskResult) -> None:
        assert_invalid(prover.verify(attrs.evolve(proof, proving_s=proof.proving_s + 1.0), task, result))
        assert_invalid(prover.verify(attrs.evolve(proof, created_at=proof.created_at - 3600.0), task, result))

    def test_rejects_a_flipped_simulated_flag(self, prover: Prover, proof: Proof, task: Task,
                                              result: TaskResult) -> None:
        assert_invalid(prover.verify(attrs.evolve(proof, simulated=not proof.simulated), task, result))

    def test_malformed_fields_are_invalid_not_errors(self, prover: Prover, proof: Proof, task: Task,
                                                     result: TaskResult) -> None:
        for name in ("commitment", "body", "signature"):
            value = getattr(proof, name)
            for bad in {b"", value[: len(value) // 2], value + b"\x00", b"\xff" * 4096} - {value}:
                assert_invalid(prover.verify(attrs.evolve(proof, **{name: bad}), task, result))

"""MockProver beyond the conformance suite: plugin wiring, settings, failure injection, tampering."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import HealthCheck, given, settings as hyp_settings, strategies as st

from gaia_core import plugins
from gaia_core.codec import decode, encode
from gaia_core.config import Config
from gaia_core.errors import CodecError, ConfigError, IdentityError, ValidationError
from gaia_core.identity import Identity
from gaia_core.model import Proof, Status, Task, TaskResult
from gaia_core.roles import NodeContext
from gaia_core.testing.conformance.prover import sample_result, sample_task
from gaia_zk_mock import SCHEME, MockProver, Settings
from gaia_zk_mock.statement import BODY_BYTES

IDENTITY = Identity.generate()
PROVER = MockProver(IDENTITY, Settings(simulate_time=False))
TASK = sample_task()
RESULT = sample_result(TASK, IDENTITY.node_id)
PROOF = PROVER.prove(TASK, RESULT)
quick = hyp_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def flip(data: bytes, index: int, mask: int) -> bytes:
    i = index % len(data)
    return data[:i] + bytes([data[i] ^ mask]) + data[i + 1:]


def flip_hex(text: str, index: int) -> str:
    i = index % len(text)
    return text[:i] + ("0" if text[i] != "0" else "1") + text[i + 1:]


def test_plugin_registers_a_simulated_prover(node_context: NodeContext) -> None:
    loaded = plugins.load(["gaia-zk-mock"])
    spec = loaded.prover(SCHEME)
    assert spec.simulated
    prover = spec.factory(node_context)
    assert isinstance(prover, MockProver) and prover.identity is node_context.identity


def test_settings_come_from_the_zk_mock_table(node_context: NodeContext) -> None:
    config = Config(extra={"zk_mock": {"simulate_time": False, "s_per_gigafuel": 2, "seed": 7}})
    prover = MockProver.from_context(attrs.evolve(node_context, config=config))
    assert prover.settings == Settings(simulate_time=False, s_per_gigafuel=2.0, seed=7)
    for bad in ({"invalid_rate": 1.5}, {"no_such_key": 1}, {"base_s": "soon"}):
        with pytest.raises(ConfigError, match="zk_mock"):
            MockProver.from_context(attrs.evolve(node_context, config=Config(extra={"zk_mock": bad})))


def test_proving_time_grows_with_fuel_and_is_capped() -> None:
    model = Settings(base_s=0.01, s_per_gigafuel=0.5, max_s=3.0, slow_factor=4.0)
    assert model.proving_s(0) == pytest.approx(0.01)
    assert model.proving_s(2_000_000_000) == pytest.approx(1.01)
    assert model.proving_s(10**12) == 3.0
    assert model.proving_s(0, slow=True) == pytest.approx(0.04)
    assert PROOF.proving_s == pytest.approx(Settings().proving_s(RESULT.fuel_used))


def test_proof_is_labelled_simulated_and_groth16_sized() -> None:
    assert PROOF.simulated and PROOF.scheme == "mock-groth16"
    assert len(PROOF.body) == BODY_BYTES == 192 and len(PROOF.commitment) == 32 and len(PROOF.signature) == 64
    assert "SIMULATED" in PROVER.verify(PROOF, TASK, RESULT).reason
    assert "simulated" in PROVER.verify(attrs.evolve(PROOF, simulated=False), TASK, RESULT).reason


def test_injected_failures_are_caught_by_verify() -> None:
    invalid = MockProver(IDENTITY, Settings(simulate_time=False, invalid_rate=1.0))
    assert "body" in PROVER.verify(invalid.prove(TASK, RESULT), TASK, RESULT).reason
    wrong = MockProver(IDENTITY, Settings(simulate_time=False, wrong_commitment_rate=1.0))
    assert "commitment" in PROVER.verify(wrong.prove(TASK, RESULT), TASK, RESULT).reason
    slow = MockProver(IDENTITY, Settings(simulate_time=False, slow_rate=1.0, slow_factor=5.0))
    slow_proof = slow.prove(TASK, RESULT)
    assert slow_proof.proving_s == pytest.approx(5 * PROOF.proving_s)
    assert PROVER.verify(slow_proof, TASK, RESULT).ok


def test_injection_rate_is_seeded_and_partial() -> None:
    def outcomes(seed: int) -> list[bool]:
        prover = MockProver(IDENTITY, Settings(simulate_time=False, invalid_rate=0.5, seed=seed))
        return [PROVER.verify(prover.prove(TASK, RESULT), TASK, RESULT).ok for _ in range(40)]

    first = outcomes(3)
    assert first == outcomes(3)
    assert 5 < sum(first) < 35


def test_prove_refuses_what_it_cannot_sign() -> None:
    with pytest.raises(IdentityError, match="gaia init"):
        MockProver(None).prove(TASK, RESULT)
    with pytest.raises(ValidationError, match="names node"):
        PROVER.prove(TASK, attrs.evolve(RESULT, node_id=Identity.generate().node_id))
    with pytest.raises(ValidationError, match="task"):
        PROVER.prove(sample_task(b"other"), RESULT)
    with pytest.raises(ValidationError, match="output_id"):
        PROVER.prove(TASK, attrs.evolve(RESULT, output=b"not the output"))


def test_verify_never_raises_on_wrong_types() -> None:
    for args in ((None, TASK, RESULT), (PROOF, None, RESULT), (PROOF, TASK, b"result")):
        verdict = PROVER.verify(*args)  # type: ignore[arg-type]
        assert verdict.status == "invalid" and verdict.reason


# -- property tests: any single-byte change is rejected ------------------------------------------


@quick
@given(index=st.integers(min_value=0), mask=st.integers(min_value=1, max_value=255))
def test_any_byte_change_to_the_task_input_is_rejected(index: int, mask: int) -> None:
    task = attrs.evolve(TASK, input=flip(TASK.input, index, mask))
    assert not PROVER.verify(PROOF, task, RESULT).ok
    assert not PROVER.verify(PROOF, task, attrs.evolve(RESULT, task_id=task.id)).ok


@quick
@given(index=st.integers(min_value=0), mask=st.integers(min_value=1, max_value=255))
def test_any_byte_change_to_the_encoded_task_is_rejected(index: int, mask: int) -> None:
    frame = encode(TASK)
    try:
        task = decode(flip(frame, index, mask), Task)
    except CodecError:
        return  # refused before it reached the prover
    assert not PROVER.verify(PROOF, task, RESULT).ok or task.identity() == TASK.identity()


@quick
@given(field=st.sampled_from(["output", "output_id", "node_id", "task_id", "fuel_used", "status"]),
       index=st.integers(min_value=0), mask=st.integers(min_value=1, max_value=255))
def test_any_byte_change_to_a_proven_result_field_is_rejected(field: str, index: int, mask: int) -> None:
    value = getattr(RESULT, field)
    if field == "output":
        changed = flip(value, index, mask)
    elif field == "fuel_used":
        changed = int.from_bytes(flip(value.to_bytes(8, "big"), index, mask), "big")
    elif field == "status":
        changed = list(Status)[index % (len(Status) - 1) + 1]
    else:
        changed = flip_hex(value, index)
    try:
        tampered = attrs.evolve(RESULT, **{field: changed})
    except ValueError:
        return  # not even a valid result (e.g. fuel beyond 2**63): refused before it reaches the prover
    assert not PROVER.verify(PROOF, TASK, tampered).ok


@quick
@given(index=st.integers(min_value=0), mask=st.integers(min_value=1, max_value=255))
def test_any_byte_change_to_the_proof_is_rejected(index: int, mask: int) -> None:
    frame = encode(PROOF)
    try:
        proof = decode(flip(frame, index, mask), Proof)
    except CodecError:
        return  # a garbage proof file is an invalid verdict in `gaia proof verify`
    assert not PROVER.verify(proof, TASK, RESULT).ok


@quick
@given(cut=st.integers(min_value=0, max_value=len(encode(PROOF)) - 1))
def test_truncated_proof_files_never_decode(cut: int) -> None:
    with pytest.raises(CodecError):
        decode(encode(PROOF)[:cut], Proof)


@quick
@given(garbage=st.binary(max_size=512))
def test_garbage_never_decodes_to_a_valid_proof(garbage: bytes) -> None:
    try:
        proof = decode(garbage, Proof)
    except CodecError:
        return
    assert not PROVER.verify(proof, TASK, RESULT).ok


def test_result_from_a_real_wire_round_trip_verifies() -> None:
    assert PROVER.verify(decode(encode(PROOF), Proof), decode(encode(TASK), Task),
                         decode(encode(RESULT), TaskResult)).ok

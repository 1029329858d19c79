"""Redundancy quorums, spot-checks and adaptive trust (gaia_core.verification)."""

from __future__ import annotations

import threading

import attrs
import pytest
from hypothesis import given, strategies as st

from gaia_core.errors import ValidationError
from gaia_core.model import TaskResult, Verdict
from gaia_core.verification import SpotCheck, Trust, agreed_fuel, combine, compare, quorum, quorum_of

A, B, C = ("a" * 64, "b" * 64, "c" * 64)
TASK = "d" * 64
NODES = [f"{i:064x}" for i in range(1, 8)]


def result(node: str, output_id: str, status: str = "ok") -> TaskResult:
    return TaskResult(task_id=TASK, status=status, node_id=node, output_id=output_id)


def test_quorum_majority_of_three_is_canonical_and_flags_the_dissenter() -> None:
    outcome = quorum({NODES[0]: A, NODES[1]: A, NODES[2]: B})
    assert outcome.canonical == A
    assert outcome.needed == 2
    assert outcome.agreeing == (NODES[0], NODES[1])
    assert outcome.disagreeing == (NODES[2],)
    assert outcome.verdict(NODES[0], TASK).status == "valid"
    assert outcome.verdict(NODES[2], TASK).status == "invalid"


def test_quorum_needs_a_strict_majority_of_k() -> None:
    # k=4 needs 3: two against two is no quorum, nobody is flagged.
    tie = quorum({NODES[0]: A, NODES[1]: A, NODES[2]: B, NODES[3]: B})
    assert tie.canonical is None and tie.needed == 3 and tie.disagreeing == ()
    assert tie.verdict(NODES[0]).status == "unverified"
    # Results still missing count against the quorum.
    assert quorum({NODES[0]: A, NODES[1]: A}, k=5).canonical is None
    assert quorum({NODES[0]: A, NODES[1]: A, NODES[2]: A}, k=5).canonical == A


def test_deterministic_failures_vote_by_status_and_node_failures_vote_for_nothing() -> None:
    outcome = quorum_of([result(NODES[0], "", "trap"), result(NODES[1], "", "trap"), result(NODES[2], A)])
    assert outcome.canonical == "status:trap" and outcome.disagreeing == (NODES[2],)
    outcome = quorum_of([result(NODES[0], A), result(NODES[1], A), result(NODES[2], A, "trap")])
    assert outcome.canonical == A and outcome.disagreeing == (NODES[2],)
    outcome = quorum_of([result(NODES[0], "", "timeout"), result(NODES[1], "", "timeout"), result(NODES[2], A)])
    assert outcome.canonical is None


def test_quorum_refuses_impossible_k() -> None:
    with pytest.raises(ValidationError, match="k=1"):
        quorum({NODES[0]: A, NODES[1]: A}, k=1)
    with pytest.raises(ValidationError):
        quorum({})


@given(st.dictionaries(st.sampled_from(NODES), st.sampled_from([A, B, C, ""]), min_size=1))
def test_quorum_properties(votes: dict[str, str]) -> None:
    outcome = quorum(votes)
    assert outcome.needed == len(votes) // 2 + 1
    if outcome.canonical is None:
        assert outcome.agreeing == outcome.disagreeing == ()
    else:
        assert len(outcome.agreeing) >= outcome.needed
        assert set(outcome.agreeing) | set(outcome.disagreeing) == set(votes)
        assert all(votes[n] == outcome.canonical for n in outcome.agreeing)
        assert all(votes[n] != outcome.canonical for n in outcome.disagreeing)


def test_compare_is_exact_on_output_and_status() -> None:
    assert compare(result(NODES[0], A), result(NODES[1], A)).status == "valid"
    wrong = compare(result(NODES[0], B), result(NODES[1], A))
    assert wrong.status == "invalid" and A in wrong.reason
    assert compare(result(NODES[0], "", "trap"), result(NODES[1], A)).status == "invalid"
    assert compare(result(NODES[0], A), result(NODES[1], "", "timeout")).status == "unverified"


def test_combine_invalid_wins_then_unverified() -> None:
    valid = Verdict("valid", "ok", TASK, "mock-groth16")
    assert combine([valid, Verdict("invalid", "bad"), Verdict("unverified", "?")]).status == "invalid"
    assert combine([valid, Verdict("unverified", "?")]).status == "unverified"
    assert combine([]).status == "unverified"
    both = combine([valid, Verdict("valid", "matches", TASK, "spot-check")])
    assert both.ok and both.scheme == "mock-groth16+spot-check"


def test_trust_streak_grows_and_resets() -> None:
    trust = Trust(threshold=3)
    for expected in (1, 2, 3):
        assert trust.record(A, Verdict("valid")) == expected
    assert trust.trusted(A)
    assert trust.record(A, Verdict("unverified")) == 3
    assert trust.record(A, Verdict("invalid")) == 0
    assert not trust.trusted(A) and trust.streak(B) == 0
    with pytest.raises(ValidationError):
        Trust(threshold=0)


def test_spot_check_rate_follows_boinc_adaptive_rule() -> None:
    policy = SpotCheck(rate=0.5, floor=0.02, trust=Trust(threshold=10))
    assert policy.rate_for(A) == 0.5
    for _ in range(9):
        policy.trust.record(A, Verdict("valid"))
    assert policy.rate_for(A) == 0.5  # not yet trusted
    policy.trust.record(A, Verdict("valid"))
    assert policy.rate_for(A) == pytest.approx(0.1)  # 1/10
    for _ in range(90):
        policy.trust.record(A, Verdict("valid"))
    assert policy.rate_for(A) == pytest.approx(0.02)  # 1/100 is below the floor
    policy.trust.record(A, Verdict("invalid"))
    assert policy.rate_for(A) == 0.5


def test_spot_check_choice_is_stable_keyed_and_near_the_rate() -> None:
    policy = SpotCheck(rate=0.25, key=b"k" * 32)
    tasks = [f"{i:064x}" for i in range(4000)]
    picks = [policy.should_check(t, A) for t in tasks]
    assert picks == [policy.should_check(t, A) for t in tasks]
    assert 800 < sum(picks) < 1200
    other = SpotCheck(rate=0.25, key=b"x" * 32)
    assert picks != [other.should_check(t, A) for t in tasks]
    assert not any(SpotCheck(rate=0.0).should_check(t, A) for t in tasks[:100])
    assert all(SpotCheck(rate=1.0).should_check(t, A) for t in tasks[:100])


def test_spot_check_records_the_verdict() -> None:
    policy = SpotCheck(rate=1.0)
    assert policy.check(result(NODES[0], A), result(NODES[1], A)).ok
    assert policy.trust.streak(NODES[0]) == 1
    assert policy.check(result(NODES[0], B), result(NODES[1], A)).status == "invalid"
    assert policy.trust.streak(NODES[0]) == 0


def test_trust_is_thread_safe() -> None:
    trust = Trust()
    threads = [threading.Thread(target=lambda: [trust.record(A, Verdict("valid")) for _ in range(500)])
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert trust.streak(A) == 2000


def test_compare_refuses_a_fuel_claim_the_re_execution_does_not_reproduce() -> None:
    local = attrs.evolve(result(NODES[0], A), fuel_used=1_000)
    assert compare(attrs.evolve(local, node_id=NODES[1]), local).ok
    verdict = compare(attrs.evolve(local, node_id=NODES[1], fuel_used=10**15), local)
    assert verdict.status == "invalid" and "claimed fuel 1000000000000000" in verdict.reason


def test_agreed_fuel_needs_a_strict_majority_and_names_the_other_claims() -> None:
    claims = [attrs.evolve(result(node, A), fuel_used=fuel) for node, fuel in zip(NODES, (7, 7, 9), strict=False)]
    assert agreed_fuel(claims) == (7, (NODES[2],))
    assert agreed_fuel(claims[1:]) == (None, ())
    assert agreed_fuel(claims[:2]) == (7, ())
    assert agreed_fuel([]) == (None, ())

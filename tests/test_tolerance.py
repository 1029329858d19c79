"""The tolerance verification option: float formats, the command-line spelling, spot-checks, and a job's
tolerance kept in state.db (gaia_core.verification.Tolerance, gaia_core.jobs.jobstore)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gaia_core.errors import ValidationError
from gaia_core.hashing import content_id
from gaia_core.jobs.jobstore import JobStore
from gaia_core.model import Task, TaskResult
from gaia_core.store import Store
from gaia_core.verification import Tolerance, compare, quorum_of

TASK = "d" * 64
NODES = [f"{i:064x}" for i in range(1, 4)]


def ok(node: str, output: bytes) -> TaskResult:
    return TaskResult(task_id=TASK, status="ok", node_id=node, output=output, output_id=content_id(output))


@pytest.mark.parametrize("floats, dtype", [("f32", "<f4"), ("f64", "<f8")])
def test_binary_arrays_agree_within_the_tolerance_of_their_own_width(floats: str, dtype: str) -> None:
    tolerance = Tolerance(rtol=1e-6, atol=1e-9, floats=floats)
    x = np.array([1.0, -2.5, 1e3], dtype=dtype)
    assert tolerance.agree(x.tobytes(), (x * (1 + 5e-7)).astype(dtype).tobytes())
    assert not tolerance.agree(x.tobytes(), (x * (1 + 5e-5)).astype(dtype).tobytes())
    assert not tolerance.agree(x.tobytes(), x[:2].tobytes())  # another length
    assert not tolerance.agree(x.tobytes() + b"\0", x.tobytes() + b"\0")  # not a whole number of elements


def test_f64_is_read_as_f64() -> None:
    # the same 8 bytes as float32 pairs would be wildly different numbers; as one float64 they are close
    a, b = np.array([1.0], "<f8").tobytes(), np.array([1.0 + 1e-12], "<f8").tobytes()
    assert Tolerance(rtol=1e-9, atol=0, floats="f64").agree(a, b)
    assert not Tolerance(rtol=1e-9, atol=0, floats="f32").agree(a, b)


def test_text_compares_its_numbers_and_the_rest_byte_for_byte() -> None:
    tolerance = Tolerance(rtol=1e-5, atol=1e-5, floats="text")
    assert tolerance.agree(b"loss 0.1234567 acc 93.0\n", b"loss 0.1234571 acc 93.00001\n")
    assert tolerance.agree(b'{"y": [1e-3, -2.0]}', b'{"y": [0.00100001, -2.00001]}')
    assert not tolerance.agree(b"loss 0.1234567\n", b"loss 0.1244567\n")  # outside
    assert not tolerance.agree(b"loss 0.1\n", b"lost 0.1\n")  # other words
    assert not tolerance.agree(b"1 2 3", b"1 2")  # other count
    assert tolerance.agree(b"no numbers", b"no numbers")


def test_nan_and_infinity_never_agree() -> None:
    nan = np.array([np.nan], "<f4").tobytes()
    assert not Tolerance().agree(nan, nan)
    assert not Tolerance(floats="text").agree(b"1e999", b"1e999")


@pytest.mark.parametrize("spec, rtol, atol", [("1e-5", 1e-5, 1e-5), ("1e-4,1e-6", 1e-4, 1e-6), ("0", 0, 0)])
def test_parse_reads_rtol_and_an_optional_atol(spec: str, rtol: float, atol: float) -> None:
    assert Tolerance.parse(spec, "text") == Tolerance(rtol, atol, "text")


@pytest.mark.parametrize("spec", ["", "abc", "1e-5,1e-6,1", "nan", "2", "-1e-5", "inf"])
def test_parse_refuses_what_is_not_a_tolerance_in_one_line(spec: str) -> None:
    with pytest.raises(ValidationError) as info:
        Tolerance.parse(spec)
    assert "\n" not in str(info.value) and "RTOL" in str(info.value)


@pytest.mark.parametrize("table", [{"rtol": 2.0, "atol": 0, "floats": "f32"}, {"rtol": 0.1, "floats": "f16"},
                                   {"rtol": 0.1, "bogus": 1}])
def test_options_from_a_submitter_are_checked(table: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Tolerance.of(table)


def test_a_quorum_within_the_tolerance_flags_the_outlier() -> None:
    tolerance = Tolerance(rtol=1e-5, floats="text")
    results = [ok(NODES[0], b"0.5000001"), ok(NODES[1], b"0.5000002"), ok(NODES[2], b"0.7")]
    assert quorum_of(results, k=3).canonical is None  # byte for byte, no two agree
    decided = quorum_of(results, k=3, tolerance=tolerance)
    assert decided.canonical is not None and decided.disagreeing == (NODES[2],)


def test_a_spot_check_compares_within_the_jobs_tolerance() -> None:
    tolerance = Tolerance(rtol=1e-5, floats="text")
    local = ok(NODES[0], b"3.1415926")
    assert compare(ok(NODES[1], b"3.1415925"), local).status == "invalid"  # bytes differ
    assert compare(ok(NODES[1], b"3.1415925"), local, tolerance).ok
    verdict = compare(ok(NODES[1], b"3.15"), local, tolerance)
    assert verdict.status == "invalid" and "not within rtol=1e-05" in verdict.reason


def test_a_jobs_tolerance_is_kept_in_state_db_and_none_means_bytes(tmp_path: Path) -> None:
    task = Task(module_id="ab" * 32, kind="oci", entry="true")
    store = Store(tmp_path / "state.db")
    jobs = JobStore(store)
    jobs.create("aa" * 8, "floats", 2, 0.0, [task], None, Tolerance(1e-4, 1e-6, "f64"))
    jobs.create("bb" * 8, "bytes", 2, 0.0, [task], None)
    store.close()
    store = Store(tmp_path / "state.db")  # as a restarted node reads it
    try:
        assert JobStore(store).tolerance("aa" * 8) == Tolerance(1e-4, 1e-6, "f64")
        assert JobStore(store).tolerance("bb" * 8) is None
    finally:
        store.close()


def test_the_text_around_the_numbers_is_compared_piece_by_piece() -> None:
    assert not Tolerance(floats="text").agree(b"a\0 1 b", b"a 1 \0b")  # the same bytes moved across a number


def test_votes_read_each_output_once(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[bytes] = []
    numbers = Tolerance.numbers
    monkeypatch.setattr(Tolerance, "numbers", lambda self, output: reads.append(output) or numbers(self, output))
    results = [ok(f"{i:064x}", f"{1 + i * 1e-9:.9f} {i}".encode()) for i in range(1, 10)]
    assert len(set(Tolerance(rtol=1e-5, floats="text").votes(results).values())) == 9  # the integers differ
    assert len(reads) == 9


@pytest.mark.parametrize("rtol", [1.0, 0.5, 0.11])
def test_a_tolerance_loose_enough_to_match_anything_is_refused(rtol: float) -> None:
    # at rtol=1 an all-zero output agreed with every output: |0 - x| <= 1 * |x|
    with pytest.raises(ValidationError, match="not a tolerance"):
        Tolerance.of({"rtol": rtol, "atol": 0, "floats": "text"})
    with pytest.raises(ValidationError, match="RTOL at most 0.1"):
        Tolerance.parse(str(rtol))


def test_identical_outputs_agree_in_a_spot_check_even_without_numbers_to_compare() -> None:
    nan = np.array([np.nan], "<f4").tobytes()  # a replica vote counts the same bytes as one output too
    assert compare(ok(NODES[1], nan), ok(NODES[0], nan), Tolerance()).ok
    assert compare(ok(NODES[1], b"1e999"), ok(NODES[0], b"1e999"), Tolerance(floats="text")).ok


def test_text_read_in_blocks_is_read_as_a_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """A text output is read a block at a time (its pieces of text are not all held at once); where the blocks
    are cut changes nothing, whatever the formatting shifts."""
    from gaia_core import verification

    rng = np.random.default_rng(7)
    values = rng.normal(size=2000) * 10.0 ** rng.integers(-8, 8, size=2000)
    a = ", ".join(f"{x:.9g}" for x in values).encode() + b", e-" + b"1e1" * 100  # the tail: no byte outside
    b = ", ".join(f"{x:.12e}" for x in values).encode() + b", e-" + b"1e1" * 100  # a number to cut after
    whole = Tolerance(rtol=1e-8, atol=0, floats="text")
    expected = whole.numbers(a)
    assert expected is not None and len(expected[1]) > 2000 and whole.agree(a, b)
    for block in (1, 7, 64, 1000):
        monkeypatch.setattr(verification, "_BLOCK", block)
        got = whole.numbers(a)
        assert got is not None and got[0] == expected[0] and np.array_equal(got[1], expected[1])
        assert whole.agree(a, b) and not whole.agree(a, b.replace(b", ", b" ,", 1))


def test_numbers_whose_difference_overflows_disagree_without_a_warning() -> None:
    import warnings

    a, b = np.array([1e308], "<f8").tobytes(), np.array([-1e308], "<f8").tobytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a peer's output must not make the node print numpy's warnings
        assert not Tolerance(floats="f64").agree(a, b)
        assert not Tolerance(floats="text").agree(b"1e308", b"-1e308")


def test_a_replica_at_the_edge_of_the_tolerance_cannot_outvote_an_honest_one() -> None:
    """Honest A and B differ by 1e-7; X sits just inside the tolerance below A, just outside it from B. Were the
    first output in id order the representative, an X sorting first made B the outlier (flagged invalid)."""
    tolerance = Tolerance(rtol=1e-5, atol=0, floats="text")
    a, b = ok(NODES[0], b"1.0000000"), ok(NODES[1], b"1.0000001")
    edge = next(x for x in (ok(NODES[2], b"0.99999000010" + b"0" * n) for n in range(200))
                if x.output_id < min(a.output_id, b.output_id))  # the same number, its id sorting first
    assert tolerance.agree(edge.output, a.output) and not tolerance.agree(edge.output, b.output)
    decided = quorum_of([a, b, edge], k=3, tolerance=tolerance)
    assert decided.canonical == a.output_id and decided.disagreeing == ()

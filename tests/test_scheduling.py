"""Scheduler kernel tests: golden scenarios on both backends, unit behaviour, and Hypothesis
properties (ordering invariants, nothing lost or duplicated, native == reference, fair-share bound)."""

from __future__ import annotations

import importlib
import math
import os
import sys
import threading
import warnings

import pytest
from golden import GOLDEN, gaia_native, needs_native, replay
from hypothesis import given, settings, strategies as st

from gaia_core._reference.scheduling import Scheduler as RefScheduler

IMPLS = [RefScheduler] + ([gaia_native.Scheduler] if gaia_native is not None else [])
PROPS = settings(max_examples=150, deadline=None)


@pytest.fixture(params=[pytest.param("native", marks=needs_native), "python"])
def Sched(request):
    return gaia_native.Scheduler if request.param == "native" else RefScheduler


# --------------------------------------------------------------------------- golden scenarios
@pytest.mark.parametrize("scenario", GOLDEN["scheduler"], ids=lambda s: s["name"])
def test_golden_scenarios(Sched, scenario):
    assert replay(Sched(), scenario["ops"]) == scenario["results"]


# --------------------------------------------------------------------------- unit behaviour
def test_priority_edf_fifo(Sched):
    s = Sched()
    s.push("low", 0)
    s.push("late", 1, deadline=50.0)
    s.push("none", 1)
    s.push("soon", 1, deadline=10.0)
    s.push("soon2", 1, deadline=10.0)
    s.push("urgent", 5)
    assert len(s) == 6
    assert s.pop_many(10) == ["urgent", "soon", "soon2", "late", "none", "low"]
    assert s.pop() is None
    assert s.pop_many(3) == []
    assert len(s) == 0


def test_fair_share_round_robin_and_weights(Sched):
    s = Sched()
    s.push_many([(f"a{i}", 0, None, "alice") for i in range(30)])
    s.push_many([(f"b{i}", 0, None, "bob") for i in range(30)])
    assert s.pop_many(4) == ["a0", "b0", "a1", "b1"]
    s.set_share("bob", 3.0)
    got = s.pop_many(16)
    assert sum(k.startswith("b") for k in got) == 12
    assert s.served("alice") == pytest.approx(6.0)
    assert s.served("nobody") == 0.0


def test_fair_share_only_within_top_class(Sched):
    s = Sched()
    s.push("a-hi", 1, submitter="alice")
    s.push("a-hi2", 1, submitter="alice")
    s.push("b-lo", 0, submitter="bob")
    # bob has less service but priority classes are strict.
    assert s.pop_many(3) == ["a-hi", "a-hi2", "b-lo"]


def test_no_banked_credit_while_idle(Sched):
    s = Sched()
    s.push_many([(f"a{i}", 0, None, "alice") for i in range(10)])
    assert len(s.pop_many(10)) == 10
    s.push(
        "b0", submitter="bob"
    )  # alice is idle: bob starts at 0, nobody to catch up to
    assert s.served("bob") == 0.0
    s.pop()
    s.push_many([(f"a{i}", 0, None, "alice") for i in range(10, 14)])
    s.push_many([(f"c{i}", 0, None, "carol") for i in range(4)])
    assert (
        s.served("carol") == s.served("alice") == 10.0
    )  # carol catches up to the active minimum
    assert s.pop_many(4) == ["a10", "c0", "a11", "c1"]


def test_cost_is_charged(Sched):
    s = Sched()
    s.push("big", submitter="a", cost=5.0)
    s.push("a2", submitter="a")
    s.push("b1", submitter="b")
    s.push("b2", submitter="b")
    assert s.pop_many(4) == ["big", "b1", "b2", "a2"]
    assert s.served("a") == 6.0


def test_errors_and_atomic_push_many(Sched):
    s = Sched()
    s.push("x")
    with pytest.raises(ValueError, match="already queued"):
        s.push("x")
    with pytest.raises(ValueError):
        s.push("nan", deadline=math.nan)
    with pytest.raises(ValueError):
        s.push("neg", cost=-1.0)
    with pytest.raises(ValueError):
        s.set_share("a", 0.0)
    with pytest.raises(ValueError):
        s.set_share("a", -2.0)
    with pytest.raises(TypeError):
        s.push(123)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        s.push("f", priority=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        s.push_many([("y", 0, None, ""), ("z", 0, None, ""), ("y", 0, None, "")])
    with pytest.raises(ValueError):
        s.push_many([("y", 0, None, ""), ("x", 0, None, "")])
    assert len(s) == 1 and "y" not in s  # nothing from the failed batches
    s.push_many(iter([("y", 0, None, "")]))  # any iterable
    assert "y" in s


def test_remove_contains_and_expire(Sched):
    s = Sched()
    s.push("a", 0, deadline=3.0, submitter="p")
    s.push("b", 2, deadline=1.0, submitter="q")
    s.push("c", 0, submitter="p")
    s.push("d", 1, deadline=1.0, submitter="r")
    assert "a" in s and 42 not in s and "zz" not in s
    assert s.remove("c") and not s.remove("c")
    assert s.pop_expired(1.0) == []  # strictly earlier than now
    assert s.pop_expired(5.0) == ["b", "d", "a"]
    assert len(s) == 0 and s.served("p") == 0.0
    s.push("a", deadline=1.0)  # a removed key may be queued again
    assert s.pop() == "a"


@needs_native
def test_native_keys_are_the_callers_own_str_objects():
    s = gaia_native.Scheduler()
    key = "".join(["task-", str(10**30)])  # a fresh, non-interned str
    baseline = sys.getrefcount(key)
    s.push(key, submitter="p")
    s.push_many([(f"k{i}", 0, None, "p") for i in range(3)])
    assert sys.getrefcount(key) == baseline + 1  # held, not copied
    assert s.pop() is key  # the same object back
    assert sys.getrefcount(key) == baseline  # and let go
    with pytest.raises(UnicodeEncodeError):
        s.push("bad-\ud800")  # a lone surrogate has no UTF-8 form
    assert len(s) == 3 and "bad-\ud800" not in s


@needs_native
def test_native_scheduler_shared_by_threads_loses_and_duplicates_nothing():
    s = gaia_native.Scheduler()
    popped: list[str] = []

    def work(t: int) -> None:
        for i in range(2000):
            s.push(f"t{t}-{i}", i % 3, None, f"sub{t}")
            if i % 2:
                popped.extend(s.pop_many(1))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert not any(th.is_alive() for th in threads)
    popped += s.pop_many(10_000)
    assert sorted(popped) == sorted(f"t{t}-{i}" for t in range(4) for i in range(2000))


# --------------------------------------------------------------------------- properties
KEYS = [f"k{i}" for i in range(12)]
SUBMITTERS = ["", "alice", "bob", "carol"]
deadlines = st.one_of(st.none(), st.integers(0, 8).map(float))
op_strategy = st.one_of(
    st.tuples(st.just("push"), st.sampled_from(KEYS), st.integers(-1, 2), deadlines, st.sampled_from(SUBMITTERS),
              st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0])),
    st.tuples(st.just("push_many"), st.lists(st.tuples(st.sampled_from(KEYS), st.integers(-1, 2), deadlines,
                                                         st.sampled_from(SUBMITTERS)), max_size=4)),
    st.tuples(st.just("pop")),
    st.tuples(st.just("pop_many"), st.integers(-1, 5)),
    st.tuples(st.just("remove"), st.sampled_from(KEYS)),
    st.tuples(st.just("contains"), st.sampled_from(KEYS)),
    st.tuples(st.just("len")),
    st.tuples(st.just("pop_expired"), st.integers(0, 9).map(float)),
    st.tuples(st.just("set_share"), st.sampled_from(SUBMITTERS), st.sampled_from([0.25, 1.0, 2.0, 5.0, 0.0])),
    st.tuples(st.just("served"), st.sampled_from(SUBMITTERS + ["nobody"])),
)  # fmt: skip


@needs_native
@PROPS
@given(st.lists(op_strategy, max_size=60))
def test_native_equals_reference_on_random_ops(ops):
    ops = [list(op) for op in ops]
    assert replay(gaia_native.Scheduler(), ops) == replay(RefScheduler(), ops)


@needs_native
@pytest.mark.parametrize("seed", range(5))
def test_native_equals_reference_long_sequences(seed):
    """Many cancellations: exercises the native queues' tombstone compaction."""
    import random

    rng = random.Random(seed)
    ops: list[list] = []
    for i in range(600):
        dl = None if i % 3 == 0 else float(rng.randint(0, 50))
        ops.append(
            [
                "push",
                f"k{i}",
                rng.randint(0, 1),
                dl,
                rng.choice(["a", "b"]),
                rng.choice([0.5, 1.0, 2.0]),
            ]
        )
    ops += [["remove", f"k{i}"] for i in rng.sample(range(600), 450)]
    for j in range(400):
        r = rng.random()
        if r < 0.4:
            ops.append(
                [
                    "push",
                    f"n{j}",
                    rng.randint(0, 2),
                    float(rng.randint(0, 60)),
                    rng.choice("abc"),
                    1.0,
                ]
            )
        elif r < 0.7:
            ops.append(["pop_many", rng.randint(0, 3)])
        elif r < 0.85:
            ops.append(
                [
                    "remove",
                    rng.choice([f"n{rng.randint(0, j)}", f"k{rng.randint(0, 599)}"]),
                ]
            )
        else:
            ops.append(["pop_expired", float(rng.randint(0, 40))])
    ops.append(["pop_many", 10_000])
    assert replay(gaia_native.Scheduler(), ops) == replay(RefScheduler(), ops)


class Model:
    """Tracks what is queued, to check each pop against the ordering rules independently."""

    def __init__(self) -> None:
        self.queued: dict[
            str, tuple[int, float, str, int]
        ] = {}  # key -> (priority, deadline, submitter, seq)
        self.seq = 0

    def push(self, key, priority, deadline, submitter):
        self.queued[key] = (
            priority,
            math.inf if deadline is None else deadline,
            submitter,
            self.seq,
        )
        self.seq += 1

    def check_pop(self, key):
        prio, deadline, sub, seq = self.queued.pop(key)
        others = list(self.queued.values())
        assert all(p <= prio for p, *_ in others), "a higher priority class was skipped"
        same = [(d, q) for p, d, s, q in others if p == prio and s == sub]
        assert all((deadline, seq) < x for x in same), (
            "EDF/FIFO violated within a submitter"
        )


@pytest.mark.parametrize("Impl", IMPLS, ids=lambda c: c.__module__)
@PROPS
@given(data=st.data())
def test_ordering_invariants_and_nothing_lost(Impl, data):
    s, model = Impl(), Model()
    pushed, popped = [], []
    n = 0
    for _ in range(data.draw(st.integers(1, 40), label="steps")):
        action = data.draw(
            st.sampled_from(
                ["push", "push", "push_many", "pop", "pop_many", "remove", "expire"]
            )
        )
        if action == "push":
            key, prio = f"t{n}", data.draw(st.integers(0, 3))
            dl, sub = data.draw(deadlines), data.draw(st.sampled_from(SUBMITTERS))
            n += 1
            s.push(key, prio, dl, sub, data.draw(st.sampled_from([0.5, 1.0, 2.0])))
            model.push(key, prio, dl, sub)
            pushed.append(key)
        elif action == "push_many":
            batch = []
            for _ in range(data.draw(st.integers(0, 6))):
                batch.append((f"t{n}", data.draw(st.integers(0, 3)), data.draw(deadlines),
                              data.draw(st.sampled_from(SUBMITTERS))))  # fmt: skip
                n += 1
            s.push_many(batch)
            for item in batch:
                model.push(*item)
                pushed.append(item[0])
        elif action in ("pop", "pop_many"):
            keys = (
                s.pop_many(data.draw(st.integers(1, 4)))
                if action == "pop_many"
                else [s.pop()]
            )
            for key in keys:
                if key is None:
                    assert not model.queued
                    continue
                model.check_pop(key)
                popped.append(key)
        elif action == "remove" and pushed:
            key = data.draw(st.sampled_from(pushed))
            assert s.remove(key) == (key in model.queued)
            if model.queued.pop(key, None) is not None:
                popped.append(key)
        elif action == "expire":
            now = float(data.draw(st.integers(0, 9)))
            got = s.pop_expired(now)
            want = sorted(
                (k for k, v in model.queued.items() if v[1] < now),
                key=lambda k: model.queued[k][1::2],
            )
            assert got == want
            for key in got:
                del model.queued[key]
            popped.extend(got)
        assert len(s) == len(model.queued)
    rest = s.pop_many(10_000)
    for key in rest:
        model.check_pop(key)
    popped.extend(rest)
    assert len(popped) == len(set(popped)), "an item came out twice"
    assert sorted(popped) == sorted(pushed), "an item was lost"


@pytest.mark.parametrize("Impl", IMPLS, ids=lambda c: c.__module__)
@PROPS
@given(
    weights=st.lists(
        st.sampled_from([0.5, 1.0, 2.0, 3.0, 4.0]), min_size=2, max_size=5
    ),
    pops=st.integers(1, 120),
)
def test_fair_share_bound(Impl, weights, pops):
    """Backlogged submitters' normalized service (count / weight) never drifts apart by more than
    one pop's worth, max(1 / weight): the stride-scheduling fairness bound."""
    s = Impl()
    names = [f"s{i}" for i in range(len(weights))]
    for name, w in zip(names, weights, strict=True):
        s.set_share(name, w)
        s.push_many(
            [(f"{name}-{j}", 0, None, name) for j in range(pops)]
        )  # stays backlogged
    counts = dict.fromkeys(names, 0)
    bound = max(1.0 / w for w in weights) + 1e-9
    for key in s.pop_many(pops):
        counts[key.split("-")[0]] += 1
        norm = [counts[n] / w for n, w in zip(names, weights, strict=True)]
        assert max(norm) - min(norm) <= bound
    for name, w in zip(names, weights, strict=True):
        assert s.served(name) == pytest.approx(counts[name] / w)


# --------------------------------------------------------------------------- facade and fallback
def test_facade_backend():
    from gaia_core import scheduling

    assert scheduling.BACKEND in ("native", "python")
    if gaia_native is not None and os.environ.get("GAIA_BACKEND") != "python":
        assert (
            scheduling.BACKEND == "native"
            and scheduling.Scheduler is gaia_native.Scheduler
        )
        assert scheduling.BACKEND_ERROR is None


def test_facade_falls_back_with_warning(monkeypatch):
    from gaia_core import scheduling

    monkeypatch.setitem(sys.modules, "gaia_native", None)
    monkeypatch.delenv("GAIA_BACKEND", raising=False)
    try:
        with pytest.warns(
            RuntimeWarning, match=r"could not be loaded.*pip install gaia-native"
        ):
            mod = importlib.reload(scheduling)
        assert mod.BACKEND == "python" and mod.Scheduler is RefScheduler
        assert "gaia_native" in mod.BACKEND_ERROR
    finally:
        monkeypatch.undo()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            importlib.reload(scheduling)

"""No capabilities by default; a capability reaches a task only if asked for AND offered."""

from __future__ import annotations

import pytest
from hostile import PROBE

from gaia_core.config import Config
from gaia_core.model import CAPABILITIES, Limits, Status, Task

EBADF, ENOTCAPABLE = 8, 76
DENIED = bytes([EBADF, 0, ENOTCAPABLE, ENOTCAPABLE])
GRANTED = bytes([0, 1, 0, 0])


def probe(capabilities: frozenset[str] = frozenset()) -> Task:
    return Task.create(PROBE, entry="_start", limits=Limits(capabilities=capabilities))


def offering(capabilities: frozenset[str]) -> Config:
    return Config(offer=Limits(capabilities=capabilities), extra={"runner_wasm": {"env": ["GAIA_TEST_SECRET"]}})


@pytest.fixture(autouse=True)
def host_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAIA_TEST_SECRET", "hunter2")


def test_nothing_by_default(runner) -> None:
    result = runner.run(probe())
    assert result.status is Status.OK, result.message
    assert result.output == DENIED


def test_asked_but_not_offered_is_denied(runner) -> None:
    assert runner.run(probe(CAPABILITIES)).output == DENIED


def test_offered_but_not_asked_is_denied(make_runner) -> None:
    assert make_runner(offering(CAPABILITIES)).run(probe()).output == DENIED


def test_asked_and_offered_is_granted(make_runner) -> None:
    result = make_runner(offering(CAPABILITIES)).run(probe(CAPABILITIES))
    assert result.status is Status.OK, result.message
    assert result.output == GRANTED


@pytest.mark.parametrize("capability, index", [("fs", 0), ("env", 1), ("clock", 2), ("random", 3)])
def test_each_grant_alone(make_runner, capability: str, index: int) -> None:
    output = make_runner(offering(frozenset({capability}))).run(probe(frozenset({capability}))).output
    expected = bytearray(DENIED)
    expected[index] = GRANTED[index]
    assert output == bytes(expected)

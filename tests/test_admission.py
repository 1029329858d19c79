"""Admission: each kernel check refuses with its reason, in the documented order."""

from __future__ import annotations

import attrs
import pytest

from gaia_core import admission, hookimpl
from gaia_core.config import AdmissionSection, Config
from gaia_core.envelope import seal
from gaia_core.errors import RejectedError
from gaia_core.identity import Identity
from gaia_core.model import Envelope, Limits, Task
from gaia_core.plugins import Plugins
from gaia_core.roles import NodeContext

MODULE = b"\x00asm\x01\x00\x00\x00"
NOW = 1_700_000_000.0


@pytest.fixture
def context(node_context: NodeContext) -> NodeContext:
    config = Config(admission=AdmissionSection(max_module_bytes=64, max_input_bytes=64), offer=Limits(fuel=1000))
    return attrs.evolve(node_context, config=config)


@pytest.fixture
def task(identity: Identity) -> Task:
    return Task.create(MODULE, input=b"in", limits=Limits(fuel=10), submitter=identity.node_id, deadline=NOW + 60)


def _reason(task: Task, context: NodeContext, **kwargs: object) -> str:
    with pytest.raises(RejectedError) as info:
        admission.check(task, context, now=NOW, **kwargs)
    assert info.value.message and info.value.exit_code == 6
    return info.value.reason


def test_a_good_task_is_admitted(task: Task, context: NodeContext, identity: Identity) -> None:
    envelope = seal(identity, "task", b"", now=NOW)
    admission.check(task, context, envelope=envelope, claimed_id=task.id, now=NOW)
    admission.check(task.without_module(), context, now=NOW)


def test_the_kernel_reasons_are_listed() -> None:
    assert admission.REASONS[:7] == ("too_large", "bad_id", "bad_module", "bad_signature", "no_runner",
                                     "over_limits", "expired")


def test_1_too_large_module(task: Task, context: NodeContext) -> None:
    big = Task.create(b"m" * 65, input=b"in")
    assert _reason(big, context) == "too_large"


def test_1_too_large_input(task: Task, context: NodeContext) -> None:
    assert _reason(attrs.evolve(task, input=b"i" * 65), context) == "too_large"


def test_2_bad_id(task: Task, context: NodeContext) -> None:
    assert _reason(task, context, claimed_id="f" * 64) == "bad_id"


def test_3_bad_module(task: Task, context: NodeContext) -> None:
    assert _reason(attrs.evolve(task, module=b"\x00asm-other"), context) == "bad_module"


def test_4_bad_signature_forged(task: Task, context: NodeContext, identity: Identity) -> None:
    envelope = attrs.evolve(seal(identity, "task", b"x", now=NOW), body=b"y")
    assert _reason(task, context, envelope=envelope) == "bad_signature"


def test_4_bad_signature_wrong_submitter(task: Task, context: NodeContext) -> None:
    envelope = seal(Identity.generate(), "task", b"", now=NOW)
    assert _reason(task, context, envelope=envelope) == "bad_signature"


def test_5_no_runner(task: Task, context: NodeContext) -> None:
    assert _reason(attrs.evolve(task, kind="python"), context) == "no_runner"


def test_6_over_limits(task: Task, context: NodeContext) -> None:
    assert _reason(attrs.evolve(task, limits=Limits(fuel=1001)), context) == "over_limits"
    assert _reason(attrs.evolve(task, limits=Limits(fuel=10, capabilities={"net"})), context) == "over_limits"


def test_7_expired(task: Task, context: NodeContext) -> None:
    assert _reason(attrs.evolve(task, deadline=NOW), context) == "expired"


class Validator:
    """A plugin adding its own admission rule."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.seen: list[tuple[str, Envelope | None]] = []

    @hookimpl
    def gaia_validate_task(self, task: Task, envelope: Envelope | None, context: NodeContext) -> None:
        self.seen.append((task.id, envelope))
        raise self.error


def _with_validator(context: NodeContext, plugins: Plugins, error: Exception) -> tuple[NodeContext, Validator]:
    validator = Validator(error)
    plugins.register(validator, "validator")
    return attrs.evolve(context, hook=plugins.hook), validator


def test_8_gaia_validate_task_refusal_passes_through(task: Task, context: NodeContext,
                                                      plugin_manager: Plugins) -> None:
    context, validator = _with_validator(context, plugin_manager, RejectedError("policy", "not on Sundays"))
    assert _reason(task, context) == "policy"
    assert validator.seen == [(task.id, None)]


def test_8_gaia_validate_task_crash_is_invalid(task: Task, context: NodeContext, plugin_manager: Plugins) -> None:
    context, _ = _with_validator(context, plugin_manager, KeyError("boom"))
    with pytest.raises(RejectedError, match="KeyError") as info:
        admission.check(task, context, now=NOW)
    assert info.value.reason == "invalid"


def test_kernel_checks_run_before_plugin_rules(task: Task, context: NodeContext, plugin_manager: Plugins) -> None:
    context, validator = _with_validator(context, plugin_manager, RejectedError("policy", "no"))
    assert _reason(attrs.evolve(task, deadline=NOW - 1), context) == "expired"
    assert validator.seen == []


@pytest.mark.parametrize(
    ("change", "kwargs", "reason"),
    [
        ({"input": b"i" * 65, "kind": "python"}, {"claimed_id": "f" * 64}, "too_large"),
        ({"module": b"other", "kind": "python"}, {"claimed_id": "f" * 64}, "bad_id"),
        ({"module": b"other", "kind": "python"}, {}, "bad_module"),
        ({"kind": "python", "limits": Limits(fuel=5000)}, {"forged": True}, "bad_signature"),
        ({"kind": "python", "limits": Limits(fuel=5000), "deadline": NOW}, {}, "no_runner"),
        ({"limits": Limits(fuel=5000), "deadline": NOW}, {}, "over_limits"),
    ],
)
def test_the_first_failing_check_wins(task: Task, context: NodeContext, identity: Identity, change: dict,
                                      kwargs: dict, reason: str) -> None:
    if kwargs.pop("forged", False):
        kwargs["envelope"] = attrs.evolve(seal(identity, "task", b"", now=NOW), signature=b"")
    assert _reason(attrs.evolve(task, **change), context, **kwargs) == reason

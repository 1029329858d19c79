"""Option types of the task commands: numbers that are finite and inside sane bounds.

click's ``FloatRange`` lets ``nan`` through (it compares false with every bound) and turns ``1e400``
into ``inf``; these types refuse both with one line that says what was wrong and what to give instead.
"""

from __future__ import annotations

import math
from typing import Any

import click

#: Seconds in a day; the bounds below are whole days.
DAY_S = 86_400.0
#: The latest ``--deadline`` accepted, in seconds from now.
MAX_DEADLINE_S = 365 * DAY_S
#: The longest ``--timeout`` accepted for one task, in seconds.
MAX_TIMEOUT_S = 7 * DAY_S
#: The most fuel one task may be given (what a signed 64-bit counter holds).
MAX_FUEL = (1 << 63) - 1
#: The largest ``--memory`` accepted for one task, in MiB (1 TiB).
MAX_MEMORY_MIB = 1 << 20


def _seconds(value: float) -> str:
    """``value`` seconds for a message: ``0.001 s``, ``7 days``."""
    return f"{value / DAY_S:g} days" if value >= DAY_S else f"{value:g} s"


class Seconds(click.FloatRange):
    """A finite number of seconds in ``[min, max]``; ``nan``, ``inf`` and values out of range are refused."""

    name = "seconds"

    def __init__(self, min: float, max: float) -> None:  # noqa: A002 - click's own parameter names
        super().__init__(min=min, max=max)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Parse ``value``; fail with a one-line message unless it is finite and within the bounds."""
        number = click.FLOAT.convert(value, param, ctx)
        bounds = f"give a number of seconds from {_seconds(self.min)} to {_seconds(self.max)}"
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number; {bounds}", param, ctx)
        if not self.min <= number <= self.max:
            self.fail(f"{number:g} is out of range; {bounds}", param, ctx)
        return number


class Integer(click.IntRange):
    """A whole number in ``[min, max]``, refused with a one-line message that gives the bounds."""

    name = "integer"

    def __init__(self, min: int, max: int) -> None:  # noqa: A002
        super().__init__(min=min, max=max)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Parse ``value``; fail unless it is a whole number within the bounds."""
        bounds = f"give a whole number from {self.min} to {self.max}"
        try:
            number = int(value)
        except (TypeError, ValueError, OverflowError):
            self.fail(f"{value!r} is not a whole number; {bounds}", param, ctx)
        if not self.min <= number <= self.max:
            self.fail(f"{number} is out of range; {bounds}", param, ctx)
        return number

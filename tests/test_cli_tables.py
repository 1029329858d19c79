"""Tables fit 80 columns without cutting ids; fuel and credit are humanised; ``--to`` takes the id prefix a
table shows, or says why not."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gaia_core import console as console_mod
from gaia_core.commands.jobs import resolve_node
from gaia_core.config import Home
from gaia_core.errors import UsageError
from tests.nodes import detached_node, gaia, node_id, wait_until

workloads = pytest.importorskip("gaia_runner_wasm.workloads")

A, B = "ab12" + "0" * 60, "ab13" + "1" * 60


@pytest.fixture
def width80(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console_mod.console, "width", 80)


def test_a_wide_table_fits_80_columns_and_keeps_its_ids(capsys, width80) -> None:
    rows = [(console_mod.short_id(A), "a-node-with-a-very-long-name", "127.0.0.1:40771", "up", "3s", "0.5", "0.00",
             "12.3k", "stale 3, forged 2, replayed 9, wrong_channel 4")]
    console_mod.print_table(None, ["node", "name", "address", "state", "seen", "rtt ms", "load", "score", "refused"],
                            rows, flex=("name", "address", "refused"))
    lines = capsys.readouterr().out.splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    assert lines[1].startswith(A[:12] + "  ")  # the id whole, first
    assert "…" in lines[1]  # free text cut, not the ids or numbers
    assert " 12.3k " in lines[1] and " 0.00 " in lines[1]


@pytest.mark.parametrize(("value", "shown"), [(0, "0"), (0.5, "0.5"), (28, "28"), (1234, "1.23k"), (None, ""),
                                              (123_456_789_012, "123G"), (2.5e15, "2.5P"), (-4200, "-4.2k")])
def test_human_number(value: float | None, shown: str) -> None:
    assert console_mod.human_number(value) == shown


class Known:
    """A node that knows peers ``A`` (up) and ``B`` (down): what resolve_node asks over the control socket."""

    def call(self, method: str, **params: Any) -> Any:
        if method == "peers":
            return [{"node_id": A, "state": "up"}, {"node_id": B, "state": "down"}]
        return {"node_id": "cd" * 32}


def test_to_prefix_resolves_or_says_why(capsys) -> None:
    known: Any = Known()
    assert resolve_node(known, A[:12]) == A
    assert resolve_node(known, A[:12].upper()) == A
    assert resolve_node(known, "cdcd") == "cd" * 32  # this node itself
    assert resolve_node(known, B[:6]) == B
    assert "is down" in capsys.readouterr().err
    with pytest.raises(UsageError, match="matches 2 nodes: ab1200000000, ab1311111111"):
        resolve_node(known, "ab1")
    with pytest.raises(UsageError, match="no node this node knows has an id starting with 'ef'"):
        resolve_node(known, "ef")
    with pytest.raises(UsageError, match="not a node id"):
        resolve_node(known, "node1")


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    with detached_node(tmp_path_factory.mktemp("tables")) as home:
        yield home


def test_submit_to_the_prefix_a_table_shows(running: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")  # what a pipe gets anyway, unless the environment says otherwise
    module = tmp_path / "echo.wasm"
    module.write_bytes(workloads.module_bytes("echo"))
    prefix = node_id(running)[:12]
    job = json.loads(gaia(running, "task", "submit", str(module), "--to", prefix, "--json").stdout)["job"]
    wait_until(lambda: json.loads(gaia(running, "task", "result", job, "--json").stdout)[0]["state"] == "done",
               timeout=30, what="the job sent --to this node's prefix")
    table = gaia(running, "task", "result", job).stdout.splitlines()
    assert all(len(line) <= 80 for line in table), table
    assert any(line.startswith("0 ") and f" {prefix} " in line for line in table), table
    wrong = gaia(running, "task", "submit", str(module), "--to", "0000000", check=False)
    assert wrong.returncode == 2 and "no node this node knows has an id starting with '0000000'" in wrong.stderr

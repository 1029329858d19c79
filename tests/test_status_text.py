"""`gaia status` and `gaia peers` as text show refusals per reason and outbox drops, from real running nodes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from inprocess import build_node, load_plugins, make_home, running, wait_for

from gaia_core.cli import cli
from gaia_core.commands.node import counts_text
from gaia_core.envelope import Refused, seal
from gaia_core.model import TaskResult

UNREACHABLE = "ee" * 32


def _text(home: Path, command: str) -> str:
    result = CliRunner(env={"COLUMNS": "300"}).invoke(cli, ["--home", str(home), command])
    assert result.exit_code == 0, result.output
    return result.output


def test_counts_read_most_first_and_none_when_empty() -> None:
    assert counts_text({"stale": 2, "replayed": 5, "forged": 0}) == "replayed 5, stale 2"
    assert counts_text({}) == "none"


def test_status_and_peers_text_show_refusals_by_reason_and_outbox_drops(tmp_path: Path) -> None:
    a = build_node(make_home(tmp_path, "a", {"privacy": {"outbox_bytes_per_submitter": 4096}}), load_plugins())
    with running(a, drain_s=1.0):
        b = build_node(make_home(tmp_path, "b", {"network": {"bootstrap": [a.address]}}), load_plugins())
        with running(b, drain_s=1.0):
            wait_for(lambda: any(p.node_id == b.node_id and p.state == "up" for p in a.transport.peers()),
                     timeout=20, what="b to be up at a")
            for _ in range(2):  # b's messages from an hour ago: refused by a's kernel as stale
                with pytest.raises(Refused):
                    a.gate.on_request(seal(b.identity, "echo", b"old", now=time.time() - 3600))
            for i in range(3):  # results for a submitter that never answers, past its 4 KiB share
                a.outbox.put(UNREACHABLE, TaskResult(task_id=f"{i:064x}", status="ok", output=bytes(3000)), None)

            status = _text(a.context.home.root, "status")
            refused = next(line for line in status.splitlines() if line.startswith("refused"))
            assert "kernel: stale 2" in refused, status
            outbox = next(line for line in status.splitlines() if line.startswith("outbox"))
            assert "dropped: full 2" in outbox, status

            peers = _text(a.context.home.root, "peers")
            row = next(line for line in peers.splitlines() if b.node_id[:12] in line)  # ids shown as in --to
            assert "stale 2" in row and "score" in peers, peers
            assert "trust" in peers and " no " in row, peers  # b is new: the spot-check policy still checks it

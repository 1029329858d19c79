"""``gaia doctor`` tells the causes of "no peers" apart, against real peer processes on 127.0.0.1.

Each peer is a ``python -m gaia_comm_zmq.peer`` process (the zmq transport with an echo handler), started
once for the module; each doctor run is the real entry point in-process, with a home whose config points
``[network] bootstrap`` at one of them.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gaia_core.cli import main
from gaia_core.commands.doctor import Checks, _peer_checks, port_taken
from gaia_core.config import Home, load
from gaia_core.identity import Identity

zmq_probe = pytest.importorskip("gaia_comm_zmq.probe")
from gaia_comm_zmq.keys import CurveKey  # noqa: E402
from gaia_comm_zmq.settings import Settings  # noqa: E402

START_S = 20.0


class Peer:
    """One peer process; its node id and dial address from the ``started`` line it prints."""

    def __init__(self, home: Path, *options: str) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "gaia_comm_zmq.peer", "--home", str(home), "--listen", "tcp://127.0.0.1:*",
             *options], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert self.popen.stdout is not None
        deadline = time.monotonic() + START_S
        line = ""
        while time.monotonic() < deadline and not line:
            line = self.popen.stdout.readline()  # the first line is "started" (or EOF if it failed)
        started = json.loads(line)
        assert started["event"] == "started", started
        self.node_id, self.address = started["node_id"], started["address"]
        self.endpoint = self.address.partition("#")[0]

    def stop(self) -> None:
        self.popen.terminate()
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=10)


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Peer]]:
    """A CurveZMQ peer, a plaintext one and one that allows a single other node id."""
    root = tmp_path_factory.mktemp("peers")
    made: dict[str, Peer] = {}
    try:
        made["curve"] = Peer(root / "curve")
        made["insecure"] = Peer(root / "insecure", "--insecure")
        made["allowlist"] = Peer(root / "allowlist", "--auth", "allowlist", "--allow", "ab" * 32)
        yield made
    finally:
        for peer in made.values():
            peer.stop()


def doctor(capsys: pytest.CaptureFixture[str], home: Home, config: str) -> dict[str, dict[str, str]]:
    """Run ``gaia doctor --json`` for ``home`` with ``config`` as its config.toml; the checks by name."""
    home.config_file.write_text(config)
    try:
        main(["doctor", "--json"])
    except SystemExit:
        pass
    out = capsys.readouterr().out
    return {c["check"]: c for c in json.loads(out)}


@pytest.fixture
def home(gaia_home: Home, capsys: pytest.CaptureFixture[str]) -> Home:
    """An initialised home (keys), its config written by each test."""
    try:
        main(["init"])
    except SystemExit as exc:
        assert not exc.code
    capsys.readouterr()
    return gaia_home


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_peer_that_answers_is_ok(capsys, home, peers) -> None:
    checks = doctor(capsys, home, f'[network]\nbootstrap = ["{peers["curve"].address}"]\n')
    found = checks[f"peer {peers['curve'].endpoint}"]
    assert found["outcome"] == "ok", found
    assert peers["curve"].node_id[:12] in found["detail"]


def test_peer_down(capsys, home) -> None:
    address = f"tcp://127.0.0.1:{free_port()}#{'0' * 64}"
    found = doctor(capsys, home, f'[network]\nbootstrap = ["{address}"]\n')[f"peer {address.partition('#')[0]}"]
    assert found["outcome"] == "fail"
    assert "peer down" in found["detail"] and "connection refused" in found["detail"]


def test_wrong_key(capsys, home, peers) -> None:
    address = f"{peers['curve'].endpoint}#{CurveKey.generate().public.hex()}"
    found = doctor(capsys, home, f'[network]\nbootstrap = ["{address}"]\n')[f"peer {peers['curve'].endpoint}"]
    assert found["outcome"] == "fail"
    assert "wrong key" in found["detail"]


@pytest.mark.parametrize(("ours", "theirs"), [("curve", "insecure"), ("insecure", "curve")])
def test_curve_and_insecure_told_apart(capsys, home, peers, ours: str, theirs: str) -> None:
    peer = peers[theirs]
    address = peer.endpoint + ("#" + CurveKey.generate().public.hex() if ours == "curve" else "")
    config = f'[network]\nbootstrap = ["{address}"]\n[comm_zmq]\nsecurity = "{ours}"\n'
    found = doctor(capsys, home, config)[f"peer {peer.endpoint}"]
    assert found["outcome"] == "fail"
    assert "security mismatch" in found["detail"], found
    assert "security" in found["fix"]


def test_allow_list_refusal_is_named_first_at_hello_then_at_the_handshake(capsys, home, peers) -> None:
    peer = peers["allowlist"]
    config = f'[network]\nbootstrap = ["{peer.address}"]\n'
    first = doctor(capsys, home, config)[f"peer {peer.endpoint}"]
    assert first["outcome"] == "fail"
    assert "allow-listed" in first["detail"] and "allowlist" in first["fix"]
    node_id = Identity.load(home.identity_dir).node_id
    assert node_id in first["fix"]  # what the peer's operator must add
    again = doctor(capsys, home, config)[f"peer {peer.endpoint}"]  # the peer now refuses our key at once
    assert again["outcome"] == "fail"
    assert "allow-list" in again["detail"] and "handshake" in again["detail"]


def test_port_taken_while_no_node_runs(capsys, home) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        checks = doctor(capsys, home, f'[node]\nlisten = "tcp://127.0.0.1:{port}"\n')
        assert checks["port"]["outcome"] == "fail"
        assert f"port {port} is taken" in checks["port"]["detail"]
    assert port_taken(f"tcp://127.0.0.1:{port}") is None


@pytest.mark.parametrize(("offset", "outcome", "words"), [
    (600.0, "fail", "clocks differ"),  # this machine 10 min ahead: the peer's gate ignores our hello
    (40.0, "warn", "clock differs"),  # within the window, but closer to its edge than half
])
def test_clock_skew(home, peers, offset: float, outcome: str, words: str) -> None:
    config = load(home)
    found = zmq_probe.probe(peers["curve"].address, settings=Settings.from_config(config),
                            identity=Identity.load(home.identity_dir), curve=CurveKey.load_or_create(home),
                            timeout=2.0, window_s=60.0, clock=lambda: time.time() + offset)
    assert found["outcome"] == outcome, found
    assert words in found["detail"]
    assert "NTP" in found["fix"]


def test_one_peer_down_is_not_ok() -> None:
    up = {"node_id": "a" * 64, "address": "tcp://127.0.0.1:1#k", "state": "up"}
    down = {"node_id": "b" * 64, "address": "tcp://127.0.0.1:2#k", "state": "down"}
    checks = Checks()
    _peer_checks(checks, object(), [], {"peers": {"up": 1, "total": 2}}, [up, down])
    by_name = {c["check"]: c for c in checks}
    assert by_name["peers"]["outcome"] == "warn"
    assert by_name["peers"]["detail"].startswith("1 up of 2; not up: bbbbbbbbbbbb")
    assert "peer tcp://127.0.0.1:2" in by_name  # the down peer is probed (here: a transport that cannot)

"""The node's control socket: calls, errors, and one node per home."""

from __future__ import annotations

import threading

import pytest

from gaia_core.config import Home
from gaia_core.control import ControlClient, ControlServer
from gaia_core.errors import NodeError, ValidationError


def _raise() -> None:
    raise ValidationError("bad [node] listen value", hint="see [node] in config.toml")


@pytest.fixture
def gaia_home(gaia_home: Home) -> Home:
    """The isolated home, made private as a node makes its home at start."""
    return gaia_home.make_private()


@pytest.fixture
def server(gaia_home: Home):
    served = ControlServer(gaia_home, {"echo": lambda text: text, "fail": _raise})
    served.start()
    yield served
    served.stop()


def test_a_call_returns_its_result_and_an_error_keeps_its_exit_code(server, gaia_home: Home) -> None:
    with ControlClient(gaia_home) as client:
        assert client.call("echo", text="hi") == "hi"
        with pytest.raises(NodeError, match=r"bad \[node\] listen value") as failed:
            client.call("fail")
        assert failed.value.exit_code == ValidationError.exit_code
        with pytest.raises(NodeError, match="unknown control method"):
            client.call("nope")


def test_a_second_server_cannot_take_over_a_live_home(server, gaia_home: Home) -> None:
    with pytest.raises(NodeError, match="already running"):
        ControlServer(gaia_home, {})
    with ControlClient(gaia_home) as client:  # the first one still answers
        assert client.call("echo", text="still here") == "still here"


def test_a_stale_socket_file_is_replaced(gaia_home: Home) -> None:
    first = ControlServer(gaia_home, {})
    first.start()
    first._server.shutdown()  # a node that died without cleaning up leaves its socket file behind
    first._server.server_close()
    second = ControlServer(gaia_home, {"echo": lambda text: text})
    second.start()
    try:
        with ControlClient(gaia_home) as client:
            assert client.call("echo", text="new") == "new"
    finally:
        second.stop()


def test_no_node_is_a_node_error_saying_how_to_start_one(gaia_home: Home) -> None:
    with pytest.raises(NodeError, match="gaia node"):
        ControlClient(gaia_home)


def test_errors_print_rich_markup_literally(capsys: pytest.CaptureFixture[str]) -> None:
    from gaia_core.console import error, print_table

    error("set [node] listen in config.toml")
    print_table(None, ["name"], [["[/evil]"]])
    captured = capsys.readouterr()
    assert "set [node] listen" in captured.err and "[/evil]" in captured.out


def test_stop_of_a_server_never_started_returns(gaia_home: Home) -> None:
    server = ControlServer(gaia_home, {})
    stopping = threading.Thread(target=server.stop, daemon=True)
    stopping.start()
    stopping.join(timeout=5.0)
    assert not stopping.is_alive(), "ControlServer.stop() hung on a server that never started"
    assert not server.path.exists()

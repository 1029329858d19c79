"""Bad input at the command line and in config.toml: one clear line, a non-zero exit, never a traceback.

Every case runs the real entry point (``gaia_core.cli.main``) in-process, as the ``gaia`` script does, and
checks that nothing was started, sent or read whole before the refusal.
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import threading
import tracemalloc
from pathlib import Path

import pytest

from gaia_core.cli import hoist_global_options, main
from gaia_core.commands.jobs import write_private
from gaia_core.config import Home
from gaia_core.errors import ConfigError, NodeError, UsageError

workloads = pytest.importorskip("gaia_runner_wasm.workloads")


def gaia(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run ``gaia ARGS`` through ``main``; its exit status and everything it printed (stdout and stderr)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out + err


def one_error(output: str) -> str:
    """The one ``Error:`` line of ``output`` (failing when there is none or more, or a traceback)."""
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, output
    return errors[0]


@pytest.fixture
def home(gaia_home: Home, capsys: pytest.CaptureFixture[str]) -> Home:
    """An initialised node home (keys and a default config.toml)."""
    assert gaia(capsys, "--plugins", "", "init")[0] == 0
    return gaia_home


@pytest.fixture
def module_file(tmp_path: Path) -> Path:
    """The shipped ``echo`` WASM module, as a file."""
    path = tmp_path / "echo.wasm"
    path.write_bytes(workloads.module_bytes("echo"))
    return path


# ---------------------------------------------------------------- task options

@pytest.mark.parametrize(("options", "message"), [
    (["--timeout", "nan"],
     "'--timeout': 'nan' is not a finite number; give a number of seconds from 0.001 s to 7 days"),
    (["--timeout", "inf"], "'--timeout': 'inf' is not a finite number"),
    (["--entry", ""], "'--entry': the entry name is empty; give the name of an exported function of 1 to 128"),
    (["--entry", "x" * 129], "'--entry': the entry name is 129 characters long"),
    (["--fuel", str(10**30)], f"'--fuel': {10**30} is out of range; give a whole number from 1 to {(1 << 63) - 1}"),
    (["--memory", str(2 * 10**13)], f"'--memory': {2 * 10**13} is out of range; give a whole number from 1 to 1048576"),
], ids=["timeout-nan", "timeout-inf", "entry-empty", "entry-129-chars", "fuel-1e30", "memory-2e13"])
@pytest.mark.parametrize("command", ["run", "submit"])
def test_task_options_are_refused_in_one_line(home: Home, module_file: Path, capsys: pytest.CaptureFixture[str],
                                              command: str, options: list[str], message: str) -> None:
    code, output = gaia(capsys, "task", command, str(module_file), *options)
    assert code == UsageError.exit_code, output  # refused before any node is asked (that would be 8)
    assert one_error(output).startswith(f"Error: Invalid value for {message}"), output


@pytest.mark.parametrize("to", ["", " ", "zz", "ab12!"])
def test_submit_to_that_cannot_be_a_node_id_is_refused_before_any_node_is_asked(
        home: Home, module_file: Path, capsys: pytest.CaptureFixture[str], to: str) -> None:
    code, output = gaia(capsys, "task", "submit", str(module_file), "--to", to)
    assert code == UsageError.exit_code  # not submitted anywhere ('' was taken as no --to), nor 8 for no node
    assert f"--to {to!r} is not a node id" in one_error(output)


@pytest.mark.parametrize("command", ["run", "submit"])
def test_a_1_gib_input_is_refused_by_its_size_before_it_is_read(home: Home, module_file: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str],
                                                                command: str) -> None:
    big = tmp_path / "big.bin"
    subprocess.run(["truncate", "-s", "1G", str(big)], check=True)  # sparse: no disk used
    tracemalloc.start()
    try:
        code, output = gaia(capsys, "task", command, str(module_file), "--entry", "echo", "--input", str(big))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == UsageError.exit_code, output
    assert one_error(output) == (f"Error: input {str(big)!r} is 1,073,741,824 bytes; this node takes at most "
                                 "67,108,864 ([admission] max_input_bytes) (split the input across several tasks, "
                                 "or raise [admission] max_input_bytes in config.toml)")
    assert peak < 16 << 20, f"{peak:,} bytes allocated: the input was read"


def test_an_oversized_module_is_refused_before_it_is_read(home: Home, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    big = tmp_path / "big.wasm"
    subprocess.run(["truncate", "-s", "1G", str(big)], check=True)
    code, output = gaia(capsys, "task", "submit", str(big), "--entry", "echo")
    assert code == UsageError.exit_code
    assert "module" in one_error(output) and "[admission] max_module_bytes" in output


def test_stdin_is_read_only_up_to_the_limit(home: Home, module_file: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    home.config_file.write_text("[admission]\nmax_input_bytes = 1024\n", encoding="utf-8")
    stdin = io.BytesIO(b"x" * 100_000)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(stdin))
    code, output = gaia(capsys, "task", "run", str(module_file), "--entry", "echo", "--input", "-")
    assert code == UsageError.exit_code
    assert one_error(output).startswith("Error: input on stdin is over 1,024 bytes; this node takes at most 1,024")
    assert stdin.tell() <= 1025 + io.DEFAULT_BUFFER_SIZE  # not read to the end


def test_an_input_within_the_limit_runs(home: Home, module_file: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "in.txt"
    data.write_bytes(b"hello")
    code, output = gaia(capsys, "task", "run", str(module_file), "--entry", "echo", "--input", str(data))
    assert code == 0 and "output:  hello" in output, output


# ---------------------------------------------------------------- --entry left out

@pytest.mark.parametrize(("options", "message"), [
    (["--input", "{tmp}"], "input file '{tmp}' is not a regular file"),
    (["--output", "{tmp}/file/out"], "cannot write --output {tmp}/file/out: {tmp}/file is not a directory"),
])
def test_paths_that_cannot_be_used_are_one_line(home: Home, module_file: Path, tmp_path: Path, options: list[str],
                                                message: str, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("a file, not a directory")
    code, output = gaia(capsys, "task", "run", str(module_file), *(o.format(tmp=tmp_path) for o in options))
    assert code == UsageError.exit_code
    assert message.format(tmp=tmp_path) in one_error(output)


def test_an_output_that_is_not_a_regular_file_keeps_its_mode(tmp_path: Path) -> None:
    """``--output /dev/stdout`` (or /dev/null) is written, not made 0600 as GAIA's own output files are."""
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    pipe.chmod(0o644)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(pipe.read_bytes()))
    reader.start()
    write_private(pipe, b"data")
    reader.join(timeout=10)
    assert got == [b"data"] and stat.S_IMODE(pipe.stat().st_mode) == 0o644


def test_task_result_output_under_a_file_is_one_line(home: Home, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("a file, not a directory")
    for option in ("--output", "--proofs"):
        code, output = gaia(capsys, "task", "result", "ab12", option, str(tmp_path / "file" / "out"))
        assert code == UsageError.exit_code
        assert f"cannot create {tmp_path / 'file' / 'out'}" in one_error(output)


@pytest.mark.parametrize(("name", "output"), [("echo", "hi"), ("upper", "HI")], ids=["gaia-abi", "wasi-command"])
def test_task_run_without_entry_calls_the_default(home: Home, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  name: str, output: str) -> None:
    module, data = tmp_path / f"{name}.wasm", tmp_path / "in.txt"
    module.write_bytes(workloads.module_bytes(name))
    data.write_bytes(b"hi")
    code, printed = gaia(capsys, "task", "run", str(module), "--input", str(data), "--json")
    assert code == 0 and f'"output": "{output}"' in printed, printed


@pytest.mark.parametrize("command", ["run", "submit"])
def test_no_default_entry_is_one_line(home: Home, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      command: str) -> None:
    module = tmp_path / "mlp.wasm"
    module.write_bytes(workloads.module_bytes("mlp"))  # two entries: infer and train
    code, output = gaia(capsys, "task", command, str(module))
    assert code == UsageError.exit_code, output
    assert one_error(output) == ("Error: mlp.wasm has no default entry: the module exports 2 entries (infer, train); "
                                 "name one (give the export to call with --entry NAME)")


def test_another_kind_needs_an_entry(home: Home, module_file: Path, fake_dists, good_plugin: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    fake_dists.add("gaia-fake-good", good_plugin)  # a runner of kind "echo", which has no default entry
    code, output = gaia(capsys, "--plugins", "gaia-fake-good", "task", "run", str(module_file), "--kind", "echo")
    assert code == UsageError.exit_code, output
    assert one_error(output) == "Error: --entry is required for tasks of kind 'echo' (give the entry to call)"


# ---------------------------------------------------------------- node, stop, monitor

@pytest.mark.parametrize(("options", "message"), [
    (["--listen", "tcp://127.0.0.1:99999"],
     "'--listen': 'tcp://127.0.0.1:99999': port 99999 is out of range; give a port from 0 to 65535 (or * for any)"),
    (["--listen", "inproc://gaia"],
     "'--listen': 'inproc://gaia' is reachable only inside one process, never by peers; give SCHEME://HOST:PORT"),
    (["--listen", "127.0.0.1:7700"], "'--listen': '127.0.0.1:7700' is not an address of the form SCHEME://HOST:PORT"),
    (["--cores", "2000"], "'--cores': 2000 is out of range; give a whole number from 1 to 1024"),
], ids=["port-99999", "inproc", "no-scheme", "cores-2000"])
def test_node_options_are_refused_before_anything_starts(home: Home, capsys: pytest.CaptureFixture[str],
                                                         options: list[str], message: str) -> None:
    code, output = gaia(capsys, "--plugins", "", "node", *options)
    assert code == UsageError.exit_code, output  # with no plugins, a started node would fail with 5
    assert one_error(output).startswith(f"Error: Invalid value for {message}"), output


@pytest.mark.parametrize("value", ["nan", "inf", "0"])
def test_stop_timeout_is_checked_before_the_node_is_asked(home: Home, capsys: pytest.CaptureFixture[str],
                                                          value: str) -> None:
    code, output = gaia(capsys, "stop", "--timeout", value)
    assert code == UsageError.exit_code, output  # not 8 ("no node is running"): the value is refused first
    assert one_error(output).startswith("Error: Invalid value for '--timeout': "), output
    assert "give a number of seconds from 1 s to 1 day" in output


def test_monitor_interval_nan_is_one_line(home: Home, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("gaia_bench_psutil")
    code, output = gaia(capsys, "--plugins", "gaia-bench-psutil", "monitor", "--interval", "nan", "--count", "1")
    assert code == UsageError.exit_code, output
    assert one_error(output) == ("Error: Invalid value for '--interval': 'nan' is not a finite number; "
                                 "give a number of seconds from 0.05 s to 1 day")


# ---------------------------------------------------------------- config.toml

@pytest.mark.parametrize(("toml", "message"), [
    ('[network]\nbootstrap = "tcp://127.0.0.1:7700"\n',
     'a string where an array belongs; write it in brackets: ["tcp://127.0.0.1:7700"]) @ config.network.bootstrap'),
    ('[plugins]\nload = "gaia-runner-wasm"\n', 'write it in brackets: ["gaia-runner-wasm"]) @ config.plugins.load'),
    ('[offer]\ncapabilities = "fs"\n', 'write it in brackets: ["fs"]) @ config.offer.capabilities'),
    ("[netwrok]\nbootstrap = []\n", "unknown table [netwrok]; did you mean [network]? (the kernel's tables are "
                                    "[admission], [network], [node], [offer], [plugins], [privacy], [prover], "
                                    "[queue], [verification]; any other table belongs to a plugin)"),
    ('[node]\nlisten = "tcp://127.0.0.1:99999"\n', "listen 'tcp://127.0.0.1:99999': port 99999 is out of range"),
    ('[node]\nlisten = "inproc://gaia"\n', "listen 'inproc://gaia' is reachable only inside one process"),
    ("[network]\nheartbeat_s = 1e-6\n", "'heartbeat_s' must be >= 0.1: 1e-06"),
    ("[network]\nheartbeat_s = inf\n", "heartbeat_s must be a finite number of seconds, not inf"),
    ("[node]\ncores = 2000\n", "'cores' must be <= 1024: 2000"),
], ids=["bootstrap-string", "plugins-load-string", "capabilities-string", "netwrok", "port-99999", "inproc",
        "heartbeat-1e-6", "heartbeat-inf", "cores-2000"])
def test_bad_config_is_one_line_naming_the_file(home: Home, capsys: pytest.CaptureFixture[str], toml: str,
                                               message: str) -> None:
    home.config_file.write_text(toml, encoding="utf-8")
    code, output = gaia(capsys, "config", "show")
    assert code == ConfigError.exit_code, output
    line = one_error(output)
    assert line.startswith(f"Error: {home.config_file}: ") and message in line, output


@pytest.mark.parametrize("value", ["1.5", "1e30", "1024.0"])
def test_config_set_refuses_a_float_where_a_whole_number_belongs(home: Home, capsys: pytest.CaptureFixture[str],
                                                                 value: str) -> None:
    before = home.config_file.read_bytes()
    code, output = gaia(capsys, "config", "set", "admission.max_input_bytes", value)
    assert code == ConfigError.exit_code
    assert "a whole number belongs here" in one_error(output)
    assert home.config_file.read_bytes() == before
    assert gaia(capsys, "config", "set", "admission.max_input_bytes", "1024")[0] == 0


def test_a_plugin_table_is_not_taken_for_a_misspelling(home: Home, capsys: pytest.CaptureFixture[str]) -> None:
    home.config_file.write_text("[queue-memory]\n[comm_zmq]\n[node]\nlisten = \"tcp://127.0.0.1:*\"\n",
                                encoding="utf-8")
    code, output = gaia(capsys, "config", "show", "--json")
    assert code == 0, output


# ---------------------------------------------------------------- global options after the command

def test_global_options_may_follow_the_command(home: Home, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other-home"
    code, output = gaia(capsys, "status", "--home", str(other))
    assert code == NodeError.exit_code and f"no node is running for home {other}" in one_error(output)
    code, output = gaia(capsys, "plugins", "--json", "--plugins=gaia-runner-wasm")
    assert code == 0 and '"name": "gaia-runner-wasm"' in output and "gaia-queue-memory" not in output
    code, output = gaia(capsys, "node", "--plugins", "gaia-no-such-plugin")  # exit 2 ("no such option") before
    assert code == 5 and "unknown plugin(s): gaia-no-such-plugin" in one_error(output)


def test_hoisting_keeps_values_and_stops_at_double_dash() -> None:
    assert hoist_global_options(["task", "run", "m.wasm", "--home", "H", "--entry", "e", "--debug"]) == \
        ["--home", "H", "--debug", "task", "run", "m.wasm", "--entry", "e"]
    assert hoist_global_options(["node", "--plugins=a,b", "--plugins", ""]) == \
        ["--plugins=a,b", "--plugins", "", "node"]
    assert hoist_global_options(["x", "--", "--home", "H"]) == ["x", "--", "--home", "H"]


def test_a_home_under_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``gaia --home FILE/x init`` says the home cannot be made (it was a NotADirectoryError traceback)."""
    (tmp_path / "file").write_text("a file, not a directory")
    code, output = gaia(capsys, "--home", str(tmp_path / "file" / "x"), "init")
    assert code == UsageError.exit_code
    assert f"cannot use {tmp_path / 'file' / 'x'} as the GAIA home" in one_error(output)

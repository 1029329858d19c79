"""Owners control their jobs from the CLI: ``gaia task submit|watch|cancel|retry``, Ctrl-C, and bad input.

The end-to-end tests run the real ``gaia`` command in subprocesses against one real node on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from nodes import call, gaia, running_devnet, wait_until

from gaia_core.cli import cli
from gaia_core.config import Home
from gaia_core.jobs.jobstore import UnknownJobError

workloads = pytest.importorskip("gaia_runner_wasm.workloads")

#: A module of the GAIA task ABI whose entry ``run`` always traps.
TRAP_WAT = """(module (memory (export "memory") 1)
  (func (export "gaia_alloc") (param i32) (result i32) i32.const 1024)
  (func (export "run") (param i32 i32) (result i64) unreachable))"""

# ---------------------------------------------------------------- bad input, refused before anything is sent

BAD_OPTIONS = [
    (["--deadline", "nan"],
     "'--deadline': 'nan' is not a finite number; give a number of seconds from 1 s to 365 days"),
    (["--deadline", "inf"], "'--deadline': 'inf' is not a finite number"),
    (["--deadline", "1e400"], "'--deadline': '1e400' is not a finite number"),
    (["--deadline", "-5"], "'--deadline': -5 is out of range; give a number of seconds from 1 s to 365 days"),
    (["--deadline", "1e300"], "'--deadline': 1e+300 is out of range"),
    (["--timeout", "nan"],
     "'--timeout': 'nan' is not a finite number; give a number of seconds from 0.001 s to 7 days"),
    (["--timeout", "-inf"], "'--timeout': '-inf' is not a finite number"),
    (["--timeout", "0"], "'--timeout': 0 is out of range"),
    (["--priority", "nan"], "'--priority': 'nan' is not a whole number; give a whole number from -1000 to 1000"),
    (["--priority", "inf"], "'--priority': 'inf' is not a whole number"),
    (["--priority", "-1001"], "'--priority': -1001 is out of range; give a whole number from -1000 to 1000"),
    (["--redundancy", "0"], "'--redundancy': 0 is out of range; give a whole number from 1 to 9"),
    (["--fuel", "0"], "'--fuel': 0 is out of range"),
    (["--fuel", str(10**30)], f"'--fuel': {10**30} is out of range"),
    (["--fuel", "nan"], "'--fuel': 'nan' is not a whole number"),
    (["--memory", str(1 << 44)], f"'--memory': {1 << 44} is out of range; give a whole number from 1 to 1048576"),
]


@pytest.fixture
def module_file(tmp_path: Path) -> Path:
    """The shipped ``echo`` WASM module, as a file."""
    path = tmp_path / "echo.wasm"
    path.write_bytes(workloads.module_bytes("echo"))
    return path


@pytest.mark.parametrize(("options", "message"), BAD_OPTIONS, ids=[" ".join(o) for o, _ in BAD_OPTIONS])
def test_submit_refuses_bad_numbers_with_one_line(cli_runner: CliRunner, module_file: Path, options: list[str],
                                                 message: str) -> None:
    assert cli_runner.invoke(cli, ["--plugins", "", "init"]).exit_code == 0
    result = cli_runner.invoke(cli, ["task", "submit", str(module_file), "--entry", "echo", *options])
    assert result.exit_code == 2, result.output  # a usage error, before any node is asked (that would be 8)
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and errors[0].startswith(f"Error: Invalid value for {message}"), result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("options", [["--timeout", "nan"], ["--fuel", "-1"], ["--memory", "0"]])
def test_task_run_refuses_bad_limits(cli_runner: CliRunner, module_file: Path, options: list[str]) -> None:
    result = cli_runner.invoke(cli, ["task", "run", str(module_file), "--entry", "echo", *options])
    assert result.exit_code == 2 and "Error: Invalid value for" in result.output


def test_list_refuses_a_negative_limit(cli_runner: CliRunner) -> None:
    result = cli_runner.invoke(cli, ["task", "list", "--limit", "-1"])
    assert result.exit_code == 2
    assert "'--limit': -1 is out of range; give a whole number from 1 to 10000" in result.output


# ---------------------------------------------------------------- against a real node


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    """One real node (a devnet of one) that runs the jobs it is given itself; stopped afterwards."""
    with running_devnet(tmp_path_factory.mktemp("devnet"), 1) as homes:
        yield homes[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Module and input files: echo, a trapping module, and SGD training inputs of a few seconds each."""
    import wasmtime

    root = tmp_path_factory.mktemp("files")
    paths = {"echo": root / "echo.wasm", "trap": root / "trap.wasm", "mlp": root / "mlp.wasm"}
    paths["echo"].write_bytes(workloads.module_bytes("echo"))
    paths["trap"].write_bytes(wasmtime.wat2wasm(TRAP_WAT))
    paths["mlp"].write_bytes(workloads.module_bytes("mlp"))
    shard = workloads.load_digits().shards(12)[0]
    model = workloads.Mlp.init(workloads.DIGITS_FEATURES, 32, workloads.DIGITS_CLASSES)
    for i in range(3):
        paths[f"train{i}"] = root / f"train{i}.bin"
        paths[f"train{i}"].write_bytes(workloads.encode_train(model, shard.x, shard.y, epochs=1500, batch_size=16,
                                                              learning_rate=0.1, seed=i))
    return paths


def _slow_job_args(files: dict[str, Path], count: int = 3) -> list[str]:
    inputs = [arg for i in range(count) for arg in ("--input", str(files[f"train{i}"]))]
    return ["task", "submit", str(files["mlp"]), "--entry", "train", *inputs]


def _spawn(home: Home, *args: str) -> subprocess.Popen[str]:
    """``gaia ARGS`` in a child whose Ctrl-C (SIGINT) is not ignored, as in a terminal."""
    return subprocess.Popen([sys.executable, "-m", "gaia_core", "--home", str(home.root), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            env={**os.environ, "GAIA_HOME": str(home.root)},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _first_line(proc: subprocess.Popen[str], stream: str, *, timeout: float) -> str:
    """The first line ``proc`` writes on ``stream`` ('stdout' or 'stderr'), waiting at most ``timeout`` s."""
    pipe = getattr(proc, stream)
    with selectors.DefaultSelector() as selector:
        selector.register(pipe, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError(f"no line on {stream} within {timeout:.0f}s")
    return pipe.readline()


def _stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """Wait (bounded) for ``proc`` to end, killing it if it hangs; its remaining output."""
    try:
        return proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


def _job_id(line: str) -> str:
    assert line.startswith("job "), line
    return line.split()[1].rstrip(":")


def test_ctrl_c_during_wait_leaves_the_job_running_and_watch_reattaches(home: Home,
                                                                        files: dict[str, Path]) -> None:
    proc = _spawn(home, *_slow_job_args(files), "--wait")
    try:
        job = _job_id(_first_line(proc, "stdout", timeout=60))  # printed before waiting
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = _stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 130
    assert time.monotonic() - started < 10
    assert "Traceback" not in err
    assert err.strip().splitlines() == [
        f"stopped waiting: job {job} keeps running on the node; re-attach with `gaia task watch {job}`, "
        f"or cancel it with `gaia task cancel {job}`"]

    watched = gaia(home, "task", "watch", job, timeout=120)
    assert watched.stdout.strip().splitlines()[-1].startswith(f"job {job} (mlp.wasm): finished, done 3")
    assert call(home, "job", job=job)["tasks"] == {"done": 3}


def test_submit_json_wait_names_the_job_first_and_in_every_row(home: Home, files: dict[str, Path],
                                                                tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"first")
    (tmp_path / "b").write_bytes(b"second")
    proc = _spawn(home, "task", "submit", str(files["echo"]), "--entry", "echo", "--input", str(tmp_path / "a"),
                  "--input", str(tmp_path / "b"), "--wait", "--json")
    try:
        job = _job_id(_first_line(proc, "stderr", timeout=60))
        out, _ = _stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 0
    rows = json.loads(out)
    assert [(r["job"], bytes.fromhex(r["output_hex"])) for r in rows] == [(job, b"first"), (job, b"second")]


def test_submit_json_without_wait_prints_the_job(home: Home, files: dict[str, Path]) -> None:
    submitted = json.loads(gaia(home, "task", "submit", str(files["echo"]), "--entry", "echo", "--json").stdout)
    assert submitted["tasks"] == 1 and len(submitted["job"]) >= 12
    call(home, "wait", job=submitted["job"], timeout=30.0)


def test_watch_json_streams_progress_and_exits_with_the_outcome(home: Home, files: dict[str, Path]) -> None:
    job = json.loads(gaia(home, *_slow_job_args(files, 2), "--json").stdout)["job"]
    watched = gaia(home, "task", "watch", job, "--json", timeout=120)
    lines = [json.loads(line) for line in watched.stdout.splitlines()]
    assert all(line["job"] == job for line in lines)
    assert lines[-1]["status"] == "finished" and lines[-1]["tasks"] == {"done": 2}
    assert len(lines) == len({json.dumps([line["tasks"], line["status"]], sort_keys=True) for line in lines})

    failing = json.loads(gaia(home, "task", "submit", str(files["trap"]), "--json").stdout)["job"]
    proc = gaia(home, "task", "watch", failing, timeout=120, check=False)
    assert proc.returncode == 7, proc.stderr
    assert "failed 1" in proc.stdout


def test_watch_an_unknown_job_says_so_in_one_line(home: Home) -> None:
    proc = gaia(home, "task", "watch", "f" * 64, check=False)
    assert proc.returncode == UnknownJobError.exit_code  # not "node not running" (8)
    assert "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith("Error:")] == [
        line for line in proc.stderr.splitlines() if line.strip()]


def test_bad_input_submits_nothing_to_a_live_node(home: Home, files: dict[str, Path]) -> None:
    before = call(home, "jobs", limit=10_000)
    for options, _ in BAD_OPTIONS:
        proc = gaia(home, "task", "submit", str(files["echo"]), "--entry", "echo", *options, check=False)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, (options, proc.stderr)
    assert call(home, "jobs", limit=10_000) == before


def test_cancel_by_prefix_ends_the_unfinished_tasks(home: Home, files: dict[str, Path]) -> None:
    job = json.loads(gaia(home, *_slow_job_args(files), "--json").stdout)["job"]
    cancelled = json.loads(gaia(home, "task", "cancel", job[:12], "--json").stdout)
    assert cancelled["job"] == job and cancelled["status"] == "cancelled" and cancelled["cancelled"] >= 1

    proc = gaia(home, "task", "watch", job[:12], timeout=60, check=False)
    assert proc.returncode == 7, proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith(f"job {job} (mlp.wasm): cancelled")
    status = call(home, "job", job=job)
    assert status["status"] == "cancelled" and status["tasks"].get("cancelled", 0) == cancelled["cancelled"]
    again = gaia(home, "task", "cancel", job[:12])
    assert again.stdout.startswith(f"job {job}: 0 task(s) cancelled; now cancelled")


def test_retry_by_prefix_runs_the_failed_tasks_again(home: Home, files: dict[str, Path]) -> None:
    def traps() -> int:
        return call(home, "status")["tasks"].get("trap", 0)

    job = json.loads(gaia(home, "task", "submit", str(files["trap"]), "--json").stdout)["job"]
    assert gaia(home, "task", "watch", job, check=False, timeout=60).returncode == 7
    before = wait_until(traps, timeout=10, what="the trap to be counted")

    retried = gaia(home, "task", "retry", job[:12])
    assert retried.stdout.startswith(f"job {job}: 1 failed task(s) queued again; now running")
    assert gaia(home, "task", "watch", job[:12], check=False, timeout=60).returncode == 7
    wait_until(lambda: traps() > before, timeout=10, what="the retried task to run again")
    [row] = json.loads(gaia(home, "task", "result", job[:12], "--json").stdout)
    assert row["job"] == job and row["state"] == "failed" and row["reason"].startswith("trap")
    assert json.loads(gaia(home, "task", "retry", job[:12], "--json").stdout)["retried"] == 1


def test_a_malformed_job_prefix_is_one_line(home: Home) -> None:
    for prefix in ("", "not-hex!"):
        proc = gaia(home, "task", "cancel", prefix, check=False)
        assert proc.returncode == UnknownJobError.exit_code and "Traceback" not in proc.stderr
        assert len([line for line in proc.stderr.splitlines() if line.startswith("Error:")]) == 1

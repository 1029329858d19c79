"""Every ``gaia`` command shown in README.md and docs/cli.md runs as written, so the docs cannot drift.

The commands are read from the pages' code blocks: the lines starting with ``gaia`` in ``sh`` blocks
(a trailing ``  # comment`` dropped) and the ``$ gaia`` lines of ``console`` blocks, with the output shown
below them. Each runs through ``bash -c`` with the venv's ``gaia`` on PATH, in a temporary home: README's
"Use it" block in order in a fresh home (from the repository root, as a reader would); docs/cli.md's in
the same home afterwards (its node running), from a directory holding the files the examples name. An
example whose output shows an ``Error:`` line must fail with that line (``…`` and ``...`` stand for
anything, the example home ``/home/me/.local/share/gaia`` for the test's); every other one must succeed.
Job ids in examples (``3f9a2c``, ``77be01``, ``9d41e6…``) stand for a job this test made, as they would for
the reader's own. Long-running commands (``gaia logs -f``, a foreground ``gaia node``) run until they have
shown they work.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from gaia_core.config import Home
from tests.nodes import gaia, wait_until

workloads = pytest.importorskip("gaia_runner_wasm.workloads")

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DOC_HOME = "/home/me/.local/share/gaia"
#: Example job ids and the proof file name in docs/cli.md, replaced by this test's.
JOB_PLACEHOLDERS = ("3f9a2c", "77be01")
PROOF_PLACEHOLDER = "proofs/00000-9d41e6….proof"
#: Commands that exit non-zero while working as documented: doctor reports a failed check with exit 1.
EXIT_CODES = {"gaia doctor": (0, 1)}
#: Commands that keep running: they work once they print this much.
FOLLOWS = ("gaia logs -f",)
COMMAND_S = 180.0


@attrs.frozen
class Example:
    page: str
    line: int
    command: str
    output: tuple[str, ...] = ()

    @property
    def error(self) -> str | None:
        """The ``Error:`` line the example shows, if any."""
        return next((line for line in self.output if line.startswith("Error:")), None)

    @property
    def json_error(self) -> dict[str, object] | None:
        """The JSON error object the example shows (``--json``), if any."""
        if not self.output or self.output[0] != "{":
            return None
        shown = json.loads("\n".join(self.output))
        return shown if isinstance(shown, dict) and "exit_code" in shown else None


def examples(page: str) -> list[Example]:
    """The ``gaia`` commands of ``page``'s sh and console blocks, with the output each shows."""
    found: list[Example] = []
    language: str | None = None
    for number, line in enumerate((ROOT / page).read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("```"):
            language = line[3:].strip() if language is None else None
            continue
        if language == "sh" and line.startswith("gaia "):
            found.append(Example(page, number, re.split(r"\s{2,}#", line)[0].strip()))
        elif language == "console" and line.startswith("$ "):
            command = line[2:].strip()
            if command.startswith("gaia "):
                found.append(Example(page, number, command))
        elif language == "console" and found and found[-1].page == page and found[-1].line < number:
            found[-1] = attrs.evolve(found[-1], output=(*found[-1].output, line))
    return found


def run(example: Example, home: Home, cwd: Path, replace: dict[str, str] | None = None) -> None:
    """Run ``example`` verbatim (placeholders replaced) and check it as its page says."""
    command = example.command
    for placeholder, value in (replace or {}).items():
        command = command.replace(placeholder, value)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "GAIA_HOME": str(home.root),
           "COLUMNS": "80"}
    where = f"{example.page}:{example.line}: {command}"
    if command in FOLLOWS:
        follow(command, env, cwd, where)
        return
    done = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=COMMAND_S, stdin=subprocess.DEVNULL)
    printed = done.stdout + done.stderr
    assert "Traceback" not in printed, f"{where}\n{printed}"
    if example.json_error is not None:
        assert done.returncode == example.json_error["exit_code"], f"{where}: exit {done.returncode}\n{printed}"
        assert json.loads(done.stdout) == example.json_error, f"{where}\n{printed}"
        return
    if example.error is None:
        allowed = EXIT_CODES.get(command, (0,))
        assert done.returncode in allowed, f"{where}: exit {done.returncode}\n{printed[-3000:]}"
        return
    assert done.returncode != 0, f"{where}: succeeded, the page shows an error\n{printed[-3000:]}"
    pattern = re.escape(example.error.replace(DOC_HOME, str(home.root)))
    pattern = pattern.replace(re.escape("…"), ".*").replace(re.escape("..."), ".*")
    errors = [line for line in printed.splitlines() if line.startswith("Error:")]
    assert any(re.fullmatch(pattern, line) for line in errors), f"{where}\nshown: {example.error}\ngot: {errors}"


def follow(command: str, env: dict[str, str], cwd: Path, where: str) -> None:
    """Run a command that keeps running until it prints a line; then stop it with Ctrl-C (SIGINT)."""
    proc = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # bounded: the process is interrupted below, and killed if it lingers
        assert line.strip() and "Error" not in line, f"{where}: {line!r}"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_every_page_has_examples() -> None:
    assert len(examples("README.md")) >= 10
    assert len(examples("docs/cli.md")) >= 15


@pytest.fixture(scope="module")
def readme_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    """A fresh home that ran README's "Use it" block in order, its node left running (resumed, devnet down)
    for docs/cli.md's examples: one node start fewer than a home of their own."""
    home = Home(tmp_path_factory.mktemp("readme") / "home")
    try:
        for example in examples("README.md"):
            if "--plugins=" not in example.command:
                run(example, home, ROOT)
        for cleanup in ("resume", "devnet down"):
            gaia(home, *cleanup.split())
        yield home
    finally:
        for cleanup in ("resume", "devnet down", "stop"):
            gaia(home, *cleanup.split(), check=False)


def test_readme_use_it_block_in_order(readme_home: Home) -> None:
    assert json.loads(gaia(readme_home, "status", "--json").stdout)["paused"] is False


def test_readme_node_with_plugins_runs_in_the_foreground(tmp_path: Path) -> None:
    home = Home(tmp_path / "foreground")
    gaia(home, "init")
    gaia(home, "config", "set", "node.listen", f'"tcp://127.0.0.1:{free_port()}"')
    (example,) = [e for e in examples("README.md") if "--plugins=" in e.command]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "GAIA_HOME": str(home.root)}
    proc = subprocess.Popen(["bash", "-c", f"exec {example.command}"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        seen = ""
        while time.monotonic() < deadline and "node started" not in seen:
            line = proc.stderr.readline()
            if not line:
                break
            seen += line
        assert "node started" in seen, seen[-3000:]
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files docs/cli.md's examples name."""
    where = tmp_path_factory.mktemp("work")
    (where / "echo.wasm").write_bytes(workloads.module_bytes("echo"))
    (where / "mlp.wasm").write_bytes(workloads.module_bytes("mlp"))
    (where / "bad.wasm").write_bytes(b"not a module")
    with (where / "big.bin").open("wb") as big:
        big.truncate(1 << 30)  # sparse
    for folder, name in (("data", "a.txt"), ("data", "b.txt"), ("more", "c.bin")):
        (where / folder).mkdir(exist_ok=True)
        (where / folder / name).write_text(name)
    (where / "inputs.txt").write_text("data/a.txt\n")
    return where


def test_cli_page_examples(readme_home: Home, workdir: Path, tmp_path: Path) -> None:
    node_home = readme_home
    module = workdir / "echo.wasm"
    job = json.loads(gaia(node_home, "task", "submit", str(module), "--input", str(workdir / "inputs.txt"),
                          "--input", str(workdir / "inputs.txt"), "--json").stdout)["job"]
    wait_until(lambda: all(r["state"] == "done" for r in json.loads(
        gaia(node_home, "task", "result", job, "--json").stdout)), timeout=60, what="the example job")
    replace = dict.fromkeys(JOB_PLACEHOLDERS, job[:6])
    scratch = Home(tmp_path / "scratch")
    gaia(scratch, "init")
    held = socket.socket()
    try:
        try:
            held.bind(("127.0.0.1", 7700))  # the example's port, taken (by this, or by anything else already)
            held.listen()
        except OSError:
            pass
        for example in examples("docs/cli.md"):
            if example.command.startswith("gaia proof verify"):
                proof = next((workdir / "proofs").glob("00000-*.proof"))
                replace[PROOF_PLACEHOLDER] = str(proof.relative_to(workdir))
            own_home = "config set" in example.command or "--detach" in example.command
            run(example, scratch if own_home else node_home, workdir, replace)
    finally:
        held.close()

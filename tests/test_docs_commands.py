"""Every ``gaia`` command shown in README.md and docs/ runs as written, so the docs cannot drift.

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

The other pages share that home and node (docs/network.md, benchmarking.md, models.md, dashboard.md's
``gaia dashboard``, docker.md's commands, ``<64 hex>`` and ``<blob id>`` standing for a local image and
the blob made of it, run only where a Docker engine answers), except docs/node.md, which begins with
``gaia init`` and runs in a home of its own before README's (its node takes the default port), followed by
dashboard.md's ``gaia node --dashboard``. A dashboard example works when it prints its page's address, of
the shape the page shows: opening it is for a browser.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import numpy as np
import pytest

from gaia_core.config import Home
from tests.nodes import gaia, wait_until
from tests.test_plugin_new import _install_metadata as install_metadata

workloads = pytest.importorskip("gaia_runner_wasm.workloads")
onnx = pytest.importorskip("onnx")
onnx_models = pytest.importorskip("tests.onnx_models")

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DOC_HOME = "/home/me/.local/share/gaia"
#: Example job ids and the proof file name in docs/cli.md, replaced by this test's.
JOB_PLACEHOLDERS = ("3f9a2c", "77be01")
PROOF_PLACEHOLDER = "proofs/00000-9d41e6….proof"
#: Commands that exit non-zero while working as documented: doctor reports a failed check with exit 1.
EXIT_CODES = {"gaia doctor": (0, 1)}
#: Commands that keep running: they work once they print this much.
FOLLOWS = ("gaia logs -f", "gaia node", "gaia monitor")
COMMAND_S = 180.0
#: Seconds a command that keeps running has to show it works.
FOLLOW_S = 90.0
#: Commands that print only when stopped, off a terminal (a live display): the seconds after which they get Ctrl-C.
QUIET = {"gaia monitor": 5.0}
#: The line a dashboard prints (docs/dashboard.md): its address, with the secret token.
DASHBOARD_URL = r"dashboard: http://127\.0\.0\.1:\d+/\?token=[\w-]{20,}"
#: Pages whose examples run in README's home, its node running, from the directory holding the files they name.
NODE_PAGES = ("docs/network.md", "docs/benchmarking.md", "docs/models.md")


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


def examples(page: str, programs: tuple[str, ...] = ("gaia",)) -> list[Example]:
    """The commands of ``page``'s sh and console blocks that start with one of ``programs``, with the output
    each shows."""
    found: list[Example] = []
    language: str | None = None
    for number, line in enumerate((ROOT / page).read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("```"):
            language = line[3:].strip() if language is None else None
            continue
        if language == "sh" and line.startswith(tuple(f"{program} " for program in programs)):
            found.append(Example(page, number, re.split(r"\s{2,}#", line)[0].strip()))
        elif language == "console" and line.startswith("$ "):
            command = line[2:].strip()
            if command.startswith(tuple(f"{program} " for program in programs)):
                found.append(Example(page, number, command))
        elif language == "console" and found and found[-1].page == page and found[-1].line < number:
            found[-1] = attrs.evolve(found[-1], output=(*found[-1].output, line))
    return found


def run(example: Example, home: Home, cwd: Path, replace: dict[str, str] | None = None,
        extra_env: dict[str, str] | None = None) -> str:
    """Run ``example`` verbatim (placeholders replaced) and check it as its page says; what it printed."""
    command = example.command
    for placeholder, value in (replace or {}).items():
        command = command.replace(placeholder, value)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "GAIA_HOME": str(home.root),
           "COLUMNS": "80", **(extra_env or {})}
    where = f"{example.page}:{example.line}: {command}"
    if command in FOLLOWS:
        return follow(command, env, cwd, where)
    done = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=COMMAND_S, stdin=subprocess.DEVNULL)
    printed = done.stdout + done.stderr
    assert "Traceback" not in printed, f"{where}\n{printed}"
    if example.json_error is not None:
        assert done.returncode == example.json_error["exit_code"], f"{where}: exit {done.returncode}\n{printed}"
        assert json.loads(done.stdout) == example.json_error, f"{where}\n{printed}"
        return printed
    if example.error is None:
        allowed = EXIT_CODES.get(command, (0,))
        assert done.returncode in allowed, f"{where}: exit {done.returncode}\n{printed[-3000:]}"
        return printed
    assert done.returncode != 0, f"{where}: succeeded, the page shows an error\n{printed[-3000:]}"
    pattern = re.escape(example.error.replace(DOC_HOME, str(home.root)))
    pattern = pattern.replace(re.escape("…"), ".*").replace(re.escape("..."), ".*")
    errors = [line for line in printed.splitlines() if line.startswith("Error:")]
    assert any(re.fullmatch(pattern, line) for line in errors), f"{where}\nshown: {example.error}\ngot: {errors}"
    return printed


def follow(command: str, env: dict[str, str], cwd: Path, where: str, expect: str = r".*\S.*") -> str:
    """Run a command that keeps running until it prints a line matching ``expect`` (by default the first line
    that is not empty), with no error before it; then stop it with Ctrl-C (SIGINT). The line it printed."""
    with following(command, env, cwd, where, expect) as line:
        return line


@contextlib.contextmanager
def following(command: str, env: dict[str, str], cwd: Path, where: str, expect: str) -> Iterator[str]:
    """:func:`follow`'s command, running while the block runs (from the line matching ``expect`` on)."""
    proc = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    interrupt = threading.Timer(QUIET.get(command, FOLLOW_S), proc.send_signal, (signal.SIGINT,))
    watchdog = threading.Timer(FOLLOW_S + 20, proc.kill)  # ends a readline that would wait for ever
    interrupt.start()
    watchdog.start()
    try:
        assert proc.stdout is not None
        seen: list[str] = []
        for line in proc.stdout:
            seen.append(line)
            assert "Error" not in line and "Traceback" not in line, f"{where}: {''.join(seen)[-3000:]}"
            if re.fullmatch(expect, line.strip()):
                break
        else:
            raise AssertionError(f"{where}: ended without a line matching {expect!r}: {''.join(seen)[-3000:]}")
        yield line.strip()
    finally:
        interrupt.cancel()
        watchdog.cancel()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_every_page_has_examples() -> None:
    assert len(examples("README.md")) >= 10
    assert len(examples("docs/cli.md")) >= 15
    for page in (*NODE_PAGES, "docs/node.md", "docs/dashboard.md", "docs/docker.md", "docs/plugin-authoring.md"):
        assert len(examples(page)) >= 2, page


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files the pages' examples name."""
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
    (where / "data.bin").write_bytes(b"hello from data.bin\n")
    digits = onnx_models.mlp_gemm(np.random.default_rng(7))
    onnx.save(digits, str(where / "digits.onnx"))
    np.save(where / "samples.npy", onnx_models.samples(digits, 5))
    return where


def test_node_and_dashboard_pages_in_a_fresh_home(tmp_path: Path, workdir: Path) -> None:
    """docs/node.md's block in order in a home of its own (it begins with ``gaia init``), then docs/dashboard.md's
    ``gaia node --dashboard`` there, its node stopped: it prints a page address of the documented shape.
    Runs before README's home starts a node on the same default port."""
    home = Home(tmp_path / "node")
    try:
        for example in examples("docs/node.md"):
            run(example, home, workdir)
        (example,) = [e for e in examples("docs/dashboard.md") if e.command == "gaia node --dashboard"]
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "GAIA_HOME": str(home.root)}
        follow(example.command, env, workdir, f"docs/dashboard.md:{example.line}", DASHBOARD_URL)
    finally:
        gaia(home, "stop", check=False)


@pytest.fixture(scope="module")
def readme_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    """A fresh home that ran README's "Use it" block in order, its node left running (resumed, devnet down)
    for docs/cli.md's examples: one node start fewer than a home of their own."""
    home = Home(tmp_path_factory.mktemp("readme") / "home")
    try:
        for example in examples("README.md"):
            if "--plugins=" not in example.command:
                run(example, home, ROOT)
            if example.command.split("#")[0].split() == ["gaia", "init"] and not port_free(7700):
                # the default port is taken by something else on this machine (another node, a parallel
                # test run): the node of this home listens on a free one, the commands stay as written
                gaia(home, "config", "set", "node.listen", f'"tcp://127.0.0.1:{free_port()}"')
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


def port_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:``port`` (a bind would succeed)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


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


def test_pages_run_with_the_node(readme_home: Home, workdir: Path) -> None:
    for page in NODE_PAGES:
        for example in examples(page):
            run(example, readme_home, workdir)


def test_dashboard_page_serves_the_running_node(readme_home: Home, workdir: Path) -> None:
    """Each ``gaia dashboard`` example prints its page's address, of the shape the page shows (opening it is
    for a browser); ``--port 8800`` serves on that port."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "GAIA_HOME": str(readme_home.root)}
    shown = [e for e in examples("docs/dashboard.md") if e.command.startswith("gaia dashboard")]
    assert len(shown) == 3
    for example in shown:
        url = follow(example.command, env, workdir, f"docs/dashboard.md:{example.line}", DASHBOARD_URL)
        if "--port 8800" in example.command:
            assert ":8800/" in url, url


def test_dashboard_page_curl_example(readme_home: Home, workdir: Path) -> None:
    """The page's ``curl`` answers the API's JSON, with ``$TOKEN`` the token a running ``gaia dashboard`` printed
    and its port for the example's."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "GAIA_HOME": str(readme_home.root)}
    (example,) = examples("docs/dashboard.md", ("curl",))
    with following("gaia dashboard", env, workdir, "gaia dashboard", DASHBOARD_URL) as url:
        shown = re.fullmatch(r".*:(\d+)/\?token=(.+)", url)
        assert shown is not None, url
        port, token = shown.groups()
        printed = run(example, readme_home, workdir, {"41371": port}, {"TOKEN": token})
    assert isinstance(json.loads(printed), list | dict), printed


def test_docker_page_examples(readme_home: Home, workdir: Path) -> None:
    """docs/docker.md's commands, ``sha256:<64 hex>`` standing for the local busybox image's id and
    ``<blob id>`` for the id ``gaia blob add`` printed (``.ci/ensure-docker`` from the repository's root; the
    ``pip install`` of a plugin the venv holds and the devnet in containers, ``make dist`` and ``docker compose``,
    are not run here)."""
    plugin = pytest.importorskip("gaia_runner_docker")
    docker_engine = pytest.importorskip("gaia_runner_docker.engine")
    images = pytest.importorskip("gaia_runner_docker.images")
    try:
        client = docker_engine.connect(plugin.DockerSettings())
    except docker_engine.EngineUnavailable as exc:
        pytest.skip(f"no Docker engine: {exc}")
    try:
        replace = {"sha256:<64 hex>": images.busybox_image(client)}
    finally:
        client.close()
    for example in examples("docs/docker.md", ("gaia", "docker save", ".ci/ensure-docker")):
        printed = run(example, readme_home, ROOT if example.command.startswith(".ci/") else workdir, replace)
        if example.command.startswith("gaia blob add"):
            replace["<blob id>"] = printed.split()[0]


def test_plugin_authoring_page_examples(tmp_path: Path) -> None:
    """docs/plugin-authoring.md's ``gaia`` commands; its ``pip install -e`` is done without pip (the generated
    distribution's metadata put on the path: the shared venv is left alone) and its ``pytest`` of the generated
    suite is tests/test_plugin_new.py's."""
    home = Home(tmp_path / "home")
    site = tmp_path / "site"
    extra_env = {"PYTHONPATH": os.pathsep.join(map(str, (tmp_path / "gaia-runner-echo", site)))}
    shown = examples("docs/plugin-authoring.md")
    assert [e.command.split()[:3] for e in shown] == [["gaia", "plugin", "new"], ["gaia", "plugins", "--check"]]
    for example in shown:
        printed = run(example, home, tmp_path, extra_env=extra_env)
        if example.command.startswith("gaia plugin new"):
            install_metadata(tmp_path / "gaia-runner-echo", site)
        else:
            assert "FAIL" not in printed and "protocol runner:echo: satisfies" in printed, printed


def test_task_abi_c_example_builds_with_the_command_shown_and_runs(tmp_path: Path) -> None:
    """docs/task-abi.md's C entry, built with the clang command the page shows (next to the ABI's C files),
    reverses its input under ``gaia task run``."""
    if shutil.which("clang") is None:
        pytest.skip("no clang on PATH (it builds the page's C example)")
    page = (ROOT / "docs/task-abi.md").read_text(encoding="utf-8")
    source = re.search(r"```c\n(#include \"gaia_abi.h\"\n.*?)```", page, re.DOTALL)
    command = re.search(r"built with `(clang [^`]+)`", page)
    assert source is not None and command is not None, "docs/task-abi.md: no C example or no clang command"
    (tmp_path / "reverse.c").write_text(source.group(1), encoding="utf-8")
    for name in ("gaia_abi.c", "gaia_abi.h"):
        shutil.copy(Path(workloads.__file__).parent / "modules" / "src" / name, tmp_path / name)
    built = subprocess.run(["bash", "-c", " ".join(command.group(1).split())], cwd=tmp_path, capture_output=True,
                           text=True, timeout=COMMAND_S, stdin=subprocess.DEVNULL)
    if built.returncode != 0 and "wasm32" in built.stderr:
        pytest.skip(f"clang has no wasm32-wasi target: {built.stderr.strip()[-300:]}")
    assert built.returncode == 0, built.stderr
    (tmp_path / "in.txt").write_text("abc")
    home = Home(tmp_path / "home")
    done = gaia(home, "task", "run", str(tmp_path / "a.out"), "--entry", "reverse", "--input", str(tmp_path / "in.txt"),
                "--json")
    assert json.loads(done.stdout)["output"] == "cba", done.stdout

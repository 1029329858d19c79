"""``gaia task submit`` takes a directory, a glob or a list file of inputs, and sizes them all before reading."""

from __future__ import annotations

import json
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from gaia_core.cli import main
from gaia_core.commands import inputs
from gaia_core.config import AdmissionSection, Home
from gaia_core.errors import UsageError
from tests.nodes import detached_node, gaia, wait_until

workloads = pytest.importorskip("gaia_runner_wasm.workloads")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """``data/`` with b.txt, a.txt, c.bin and a subdirectory (left out), plus a list file beside it."""
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    for name in ("b.txt", "a.txt", "c.bin", "sub/d.txt"):
        (root / name).write_text(name)
    (tmp_path / "list.txt").write_text("# inputs\ndata/c.bin\n\ndata/a.txt\n")
    return root


def test_directory_glob_and_list_file(data: Path) -> None:
    assert inputs.expand([str(data)]) == [str(data / n) for n in ("a.txt", "b.txt", "c.bin")]
    assert inputs.expand([str(data / "*.txt")]) == [str(data / "a.txt"), str(data / "b.txt")]
    assert inputs.expand([f"@{data.parent / 'list.txt'}", "-"]) == [str(data / "c.bin"), str(data / "a.txt"), "-"]


@pytest.mark.parametrize(("given", "message"), [
    ("missing.txt", "input file 'missing.txt' does not exist"),
    ("{dir}/*.none", "matches no file"),
    ("{dir}/sub/empty", "holds no files"),
    ("@{dir}/nolist.txt", "does not exist"),
    ("@{dir}/bad-list.txt", "line 2: 'nothere' is not a file"),
])
def test_inputs_that_name_nothing_say_so(data: Path, given: str, message: str) -> None:
    (data / "sub" / "empty").mkdir()
    (data / "bad-list.txt").write_text("a.txt\nnothere\n")
    with pytest.raises(UsageError, match=message):
        inputs.expand([given.format(dir=data)])
    with pytest.raises(UsageError, match="only once"):
        inputs.expand(["-", "-"])


def test_sizes_are_checked_before_any_input_is_read(gaia_home: Home, tmp_path: Path, data: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    main(["init"])
    big = data / "zz-big.bin"
    with big.open("wb") as fh:
        fh.truncate(1 << 30)  # sparse: 1 GiB that costs no disk
    assert inputs.check_sizes([str(data / "a.txt")], AdmissionSection()) == 5
    module = tmp_path / "echo.wasm"
    module.write_bytes(workloads.module_bytes("echo"))
    capsys.readouterr()
    tracemalloc.start()
    try:
        with pytest.raises(SystemExit) as exited:
            main(["task", "submit", str(module), "--input", str(data)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"input {str(big)!r} is 1,073,741,824 bytes" in err and "Traceback" not in err
    assert peak < 16 << 20, f"{peak:,} bytes allocated: an input was read"


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    module = tmp_path / "echo.wasm"
    module.write_bytes(workloads.module_bytes("echo"))
    home = Home(tmp_path / "home")
    gaia(home, "init")
    for command in ("run", "submit"):
        done = gaia(home, "task", command, str(module), "--input", str(fifo), timeout=30, check=False)
        assert done.returncode == 2 and f"input file {str(fifo)!r} is not a regular file" in done.stderr


@pytest.fixture(scope="module")
def node_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    with detached_node(tmp_path_factory.mktemp("inputs")) as home:
        yield home


def test_submit_a_directory_a_glob_and_a_list(node_home: Home, data: Path) -> None:
    module = data.parent / "echo.wasm"
    module.write_bytes(workloads.module_bytes("echo"))
    submitted = gaia(node_home, "task", "submit", str(module), "--input", str(data), "--input", str(data / "*.bin"),
                     "--input", f"@{data.parent / 'list.txt'}", "--json")
    job = json.loads(submitted.stdout)
    assert job["tasks"] == 3 + 1 + 2
    wait_until(lambda: all(r["state"] == "done" for r in json.loads(
        gaia(node_home, "task", "result", job["job"], "--json").stdout)), timeout=60, what="the job to finish")
    rows = json.loads(gaia(node_home, "task", "result", job["job"], "--json").stdout)
    assert [r["output"] for r in sorted(rows, key=lambda r: r["idx"])] == [
        "a.txt", "b.txt", "c.bin", "c.bin", "c.bin", "a.txt"]

"""Container jobs through real nodes: ``gaia task submit --image`` on a devnet of two node processes, its
replicas settled with the job's ``--tolerance`` (containers print floats that differ in the last digits)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from click.testing import CliRunner

from gaia_core import devnet
from gaia_core.cli import cli
from gaia_core.config import Home
from gaia_core.errors import UsageError
from gaia_core.identity import Identity

#: Prints one number whose last digits differ between any two runs (busybox sh's $RANDOM).
NOISY = "sh -c 'echo 1.00000$RANDOM'"


def gaia(home: Home, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """The ``gaia`` command line, in a process of its own, against the node of ``home``."""
    return subprocess.run([sys.executable, "-m", "gaia_core", "--home", str(home.root), *args], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          env={**os.environ, "GAIA_HOME": str(home.root)})


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory: pytest.TempPathFactory, busybox: str,
              shipped: tuple[str, Path]) -> Iterator[list[Home]]:
    """Two node processes that allow the busybox and shipped images and see each other; stopped afterwards."""
    directory = tmp_path_factory.mktemp("devnet")
    allow = {"allow": [busybox, shipped[0]]}
    try:
        devnet.up(directory, 2, extra={"zk_mock": {"simulate_time": False}, "runner_docker": allow})
        devnet.wait_for_peers(directory)
        yield devnet.homes(directory)
    finally:
        devnet.down(directory, timeout=10.0)


def test_replicas_of_a_container_agree_within_the_jobs_tolerance(two_nodes: list[Home], busybox: str) -> None:
    done = gaia(two_nodes[0], "task", "submit", "--image", busybox, "--entry", NOISY, "--redundancy", "2",
                "--tolerance", "1e-5", "--floats", "text", "--wait", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    [row] = json.loads(done.stdout)
    assert row["state"] == "done" and re.fullmatch(r"1\.00000[0-9]+\n", row["output"]), row
    assert len(row["peers"].split(",")) == 2  # both nodes ran it; their outputs differ past the 5th decimal


def test_without_a_tolerance_equal_outputs_agree_byte_for_byte(two_nodes: list[Home], busybox: str) -> None:
    same = gaia(two_nodes[0], "task", "submit", "--image", busybox, "--entry", "echo 0.25", "--redundancy", "2",
                "--wait", "--json")
    assert same.returncode == 0, same.stderr[-2000:]
    [row] = json.loads(same.stdout)
    assert row["state"] == "done" and row["output"] == "0.25\n" and len(row["peers"].split(",")) == 2


def test_a_node_lacking_the_image_fetches_it_as_the_tasks_blob(two_nodes: list[Home], client: docker.DockerClient,
                                                              absent: tuple[str, Path]) -> None:
    image, archive = absent  # not on this machine's engine, which both nodes share
    added = gaia(two_nodes[0], "blob", "add", str(archive), "--json")
    assert added.returncode == 0, added.stderr[-2000:]
    blob = json.loads(added.stdout)["id"]
    worker = Identity.load(two_nodes[1].identity_dir).node_id
    done = gaia(two_nodes[0], "task", "submit", "--image", image, "--entry", "cat /marker", "--blob", blob,
                "--to", worker, "--wait", "--json")
    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-2000:]
    [row] = json.loads(done.stdout)
    assert row["state"] == "done" and row["node_id"] == worker and len(row["output"]) == 16
    assert client.api.inspect_image(image)["Id"] == image  # node1 loaded it from the blob it fetched


@pytest.mark.parametrize("args, words", [
    (["--image", "sha256:abc", "--entry", "true"], "not an image digest"),
    (["--image", "sha256:" + "ab" * 32], "--entry is required with --image"),
    ([], "give either MODULE or --image"),
    (["--image", "sha256:" + "ab" * 32, "--entry", "true", "--floats", "f64"], "give --tolerance too"),
    (["--image", "sha256:" + "ab" * 32, "--entry", "true", "--tolerance", "1e-5,x"], "not RTOL or RTOL,ATOL"),
    (["--image", "sha256:" + "ab" * 32, "--entry", "true", "--blob", "xyz"], "not a blob id"),
])
def test_bad_submit_command_lines_are_usage_errors(cli_runner: CliRunner, args: list[str], words: str) -> None:
    result = cli_runner.invoke(cli, ["task", "submit", *args])
    assert isinstance(result.exception, UsageError) and result.exception.exit_code == 2, result.output
    assert words in str(result.exception)

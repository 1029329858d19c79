"""`gaia proof` without any prover plugin: garbage, unknown schemes and usage errors."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from gaia_core.cli import cli
from gaia_core.codec import encode
from gaia_core.errors import CodecError, UsageError
from gaia_core.model import Proof, TaskResult
from gaia_core.testing.conformance.prover import sample_task

NODE = "ab" * 32
TASK = sample_task()
RESULT = TaskResult(task_id=TASK.id, status="ok", node_id=NODE)
PROOF = Proof(scheme="nobody-has-this", task_id=TASK.id, node_id=NODE, commitment=b"c" * 32, body=b"b" * 8)


def files(tmp_path: Path, proof: bytes) -> list[str]:
    for name, data in (("proof", proof), ("task", encode(TASK)), ("result", encode(RESULT))):
        (tmp_path / f"{name}.bin").write_bytes(data)
    return [str(tmp_path / "proof.bin"), "--task", str(tmp_path / "task.bin"), "--result", str(tmp_path / "result.bin")]


def test_unknown_scheme_is_unverified(cli_runner: CliRunner, tmp_path: Path) -> None:
    run = cli_runner.invoke(cli, ["--plugins", "", "proof", "verify", *files(tmp_path, encode(PROOF)), "--json"])
    verdict = json.loads(run.output)
    assert run.exit_code == 6 and verdict["status"] == "unverified" and "nobody-has-this" in verdict["reason"]


def test_garbage_proof_is_invalid(cli_runner: CliRunner, tmp_path: Path) -> None:
    run = cli_runner.invoke(cli, ["--plugins", "", "proof", "verify", *files(tmp_path, b"\xc1garbage")])
    assert run.exit_code == 6 and run.output.startswith("invalid: not a proof")


def test_show_prints_a_plain_proof(cli_runner: CliRunner, tmp_path: Path) -> None:
    path = files(tmp_path, encode(PROOF))[0]
    run = cli_runner.invoke(cli, ["proof", "show", path])
    assert run.exit_code == 0 and "nobody-has-this" in run.output and "SIMULATED" not in run.output


def test_bad_task_file_and_half_options_are_errors(cli_runner: CliRunner, tmp_path: Path) -> None:
    args = files(tmp_path, encode(PROOF))
    (tmp_path / "task.bin").write_bytes(encode(RESULT))  # a result where the task belongs
    run = cli_runner.invoke(cli, ["proof", "verify", *args])
    assert isinstance(run.exception, CodecError) and "expected a Task frame" in str(run.exception)
    run = cli_runner.invoke(cli, ["proof", "verify", args[0], "--task", args[2]])
    assert isinstance(run.exception, UsageError)
    run = cli_runner.invoke(cli, ["proof", "show", str(tmp_path / "missing.bin")])
    assert isinstance(run.exception, UsageError) and "missing.bin" in str(run.exception)

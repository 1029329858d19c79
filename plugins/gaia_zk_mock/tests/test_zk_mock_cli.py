"""`gaia proof show` and `gaia proof verify` with the installed gaia-zk-mock plugin."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
from click.testing import CliRunner

from gaia_core.cli import cli
from gaia_core.codec import encode
from gaia_core.errors import CodecError
from gaia_core.identity import Identity
from gaia_core.testing.conformance.prover import sample_result, sample_task
from gaia_zk_mock import MockProver, Settings

IDENTITY = Identity.generate()
PROVER = MockProver(IDENTITY, Settings(simulate_time=False))
TASK = sample_task()
RESULT = sample_result(TASK, IDENTITY.node_id)
PROOF = PROVER.prove(TASK, RESULT)


def write(tmp_path: Path, **records: object) -> dict[str, str]:
    paths = {}
    for name, record in records.items():
        path = tmp_path / f"{name}.bin"
        path.write_bytes(record if isinstance(record, bytes) else encode(record))
        paths[name] = str(path)
    return paths


def verify(cli_runner: CliRunner, files: dict[str, str], *extra: str) -> tuple[int, dict]:
    args = ["--plugins", "gaia-zk-mock", "proof", "verify", files["proof"], "--json", *extra]
    if "task" in files:
        args += ["--task", files["task"], "--result", files["result"]]
    run = cli_runner.invoke(cli, args)
    return run.exit_code, json.loads(run.output)


def test_show_labels_the_proof_simulated(cli_runner: CliRunner, tmp_path: Path) -> None:
    files = write(tmp_path, proof=PROOF)
    run = cli_runner.invoke(cli, ["proof", "show", files["proof"]])
    assert run.exit_code == 0, run.output
    assert "SIMULATED" in run.output and PROOF.task_id in run.output and "192 bytes" in run.output
    data = json.loads(cli_runner.invoke(cli, ["proof", "show", files["proof"], "--json"]).output)
    assert data["simulated"] is True and data["body_bytes"] == 192 and data["node_id"] == IDENTITY.node_id


def test_show_refuses_garbage_with_a_codec_error(cli_runner: CliRunner, tmp_path: Path) -> None:
    files = write(tmp_path, proof=encode(PROOF)[:40])
    run = cli_runner.invoke(cli, ["proof", "show", files["proof"]])
    assert isinstance(run.exception, CodecError) and "proof.bin" in str(run.exception)


def test_verify_valid_proof(cli_runner: CliRunner, tmp_path: Path) -> None:
    code, verdict = verify(cli_runner, write(tmp_path, proof=PROOF, task=TASK, result=RESULT))
    assert code == 0 and verdict["status"] == "valid" and verdict["simulated"] is True
    run = cli_runner.invoke(cli, ["--plugins", "gaia-zk-mock", "proof", "verify", str(tmp_path / "proof.bin"),
                                  "--task", str(tmp_path / "task.bin"), "--result", str(tmp_path / "result.bin")])
    assert run.exit_code == 0 and run.output.startswith("valid") and "SIMULATED" in run.output


def test_verify_bad_proofs_are_invalid_with_exit_6(cli_runner: CliRunner, tmp_path: Path) -> None:
    other_task = sample_task(b"another input")
    cases = {
        "truncated": encode(PROOF)[:-7],
        "garbage": b"\x93not a proof at all",
        "forged": encode(attrs.evolve(PROOF, signature=Identity.generate().sign(b"x"))),
        "another task": encode(PROVER.prove(other_task, sample_result(other_task, IDENTITY.node_id))),
        "unknown node": encode(attrs.evolve(PROOF, node_id="f" * 64)),
    }
    for name, data in cases.items():
        code, verdict = verify(cli_runner, write(tmp_path, proof=data, task=TASK, result=RESULT))
        assert (code, verdict["status"]) == (6, "invalid"), name
        assert verdict["reason"], name


def test_verify_a_scheme_no_plugin_registers_is_unverified(cli_runner: CliRunner, tmp_path: Path) -> None:
    other = attrs.evolve(PROOF, scheme="mock-groth16x")
    code, verdict = verify(cli_runner, write(tmp_path, proof=other, task=TASK, result=RESULT))
    assert code == 6 and verdict["status"] == "unverified" and "mock-groth16x" in verdict["reason"]


def test_verify_without_the_work_is_unverified(cli_runner: CliRunner, tmp_path: Path) -> None:
    code, verdict = verify(cli_runner, write(tmp_path, proof=PROOF))
    assert code == 6 and verdict["status"] == "unverified" and "--task" in verdict["reason"]

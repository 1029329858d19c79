"""Prover benchmark: mock-groth16 prove/verify cost per task and proof size, vs a bare Ed25519
signature of the same bytes, measured in the same run. Prints one line per measure:

    <measure>: gaia=X baseline=Y ratio=Z

ratio = gaia / baseline: how many times the cost (or size) of a bare Ed25519 sign / verify /
64-byte signature the mock proof takes. The simulated proving *wait* is turned off
(``simulate_time=False``): this measures the real work (commitment, body, signature, checks).
The statement is a task with a 1 KiB input and a 1 KiB output.

Run: python benchmarks/bench_prover.py   (about 10 s on 2 cores)
"""

from __future__ import annotations

import time
from collections.abc import Callable

from gaia_core import hashing
from gaia_core.codec import encode
from gaia_core.identity import Identity, verify_signature
from gaia_core.testing.conformance.prover import sample_result, sample_task
from gaia_zk_mock import MockProver, Settings
from gaia_zk_mock.statement import signed_bytes


def per_call_us(fn: Callable[[], object], budget_s: float = 2.0, max_calls: int = 200_000) -> float:
    """Mean microseconds per call of ``fn`` over about ``budget_s`` seconds (bounded in calls)."""
    fn()  # warm-up
    calls, start = 0, time.perf_counter()
    while calls < max_calls and time.perf_counter() - start < budget_s:
        fn()
        calls += 1
    return (time.perf_counter() - start) / calls * 1e6


def line(measure: str, gaia: float, baseline: float) -> None:
    print(f"{measure}: gaia={gaia:.1f} baseline={baseline:.1f} ratio={gaia / baseline:.2f}")


def main() -> None:
    identity = Identity.generate()
    prover = MockProver(identity, Settings(simulate_time=False))
    task = sample_task(input=bytes(range(256)) * 4)
    result = sample_result(task, identity.node_id, output=bytes(reversed(range(256))) * 4)
    proof = prover.prove(task, result)
    message = signed_bytes(proof)
    assert prover.verify(proof, task, result).ok

    print(f"# hashing backend: {hashing.BACKEND}; mock-groth16 is a SIMULATION (see docs/verification.md)")
    line("prove_us_per_task", per_call_us(lambda: prover.prove(task, result)),
         per_call_us(lambda: identity.sign(message)))
    line("verify_us_per_task", per_call_us(lambda: prover.verify(proof, task, result)),
         per_call_us(lambda: verify_signature(identity.node_id, proof.signature, message)))
    line("proof_body_bytes", len(proof.body), len(proof.signature))
    line("proof_frame_bytes", len(encode(proof)), len(proof.signature))


if __name__ == "__main__":
    main()

"""Regenerate native/tests/golden.json from the Python backends (gaia_core._reference).

Run from the repository root: ``python native/tests/gen_golden.py``. The vectors are shared by
``cargo test`` (native/tests/golden.rs) and pytest (tests/test_hashing.py, tests/test_scheduling.py),
so the Rust module and the Python backends are held to the same answers. The scheduler scenarios
come from the pure-Python scheduler (the parity oracle); BLAKE3 from the ``blake3`` wheel.

Input patterns (so the file stays small):
* blake3 data of length n: byte i = i % 251 (the official BLAKE3 test-vector input).
* merkle leaf i of a case: byte j = (7 * i + j) % 251, with length leaf_lens[i].
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from golden import replay  # the replayer the tests use: one definition of the op format

from gaia_core._reference import hashing as ref
from gaia_core._reference.scheduling import Scheduler

BLAKE3_LENS = [0, 1, 63, 64, 65, 127, 128, 129, 1023, 1024, 1025, 2048, 2049, 3072, 3073, 4096, 4097,
               5120, 5121, 6144, 6145, 7168, 7169, 8192, 8193, 16384, 31744, 102400]  # fmt: skip
TEXTS = ["", "abc", "GAIA", "The quick brown fox jumps over the lazy dog"]
MERKLE_CASES = [
    [],
    [0],
    [3],
    [1, 2],
    [0, 0, 0],
    [5, 1, 9, 2],
    [4, 4, 4, 4, 4],
    [1, 2, 3, 4, 5, 6, 7],
    [8] * 8,
    [2] * 9,
    list(range(13)),
    [32] * 16,
    [1] * 17,
    [1024] * 5,  # 1 KiB leaves: two-chunk messages
    [2100] * 3,  # three-chunk messages
    [1024, 1024, 1023, 1025],
]
def pattern(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


def leaf(i: int, length: int) -> bytes:
    return bytes((7 * i + j) % 251 for j in range(length))


def scheduler_scenarios() -> list[dict]:
    scenarios = [
        {
            "name": "priority-edf-fifo",
            "ops": [
                ["push", "a", 0, None, "", 1.0],
                ["push", "b", 0, 5.0, "", 1.0],
                ["push", "c", 1, None, "", 1.0],
                ["push", "d", 0, 5.0, "", 1.0],
                ["push", "e", 0, 2.5, "", 1.0],
                ["len"],
                ["pop_many", 10],
                ["pop"],
            ],
        },
        {
            "name": "fair-share-weights",
            "ops": [
                ["push", f"{s}{i}", 0, None, s, 1.0] for i in range(6) for s in "xyz"
            ]
            + [
                ["set_share", "y", 2.0],
                ["set_share", "z", 0.5],
                ["pop_many", 12],
                ["served", "x"],
                ["served", "y"],
                ["served", "z"],
                ["pop_many", 10],
            ],
        },
        {
            "name": "no-banked-credit",
            "ops": [["push", f"a{i}", 0, None, "alice", 1.0] for i in range(5)]
            + [
                ["pop_many", 5],
                ["push", "a5", 0, None, "alice", 1.0],
                ["push", "b0", 0, None, "bob", 1.0],
                ["push", "b1", 0, None, "bob", 1.0],
                ["push", "a6", 0, None, "alice", 1.0],
                ["served", "bob"],
                ["pop_many", 4],
                ["served", "alice"],
                ["served", "bob"],
            ],
        },
        {
            "name": "expire-remove-cost",
            "ops": [
                ["push", "t1", 0, 3.0, "p", 2.0],
                ["push", "t2", 2, 1.0, "q", 1.0],
                ["push", "t3", 0, None, "p", 1.0],
                ["push", "t4", 1, 1.0, "p", 1.0],
                ["push_many", [["m1", 0, 0.5, "q"], ["m2", 0, None, "r"]]],
                ["remove", "t3"],
                ["remove", "t3"],
                ["contains", "t1"],
                ["contains", "t3"],
                ["pop_expired", 2.0],
                ["len"],
                ["pop_many", 5],
                ["served", "p"],
            ],
        },
    ]
    rng = random.Random(20261125)
    for n in range(6):
        ops: list[list] = []
        keys: list[str] = []
        for _ in range(120):
            r = rng.random()
            if r < 0.45:
                k = f"k{len(keys)}"
                keys.append(k)
                dl = None if rng.random() < 0.4 else float(rng.randint(0, 20))
                ops.append(
                    [
                        "push",
                        k,
                        rng.randint(0, 2),
                        dl,
                        rng.choice("abcd"),
                        rng.choice([1.0, 0.5, 2.0, 3.0]),
                    ]
                )
            elif r < 0.55:
                batch = []
                for _ in range(rng.randint(1, 5)):
                    k = f"k{len(keys)}"
                    keys.append(k)
                    batch.append(
                        [
                            k,
                            rng.randint(0, 2),
                            None if rng.random() < 0.5 else float(rng.randint(0, 20)),
                            rng.choice("abcd"),
                        ]
                    )
                ops.append(["push_many", batch])
            elif r < 0.75:
                ops.append(["pop"])
            elif r < 0.8:
                ops.append(["pop_many", rng.randint(0, 4)])
            elif r < 0.86 and keys:
                ops.append(["remove", rng.choice(keys)])
            elif r < 0.9:
                ops.append(["pop_expired", float(rng.randint(0, 12))])
            elif r < 0.95:
                ops.append(
                    ["set_share", rng.choice("abcd"), rng.choice([0.5, 1.0, 2.0, 4.0])]
                )
            else:
                ops.append(["served", rng.choice("abcde")])
        ops.append(["pop_many", 1000])
        scenarios.append({"name": f"random-{n}", "ops": ops})
    for sc in scenarios:
        sc["results"] = replay(Scheduler(), sc["ops"])
    return scenarios


def main() -> None:
    golden = {
        "about": "Shared golden vectors for gaia_native and gaia_core._reference; see native/tests/gen_golden.py.",
        "blake3": [{"len": n, "hash": ref.content_id(pattern(n))} for n in BLAKE3_LENS],
        "blake3_text": [{"text": t, "hash": ref.content_id(t.encode())} for t in TEXTS],
        "merkle": [
            {"leaf_lens": lens, "root": ref.merkle_root([leaf(i, n) for i, n in enumerate(lens)]).hex()}
            for lens in MERKLE_CASES
        ],
        "scheduler": scheduler_scenarios(),
    }
    path = Path(__file__).with_name("golden.json")
    path.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

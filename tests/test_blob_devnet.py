"""Blobs between real node processes: a worker fetches a task's blob from its submitter through the
transport (CURVE on 127.0.0.1), verified chunk by chunk, runs the task (a WASM task reads the blob's
bytes through the gaia_blob host API) and then removes the blob (privacy); a blob nobody holds fails
its task with one clear reason; once the job is released the submitter removes the blobs it named,
except a pinned one. ``gaia blob`` works on the home of
a running node."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import attrs
from nodes import echo_tasks, gaia, node_id, results, running_devnet, submit, wait_job, wait_until
from test_blob_runner import digest_module, fnv1a

from gaia_core.blobs import CHUNK_SIZE
from gaia_core.model import Task

#: The submitter runs no tasks itself, so the worker must fetch the blob.
NO_RUNNER = {0: {"plugins": {"block": ["gaia-runner-wasm"]}}}


def test_a_worker_fetches_the_blob_of_a_task_and_removes_it_after(tmp_path: Path) -> None:
    data = tmp_path / "weights.bin"
    content = os.urandom(3 * CHUNK_SIZE + 5)
    data.write_bytes(content)
    (tmp_path / "small.bin").write_bytes(b"pinned")
    with running_devnet(tmp_path / "devnet", 2, overrides=NO_RUNNER) as (submitter, worker):
        blob = json.loads(gaia(submitter, "blob", "add", str(data), "--json").stdout)["id"]
        pinned = json.loads(gaia(submitter, "blob", "add", str(tmp_path / "small.bin"), "--pin", "--json").stdout)["id"]
        me = node_id(submitter)
        good = [attrs.evolve(t, blobs=(blob,)) for t in echo_tasks([b"with a blob"], me)]
        digest = Task.create(digest_module(), entry="digest", blobs=(blob, pinned), submitter=me)
        lost = [attrs.evolve(t, blobs=("0" * 64,)) for t in echo_tasks([b"with no blob"], me)]
        job = submit(submitter, good + [digest] + lost)
        assert wait_job(submitter, job, timeout=90)["tasks"] == {"done": 2, "failed": 1}
        done, read, failed = results(submitter, job)
        assert done["result"].output == b"with a blob"
        assert read["result"].output == struct.pack("<QQQQ", len(content), fnv1a(content), 6, fnv1a(b"pinned"))
        assert "cannot fetch the task's blobs: no peer holds blob 0000" in failed["reason"]
        assert json.loads(gaia(worker, "blob", "ls", "--json").stdout)["blobs"] == []  # removed after the task

        def held() -> list[str]:
            return sorted(b["id"] for b in json.loads(gaia(submitter, "blob", "ls", "--json").stdout)["blobs"])

        assert held() == sorted([blob, pinned])  # the job is not released yet
        results(submitter, job, release=True)
        wait_until(lambda: held() == [pinned], timeout=20, what="the released job's unpinned blob removed")
    log = (worker.root / "node.log").read_text()
    assert '"blob fetched"' in log and blob[:16] in log

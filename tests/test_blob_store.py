"""The blob store and ``gaia blob``: Merkle tree and ids, streamed adds, export, LRU cap with pins, verified
chunk writes that resume after a cut, and one-line errors for an unknown id, a bad file and a full disk."""

from __future__ import annotations

import json
import os
import resource
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import attrs
import pytest
from click.testing import CliRunner

from gaia_core.blobs import CHUNK_SIZE, BlobError, BlobStore, UnknownBlob, blob_id
from gaia_core.blobs.merkle import Tree, chunk_count, leaf_hash, verify
from gaia_core.blobs.store import SYNC_CHUNKS
from gaia_core.blobs.tasks import SWEEP_S, TaskBlobs
from gaia_core.cli import cli
from gaia_core.config import Home
from gaia_core.errors import GaiaError
from gaia_core.hashing import merkle_root


def _file(path: Path, size: int, seed: int = 1) -> Path:
    path.write_bytes(bytes((i * seed + i // 7) % 251 for i in range(size)))
    return path


@pytest.mark.parametrize("count", [0, 1, 2, 3, 5, 8, 13, 33])
def test_tree_root_and_proofs_match_the_native_merkle_root(count: int) -> None:
    chunks = [bytes([i]) * (i + 1) for i in range(count)]
    tree = Tree([leaf_hash(c) for c in chunks])
    assert tree.root == merkle_root(chunks)
    for i, chunk in enumerate(chunks):
        proof = tree.proof(i)
        assert verify(tree.root, count, i, leaf_hash(chunk), proof)
        assert not verify(tree.root, count, i, leaf_hash(chunk + b"x"), proof)
        assert not verify(tree.root, count, (i + 1) % count, leaf_hash(chunk), proof) or count == 1
        assert not verify(tree.root, count, i, leaf_hash(chunk), [*proof, bytes(32)])


def test_blob_id_binds_the_size() -> None:
    root = merkle_root([b"a"])
    assert blob_id(1, root) != blob_id(2, root)


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


def test_add_streams_chunks_and_export_round_trips(store: BlobStore, tmp_path: Path) -> None:
    source = _file(tmp_path / "weights.bin", 2 * CHUNK_SIZE + 12345)
    info = store.add_file(source)
    chunks = [source.read_bytes()[i:i + CHUNK_SIZE] for i in range(0, info.size, CHUNK_SIZE)]
    assert info.id == blob_id(info.size, merkle_root(chunks))
    assert (info.chunks, info.held, info.complete) == (3, 3, True)
    assert store.add_file(source).id == info.id and len(store.blobs()) == 1
    out = tmp_path / "out.bin"
    assert store.export(info.id, out) == info.size
    assert out.read_bytes() == source.read_bytes()
    assert stat.S_IMODE(store.root.stat().st_mode) == 0o700
    assert stat.S_IMODE((store.root / "data" / info.id).stat().st_mode) == 0o600
    assert stat.S_IMODE((store.root / "index.db").stat().st_mode) == 0o600
    assert not list((store.root / "tmp").iterdir())


def test_cap_evicts_least_recently_used_unpinned(store: BlobStore, tmp_path: Path) -> None:
    a, b, c = (store.add_file(_file(tmp_path / n, CHUNK_SIZE, seed)) for seed, n in enumerate("abc", 2))
    store.pin(a.id)
    store.path(b.id)  # used: c is now the least recently used unpinned blob
    assert store.set_cap(2 * CHUNK_SIZE) == [c.id]
    assert {i.id for i in store.blobs()} == {a.id, b.id}
    assert store.set_cap(0) == [b.id]
    assert [i.id for i in store.blobs()] == [a.id]  # pinned survives any cap
    store.pin(a.id, False)
    assert store.evict() == [a.id]


def test_release_removes_fetched_unpinned_blobs_no_task_holds(store: BlobStore, tmp_path: Path) -> None:
    added = store.add_file(_file(tmp_path / "x", 3000)).id
    fetched = _fetch_whole(store, _file(tmp_path / "y", 4000, 3))
    pinned = _fetch_whole(store, _file(tmp_path / "z", 5000, 5))
    store.pin(pinned)
    data, _, tree = _source_tree(_file(tmp_path / "w", CHUNK_SIZE + 1, 7))
    partial = blob_id(len(data), tree.root)
    store.begin(partial, len(data), tree.root)
    every = [added, fetched, pinned, partial]
    store.hold(every)
    store.hold([fetched])  # a second task naming it
    assert store.set_cap(0) == []  # held or pinned: nothing evicted
    assert store.release(every) == []  # the second task still holds it
    assert store.release([fetched]) == [fetched]
    assert {i.id for i in store.blobs()} == {added, pinned, partial}  # a partial fetch stays for a retry
    assert sorted(store.evict()) == sorted([added, partial])  # released: the cap (0) takes them now
    assert [i.id for i in store.blobs()] == [pinned]


def test_released_jobs_take_the_blobs_only_they_named(store: BlobStore, tmp_path: Path) -> None:
    shared, alone, pinned, running = (store.add_file(_file(tmp_path / n, 1000 + seed, seed)).id
                                      for seed, n in enumerate("abcd", 2))
    kept = store.add_file(_file(tmp_path / "e", 77)).id  # named by no job: stays
    store.pin(pinned)
    store.use("j1", [shared, alone, pinned, running, "0" * 64])  # a blob it names need not be here
    store.use("j2", [shared])
    store.hold([running])  # a task of this node runs with it
    assert sorted(store.using_jobs()) == ["j1", "j2"]
    assert store.end_uses(["j1"]) == [alone]
    assert {i.id for i in store.blobs()} == {shared, pinned, running, kept}
    assert store.release([running]) == [running]  # gone once its task ends
    assert store.end_uses(["j2"]) == [shared] and store.using_jobs() == []
    assert {i.id for i in store.blobs()} == {pinned, kept}


def test_the_node_sweeps_the_blobs_of_released_jobs_and_backs_off_when_it_cannot(gaia_home: Home,
                                                                                  tmp_path: Path) -> None:
    blobs = TaskBlobs(gaia_home, transport=None, strike=lambda _peer: None,  # type: ignore[arg-type]
                      may_read=lambda _peer, _blob: False)
    try:
        assert blobs.sweep(lambda jobs: jobs) == [] and not (gaia_home.root / "blobs").exists()  # never touched
        blob = blobs.store.add_file(_file(tmp_path / "x", 100)).id
        blobs.store.use("j1", [blob])
        asked: list[list[str]] = []

        def broken(jobs: list[str]) -> list[str]:
            asked.append(jobs)
            raise GaiaError("state.db is on a full disk")

        blobs._next_sweep = 0.0  # a second later
        assert blobs.sweep(broken) == [] and asked == [["j1"]]
        blobs._next_sweep -= 59 * SWEEP_S  # not yet a minute later: not asked again
        assert blobs.sweep(broken) == [] and len(asked) == 1
        blobs._next_sweep = 0.0
        assert blobs.sweep(lambda jobs: jobs) == [blob] and blobs.store.blobs() == []
    finally:
        blobs.close()


def _source_tree(path: Path) -> tuple[bytes, list[bytes], Tree]:
    data = path.read_bytes()
    chunks = [data[i:i + CHUNK_SIZE] for i in range(0, len(data), CHUNK_SIZE)]
    return data, chunks, Tree([leaf_hash(c) for c in chunks])


def _fetch_whole(store: BlobStore, path: Path) -> str:
    data, chunks, tree = _source_tree(path)
    blob = blob_id(len(data), tree.root)
    for i in store.begin(blob, len(data), tree.root):
        assert store.put_chunk(blob, i, chunks[i], tree.proof(i))
    return blob


def test_chunks_verify_before_they_are_kept_and_a_cut_resumes(tmp_path: Path) -> None:
    data, chunks, tree = _source_tree(_file(tmp_path / "model", 3 * CHUNK_SIZE + 7))
    blob = blob_id(len(data), tree.root)
    store = BlobStore(tmp_path / "blobs")
    with pytest.raises(BlobError, match="not those of blob"):
        store.begin(blob, len(data) + 1, tree.root)  # a peer lying about the size
    store.set_cap(len(data) - 1)
    with pytest.raises(BlobError, match="over this store's cap"):
        store.begin(blob, len(data), tree.root)  # a task naming a blob bigger than the cap evicts nothing for it
    store.set_cap(len(data))
    assert store.begin(blob, len(data), tree.root) == [0, 1, 2, 3]
    assert not store.put_chunk(blob, 1, chunks[2], tree.proof(2))  # the wrong chunk for its index
    assert not store.put_chunk(blob, 1, chunks[1][:-1] + b"\x00", tree.proof(1))  # one byte changed
    assert not store.put_chunk(blob, 1, chunks[1], tree.proof(0))  # the proof of another leaf
    assert store.info(blob).held == 0
    assert store.put_chunk(blob, 1, chunks[1], tree.proof(1))
    assert store.put_chunk(blob, 3, chunks[3], tree.proof(3))
    store.close()  # the cut: a new process opens the same store
    store = BlobStore(tmp_path / "blobs")
    assert store.begin(blob, len(data), tree.root) == [0, 2]
    with pytest.raises(UnknownBlob):
        store.path(blob)  # not complete yet: nothing to read
    for i in (0, 2):
        assert store.put_chunk(blob, i, chunks[i], tree.proof(i))
    assert store.path(blob).read_bytes() == data
    assert not (store.root / "partial" / blob).exists()
    store.close()


def test_a_slow_fdatasync_does_not_stall_the_other_streams(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While one stream waits for the disk to sync its chunks, another still writes (the sync holds no lock);
    the chunks are marked held only once their sync returned, and the blob completes whole."""
    data, chunks, tree = _source_tree(_file(tmp_path / "model", (SYNC_CHUNKS + 2) * CHUNK_SIZE))
    blob = blob_id(len(data), tree.root)
    store = BlobStore(tmp_path / "blobs")
    store.begin(blob, len(data), tree.root)
    syncing, go_on = threading.Event(), threading.Event()
    real = os.fdatasync

    def slow_disk(fd: int) -> None:
        syncing.set()
        assert go_on.wait(10)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", slow_disk)
    first = threading.Thread(target=lambda: [store.put_chunk(blob, i, chunks[i], tree.proof(i))
                                             for i in range(SYNC_CHUNKS)])  # the last of these syncs
    first.start()
    try:
        assert syncing.wait(10)
        other = threading.Thread(target=store.put_chunk, args=(blob, SYNC_CHUNKS, chunks[SYNC_CHUNKS],
                                                                tree.proof(SYNC_CHUNKS)))
        other.start()
        other.join(5)
        assert not other.is_alive(), "a chunk write waited for another stream's fdatasync"
        assert store.info(blob).held == 0  # nothing marked held before its sync returned
    finally:
        go_on.set()
        first.join(10)
    monkeypatch.setattr(os, "fdatasync", real)
    assert store.info(blob).held == SYNC_CHUNKS
    assert store.put_chunk(blob, SYNC_CHUNKS + 1, chunks[-1], tree.proof(SYNC_CHUNKS + 1))
    store.sync(blob)
    assert store.path(blob).read_bytes() == data
    store.close()


def test_unknown_ids_and_bad_files_are_blob_errors(store: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(UnknownBlob, match="not a blob id"):
        store.info("../../etc/passwd")
    with pytest.raises(UnknownBlob, match="no blob"):
        store.remove("0" * 64)
    with pytest.raises(BlobError, match="no such file"):
        store.add_file(tmp_path / "missing")
    with pytest.raises(BlobError, match="is a directory"):
        store.add_file(tmp_path)
    with pytest.raises(BlobError, match="cannot write"):
        store.export(store.add_file(_file(tmp_path / "f", 10)).id, tmp_path / "no" / "such" / "dir")
    assert chunk_count(0) == 0


def test_cli_add_ls_get_pin_rm(cli_runner: CliRunner, gaia_home: Home, tmp_path: Path) -> None:
    source = _file(tmp_path / "data.bin", CHUNK_SIZE + 10)
    added = cli_runner.invoke(cli, ["blob", "add", str(source), "--json"])
    assert added.exit_code == 0, added.output
    blob = json.loads(added.output)["id"]
    listed = json.loads(cli_runner.invoke(cli, ["blob", "ls", "--json"]).output)
    assert [b["id"] for b in listed["blobs"]] == [blob] and listed["used_bytes"] == CHUNK_SIZE + 10
    assert blob in cli_runner.invoke(cli, ["blob", "ls"]).output
    out = tmp_path / "copy.bin"
    assert cli_runner.invoke(cli, ["blob", "get", blob, "-o", str(out)]).exit_code == 0
    assert out.read_bytes() == source.read_bytes()
    assert cli_runner.invoke(cli, ["blob", "get", blob]).stdout_bytes == source.read_bytes()
    assert json.loads(cli_runner.invoke(cli, ["blob", "pin", blob, "--json"]).output)["pinned"] is True
    capped = json.loads(cli_runner.invoke(cli, ["blob", "cap", "0", "--json"]).output)
    assert capped == {"cap_bytes": 0, "used_bytes": CHUNK_SIZE + 10, "evicted": []}
    assert json.loads(cli_runner.invoke(cli, ["blob", "unpin", blob, "--json"]).output)["pinned"] is False
    assert cli_runner.invoke(cli, ["blob", "rm", blob]).output == f"removed {blob}\n"
    assert json.loads(cli_runner.invoke(cli, ["blob", "ls", "--json"]).output)["blobs"] == []
    assert stat.S_IMODE((gaia_home.root / "blobs").stat().st_mode) == 0o700


def _gaia(home: Path, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GAIA_HOME": str(home), "GAIA_LOAD_PLUGINS": ""}
    return subprocess.run([sys.executable, "-m", "gaia_core", "blob", *args], capture_output=True, text=True,
                          env=env, timeout=60, check=False, **kwargs)  # type: ignore[call-overload]


def _no_big_files() -> None:
    """In the child: files may grow to 512 KiB at most, and writing past that fails with EFBIG (a full disk)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (512 << 10, 512 << 10))


def test_cli_errors_are_one_line_and_keep_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for args, text in [(("get", "abc"), "'abc' is not a blob id"), (("rm", "f" * 64), "no blob fff"),
                       (("add", str(tmp_path / "missing")), "no such file"),
                       (("add", str(tmp_path)), "is a directory")]:
        run = _gaia(home, *args)
        assert (run.returncode, run.stdout) == (9, ""), run.stderr
        assert run.stderr.count("\n") == 1 and text in run.stderr and "Traceback" not in run.stderr
    full = _gaia(home, "add", str(_file(tmp_path / "big", 2 * CHUNK_SIZE)), preexec_fn=_no_big_files)
    assert full.returncode == 9 and "disk full while adding" in full.stderr and "nothing was kept" in full.stderr
    assert "Traceback" not in full.stderr
    assert not list((home / "blobs" / "tmp").iterdir()) and not list((home / "blobs" / "data").iterdir())
    assert json.loads(_gaia(home, "ls", "--json").stdout)["blobs"] == []


def test_get_to_a_reader_that_leaves_early_stops_quietly(tmp_path: Path) -> None:
    home = tmp_path / "home"
    blob = _gaia(home, "add", str(_file(tmp_path / "big", 3 * CHUNK_SIZE))).stdout.strip()
    env = {**os.environ, "GAIA_HOME": str(home), "GAIA_LOAD_PLUGINS": ""}
    with subprocess.Popen([sys.executable, "-m", "gaia_core", "blob", "get", blob], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=env) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert len(proc.stdout.read(10)) == 10
        proc.stdout.close()  # as `| head -c 10` does
        assert proc.wait(timeout=60) == 141
        assert proc.stderr.read() == b""


def test_a_damaged_or_missing_file_is_never_served_nor_exported(store: BlobStore, tmp_path: Path) -> None:
    blob = store.add_file(_file(tmp_path / "w", 2 * CHUNK_SIZE + 3)).id
    data = store.root / "data" / blob
    data.chmod(0o600)
    with open(data, "r+b") as damaged:
        damaged.seek(CHUNK_SIZE + 5)
        damaged.write(b"\xff\x00")
    assert store.read_chunk(blob, 0)[0]  # the first chunk is sound
    with pytest.raises(BlobError, match="damaged on disk \\(chunk 1"):
        store.export(blob, tmp_path / "out")
    assert not (tmp_path / "out").exists() and store.blobs() == []  # removed, nothing written
    gone = store.add_file(_file(tmp_path / "v", 10)).id
    (store.root / "data" / gone).unlink()
    with pytest.raises(UnknownBlob, match="is gone"):
        store.read_chunk(gone, 0)
    assert store.blobs() == []


def test_a_sweep_never_takes_a_blob_a_job_being_submitted_names(gaia_home: Home, tmp_path: Path) -> None:
    """A sweep that runs while a new job is created (between its rows and its blobs' naming) waits for both:
    a blob that a released job and the new one name stays (it was removed: the new job's task then failed)."""
    import threading

    from gaia_core.jobs.jobstore import JobStore
    from gaia_core.model import Task
    from gaia_core.store import Store

    blobs = TaskBlobs(gaia_home, transport=None, strike=lambda _peer: None,  # type: ignore[arg-type]
                      may_read=lambda _peer, _blob: False)
    state = Store(tmp_path / "state.db")
    try:
        jobs = JobStore(state)
        blob = blobs.store.add_file(_file(tmp_path / "weights", 100)).id
        task = Task(module_id="ab" * 32, blobs=[blob], input=b"old")
        blobs.named("old", [task], lambda: jobs.create("old", "old", 1, 0.0, [task], None))
        jobs.release("old")
        sweeper: list[threading.Thread] = []

        def create() -> None:  # the housekeeping thread sweeps while the new job is being created
            jobs.create("new", "new", 1, 0.0, [attrs.evolve(task, input=b"new")], None)
            blobs._next_sweep = 0.0
            sweeper.append(threading.Thread(target=blobs.sweep, args=(jobs.released,)))
            sweeper[0].start()
            sweeper[0].join(timeout=0.5)  # without the lock it finishes here, removing the blob

        blobs.named("new", [attrs.evolve(task, input=b"new")], create)
        sweeper[0].join(timeout=10)
        assert not sweeper[0].is_alive() and [b.id for b in blobs.store.blobs()] == [blob]
        assert blobs.store.using_jobs() == ["new"]  # the old job's naming is gone, the new one's kept
    finally:
        blobs.close()
        state.close()

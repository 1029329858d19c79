"""Blob transfer between two processes over gaia-comm-zmq (CURVE on, 127.0.0.1) vs raw pyzmq CURVE, same run.

A serving process holds the blob in its store and answers ``blob.chunks`` (BlobServer behind the
kernel's Gate; the two exchange signed records as nodes do, so messages go unsigned on the bound
CURVE channel); this process fetches it with the node's Fetcher into its own store (every chunk
verified with its inclusion proof and fdatasync'ed before it counts). Prints
``<measure>: gaia=X baseline=Y ratio=Z``:

  256MiB blob (MB/s; baseline: raw pyzmq CURVE DEALER->ROUTER, 1 MiB messages, same bytes; higher is better)
  256MiB blob vs this disk (MB/s; baseline: the store's write pattern alone on the same disk, half the bytes:
    a fetch cannot beat it)
  (both: the median of RUNS fetches, each followed by its two baselines; each run's figures as a # line)
  resume after a cut (chunks sent twice per stream; the transport is stopped mid-fetch, then a fresh
    one and a fresh store on the same directory finish it; baseline: the target, 1)
  RSS growth 1GiB (MiB, this fetching process, sampled every 20 ms; baseline: the target, 64)

Run: .venv/bin/python benchmarks/bench_blobs.py [--quick]   (--quick: 64 MiB and 256 MiB instead)
The stores live under $TMPDIR (TMPDIR=/dev/shm takes the disk out of the measure).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from loopback import curve_pair, until, zmq_transport

from gaia_core import codec
from gaia_core.blobs import CHUNK_SIZE, BlobError, BlobStore
from gaia_core.blobs.fetch import STREAMS, Fetcher
from gaia_core.blobs.protocol import CHUNKS, SERVING_PER_PEER, BlobServer
from gaia_core.errors import NodeError
from gaia_core.inbound import RECORD
from gaia_core.model import Envelope
from gaia_core.roles import PeerInfo

QUICK = "--quick" in sys.argv[1:]
#: Fetches of the throughput measure, each followed by the raw and disk baselines (load on a shared machine
#: moves every figure; the medians are printed).
RUNS = 3
MIB = 1 << 20
THROUGHPUT_BYTES = (64 if QUICK else 256) * MIB
RSS_BYTES = (256 if QUICK else 1024) * MIB


class Handler:
    """The serving side's kernel handler: blob.chunks to a BlobServer, counting the chunks served."""

    def __init__(self, server: BlobServer, served: Any) -> None:
        self.server, self.served = server, served

    def on_request(self, envelope: Envelope) -> bytes:
        if envelope.kind != CHUNKS:
            raise NodeError(f"unknown request kind {envelope.kind!r}")
        reply = self.server.on_request(envelope)
        with self.served.get_lock():
            self.served.value += 1
        return reply

    def on_announce(self, envelope: Envelope) -> None:
        pass

    def on_peer(self, peer: PeerInfo) -> None:
        pass


def serve(root: Path, files: list[Path], conn: multiprocessing.connection.Connection,
          served: Any) -> None:
    """The serving process: add ``files`` to a store, serve them until told to stop."""
    store = BlobStore(root / "blobs")
    blobs = [store.add_file(f).id for f in files]
    server = BlobServer(store, may_read=lambda _peer, _blob: True)  # the fetcher was sent a task naming them
    transport, address, node_id = zmq_transport(root, Handler(server, served))
    conn.send((address, node_id, blobs))
    while not conn.poll(0.2):  # until told to stop: announce the signed record, as a node's heartbeat does
        transport.announce(RECORD, codec.encode(transport.record))
    transport.stop()
    store.close()


class Client:
    """The fetching side: a transport bound to the server's channel, and a Fetcher over a store."""

    def __init__(self, root: Path, address: str, server_id: str, store_dir: Path) -> None:
        own = BlobServer(BlobStore(root / "own"), may_read=lambda _peer, _blob: False)
        self.transport, _, _ = zmq_transport(root, Handler(own, counter()))
        self.transport.connect(address)
        until(lambda: any(p.state == "up" for p in self.transport.peers()), 20.0)
        for _ in range(50):  # records both ways, so each kernel binds the other's Curve key: replies go unsigned
            self.transport.announce(RECORD, codec.encode(self.transport.record))
            if self.transport.channel_bound(server_id):
                break
            time.sleep(0.1)
        self.server_id = server_id
        self.fetcher = Fetcher(BlobStore(store_dir), self._request, lambda _peer: None)

    def _request(self, peer: str, kind: str, body: bytes, timeout: float) -> bytes:
        return self.transport.request(peer, kind, body, timeout=timeout)

    def fetch(self, blob: str) -> float:
        start = time.perf_counter()
        self.fetcher.ensure([blob], [self.server_id], timeout=600)
        return time.perf_counter() - start

    def close(self) -> None:
        self.transport.stop()
        self.fetcher.store.close()


def counter() -> Any:
    """A counter shared with the serving process."""
    return multiprocessing.Value("q", 0)


def raw_curve_mb_s(size: int) -> float:
    """MB/s of ``size`` bytes in 1 MiB messages, DEALER -> ROUTER with CURVE, in two threads."""
    ctx, router, dealer = curve_pair()
    n = size // MIB
    body = os.urandom(MIB)

    def sink() -> None:
        for _ in range(n):
            router.recv_multipart(copy=False)

    thread = threading.Thread(target=sink)
    start = time.perf_counter()
    thread.start()
    for _ in range(n):
        dealer.send(body, copy=False)
    thread.join(120)
    elapsed = time.perf_counter() - start
    ctx.destroy(linger=0)
    return size / elapsed / 1e6


def disk_mb_s(path: Path, size: int) -> float:
    """MB/s of the store's write pattern on the benchmark's disk: 1 MiB pwrites, fdatasync every 16."""
    data = os.urandom(MIB)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    start = time.perf_counter()
    try:
        for i in range(size // MIB):
            os.pwrite(fd, data, i * MIB)
            if i % 16 == 15:
                os.fdatasync(fd)
        os.fdatasync(fd)
    finally:
        os.close(fd)
        path.unlink()
    return size / (time.perf_counter() - start) / 1e6


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="gaia-bench-blobs-") as tmp:
        root = Path(tmp)
        files = []
        for name, size in (("throughput", THROUGHPUT_BYTES), ("rss", RSS_BYTES)):
            path = root / f"{name}.bin"
            with open(path, "wb") as out:
                for _ in range(size // MIB):
                    out.write(os.urandom(MIB))
            files.append(path)
        served = counter()
        parent, child = multiprocessing.Pipe()
        server = multiprocessing.Process(target=serve, args=(root / "server", files, child, served))
        server.start()
        try:
            address, server_id, (big, huge) = parent.recv()
            runs: list[tuple[float, float, float]] = []  # (gaia, raw, disk) MB/s, measured in turn
            for run in range(RUNS):
                client = Client(root / f"client{run}", address, server_id, root / f"fetched{run}")
                seconds = client.fetch(big)
                client.close()
                shutil.rmtree(root / f"fetched{run}")
                runs.append((THROUGHPUT_BYTES / seconds / 1e6, raw_curve_mb_s(THROUGHPUT_BYTES),
                             disk_mb_s(root / "disk.bin", THROUGHPUT_BYTES // 2)))
                print(f"# run {run + 1}: gaia={runs[-1][0]:.1f} raw={runs[-1][1]:.1f} disk={runs[-1][2]:.1f} MB/s",
                      flush=True)
            gaia, raw, disk = (statistics.median(r[i] for r in runs) for i in range(3))
            print(f"{THROUGHPUT_BYTES // MIB}MiB blob (MB/s, median of {RUNS}): gaia={gaia:.1f} baseline={raw:.1f} "
                  f"ratio={gaia / raw:.2f}", flush=True)
            print(f"{THROUGHPUT_BYTES // MIB}MiB blob vs this disk's write rate (MB/s, median of {RUNS}): "
                  f"gaia={gaia:.1f} baseline={disk:.1f} ratio={gaia / disk:.2f}", flush=True)

            # resume after a cut: stop the fetching transport a third of the way, then finish with fresh ones
            chunks = THROUGHPUT_BYTES // CHUNK_SIZE
            with served.get_lock():
                served.value = 0
            cut = Client(root / "cut", address, server_id, root / "resumed")

            def cut_a_third_in() -> None:
                until(lambda: served.value >= chunks // 3, 120)
                cut.transport.stop()

            stopper = threading.Thread(target=cut_a_third_in)
            stopper.start()
            try:
                cut.fetch(big)
            except BlobError:
                pass
            stopper.join(30)
            cut.fetcher.store.close()
            kept = BlobStore(root / "resumed").info(big).held
            again = Client(root / "again", address, server_id, root / "resumed")
            again.fetch(big)
            again.close()
            asks = 2  # one size question per fetch
            twice = served.value - asks - chunks
            per_stream = twice / min(STREAMS, SERVING_PER_PEER)  # the streams one source gets
            print(f"resume after a cut (chunks sent twice per stream; {kept} of {chunks} kept at the cut): "
                  f"gaia={per_stream:.2f} baseline=1 ratio={per_stream:.2f}", flush=True)

            rss = Client(root / "rss", address, server_id, root / "rss-store")
            before, peak = _rss(), [0]
            done = threading.Event()

            def sample() -> None:
                while not done.wait(0.02):
                    peak[0] = max(peak[0], _rss())

            sampler = threading.Thread(target=sample)
            sampler.start()
            seconds = rss.fetch(huge)
            done.set()
            sampler.join(5)
            rss.close()
            growth = max(0, peak[0] - before) / MIB
            print(f"RSS growth {RSS_BYTES // MIB}MiB (MiB, fetched at {RSS_BYTES / seconds / 1e6:.0f} MB/s): "
                  f"gaia={growth:.1f} baseline=64 ratio={growth / 64:.2f}", flush=True)
        finally:
            parent.send("stop")
            server.join(30)
            if server.is_alive():
                server.kill()


if __name__ == "__main__":
    main()

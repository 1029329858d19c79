"""gaia-comm-zmq vs raw pyzmq on loopback, CURVE on for both, measured in the same run.

Prints ``<measure>: gaia=X baseline=Y ratio=Z``:
  1KiB throughput (msg/s, one-way announcements vs raw DEALER->ROUTER; higher is better)
  RTT p50 / p99 (µs, sequential request/reply vs raw DEALER/ROUTER echo; lower is better)
  64KiB payload (MB/s, one-way; higher is better)
  1MiB request+answer (MB/s, sequential echo of 1 MiB, whose answers the transport tracks until written)
  ed25519 sign+verify (µs per message: the floor GAIA's signed envelopes add)
  evidence sign+verify (µs per result: a batch of 256 results sealed by one signature over their
    Merkle root, opened, and each result's seal and inclusion path kept as the submitter stores it,
    vs one Ed25519 signature and verification per result); then the µs to check one kept result
    on its own later, as `gaia proof verify` does (hash, path, one signature verification)
GAIA's pair first exchanges signed records, so each kernel binds the other's Curve key and
messages go unsigned (authenticated by the channel), as between running nodes; ``--signed``
measures before any binding, every message Ed25519-signed and verified.
Run: .venv/bin/python benchmarks/bench_transport.py [--signed]
"""

from __future__ import annotations

import functools
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from loopback import curve_pair, until, zmq_transport

from gaia_comm_zmq.transport import ZmqTransport
from gaia_core import codec, evidence
from gaia_core.envelope import open_envelope, seal
from gaia_core.identity import Identity, verify_signature
from gaia_core.inbound import RECORD
from gaia_core.jobs.messages import RESULTS, ResultFrames, open_sealed_results, result_leaf, seal_results
from gaia_core.model import Envelope
from gaia_core.roles import PeerInfo

N_SMALL, N_RTT, N_LARGE, N_HUGE = 20_000, 2_000, 2_000, 200
#: Measure with every message signed (no channel bound), as before channels were authenticated.
SIGNED = "--signed" in sys.argv[1:]
SMALL, LARGE = b"x" * 1024, b"y" * (64 << 10)


# ----------------------------------------------------------------------------- raw pyzmq


def raw_oneway(body: bytes, n: int) -> float:
    """Messages per second, DEALER -> ROUTER."""
    ctx, router, dealer = curve_pair()
    done = threading.Event()

    def sink() -> None:
        for _ in range(n):
            router.recv_multipart()
        done.set()

    thread = threading.Thread(target=sink)
    thread.start()
    start = time.perf_counter()
    for _ in range(n):
        dealer.send(body)
    done.wait(60)
    elapsed = time.perf_counter() - start
    thread.join(5)
    ctx.destroy(linger=0)
    return n / elapsed


def raw_rtt(n: int, body: bytes = SMALL) -> list[float]:
    ctx, router, dealer = curve_pair()

    def echo() -> None:
        for _ in range(n):
            router.send_multipart(router.recv_multipart())

    thread = threading.Thread(target=echo)
    thread.start()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        dealer.send(body)
        dealer.recv()
        samples.append(time.perf_counter() - t0)
    thread.join(5)
    ctx.destroy(linger=0)
    return samples


# ----------------------------------------------------------------------------- gaia


class Counter:
    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()
        self.last = 0.0

    def on_request(self, envelope: Envelope) -> bytes:
        return envelope.body

    def on_announce(self, envelope: Envelope) -> None:
        with self.lock:
            self.count += 1
            self.last = time.perf_counter()

    def on_peer(self, peer: PeerInfo) -> None:
        pass


def _gaia_pair(root: Path) -> tuple[ZmqTransport, ZmqTransport, Counter, str]:
    made = []
    for name in ("a", "b"):
        handler = Counter()
        transport, address, node_id = zmq_transport(
            root / name, handler, {"comm_zmq": {"send_hwm": 100_000, "recv_hwm": 100_000,
                                                # measured with announcements: lift the per-connection flood bound
                                                "announce_rate": 100_000, "announce_burst": 100_000}})
        made.append((transport, handler, address, node_id))
    (a, _, address_a, id_a), (b, counter_b, _, id_b) = made
    b.connect(address_a)
    until(lambda: any(p.state == "up" for p in a.peers()) and any(p.state == "up" for p in b.peers()), 10.0)
    if not SIGNED:  # as nodes do every heartbeat: signed records, so each kernel binds the other's key
        for transport in (a, b):
            transport.announce(RECORD, codec.encode(transport.record))
        until(lambda: a.channel_bound(id_b) and b.channel_bound(id_a), 10.0)
    counter_b.count = 0
    return a, b, counter_b, id_a


def gaia_oneway(root: Path, body: bytes, n: int) -> float:
    """Delivered announcements per second from a to b (drops, if any, are not counted)."""
    a, b, counter, _ = _gaia_pair(root)
    try:
        start = time.perf_counter()
        for _ in range(n):
            a.announce("bench", body)
        deadline = time.monotonic() + 60
        while counter.count < n and time.monotonic() < deadline:
            before = counter.count
            time.sleep(0.2)
            if counter.count == before and time.perf_counter() - counter.last > 2:
                break  # the rest was dropped
        return counter.count / (counter.last - start)
    finally:
        a.stop()
        b.stop()


def gaia_rtt(root: Path, n: int, body: bytes = SMALL) -> list[float]:
    a, b, _, id_a = _gaia_pair(root)
    try:
        samples = []
        for _ in range(n):
            t0 = time.perf_counter()
            b.request(id_a, "echo", body, timeout=10)
            samples.append(time.perf_counter() - t0)
        return samples
    finally:
        a.stop()
        b.stop()


def sign_verify_us(n: int = 2000) -> float:
    identity = Identity.generate()
    start = time.perf_counter()
    for _ in range(n):
        open_envelope(seal(identity, "bench", SMALL))
    return (time.perf_counter() - start) / n * 1e6


def evidence_us(batch: int = 256, rounds: int = 20) -> tuple[float, float, float]:
    """µs per result of a delivery of ``batch`` results sealed once (the worker seals, the submitter opens
    and encodes each result's seal and path to keep), µs to check one kept result on its own later, and µs
    to sign and verify each result on its own instead."""
    identity = Identity.generate()
    pairs: list[ResultFrames] = [(b"r" * 300 + i.to_bytes(4, "big"), b"p" * 560) for i in range(batch)]
    start = time.perf_counter()
    for _ in range(rounds):
        kept = [codec.encode(item_seal) for _, item_seal in
                open_sealed_results(seal(identity, RESULTS, seal_results(identity, pairs), sign=False))]
    delivery = (time.perf_counter() - start) / (rounds * batch) * 1e6
    start = time.perf_counter()
    for frame, pair in zip(kept[: batch // 4], pairs, strict=False):
        assert evidence.check_item(codec.decode(frame, evidence.ItemSeal), result_leaf(*pair)) is None
    path = (time.perf_counter() - start) / (batch // 4) * 1e6
    start = time.perf_counter()
    for result, proof in pairs[: batch // 4]:
        data = result + (proof or b"")
        assert verify_signature(identity.node_id, identity.sign(data), data)
    return delivery, path, (time.perf_counter() - start) / (batch // 4) * 1e6


def pct(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100)[int(q) - 1] * 1e6


def line(measure: str, gaia: float, baseline: float) -> None:
    print(f"{measure}: gaia={gaia:.1f} baseline={baseline:.1f} ratio={gaia / baseline:.2f}", flush=True)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        line("1KiB throughput msg/s", gaia_oneway(root / "t1", SMALL, N_SMALL), raw_oneway(SMALL, N_SMALL))
        gaia_samples, raw_samples = gaia_rtt(root / "t2", N_RTT), raw_rtt(N_RTT)
        line("RTT p50 us", pct(gaia_samples, 50), pct(raw_samples, 50))
        line("RTT p99 us", pct(gaia_samples, 99), pct(raw_samples, 99))
        mb = len(LARGE) / 1e6
        line("64KiB payload MB/s", gaia_oneway(root / "t3", LARGE, N_LARGE) * mb, raw_oneway(LARGE, N_LARGE) * mb)
        huge = b"\xa5" * (1 << 20)  # answers this big are tracked until written (the unread-answer bound)
        mb_s = [len(huge) / 1e6 / statistics.median(rtt(n=N_HUGE, body=huge)) for rtt in
                (functools.partial(gaia_rtt, root / "t4"), raw_rtt)]
        line("1MiB request+answer MB/s (sequential echo)", *mb_s)
        print(f"ed25519 seal+open per message us: {sign_verify_us():.1f}", flush=True)
        delivery, path, each = evidence_us()
        line("evidence sign+verify us/result (one signature per 256 vs one each; target <= 10)", delivery, each)
        print(f"evidence check of one kept result us (gaia proof verify: hash, path, signature): {path:.1f}")


if __name__ == "__main__":
    main()

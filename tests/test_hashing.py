"""Hashing kernel tests: native gaia_native vs the Python backend (blake3 wheel) on the shared golden
vectors and random inputs, buffers (and buffers changed by another thread meanwhile), the one
hashing pool, and the facade."""

from __future__ import annotations

import array
import contextlib
import importlib
import itertools
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import pytest
from golden import GOLDEN, gaia_native, needs_native
from hypothesis import HealthCheck, given, settings, strategies as st

from gaia_core._reference import hashing as reference

SLOW_OK = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@pytest.fixture(params=[pytest.param("native", marks=needs_native), "python"])
def impl(request):
    return gaia_native if request.param == "native" else reference


def pattern(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


def leaf(i: int, length: int) -> bytes:
    return bytes((7 * i + j) % 251 for j in range(length))


# --------------------------------------------------------------------------- golden vectors
@pytest.mark.parametrize("vector", GOLDEN["blake3"], ids=lambda v: f"len{v['len']}")
def test_blake3_golden(impl, vector):
    data = pattern(vector["len"])
    assert impl.content_id(data) == vector["hash"]
    assert impl.blake3_digest(data) == bytes.fromhex(vector["hash"])


@pytest.mark.parametrize(
    "vector", GOLDEN["blake3_text"], ids=lambda v: repr(v["text"][:8])
)
def test_blake3_text_golden(impl, vector):
    assert impl.content_id(vector["text"].encode()) == vector["hash"]


def test_known_blake3_constants(impl):
    # From the BLAKE3 reference implementation, independent of our generator.
    assert (
        impl.content_id(b"")
        == "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    )
    assert (
        impl.content_id(b"abc")
        == "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
    )


@pytest.mark.parametrize(
    "case", GOLDEN["merkle"], ids=lambda c: f"n{len(c['leaf_lens'])}"
)
def test_merkle_golden(impl, case):
    leaves = [leaf(i, n) for i, n in enumerate(case["leaf_lens"])]
    assert impl.merkle_root(leaves).hex() == case["root"]


# --------------------------------------------------------------------------- parity on random input
@needs_native
@SLOW_OK
@given(st.binary(max_size=5000))
def test_content_id_parity(data):
    assert gaia_native.content_id(data) == reference.content_id(data)
    assert gaia_native.blake3_digest(data) == reference.blake3_digest(data)


@needs_native
@SLOW_OK
@given(st.lists(st.binary(max_size=3000), max_size=40))
def test_merkle_parity(leaves):
    assert gaia_native.merkle_root(leaves) == reference.merkle_root(leaves)
    assert gaia_native.merkle_root([bytearray(x) for x in leaves]) == reference.merkle_root(leaves)


@needs_native
def test_large_inputs_on_the_pool_equal_the_python_backend():
    big = pattern(3 << 20)
    want = reference.content_id(big)
    assert gaia_native.content_id(big) == want
    assert gaia_native.blake3_digest(memoryview(big)).hex() == want
    assert gaia_native.content_id(bytearray(big)) == want
    leaves = [leaf(i, 1024) for i in range(5000)]  # enough for the parallel leaf and node paths
    assert gaia_native.merkle_root(leaves) == reference.merkle_root(leaves)


@pytest.fixture
def pool_of_two(monkeypatch):
    """This process's hashing pool sized for 2 cores (no GAIA_HASH_THREADS), back to every core after."""
    monkeypatch.delenv("GAIA_HASH_THREADS", raising=False)
    gaia_native.set_hash_threads(2)
    yield
    gaia_native.set_hash_threads(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 64)


@needs_native
@pytest.mark.parametrize("count", [2, 3, 63, 257, 1000, 4097])
def test_merkle_subtrees_on_the_pool_equal_the_python_backend(count, pool_of_two):
    # From 256 KiB of leaves the pool's threads each hash aligned runs of 2^k leaves up to their
    # subtree's root: whole runs, a last partial run, and a single run must all give the same tree.
    size = (256 << 10) // count + 1 + count % 7
    leaves = [leaf(i, size + i % 3) for i in range(count)]
    assert gaia_native.merkle_root(leaves) == reference.merkle_root(leaves)


# --------------------------------------------------------------------------- buffers
def test_buffer_types(impl):
    raw = b"gaia content addressing"
    want = impl.content_id(raw)
    assert impl.content_id(bytearray(raw)) == want
    assert impl.content_id(memoryview(raw)) == want
    assert impl.content_id(memoryview(b"xx" + raw)[2:]) == want
    ints = array.array("i", range(100))
    assert impl.content_id(ints) == impl.content_id(ints.tobytes())
    with pytest.raises(BufferError):
        impl.content_id(memoryview(raw)[::2])
    with pytest.raises(TypeError):
        impl.content_id("not bytes")  # type: ignore[arg-type]


class Flipper:
    """A thread that keeps overwriting ``buffers`` with ``a`` then ``b`` (whole-slice assignments,
    each done with the GIL held) until stopped, at most ``seconds`` long."""

    def __init__(self, buffers: list[bytearray], a: bytes, b: bytes, seconds: float = 20.0) -> None:
        self.buffers, self.a, self.b, self.seconds = buffers, a, b, seconds
        self.stop, self.flips = threading.Event(), 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        end = time.monotonic() + self.seconds
        while not self.stop.is_set() and time.monotonic() < end:
            for state in (self.b, self.a):
                for buf in self.buffers:
                    buf[:] = state
            self.flips += 1

    def __enter__(self) -> Flipper:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()


def hash_while_flipping(hash_once, buffers: list[bytearray], a: bytes, b: bytes) -> set:
    """Digests of ``hash_once()`` taken while another thread flips ``buffers`` between ``a`` and ``b``
    (at most 40 calls, at most 10 s)."""
    seen = set()
    with Flipper(buffers, a, b) as flipper:
        end = time.monotonic() + 10
        for _ in range(40):
            seen.add(hash_once())
            if time.monotonic() > end:
                break
    assert flipper.flips > 0, "the other thread never ran"
    return seen


def test_buffer_changed_by_another_thread_hashes_as_one_state(impl):
    # The contract: a bytearray (or any buffer but bytes) is hashed as it was when the call began,
    # never as a mix of before and after, however another Python thread writes to it meanwhile.
    a, b = bytes(4 << 20), b"\x01" * (4 << 20)
    buf = bytearray(a)
    seen = hash_while_flipping(lambda: impl.blake3_digest(buf), [buf], a, b)
    assert seen <= {impl.blake3_digest(a), impl.blake3_digest(b)}


def test_merkle_leaves_changed_by_another_thread_hash_as_whole_states(impl):
    a, b = bytes(128 << 10), b"\x02" * (128 << 10)
    leaves = [bytearray(a) for _ in range(8)]  # 1 MiB in all
    seen = hash_while_flipping(lambda: impl.merkle_root(leaves), leaves, a, b)
    # Every leaf is read in one whole state or the other, never half-way through a write.
    assert seen <= {impl.merkle_root(states) for states in itertools.product((a, b), repeat=8)}


POOL_PROBE = textwrap.dedent("""
    import os, sys
    import gaia_native as g
    big = bytes(3 << 20)
    for _ in range(3):
        g.content_id(big)
        g.merkle_root([big[i:i + 1024] for i in range(0, 1 << 20, 1024)])
    names = [(p / "comm").read_text().strip() for p in __import__("pathlib").Path("/proc/self/task").iterdir()]
    print(sum(n.startswith("gaia-hash-") for n in names), len(os.sched_getaffinity(0)))
""")


@needs_native
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads through /proc")
@pytest.mark.parametrize("setting", [None, "1", "2", "64", "zero"])
def test_one_hashing_pool_within_the_core_budget(setting):
    env = {k: v for k, v in os.environ.items() if k != "GAIA_HASH_THREADS"}
    if setting is not None:
        env["GAIA_HASH_THREADS"] = setting
    out = subprocess.run([sys.executable, "-c", POOL_PROBE], env=env, capture_output=True, text=True,
                         timeout=60, check=True).stdout
    threads, cores = map(int, out.split())
    budget = min(int(setting), cores) if setting and setting.isdigit() else cores
    assert threads == (budget if budget > 1 else 0)


RESIZE_PROBE = textwrap.dedent("""
    import json, pathlib, sys, time
    import gaia_native as g

    def hash_threads():
        count = 0
        for task in pathlib.Path("/proc/self/task").iterdir():
            try:
                count += (task / "comm").read_text().startswith("gaia-hash-")
            except OSError:  # the thread exited meanwhile
                pass
        return count

    big, seen = bytes(3 << 20), []
    for cores in map(int, sys.argv[1:]):
        size = g.set_hash_threads(cores)
        g.content_id(big)
        end = time.monotonic() + 10  # a replaced pool's threads exit once idle
        while hash_threads() != (size if size > 1 else 0) and time.monotonic() < end:
            time.sleep(0.02)
        seen.append([size, hash_threads()])
    print(json.dumps(seen))
""")


@needs_native
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads through /proc")
@pytest.mark.parametrize("setting", [None, "1"])
def test_the_node_sizes_the_one_hashing_pool(setting):
    env = {k: v for k, v in os.environ.items() if k != "GAIA_HASH_THREADS"}
    if setting is not None:
        env["GAIA_HASH_THREADS"] = setting
    asked = [2, 1, 64, 2, 2]
    out = subprocess.run([sys.executable, "-c", RESIZE_PROBE, *map(str, asked)], env=env, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    cores = len(os.sched_getaffinity(0))
    cap = int(setting) if setting else cores
    want = [min(n, cores, cap) for n in asked]
    assert json.loads(out) == [[n, n if n > 1 else 0] for n in want]  # one pool, resized in place


@needs_native
@pytest.mark.parametrize("cores", [0, -1])
def test_hashing_pool_needs_a_thread(cores):
    with pytest.raises(ValueError, match=f"at least one thread, got cores={cores}"):
        gaia_native.set_hash_threads(cores)


@needs_native
def test_facade_sizes_the_native_pool(pool_of_two):
    from gaia_core import hashing

    if hashing.BACKEND != "native":
        pytest.skip("GAIA_BACKEND=python")
    assert hashing.set_threads(1) == 1
    assert hashing.set_threads(2) == min(2, len(os.sched_getaffinity(0)))


def hash_threads_here() -> int:
    """Threads of this process's hashing pool, counted through /proc."""
    count = 0
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):  # the thread exited meanwhile
            count += (task / "comm").read_text().startswith("gaia-hash-")
    return count


@needs_native
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads through /proc")
def test_a_started_node_keeps_hashing_within_its_cores(tmp_path, pool_of_two):
    # pool_of_two: as a process that hashed before the node started would have
    from inprocess import build_node, load_plugins, make_home, running, wait_for

    from gaia_core import hashing

    if hashing.BACKEND != "native":
        pytest.skip("GAIA_BACKEND=python: the node hashes on its calling threads")
    node = build_node(make_home(tmp_path, "one-core", {"node": {"cores": 1}}), load_plugins())
    with running(node, drain_s=1.0):
        wait_for(lambda: hash_threads_here() == 0, timeout=10,
                 what="the hashing pool to shrink to the node's one core")
        assert gaia_native.set_hash_threads(1) == 1  # already that size


def test_merkle_edge_cases(impl):
    assert impl.merkle_root([]) == impl.blake3_digest(b"")
    assert impl.merkle_root([b"x"]) == impl.blake3_digest(b"\x00x")
    two = impl.merkle_root([b"a", b"b"])
    assert two == impl.blake3_digest(
        b"\x01" + impl.blake3_digest(b"\x00a") + impl.blake3_digest(b"\x00b")
    )
    three = impl.merkle_root([b"a", b"b", b"c"])  # RFC 9162: split at the largest power of two below n
    assert three == impl.blake3_digest(b"\x01" + two + impl.blake3_digest(b"\x00c"))
    assert impl.merkle_root(iter([b"a", b"b"])) == two
    with pytest.raises(TypeError):
        impl.merkle_root([b"a", "b"])  # type: ignore[list-item]


# --------------------------------------------------------------------------- facade and fallback
def test_facade_backend():
    from gaia_core import hashing

    assert hashing.BACKEND in ("native", "python")
    assert (hashing.BACKEND_ERROR is None) == (hashing.BACKEND == "native")
    if gaia_native is not None and os.environ.get("GAIA_BACKEND") != "python":
        assert hashing.BACKEND == "native"
        assert hashing.content_id is gaia_native.content_id
    assert hashing.content_id(b"abc") == reference.content_id(b"abc")


@pytest.fixture
def reload_facade(monkeypatch):
    from gaia_core import hashing

    yield hashing
    monkeypatch.undo()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        importlib.reload(hashing)


def test_facade_falls_back_with_warning(reload_facade, monkeypatch):
    monkeypatch.setitem(
        sys.modules, "gaia_native", None
    )  # makes `import gaia_native` fail
    monkeypatch.delenv("GAIA_BACKEND", raising=False)
    with pytest.warns(
        RuntimeWarning,
        match=r"gaia_native could not be loaded.*pip install gaia-native",
    ):
        mod = importlib.reload(reload_facade)
    assert mod.BACKEND == "python"
    assert "gaia_native" in mod.BACKEND_ERROR
    assert mod.content_id is reference.content_id
    assert mod.merkle_root([b"a"]) == reference.merkle_root([b"a"])


def test_facade_forced_python_backend_is_quiet(reload_facade, monkeypatch):
    monkeypatch.setenv("GAIA_BACKEND", "python")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mod = importlib.reload(reload_facade)
    assert mod.BACKEND == "python"
    assert "GAIA_BACKEND" in mod.BACKEND_ERROR
    assert mod.set_threads(4) == 1  # the Python backend hashes on the calling thread


@needs_native
def test_native_module_metadata():
    assert gaia_native.__version__ == "0.1.0"
    # The same hashing API on both backends, and nothing the product does not use (the node sizes
    # the native hashing pool; the Python backend has none; the tensor host API of WASM tasks has no
    # Python backend: tests/test_tensor_native.py checks it against numpy).
    native_only = {"Scheduler", "__version__", "build_profile", "set_hash_threads",
                   "tensor_call", "tensor_paths", "tensor_signatures"}
    assert set(gaia_native.__all__) - native_only == set(reference.__all__)

"""Hashing kernel tests: native gaia_native vs the pure-Python reference on the shared golden
vectors and random inputs, Merkle proofs (tampering rejected), buffers, files and the facade."""

from __future__ import annotations

import array
import importlib
import sys
import os
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gaia_core._reference import hashing as reference

from golden import GOLDEN, gaia_native, needs_native

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
    root = impl.merkle_root(leaves)
    assert root.hex() == case["root"]
    for i, want in enumerate(case["proofs"]):
        proof = impl.merkle_proof(leaves, i)
        assert [p.hex() for p in proof] == want
        assert impl.merkle_verify(root, leaves[i], i, len(leaves), proof)


@pytest.mark.parametrize(
    "case", GOLDEN["merkle_chunks"], ids=lambda c: f"{c['len']}/{c['chunk_size']}"
)
def test_merkle_chunks_golden(impl, case):
    assert (
        impl.merkle_root_chunks(pattern(case["len"]), case["chunk_size"]).hex()
        == case["root"]
    )


# --------------------------------------------------------------------------- parity on random input
@needs_native
@SLOW_OK
@given(st.binary(max_size=5000))
def test_content_id_parity(data):
    assert gaia_native.content_id(data) == reference.content_id(data)
    assert gaia_native.blake3_digest(data) == reference.blake3_digest(data)


@needs_native
@SLOW_OK
@given(st.lists(st.binary(max_size=300), max_size=40))
def test_merkle_parity(leaves):
    assert gaia_native.merkle_root(leaves) == reference.merkle_root(leaves)
    assert gaia_native.content_ids(leaves) == reference.content_ids(leaves)
    for i in range(len(leaves)):
        assert gaia_native.merkle_proof(leaves, i) == reference.merkle_proof(leaves, i)


@needs_native
@SLOW_OK
@given(st.binary(max_size=3000), st.integers(min_value=1, max_value=700))
def test_merkle_chunks_parity(data, chunk_size):
    chunks = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]
    assert gaia_native.merkle_root_chunks(
        data, chunk_size
    ) == reference.merkle_root_chunks(data, chunk_size)
    assert gaia_native.merkle_root_chunks(data, chunk_size) == gaia_native.merkle_root(
        chunks
    )


@needs_native
def test_simd_leaf_path_parity():
    # Equal-length leaves of >= 1 KiB take the native many-input path; check it against the reference.
    for length in (1023, 1024, 1025, 2047, 2048, 2049, 3100):
        leaves = [leaf(i, length) for i in range(20)]
        assert gaia_native.merkle_root(leaves) == reference.merkle_root(leaves), length
        assert gaia_native.merkle_proof(leaves, 7) == reference.merkle_proof(
            leaves, 7
        ), length


@needs_native
def test_large_inputs_all_thread_counts():
    big = pattern(3 << 20)
    want = gaia_native.content_id(big, threads=1)
    assert gaia_native.content_id(big) == want
    assert gaia_native.content_id(big, threads=2) == want
    assert gaia_native.content_id(big, threads=3) == want
    assert gaia_native.blake3_digest(memoryview(big)).hex() == want
    with pytest.raises(ValueError):
        gaia_native.content_id(big, threads=-1)


# --------------------------------------------------------------------------- buffers and files
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


def test_content_id_file(impl, tmp_path):
    data = pattern(300_000 if impl is gaia_native else 5_000)  # the reference is slow
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert impl.content_id_file(path) == impl.content_id(data)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert impl.content_id_file(str(empty)) == impl.content_id(b"")
    with pytest.raises(FileNotFoundError):
        impl.content_id_file(tmp_path / "missing")


@needs_native
def test_content_id_file_parity(tmp_path):
    data = pattern(70_000)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert (
        gaia_native.content_id_file(path)
        == reference.content_id_file(path)
        == reference.content_id(data)
    )


def test_content_ids_batch(impl):
    items = [b"", b"a", bytearray(b"bc"), memoryview(b"def")]
    assert impl.content_ids(items) == [impl.content_id(x) for x in items]
    assert impl.content_ids([]) == []


# --------------------------------------------------------------------------- Merkle proofs
@SLOW_OK
@given(st.lists(st.binary(max_size=40), min_size=1, max_size=24), st.data())
def test_merkle_proofs_verify_and_tampering_fails(leaves, data):
    impl = gaia_native if gaia_native is not None else reference
    n = len(leaves)
    root = impl.merkle_root(leaves)
    i = data.draw(st.integers(0, n - 1))
    proof = impl.merkle_proof(leaves, i)
    assert impl.merkle_verify(root, leaves[i], i, n, proof)
    assert reference.merkle_verify(root, leaves[i], i, n, proof)
    # A different leaf, root, index or any flipped proof bit must be rejected.
    assert not impl.merkle_verify(root, leaves[i] + b"!", i, n, proof)
    bad_root = bytes([root[0] ^ 1]) + root[1:]
    assert not impl.merkle_verify(bad_root, leaves[i], i, n, proof)
    if n > 1 and leaves[i] not in [leaves[j] for j in range(n) if j != i]:
        j = (i + 1) % n
        assert not impl.merkle_verify(root, leaves[i], j, n, proof)
    for k in range(len(proof)):
        tampered = list(proof)
        tampered[k] = bytes([tampered[k][0] ^ 0x80]) + tampered[k][1:]
        assert not impl.merkle_verify(root, leaves[i], i, n, tampered)
        assert not reference.merkle_verify(root, leaves[i], i, n, tampered)
    if proof:
        assert not impl.merkle_verify(root, leaves[i], i, n, proof[:-1])
    assert not impl.merkle_verify(root, leaves[i], i, n, [*proof, root])


def test_merkle_edge_cases(impl):
    assert impl.merkle_root([]) == impl.blake3_digest(b"")
    assert impl.merkle_root([b"x"]) == impl.blake3_digest(b"\x00x")
    two = impl.merkle_root([b"a", b"b"])
    assert two == impl.blake3_digest(
        b"\x01" + impl.blake3_digest(b"\x00a") + impl.blake3_digest(b"\x00b")
    )
    assert impl.merkle_root_chunks(b"", 16) == impl.merkle_root([])
    with pytest.raises(ValueError):
        impl.merkle_root_chunks(b"abc", 0)
    with pytest.raises(ValueError):
        impl.merkle_root_chunks(b"abc", -5)
    with pytest.raises(IndexError):
        impl.merkle_proof([b"a", b"b"], 2)
    with pytest.raises(IndexError):
        impl.merkle_proof([], 0)
    with pytest.raises(IndexError):
        impl.merkle_proof([b"a"], -1)
    assert impl.merkle_proof([b"only"], 0) == []
    root = impl.merkle_root([b"only"])
    assert impl.merkle_verify(root, b"only", 0, 1, [])
    # Wrong but well-typed input: False, never an exception.
    assert not impl.merkle_verify(root, b"only", 1, 1, [])
    assert not impl.merkle_verify(root, b"only", -1, 1, [])
    assert not impl.merkle_verify(root, b"only", 0, 0, [])
    assert not impl.merkle_verify(root[:31], b"only", 0, 1, [])
    assert not impl.merkle_verify(root, b"only", 0, 1, [b"short"])
    assert not impl.merkle_verify(b"", b"", 0, 1, [])
    assert not impl.merkle_verify(root, b"only", 2**70, 2**71, [])
    with pytest.raises(IndexError):
        impl.merkle_proof([b"a"], 2**70)


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


@needs_native
def test_native_module_metadata():
    assert gaia_native.__version__ == "0.1.0"
    assert set(reference.__all__) <= set(dir(gaia_native))

"""gaia-native's tensor kernels (the gaia_tensor host API), called directly on a buffer.

Property tests: every code path gives the same bits; results agree with numpy computing in float64
and rounding once; random arguments never crash and are refused before anything is written.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import gaia_native

PATHS = gaia_native.tensor_paths()
EPS = float(np.finfo(np.float32).eps)
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Arena:
    """Guest-like memory: float32 words, arrays placed one after another, pointers in bytes."""

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []
        self.size = 16  # keep pointer 0 for "none"

    def put(self, values: np.ndarray | int) -> int:
        arr = np.zeros(values, np.float32) if isinstance(values, int) else np.ascontiguousarray(values, np.float32)
        at = self.size
        self.parts.append(arr.ravel())
        self.size += arr.size
        return at * 4

    def memory(self) -> np.ndarray:
        return np.concatenate([np.zeros(16, np.float32), *self.parts])


def run(op: str, memory: np.ndarray, args: list[int], path: str | None = None, alpha: float = 0.0) -> np.ndarray:
    mem = memory.copy()
    gaia_native.tensor_call(op, mem, args, alpha=alpha, path=path)
    return mem


def on_every_path(op: str, memory: np.ndarray, args: list[int], alpha: float = 0.0) -> np.ndarray:
    """Run ``op`` on each path; assert they give the same bytes; return the memory after."""
    results = [run(op, memory, args, path, alpha) for path in PATHS]
    for path, mem in zip(PATHS[1:], results[1:], strict=True):
        assert mem.tobytes() == results[0].tobytes(), f"{path} differs from {PATHS[0]}"
    return results[0]


def view(mem: np.ndarray, ptr: int, shape: tuple[int, ...]) -> np.ndarray:
    return mem[ptr // 4: ptr // 4 + int(np.prod(shape))].reshape(shape)


def floats(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def test_paths_start_with_the_scalar_oracle() -> None:
    assert PATHS[0] == "scalar"
    assert len(PATHS) >= 1 and set(PATHS) <= {"scalar", "sse2", "avx2", "avx512"}


@SETTINGS
@given(m=st.integers(0, 40), n=st.integers(0, 70), k=st.integers(0, 600), flags=st.integers(0, 7),
       seed=st.integers(0, 2**32 - 1))
def test_gemm_paths_agree_and_match_float64(m: int, n: int, k: int, flags: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b, c0 = floats(rng, m, k), floats(rng, k, n), floats(rng, m, n)
    arena = Arena()
    pa = arena.put(a.T if flags & 1 else a)
    pb = arena.put(b.T if flags & 2 else b)
    pc = arena.put(c0)
    mem = on_every_path("gemm", arena.memory(), [pa, pb, pc, m, n, k, flags])
    want = a.astype(np.float64) @ b.astype(np.float64) + (c0 if flags & 4 else 0)
    bound = (k + 1) * EPS * (np.abs(a).astype(np.float64) @ np.abs(b) + (np.abs(c0) if flags & 4 else 0))
    assert np.all(np.abs(view(mem, pc, (m, n)) - want) <= bound + 1e-30)


def conv_reference(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, stride: int, pad: int) -> np.ndarray:
    n, c, h, wd = x.shape
    oc, _, kh, kw = w.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    y = np.zeros((n, oc, oh, ow))
    for oy in range(oh):
        for ox in range(ow):
            patch = xp[:, :, oy * stride:oy * stride + kh, ox * stride:ox * stride + kw]
            y[:, :, oy, ox] = np.tensordot(patch, w.astype(np.float64), axes=([1, 2, 3], [1, 2, 3]))
    return y + (bias[None, :, None, None] if bias is not None else 0)


@SETTINGS
@given(n=st.integers(1, 2), c=st.integers(1, 4), h=st.integers(1, 12), wd=st.integers(1, 12), oc=st.integers(1, 9),
       kh=st.integers(1, 3), kw=st.integers(1, 3), stride=st.integers(1, 3), pad=st.integers(0, 2),
       with_bias=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_conv2d_paths_agree_and_match_float64(n: int, c: int, h: int, wd: int, oc: int, kh: int, kw: int,
                                              stride: int, pad: int, with_bias: bool, seed: int) -> None:
    if h + 2 * pad < kh or wd + 2 * pad < kw:
        return
    rng = np.random.default_rng(seed)
    x, w, bias = floats(rng, n, c, h, wd), floats(rng, oc, c, kh, kw), floats(rng, oc)
    want = conv_reference(x, w, bias if with_bias else None, stride, pad)
    arena = Arena()
    px, pw = arena.put(x), arena.put(w)
    pbias = arena.put(bias) if with_bias else 0
    py = arena.put(want.size)
    mem = on_every_path("conv2d", arena.memory(), [px, pw, pbias, py, n, c, h, wd, oc, kh, kw, stride, pad])
    bound = (c * kh * kw + 2) * EPS * (conv_reference(np.abs(x), np.abs(w), np.abs(bias) if with_bias else None,
                                                      stride, pad))
    assert np.all(np.abs(view(mem, py, want.shape) - want) <= bound + 1e-30)


@SETTINGS
@given(c=st.integers(1, 3), h=st.integers(1, 9), wd=st.integers(1, 9), kh=st.integers(1, 3), kw=st.integers(1, 3),
       stride=st.integers(1, 2), pad=st.integers(0, 1), seed=st.integers(0, 2**32 - 1))
def test_im2col_and_col2im_match_numpy(c: int, h: int, wd: int, kh: int, kw: int, stride: int, pad: int,
                                       seed: int) -> None:
    if h + 2 * pad < kh or wd + 2 * pad < kw:
        return
    rng = np.random.default_rng(seed)
    x = floats(rng, c, h, wd)
    oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    want = np.stack([xp[:, oy * stride:oy * stride + kh, ox * stride:ox * stride + kw].reshape(-1)
                     for oy in range(oh) for ox in range(ow)], axis=1)
    arena = Arena()
    px, pcols = arena.put(x), arena.put(want.size)
    win = [c, h, wd, kh, kw, stride, pad]
    mem = run("im2col", arena.memory(), [px, pcols, *win])
    assert np.array_equal(view(mem, pcols, want.shape), want)
    # col2im accumulates every column entry back onto its pixel: the adjoint of im2col
    g = floats(rng, *want.shape)
    arena = Arena()
    pg, px = arena.put(g), arena.put(x)
    mem = run("col2im", arena.memory(), [pg, px, *win])
    back = np.pad(x.astype(np.float64), ((0, 0), (pad, pad), (pad, pad)))
    for q, (oy, ox) in enumerate((oy, ox) for oy in range(oh) for ox in range(ow)):
        back[:, oy * stride:oy * stride + kh, ox * stride:ox * stride + kw] += g[:, q].reshape(c, kh, kw)
    back = back[:, pad:pad + h, pad:pad + wd]
    assert np.allclose(view(mem, px, x.shape), back, rtol=1e-5, atol=1e-5)


@SETTINGS
@given(n=st.integers(1, 2), c=st.integers(1, 3), h=st.integers(1, 9), wd=st.integers(1, 9), k=st.integers(1, 3),
       stride=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_pools_match_numpy(n: int, c: int, h: int, wd: int, k: int, stride: int, seed: int) -> None:
    if h < k or wd < k:
        return
    rng = np.random.default_rng(seed)
    x = np.round(floats(rng, n, c, h, wd), 1)  # ties happen: the first maximum wins
    oh, ow = (h - k) // stride + 1, (wd - k) // stride + 1
    windows = np.stack([x[:, :, oy * stride:oy * stride + k, ox * stride:ox * stride + k].reshape(n, c, -1)
                        for oy in range(oh) for ox in range(ow)], axis=2)  # n, c, oh*ow, k*k
    arena = Arena()
    px, py, parg = arena.put(x), arena.put(n * c * oh * ow), arena.put(n * c * oh * ow)
    mem = run("maxpool2d", arena.memory(), [px, py, parg, n, c, h, wd, k, stride])
    assert np.array_equal(view(mem, py, (n, c, oh * ow)), windows.max(axis=3))
    argmax = view(mem, parg, (n * c * oh * ow,)).view(np.int32)
    first = windows.argmax(axis=3).reshape(-1)
    rows, cols = np.divmod(first, k)
    q = np.tile(np.arange(oh * ow), n * c)
    planes = np.repeat(np.arange(n * c), oh * ow)
    want_index = planes * h * wd + ((q // ow) * stride + rows) * wd + (q % ow) * stride + cols
    assert np.array_equal(argmax, want_index)
    # backward: dy scattered to the argmax positions
    dy = floats(rng, n * c * oh * ow)
    arena = Arena()
    pdy, parg2, pdx = arena.put(dy), arena.put(argmax.view(np.float32)), arena.put(x.size)
    mem = run("maxpool2d_backward", arena.memory(), [pdy, parg2, pdx, n, c, h, wd, k, stride])
    want_dx = np.zeros(x.size, np.float32)
    for i, a in enumerate(argmax):
        want_dx[a] += dy[i]
    assert np.array_equal(view(mem, pdx, (x.size,)), want_dx)
    arena = Arena()
    px, py = arena.put(x), arena.put(n * c * oh * ow)
    mem = run("avgpool2d", arena.memory(), [px, py, n, c, h, wd, k, stride])
    assert np.allclose(view(mem, py, (n, c, oh * ow)), windows.astype(np.float64).mean(axis=3), rtol=1e-6, atol=1e-6)


@SETTINGS
@given(rows=st.integers(0, 6), cols=st.integers(1, 40), alpha=st.floats(-4, 4, width=32),
       seed=st.integers(0, 2**32 - 1))
def test_elementwise_and_row_ops_match_numpy(rows: int, cols: int, alpha: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, y = floats(rng, rows, cols) * 4, floats(rng, rows, cols)
    size = x.size
    arena = Arena()
    px, py, pout, pbias, pint = arena.put(x), arena.put(y), arena.put(size), arena.put(y[0] if rows else cols), \
        arena.put(max(rows, cols))
    mem0 = arena.memory()
    xd = x.astype(np.float64)

    def out(op: str, args: list[int], shape: tuple[int, ...] = (rows, cols), at: int = pout, **kw: float) -> np.ndarray:
        return view(on_every_path(op, mem0, args, **kw), at, shape)

    assert np.array_equal(out("add", [px, py, pout, size]), x + y)
    assert np.array_equal(out("mul", [px, py, pout, size]), x * y)
    assert np.array_equal(out("axpy", [px, py, size], at=py, alpha=alpha), y + np.float32(alpha) * x)
    assert np.array_equal(out("relu", [px, pout, size]), np.where(x > 0, x, 0))
    assert np.array_equal(out("relu_backward", [px, py, pout, size]), np.where(x > 0, y, 0))
    assert np.allclose(out("sigmoid", [px, pout, size]), 1 / (1 + np.exp(-xd)), rtol=2 * EPS, atol=1e-30)
    assert np.allclose(out("tanh", [px, pout, size]), np.tanh(xd), rtol=2 * EPS, atol=1e-30)
    # the shift x - max is rounded to f32 first, as documented
    e = np.exp((x - x.max(axis=1, keepdims=True)).astype(np.float64)) if rows else xd
    assert np.allclose(out("softmax", [px, pout, rows, cols]), e / e.sum(axis=1, keepdims=True) if rows else e,
                       rtol=(cols + 4) * EPS, atol=1e-30)
    if rows:
        assert np.array_equal(out("bias_add", [px, pbias, rows, cols], at=px), x + y[0])
        assert np.array_equal(out("argmax_rows", [px, pint, rows, cols], (rows,), pint).view(np.int32),
                              x.argmax(axis=1))
    assert np.allclose(out("sum_rows", [px, pout, rows, cols], (cols,)), xd.sum(axis=0), rtol=0,
                       atol=(rows + 1) * EPS * np.abs(xd).sum(axis=0).max(initial=0))


OPS = dict(gaia_native.tensor_signatures())
WILD = st.one_of(st.integers(-3, 300), st.sampled_from([-(2**31), 2**31 - 1, 2**30, 4096, 4092, 4095, 65536]),
                 st.integers(-(2**31), 2**31 - 1))


@settings(max_examples=400, deadline=None)
@given(op=st.sampled_from(sorted(OPS)), args=st.lists(WILD, min_size=13, max_size=13), alpha=st.floats(width=32))
def test_random_arguments_never_crash_and_refusals_write_nothing(op: str, args: list[int], alpha: float) -> None:
    memory = np.arange(1024, dtype=np.float32)
    before = memory.tobytes()
    ints = args[: OPS[op].count("i")]
    try:
        cost = gaia_native.tensor_call(op, memory, ints, alpha=alpha, budget=10**7)
    except ValueError as exc:
        assert str(exc) and "\n" not in str(exc)
        assert memory.tobytes() == before
    else:
        assert cost > 0


def test_refusals_name_the_argument() -> None:
    memory = np.zeros(64, np.float32)
    with pytest.raises(ValueError, match="outside the guest memory"):
        gaia_native.tensor_call("relu", memory, [0, 4, 1000])
    with pytest.raises(ValueError, match="has no function"):
        gaia_native.tensor_call("fma", memory, [])
    with pytest.raises(ValueError, match="unknown or unavailable tensor path"):
        gaia_native.tensor_call("relu", memory, [0, 0, 1], path="neon")
    with pytest.raises(BufferError):
        gaia_native.tensor_call("relu", b"\0" * 16, [0, 0, 1])


def test_over_budget_returns_the_cost_and_writes_nothing() -> None:
    memory = np.ones(3 * 64, np.float32)
    args = [0, 256, 512, 8, 8, 8, 0]
    cost = gaia_native.tensor_call("gemm", memory, args, budget=0)
    assert cost == 64 + 8 * 8 * 8 + 3 * 64
    assert np.all(memory == 1)
    assert gaia_native.tensor_call("gemm", memory, args, budget=cost) == cost
    assert np.all(memory[128:] == 8)

//! The tensor kernels: every path gives the same bits, the fixed order is the one documented, bad
//! arguments are refused before anything is written, and exp/tanh/sigmoid are accurate.

use _gaia_native::tensor::{self as t, Op, Path};

/// A small deterministic generator (xorshift64*), so the tests need no extra crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn float(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Guest memory of `floats` f32 (4-byte aligned: backed by u32s).
struct Mem(Vec<u32>);

impl Mem {
    fn new(floats: usize) -> Self {
        Mem(vec![0; floats])
    }
    fn bytes(&mut self) -> &mut [u8] {
        let len = self.0.len() * 4;
        // SAFETY: a u32 buffer viewed as its bytes, borrowed mutably for the returned lifetime.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast::<u8>(), len) }
    }
    fn set(&mut self, at: usize, values: &[f32]) {
        for (i, v) in values.iter().enumerate() {
            self.0[at + i] = v.to_bits();
        }
    }
    fn get(&self, at: usize, len: usize) -> Vec<u32> {
        self.0[at..at + len].to_vec()
    }
    fn call(&mut self, op: Op, args: &[i64], path: Path) -> Result<u64, t::TensorError> {
        t::call(self.bytes(), op, args, 0.0, u64::MAX, path)
    }
}

fn random(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.float()).collect()
}

/// C = op(A) op(B) (+ C) in the documented order, one f32 rounding per product and per sum.
fn gemm_reference(a: &[f32], b: &[f32], c: &mut [f32], m: usize, n: usize, k: usize, flags: i64) {
    for i in 0..m {
        for j in 0..n {
            let mut acc = if flags & 4 != 0 { c[i * n + j] } else { 0.0 };
            for p in 0..k {
                let av = if flags & 1 != 0 {
                    a[p * m + i]
                } else {
                    a[i * k + p]
                };
                let bv = if flags & 2 != 0 {
                    b[j * k + p]
                } else {
                    b[p * n + j]
                };
                acc += av * bv;
            }
            c[i * n + j] = acc;
        }
    }
}

/// Every path's gemm of random A, B and C (m x k, k x n, m x n) under `flags` equals the reference
/// bit for bit.
fn gemm_matches_the_reference_on_every_path(
    rng: &mut Rng,
    m: usize,
    n: usize,
    k: usize,
    flags: i64,
) {
    let (a, b, c0) = (random(rng, m * k), random(rng, k * n), random(rng, m * n));
    let mut want = c0.clone();
    gemm_reference(&a, &b, &mut want, m, n, k, flags);
    let want: Vec<u32> = want.iter().map(|v| v.to_bits()).collect();
    for path in Path::available() {
        let mut mem = Mem::new(m * k + k * n + m * n);
        mem.set(0, &a);
        mem.set(m * k, &b);
        mem.set(m * k + k * n, &c0);
        let (pb, pc) = (4 * m * k, 4 * (m * k + k * n));
        let args = [0, pb as i64, pc as i64, m as i64, n as i64, k as i64, flags];
        mem.call(Op::Gemm, &args, path).unwrap();
        // assert!, not assert_eq!: a failure names the case without printing millions of floats
        assert!(
            mem.get(m * k + k * n, m * n) == want,
            "{path:?} m={m} n={n} k={k} flags={flags}"
        );
    }
}

#[test]
fn gemm_is_the_documented_order_on_every_path() {
    let mut rng = Rng(7);
    for case in 0..40 {
        let (m, n, k) = (
            1 + rng.below(40),
            1 + rng.below(70),
            rng.below(300) + usize::from(case % 5 == 0) * 300,
        );
        let flags = rng.below(8) as i64;
        gemm_matches_the_reference_on_every_path(&mut rng, m, n, k, flags);
    }
}

#[test]
fn gemm_blocks_of_large_shapes_keep_the_documented_order() {
    // more than one block of rows (512 at most), of columns (4096) and of k (256): the host packs
    // a block at a time, so its scratch stays small however large the guest's matrices are
    let mut rng = Rng(9);
    for (m, n, k, flags) in [(520, 4100, 3, 0), (9, 4100, 260, 7), (520, 40, 260, 3)] {
        gemm_matches_the_reference_on_every_path(&mut rng, m, n, k, flags);
    }
}

#[test]
fn conv2d_is_im2col_then_gemm_then_bias_on_every_path() {
    let mut rng = Rng(11);
    for _ in 0..12 {
        let (n, c, h, wd, oc) = (
            1 + rng.below(2),
            1 + rng.below(4),
            3 + rng.below(12),
            3 + rng.below(12),
            1 + rng.below(9),
        );
        let (kh, kw, stride, pad) = (
            1 + rng.below(3),
            1 + rng.below(3),
            1 + rng.below(2),
            rng.below(2),
        );
        let (oh, ow) = (
            (h + 2 * pad - kh) / stride + 1,
            (wd + 2 * pad - kw) / stride + 1,
        );
        let (patch, plane) = (c * kh * kw, oh * ow);
        let (x, w, bias) = (
            random(&mut rng, n * c * h * wd),
            random(&mut rng, oc * patch),
            random(&mut rng, oc),
        );
        // reference: im2col into cols, gemm W x cols into y, then bias, image by image
        let mut want = Vec::new();
        for img in 0..n {
            let mut mem = Mem::new(c * h * wd + patch * plane + oc * patch + oc * plane);
            mem.set(0, &x[img * c * h * wd..(img + 1) * c * h * wd]);
            let (cols, wat, yat) = (
                c * h * wd,
                c * h * wd + patch * plane,
                c * h * wd + patch * plane + oc * patch,
            );
            let win = [c, h, wd, kh, kw, stride, pad].map(|v| v as i64);
            mem.call(
                Op::Im2col,
                &[&[0, 4 * cols as i64], &win[..]].concat(),
                Path::Scalar,
            )
            .unwrap();
            mem.set(wat, &w);
            let gemm = [
                4 * wat as i64,
                4 * cols as i64,
                4 * yat as i64,
                oc as i64,
                plane as i64,
                patch as i64,
                0,
            ];
            mem.call(Op::Gemm, &gemm, Path::Scalar).unwrap();
            let y: Vec<f32> = mem
                .get(yat, oc * plane)
                .into_iter()
                .map(f32::from_bits)
                .collect();
            want.extend(
                y.iter()
                    .enumerate()
                    .map(|(i, v)| (v + bias[i / plane]).to_bits()),
            );
        }
        for path in Path::available() {
            let (xl, wl) = (x.len(), w.len());
            let mut mem = Mem::new(xl + wl + oc + n * oc * plane);
            mem.set(0, &x);
            mem.set(xl, &w);
            mem.set(xl + wl, &bias);
            let args = [
                0,
                4 * xl,
                4 * (xl + wl),
                4 * (xl + wl + oc),
                n,
                c,
                h,
                wd,
                oc,
                kh,
                kw,
                stride,
                pad,
            ]
            .map(|v| v as i64);
            mem.call(Op::Conv2d, &args, path).unwrap();
            assert_eq!(mem.get(xl + wl + oc, n * oc * plane), want, "{path:?}");
        }
    }
}

#[test]
fn col2im_is_the_adjoint_of_im2col() {
    // <im2col(x), g> == <x, col2im(g)> up to rounding, and every column position lands once
    let (c, h, wd, kh, kw, stride, pad) = (2usize, 5usize, 6usize, 3usize, 2usize, 1usize, 1usize);
    let (oh, ow) = (
        (h + 2 * pad - kh) / stride + 1,
        (wd + 2 * pad - kw) / stride + 1,
    );
    let cols_len = c * kh * kw * oh * ow;
    let mut mem = Mem::new(c * h * wd + cols_len);
    mem.set(c * h * wd, &vec![1.0; cols_len]);
    let win = [c, h, wd, kh, kw, stride, pad].map(|v| v as i64);
    mem.call(
        Op::Col2im,
        &[&[4 * (c * h * wd) as i64, 0], &win[..]].concat(),
        Path::best(),
    )
    .unwrap();
    let counts: Vec<f32> = mem
        .get(0, c * h * wd)
        .into_iter()
        .map(f32::from_bits)
        .collect();
    // an interior pixel is covered by kh*kw windows
    assert_eq!(counts[h + 2], (kh * kw) as f32);
}

#[test]
fn bad_arguments_are_refused_before_anything_is_written() {
    let mut mem = Mem::new(64);
    mem.set(0, &[1.0; 64]);
    let cases: &[(Op, &[i64], &str)] = &[
        (Op::Gemm, &[0, 64, 128, -1, 2, 2, 0], "negative"),
        (
            Op::Gemm,
            &[0, 64, 128, 8, 8, 8, 0],
            "outside the guest memory",
        ),
        (Op::Gemm, &[0, 64, 130, 2, 2, 2, 0], "aligned"),
        (Op::Gemm, &[0, 64, 0, 2, 2, 2, 0], "overlaps"),
        (Op::Gemm, &[0, 64, 128, 2, 2, 2, 8], "flags"),
        (
            Op::Gemm,
            &[0, 64, 128, i64::from(i32::MAX), i64::from(i32::MAX), 2, 0],
            "outside",
        ),
        (Op::Add, &[0, 16, 8, 4], "partly overlaps"),
        (Op::Maxpool2d, &[0, 64, 0, 1, 1, 2, 2, 3, 1], "larger than"),
        (
            Op::Conv2d,
            &[0, 64, 0, 128, 1, 1, 4, 4, 1, 3, 3, 0, 0],
            "stride=0",
        ),
        (Op::ArgmaxRows, &[0, 64, 2, 0], "cols >= 1"),
        (Op::Relu, &[0, 64], "takes 3"),
        (Op::Relu, &[-5, 64, 1], "not 4-byte aligned"),
        (Op::Relu, &[1 << 40, 64, 1], "not a 32-bit pointer"),
    ];
    for (op, args, want) in cases {
        let got = mem.call(*op, args, Path::best()).unwrap_err().to_string();
        assert!(got.contains(want), "{op:?} {args:?}: {got}");
        assert!(
            mem.get(0, 64).iter().all(|&b| b == 1.0f32.to_bits()),
            "{op:?} wrote before refusing"
        );
    }
    // maxpool2d_backward refuses an argmax outside dx before zeroing dx
    mem.0[8] = 99;
    let got = mem
        .call(
            Op::Maxpool2dBackward,
            &[0, 32, 128, 1, 1, 2, 2, 2, 2],
            Path::best(),
        )
        .unwrap_err();
    assert!(got.to_string().contains("argmax[0]=99"), "{got}");
    assert_eq!(mem.get(32, 4), vec![1.0f32.to_bits(); 4]);
}

#[test]
fn a_call_over_budget_costs_its_work_and_does_nothing() {
    let mut mem = Mem::new(3 * 16 * 16);
    mem.set(0, &[1.0; 512]);
    let args = [0, 1024, 2048, 16, 16, 16, 0];
    let cost = t::call(mem.bytes(), Op::Gemm, &args, 0.0, 10, Path::best()).unwrap();
    assert_eq!(cost, t::CALL_COST + 16 * 16 * 16 + 3 * 256);
    assert!(mem.get(512, 256).iter().all(|&b| b == 0));
    assert_eq!(
        t::call(mem.bytes(), Op::Gemm, &args, 0.0, cost, Path::best()).unwrap(),
        cost
    );
    assert_eq!(f32::from_bits(mem.get(512, 1)[0]), 16.0);
}

#[test]
fn conv2d_is_charged_for_every_output_and_walks_no_plane_without_outputs() {
    // c = 0: no multiply-adds, but y (oc x 4 x 4) is still written (zeros), so it is charged
    let mut mem = Mem::new(16);
    let args = [0, 0, 0, 0, 1, 0, 4, 4, 1, 1, 1, 1, 0];
    let cost = t::call(mem.bytes(), Op::Conv2d, &args, 0.0, u64::MAX, Path::best()).unwrap();
    assert_eq!(cost, t::CALL_COST + 16);
    // oc = 0 with a padding of 2^30: the output plane has 4.6e18 positions and y none; a cheap
    // call must not walk that plane (it ran for ever, with the GIL held)
    let (done, wait) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut mem = Mem::new(4);
        let args = [0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1, 1 << 30];
        let _ = done.send(t::call(
            mem.bytes(),
            Op::Conv2d,
            &args,
            0.0,
            u64::MAX,
            Path::best(),
        ));
    });
    let got = wait.recv_timeout(std::time::Duration::from_secs(60));
    assert!(matches!(got, Ok(Ok(_))), "{got:?}");
}

#[test]
fn sum_rows_is_charged_for_the_row_it_writes_and_walks_no_empty_rows() {
    let mut mem = Mem::new(1024);
    let cost = t::call(
        mem.bytes(),
        Op::SumRows,
        &[0, 0, 0, 1024],
        0.0,
        u64::MAX,
        Path::best(),
    )
    .unwrap();
    assert_eq!(cost, t::CALL_COST + 1024);
    // 2^31 - 1 rows of no columns: nothing to read or write, and nothing walked (it took 10 s)
    let (done, wait) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut mem = Mem::new(4);
        let args = [0, 0, i64::from(i32::MAX), 0];
        let _ = done.send(t::call(
            mem.bytes(),
            Op::SumRows,
            &args,
            0.0,
            u64::MAX,
            Path::best(),
        ));
    });
    let got = wait.recv_timeout(std::time::Duration::from_secs(5));
    assert!(matches!(got, Ok(Ok(64))), "{got:?}");
}

/// Runs `f` with the thread's MXCSR set to `mode`, then restores it.
#[cfg(target_arch = "x86_64")]
fn with_mxcsr<R>(mode: u32, f: impl FnOnce() -> R) -> R {
    let mut saved = 0u32;
    // SAFETY: stmxcsr/ldmxcsr on 4-byte locals; the modes loaded are valid MXCSR values.
    unsafe {
        std::arch::asm!("stmxcsr [{}]", in(reg) &mut saved, options(nostack));
        std::arch::asm!("ldmxcsr [{}]", in(reg) &mode, options(nostack, readonly));
    }
    let out = f();
    unsafe { std::arch::asm!("ldmxcsr [{}]", in(reg) &saved, options(nostack, readonly)) };
    out
}

#[cfg(target_arch = "x86_64")]
#[test]
fn subnormals_and_rounding_ignore_the_callers_float_mode() {
    // FTZ | DAZ | round toward zero, as a library built with -ffast-math or fesetround leaves a thread
    let hostile = 0x1f80 | 0x8040 | 0x6000;
    let (a, b) = (
        [1e-20f32, 1e-40, 1.0, 1.0],
        [1e-20f32, 1.0, 1.0, 0.75 * f32::EPSILON],
    );
    let product: Vec<u32> = a.iter().zip(&b).map(|(x, y)| (x * y).to_bits()).collect();
    let sum: Vec<u32> = a.iter().zip(&b).map(|(x, y)| (x + y).to_bits()).collect();
    assert_ne!(product[0], 0);
    assert_eq!(sum[3], (1.0 + f32::EPSILON).to_bits());
    for path in Path::available() {
        let mut mem = Mem::new(16);
        mem.set(0, &a);
        mem.set(4, &b);
        with_mxcsr(hostile, || mem.call(Op::Mul, &[0, 16, 32, 4], path)).unwrap();
        with_mxcsr(hostile, || mem.call(Op::Add, &[0, 16, 48, 4], path)).unwrap();
        assert_eq!(mem.get(8, 4), product, "mul on {path:?}");
        assert_eq!(mem.get(12, 4), sum, "add on {path:?}");
    }
}

#[test]
fn elementwise_ops_work_in_place() {
    let mut mem = Mem::new(8);
    mem.set(0, &[-1.0, 2.0, -3.0, 4.0]);
    mem.call(Op::Relu, &[0, 0, 4], Path::best()).unwrap();
    assert_eq!(mem.get(0, 4), [0.0f32, 2.0, 0.0, 4.0].map(f32::to_bits));
    mem.call(Op::Add, &[0, 0, 0, 4], Path::best()).unwrap();
    assert_eq!(mem.get(0, 4), [0.0f32, 4.0, 0.0, 8.0].map(f32::to_bits));
    t::call(
        mem.bytes(),
        Op::Axpy,
        &[0, 0, 4],
        0.5,
        u64::MAX,
        Path::best(),
    )
    .unwrap();
    assert_eq!(mem.get(0, 4), [0.0f32, 6.0, 0.0, 12.0].map(f32::to_bits));
}

#[test]
fn pools_softmax_and_rows() {
    let mut mem = Mem::new(64);
    // one 4x4 plane, 2x2 windows, stride 2
    mem.set(
        0,
        &[
            1.0, 5.0, 2.0, 2.0, 3.0, 4.0, 2.0, 9.0, 0.0, 0.0, 7.0, 7.0, 0.0, 1.0, 7.0, 7.0,
        ],
    );
    mem.call(Op::Maxpool2d, &[0, 64, 96, 1, 1, 4, 4, 2, 2], Path::best())
        .unwrap();
    assert_eq!(mem.get(16, 4), [5.0f32, 9.0, 1.0, 7.0].map(f32::to_bits));
    assert_eq!(mem.get(24, 4), [1, 7, 13, 10]); // ties keep the first
    mem.call(Op::Avgpool2d, &[0, 128, 1, 1, 4, 4, 2, 2], Path::best())
        .unwrap();
    assert_eq!(
        mem.get(32, 4),
        [13.0f32 / 4.0, 15.0 / 4.0, 1.0 / 4.0, 28.0 / 4.0].map(f32::to_bits)
    );
    mem.set(40, &[1.0, 1.0, 1.0, 1.0]);
    mem.call(
        Op::Maxpool2dBackward,
        &[160, 96, 176, 1, 1, 4, 4, 2, 2],
        Path::best(),
    )
    .unwrap();
    let dx: Vec<f32> = mem.get(44, 16).into_iter().map(f32::from_bits).collect();
    assert_eq!(dx.iter().sum::<f32>(), 4.0);
    assert_eq!((dx[1], dx[7], dx[13], dx[10]), (1.0, 1.0, 1.0, 1.0));
    mem.set(0, &[0.0, 1.0, 2.0, 1000.0, 1000.0, -1000.0]);
    mem.call(Op::Softmax, &[0, 0, 2, 3], Path::best()).unwrap();
    let y: Vec<f32> = mem.get(0, 6).into_iter().map(f32::from_bits).collect();
    assert!(
        (y[0] + y[1] + y[2] - 1.0).abs() < 1e-6
            && y[2] > y[1]
            && (y[3] - 0.5).abs() < 1e-6
            && y[5] == 0.0
    );
    mem.call(Op::SumRows, &[0, 32, 2, 3], Path::best()).unwrap();
    mem.call(Op::ArgmaxRows, &[0, 192, 2, 3], Path::best())
        .unwrap();
    assert_eq!(mem.get(48, 2), [2, 0]);
}

#[test]
fn exp_tanh_sigmoid_are_within_one_ulp_of_f64() {
    let ulps = |got: f32, want: f64| {
        let w = want as f32;
        (got.to_bits() as i64 - w.to_bits() as i64).abs()
    };
    let mut rng = Rng(3);
    for i in 0..200_000 {
        let x = if i % 2 == 0 {
            rng.float() * 100.0
        } else {
            rng.float() * 2f32.powi(-(rng.below(30) as i32))
        };
        let xd = f64::from(x);
        assert!(ulps(t::exp(x), xd.exp()) <= 1, "exp({x})");
        assert!(ulps(t::tanh(x), xd.tanh()) <= 1, "tanh({x})");
        assert!(
            ulps(t::sigmoid(x), 1.0 / (1.0 + (-xd).exp())) <= 1,
            "sigmoid({x})"
        );
    }
    assert_eq!(t::exp(f32::INFINITY), f32::INFINITY);
    assert_eq!(t::exp(f32::NEG_INFINITY), 0.0);
    assert_eq!(t::exp(-200.0), 0.0);
    assert!(t::exp(f32::NAN).is_nan() && t::tanh(f32::NAN).is_nan());
    assert_eq!(
        (
            t::tanh(50.0),
            t::tanh(-50.0),
            t::sigmoid(-200.0),
            t::sigmoid(200.0)
        ),
        (1.0, -1.0, 0.0, 1.0)
    );
}

#[test]
fn signatures_and_paths() {
    assert_eq!(Op::ALL.len(), 18);
    for op in Op::ALL {
        assert_eq!(Op::parse(op.name()).unwrap(), op);
    }
    assert_eq!(Op::Axpy.params(), "fiii");
    assert!(Op::parse("fma").is_err());
    assert_eq!(Path::available()[0], Path::Scalar);
    assert!(Path::parse("scalar").is_ok() && Path::parse("neon9").is_err());
}

#[test]
fn every_nan_written_is_canonical() {
    let mut mem = Mem::new(64);
    // inf * 0 makes 0xFFC00000 on x86; a NaN input with a payload and sign travels through max/copy
    mem.set(0, &[f32::INFINITY, f32::from_bits(0xffc0_1234), 1.0, 2.0]);
    mem.set(4, &[0.0, 1.0, 1.0, 1.0]);
    for path in Path::available() {
        mem.call(Op::Gemm, &[0, 16, 32, 1, 1, 4, 0], path).unwrap();
        assert_eq!(mem.get(8, 1), [t::CANONICAL_NAN], "{path:?}");
    }
    mem.call(Op::Mul, &[0, 16, 48, 4], Path::best()).unwrap();
    assert_eq!(mem.get(12, 2), [t::CANONICAL_NAN, t::CANONICAL_NAN]);
    mem.call(Op::Maxpool2d, &[4, 48, 0, 1, 1, 2, 2, 2, 2], Path::best())
        .unwrap(); // window NaN, 1, 2, 0
    assert_eq!(mem.get(12, 1), [t::CANONICAL_NAN]);
    mem.call(Op::Im2col, &[0, 64, 1, 1, 4, 1, 1, 1, 0], Path::best())
        .unwrap();
    assert_eq!(
        mem.get(16, 4),
        [
            f32::INFINITY.to_bits(),
            t::CANONICAL_NAN,
            1.0f32.to_bits(),
            2.0f32.to_bits()
        ]
    );
}

#[test]
fn an_empty_memory_takes_empty_calls_only() {
    let mut empty: [u8; 0] = [];
    assert!(t::call(
        &mut empty,
        Op::Relu,
        &[0, 0, 0],
        0.0,
        u64::MAX,
        Path::best()
    )
    .is_ok());
    let got = t::call(
        &mut empty,
        Op::Relu,
        &[0, 0, 1],
        0.0,
        u64::MAX,
        Path::best(),
    )
    .unwrap_err();
    assert!(
        got.to_string()
            .contains("outside the guest memory (0 bytes)"),
        "{got}"
    );
}

//! Deterministic f32 tensor kernels: the `gaia_tensor` host API of WASM tasks.
//!
//! Every op works on a guest's linear memory (a byte slice) at offsets and sizes the guest passed,
//! all checked here: negative or overflowing sizes, regions outside the memory, misaligned
//! pointers and outputs that overlap an input are errors (the runner turns them into traps).
//!
//! **Determinism rule.** Every output element is computed in one fixed order, the order written in
//! `gaia_tensor.h`; no fused multiply-add (each product is rounded to f32, then added); `exp`,
//! `tanh` and `sigmoid` are computed here from IEEE basic operations only (never the platform libm);
//! every NaN written is [`CANONICAL_NAN`].
//! SIMD code paths vectorise across *output* elements only (columns of C), never across a
//! reduction, so every [`Path`] gives identical bits (tested in `tests/tensor.rs` and pytest).
//!
//! **Cost.** [`call`] first computes the work of an op (multiply-adds and elements touched, see
//! [`Op::cost`]); it runs the op only when that fits the caller's budget (the task's fuel).

use std::fmt;
use std::marker::PhantomData;

/// Fuel charged for any call, on top of its work: the cost of crossing into the host.
pub const CALL_COST: u64 = 64;
/// The one NaN an op writes (quiet, positive, no payload), whatever NaN the arithmetic made.
pub const CANONICAL_NAN: u32 = 0x7fc0_0000;
/// Fuel per element of an op evaluating `exp` (sigmoid, tanh, softmax).
pub const EXP_COST: u64 = 16;
/// Rows of the reduction dimension handled per pass (packing is bounded by this many rows).
const KC: usize = 256;
/// Columns of C per gemm block (a multiple of every path's panel width): B is packed NC x KC at a time.
const NC: usize = 4096;
/// Micro-kernel row blocks per gemm block: A is packed MC_BLOCKS * MR x KC at a time.
const MC_BLOCKS: usize = 64;
/// Output columns per im2col tile inside conv2d (host scratch stays at most KC x CONV_TILE floats).
const CONV_TILE: usize = 256;

/// A bad argument: the message names the argument and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorError(pub String);

impl fmt::Display for TensorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TensorError {}

fn err<T>(msg: String) -> Result<T, TensorError> {
    Err(TensorError(msg))
}

/// An implementation of the kernels; all give the same bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Plain f32 arithmetic, one lane.
    Scalar,
    /// 4 lanes (x86-64 baseline).
    Sse2,
    /// 8 lanes (AVX2 CPUs).
    Avx2,
    /// 16 lanes.
    Avx512,
}

impl Path {
    /// The path's name, as accepted by [`Path::parse`].
    pub fn name(self) -> &'static str {
        match self {
            Path::Scalar => "scalar",
            Path::Sse2 => "sse2",
            Path::Avx2 => "avx2",
            Path::Avx512 => "avx512",
        }
    }

    /// The path named `name` if this CPU can run it.
    pub fn parse(name: &str) -> Result<Path, TensorError> {
        let names = Path::available()
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>();
        match Path::available().into_iter().find(|p| p.name() == name) {
            Some(p) => Ok(p),
            None => err(format!(
                "unknown or unavailable tensor path {name:?}; this CPU has {}",
                names.join(", ")
            )),
        }
    }

    /// The paths this CPU can run, slowest first.
    pub fn available() -> Vec<Path> {
        [Path::Scalar, Path::Sse2, Path::Avx2, Path::Avx512]
            .into_iter()
            .filter(|p| p.runs_here())
            .collect()
    }

    /// Whether this CPU can run the path (the CPU features are detected once, then cached).
    pub fn runs_here(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            match self {
                Path::Scalar | Path::Sse2 => true,
                Path::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
                Path::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == Path::Scalar
        }
    }

    /// The fastest path this CPU can run.
    pub fn best() -> Path {
        *Path::available()
            .last()
            .expect("scalar is always available")
    }
}

/// The operations of the `gaia_tensor` import module (import name = [`Op::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Gemm,
    Conv2d,
    Im2col,
    Col2im,
    Maxpool2d,
    Maxpool2dBackward,
    Avgpool2d,
    Add,
    Mul,
    Axpy,
    BiasAdd,
    Relu,
    ReluBackward,
    Sigmoid,
    Tanh,
    Softmax,
    SumRows,
    ArgmaxRows,
}

impl Op {
    /// Every op, in the header's order.
    pub const ALL: [Op; 18] = [
        Op::Gemm,
        Op::Conv2d,
        Op::Im2col,
        Op::Col2im,
        Op::Maxpool2d,
        Op::Maxpool2dBackward,
        Op::Avgpool2d,
        Op::Add,
        Op::Mul,
        Op::Axpy,
        Op::BiasAdd,
        Op::Relu,
        Op::ReluBackward,
        Op::Sigmoid,
        Op::Tanh,
        Op::Softmax,
        Op::SumRows,
        Op::ArgmaxRows,
    ];

    /// The import name.
    pub fn name(self) -> &'static str {
        self.spec().0
    }

    /// WASM parameter types, one letter each: `i` (i32) or `f` (f32).
    pub fn params(self) -> &'static str {
        self.spec().1
    }

    fn spec(self) -> (&'static str, &'static str) {
        match self {
            Op::Gemm => ("gemm", "iiiiiii"),
            Op::Conv2d => ("conv2d", "iiiiiiiiiiiii"),
            Op::Im2col => ("im2col", "iiiiiiiii"),
            Op::Col2im => ("col2im", "iiiiiiiii"),
            Op::Maxpool2d => ("maxpool2d", "iiiiiiiii"),
            Op::Maxpool2dBackward => ("maxpool2d_backward", "iiiiiiiii"),
            Op::Avgpool2d => ("avgpool2d", "iiiiiiii"),
            Op::Add => ("add", "iiii"),
            Op::Mul => ("mul", "iiii"),
            Op::Axpy => ("axpy", "fiii"),
            Op::BiasAdd => ("bias_add", "iiii"),
            Op::Relu => ("relu", "iii"),
            Op::ReluBackward => ("relu_backward", "iiii"),
            Op::Sigmoid => ("sigmoid", "iii"),
            Op::Tanh => ("tanh", "iii"),
            Op::Softmax => ("softmax", "iiii"),
            Op::SumRows => ("sum_rows", "iiii"),
            Op::ArgmaxRows => ("argmax_rows", "iiii"),
        }
    }

    /// The op imported as `name`.
    pub fn parse(name: &str) -> Result<Op, TensorError> {
        match Op::ALL.into_iter().find(|op| op.name() == name) {
            Some(op) => Ok(op),
            None => err(format!("gaia_tensor has no function {name:?}")),
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Arguments and guest memory

/// A size argument: 0 ..= i32::MAX.
fn size(name: &str, v: i64) -> Result<usize, TensorError> {
    match usize::try_from(v) {
        Ok(n) if v <= i64::from(i32::MAX) => Ok(n),
        _ => err(format!("{name}={v} is negative; sizes must be >= 0")),
    }
}

/// A size argument that must be at least 1.
fn positive(name: &str, v: i64) -> Result<usize, TensorError> {
    match size(name, v)? {
        0 => err(format!("{name}=0; it must be at least 1")),
        n => Ok(n),
    }
}

/// The product of sizes, or an error naming `what` when it overflows.
fn product(what: &str, dims: &[usize]) -> Result<usize, TensorError> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| TensorError(format!("{what} overflows: sizes {dims:?} are too large")))
}

/// A checked byte range of guest memory holding `len` 4-byte elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: usize,
    len: usize,
}

impl Span {
    fn end(self) -> usize {
        self.start + self.len * 4
    }

    fn overlaps(self, other: Span) -> bool {
        self.len > 0 && other.len > 0 && self.start < other.end() && other.start < self.end()
    }
}

/// A guest's linear memory for the length of one call.
///
/// Views of its regions are made from one raw base pointer (never by re-borrowing the slice), so a
/// view stays valid while others of disjoint regions are made.
struct Memory<'a> {
    base: *mut u8,
    len: usize,
    _bytes: PhantomData<&'a mut [u8]>,
}

// SAFETY: a `Memory` stands for the exclusive borrow `&'a mut [u8]` it was made from (which is
// `Send`); it may move to another thread with that borrow.
unsafe impl Send for Memory<'_> {}

impl<'a> Memory<'a> {
    fn new(bytes: &'a mut [u8]) -> Result<Self, TensorError> {
        // (an empty memory may sit anywhere: no view of it is ever made)
        if !bytes.is_empty() && !(bytes.as_ptr() as usize).is_multiple_of(4) {
            return err("the guest memory is not 4-byte aligned".into());
        }
        Ok(Memory {
            base: bytes.as_mut_ptr(),
            len: bytes.len(),
            _bytes: PhantomData,
        })
    }

    /// The region of `len` f32/i32 elements at guest pointer `ptr`, checked against the memory.
    fn span(&self, name: &str, ptr: i64, len: usize) -> Result<Span, TensorError> {
        // A wasm i32 pointer above 2 GiB arrives negative: it is read as the unsigned offset.
        let unsigned = if ptr < 0 { ptr + (1i64 << 32) } else { ptr };
        let start = match u32::try_from(unsigned) {
            Ok(p) => p as usize,
            Err(_) => return err(format!("{name}={ptr} is not a 32-bit pointer")),
        };
        if !start.is_multiple_of(4) {
            return err(format!("{name}={start} is not 4-byte aligned"));
        }
        let end = len.checked_mul(4).and_then(|b| b.checked_add(start));
        match end {
            Some(end) if end <= self.len => Ok(Span { start, len }),
            _ => err(format!(
                "{name}: {len} elements at {start} lie outside the guest memory ({} bytes)",
                self.len
            )),
        }
    }

    /// An optional region: pointer 0 means none.
    fn nullable(&self, name: &str, ptr: i64, len: usize) -> Result<Option<Span>, TensorError> {
        if ptr == 0 {
            Ok(None)
        } else {
            self.span(name, ptr, len).map(Some)
        }
    }

    fn disjoint(outputs: &[(&str, Span)], inputs: &[(&str, Span)]) -> Result<(), TensorError> {
        for (i, &(out, o)) in outputs.iter().enumerate() {
            for &(name, s) in inputs.iter().chain(&outputs[i + 1..]) {
                if o.overlaps(s) {
                    return err(format!(
                        "output {out} overlaps {name}; give it its own buffer"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Elementwise ops may write in place: an output equal to an input is fine, a partial
    /// overlap is not.
    fn in_place_or_disjoint(out: (&str, Span), inputs: &[(&str, Span)]) -> Result<(), TensorError> {
        for &(name, s) in inputs {
            if s != out.1 && out.1.overlaps(s) {
                return err(format!(
                    "output {} partly overlaps {name}; use the same pointer or a separate buffer",
                    out.0
                ));
            }
        }
        Ok(())
    }

    /// Shared view of an input region.
    ///
    /// # Safety
    /// `s` comes from [`Memory::span`] of this memory, and no mutable view of an overlapping region
    /// is alive at the same time ([`Memory::disjoint`]).
    unsafe fn read<T>(&self, s: Span) -> &'a [T] {
        // SAFETY: `s` lies inside the memory and is 4-byte aligned (`span`), T is f32 or i32 (any bit
        // pattern valid); the memory is borrowed for 'a; overlapping mutable views are excluded.
        if s.len == 0 {
            return &[]; // the base of an empty memory may be unaligned
        }
        unsafe { std::slice::from_raw_parts(self.base.add(s.start).cast::<T>(), s.len) }
    }

    /// Mutable view of an output region.
    ///
    /// # Safety
    /// As [`Memory::read`], and no other view of an overlapping region is alive at the same time.
    #[allow(clippy::mut_from_ref)]
    unsafe fn write<T>(&self, s: Span) -> &'a mut [T] {
        // SAFETY: as `read`; the caller guarantees this is the only view of these bytes.
        if s.len == 0 {
            return &mut [];
        }
        unsafe { std::slice::from_raw_parts_mut(self.base.add(s.start).cast::<T>(), s.len) }
    }
}

// ------------------------------------------------------------------------------------------------
// The entry point

/// Run `op` with the guest's `args` (every parameter but axpy's `alpha`, which is given apart) on
/// `memory`, when its cost fits `budget`. Returns the cost, also when it did not fit (then nothing
/// was read or written). Errors name the bad argument; nothing is written then either.
pub fn call(
    memory: &mut [u8],
    op: Op,
    args: &[i64],
    alpha: f32,
    budget: u64,
    path: Path,
) -> Result<u64, TensorError> {
    let prepared = Prepared::new(memory, op, args)?;
    let cost = prepared.cost();
    if cost <= budget {
        prepared.run(alpha, path)?;
    }
    Ok(cost)
}

/// One call with its arguments checked against the memory, ready to run.
pub struct Prepared<'a> {
    mem: Memory<'a>,
    plan: Plan,
}

impl<'a> Prepared<'a> {
    /// Check `args` of `op` against `memory`: sizes, bounds, alignment, overlaps.
    pub fn new(memory: &'a mut [u8], op: Op, args: &[i64]) -> Result<Self, TensorError> {
        let expected = op.params().chars().filter(|&c| c == 'i').count();
        if args.len() != expected {
            return err(format!(
                "{} takes {expected} integer arguments, got {}",
                op.name(),
                args.len()
            ));
        }
        let mem = Memory::new(memory)?;
        let plan = Plan::new(op, args, &mem)?;
        Ok(Prepared { mem, plan })
    }

    /// The fuel this call costs (see [`CALL_COST`] and [`EXP_COST`]).
    pub fn cost(&self) -> u64 {
        self.plan.cost()
    }

    /// Do the work; the only error left is an argmax index outside dx (maxpool2d_backward), found
    /// before anything is written.
    pub fn run(self, alpha: f32, path: Path) -> Result<(), TensorError> {
        if !path.runs_here() {
            return err(format!("this CPU cannot run the {} path", path.name()));
        }
        let _fp = StandardFp::enter();
        self.plan.run(&self.mem, alpha, path)
    }
}

/// The IEEE default float environment for the length of a call: round to nearest, subnormals kept
/// (no flush-to-zero, no denormals-are-zero). The calling thread's own mode (a library built with
/// `-ffast-math` sets FTZ/DAZ when it loads) would otherwise change the bits of every path alike.
struct StandardFp {
    #[cfg(target_arch = "x86_64")]
    saved: u32,
}

impl StandardFp {
    /// MXCSR with every exception masked and nothing else set (the power-on value).
    #[cfg(target_arch = "x86_64")]
    const MXCSR: u32 = 0x1f80;

    fn enter() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let mut saved = 0u32;
            // SAFETY: stmxcsr/ldmxcsr read and write the 4 bytes given; the value loaded is valid.
            unsafe {
                std::arch::asm!("stmxcsr [{}]", in(reg) &mut saved, options(nostack, preserves_flags));
                std::arch::asm!("ldmxcsr [{}]", in(reg) &Self::MXCSR, options(nostack, preserves_flags, readonly));
            }
            StandardFp { saved }
        }
        #[cfg(not(target_arch = "x86_64"))]
        StandardFp {}
    }
}

impl Drop for StandardFp {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: restores the value stmxcsr read in `enter`.
        unsafe {
            std::arch::asm!("ldmxcsr [{}]", in(reg) &self.saved, options(nostack, preserves_flags, readonly));
        }
    }
}

/// Shapes of a convolution or pooling window over (c, h, wd) images.
#[derive(Debug, Clone, Copy)]
struct Window {
    c: usize,
    h: usize,
    wd: usize,
    kh: usize,
    kw: usize,
    stride: usize,
    pad: usize,
    oh: usize,
    ow: usize,
}

impl Window {
    fn new(
        c: usize,
        h: usize,
        wd: usize,
        kh: usize,
        kw: usize,
        stride: usize,
        pad: usize,
    ) -> Result<Self, TensorError> {
        let ph = h.saturating_add(pad.saturating_mul(2));
        let pw = wd.saturating_add(pad.saturating_mul(2));
        if ph < kh || pw < kw {
            return err(format!(
                "window {kh}x{kw} is larger than the padded input {ph}x{pw} (h={h}, wd={wd}, pad={pad})"
            ));
        }
        Ok(Window {
            c,
            h,
            wd,
            kh,
            kw,
            stride,
            pad,
            oh: (ph - kh) / stride + 1,
            ow: (pw - kw) / stride + 1,
        })
    }

    /// The output columns `lo..hi` whose input column `ox * stride + kx - pad` is inside the image.
    fn columns_inside(&self, kx: usize) -> (usize, usize) {
        let lo = self.pad.saturating_sub(kx).div_ceil(self.stride);
        let hi = (self.wd + self.pad)
            .saturating_sub(kx)
            .div_ceil(self.stride)
            .min(self.ow);
        (lo.min(hi), hi)
    }

    fn image(&self) -> Result<usize, TensorError> {
        product("image size c*h*wd", &[self.c, self.h, self.wd])
    }

    fn patch(&self) -> Result<usize, TensorError> {
        product("patch size c*kh*kw", &[self.c, self.kh, self.kw])
    }

    fn out_plane(&self) -> Result<usize, TensorError> {
        product("output plane oh*ow", &[self.oh, self.ow])
    }
}

/// An op with its arguments checked and its regions resolved.
enum Plan {
    Gemm {
        a: Span,
        b: Span,
        c: Span,
        m: usize,
        n: usize,
        k: usize,
        ta: bool,
        tb: bool,
        acc: bool,
    },
    Conv {
        x: Span,
        w: Span,
        bias: Option<Span>,
        y: Span,
        n: usize,
        oc: usize,
        win: Window,
    },
    Im2col {
        x: Span,
        cols: Span,
        win: Window,
    },
    Col2im {
        cols: Span,
        x: Span,
        win: Window,
    },
    Maxpool {
        x: Span,
        y: Span,
        argmax: Option<Span>,
        planes: usize,
        win: Window,
    },
    MaxpoolBack {
        dy: Span,
        argmax: Span,
        dx: Span,
    },
    Avgpool {
        x: Span,
        y: Span,
        planes: usize,
        win: Window,
    },
    Binary {
        op: Op,
        a: Span,
        b: Span,
        out: Span,
    },
    Axpy {
        x: Span,
        y: Span,
    },
    BiasAdd {
        x: Span,
        bias: Span,
        cols: usize,
    },
    Unary {
        op: Op,
        x: Span,
        y: Span,
    },
    Rows {
        op: Op,
        x: Span,
        out: Span,
        rows: usize,
        cols: usize,
    },
}

impl Plan {
    fn new(op: Op, a: &[i64], mem: &Memory<'_>) -> Result<Plan, TensorError> {
        Ok(match op {
            Op::Gemm => {
                let (m, n, k) = (size("m", a[3])?, size("n", a[4])?, size("k", a[5])?);
                let flags = a[6];
                if !(0..8).contains(&flags) {
                    return err(format!(
                        "flags={flags}: only TRANS_A (1), TRANS_B (2) and ACCUMULATE (4) exist"
                    ));
                }
                let (sa, sb, sc) = (
                    mem.span("a", a[0], product("m*k", &[m, k])?)?,
                    mem.span("b", a[1], product("k*n", &[k, n])?)?,
                    mem.span("c", a[2], product("m*n", &[m, n])?)?,
                );
                Memory::disjoint(&[("c", sc)], &[("a", sa), ("b", sb)])?;
                Plan::Gemm {
                    a: sa,
                    b: sb,
                    c: sc,
                    m,
                    n,
                    k,
                    ta: flags & 1 != 0,
                    tb: flags & 2 != 0,
                    acc: flags & 4 != 0,
                }
            }
            Op::Conv2d => {
                let n = size("n", a[4])?;
                let (c, h, wd, oc) = (
                    size("c", a[5])?,
                    size("h", a[6])?,
                    size("wd", a[7])?,
                    size("oc", a[8])?,
                );
                let (kh, kw) = (positive("kh", a[9])?, positive("kw", a[10])?);
                let win = Window::new(
                    c,
                    h,
                    wd,
                    kh,
                    kw,
                    positive("stride", a[11])?,
                    size("pad", a[12])?,
                )?;
                let x = mem.span("x", a[0], product("x size", &[n, win.image()?])?)?;
                let w = mem.span("w", a[1], product("w size", &[oc, win.patch()?])?)?;
                let bias = mem.nullable("bias", a[2], oc)?;
                let y = mem.span("y", a[3], product("y size", &[n, oc, win.out_plane()?])?)?;
                let mut inputs = vec![("x", x), ("w", w)];
                inputs.extend(bias.map(|b| ("bias", b)));
                Memory::disjoint(&[("y", y)], &inputs)?;
                Plan::Conv {
                    x,
                    w,
                    bias,
                    y,
                    n,
                    oc,
                    win,
                }
            }
            Op::Im2col | Op::Col2im => {
                let (c, h, wd) = (size("c", a[2])?, size("h", a[3])?, size("wd", a[4])?);
                let (kh, kw) = (positive("kh", a[5])?, positive("kw", a[6])?);
                let win = Window::new(
                    c,
                    h,
                    wd,
                    kh,
                    kw,
                    positive("stride", a[7])?,
                    size("pad", a[8])?,
                )?;
                let cols_len = product("cols size", &[win.patch()?, win.out_plane()?])?;
                if op == Op::Im2col {
                    let x = mem.span("x", a[0], win.image()?)?;
                    let cols = mem.span("cols", a[1], cols_len)?;
                    Memory::disjoint(&[("cols", cols)], &[("x", x)])?;
                    Plan::Im2col { x, cols, win }
                } else {
                    let cols = mem.span("cols", a[0], cols_len)?;
                    let x = mem.span("x", a[1], win.image()?)?;
                    Memory::disjoint(&[("x", x)], &[("cols", cols)])?;
                    Plan::Col2im { cols, x, win }
                }
            }
            Op::Maxpool2d | Op::Maxpool2dBackward | Op::Avgpool2d => {
                let off = usize::from(op != Op::Avgpool2d); // maxpool ops take a third pointer
                let (n, c) = (size("n", a[2 + off])?, size("c", a[3 + off])?);
                let (h, wd) = (size("h", a[4 + off])?, size("wd", a[5 + off])?);
                let k = positive("k", a[6 + off])?;
                let win = Window::new(1, h, wd, k, k, positive("stride", a[7 + off])?, 0)?;
                let planes = product("n*c", &[n, c])?;
                let x_len = product("x size", &[planes, h, wd])?;
                let y_len = product("y size", &[planes, win.out_plane()?])?;
                match op {
                    Op::Maxpool2d => {
                        let x = mem.span("x", a[0], x_len)?;
                        let y = mem.span("y", a[1], y_len)?;
                        let argmax = mem.nullable("argmax", a[2], y_len)?;
                        let mut outs = vec![("y", y)];
                        outs.extend(argmax.map(|s| ("argmax", s)));
                        if x_len > i32::MAX as usize && argmax.is_some() {
                            return err(format!(
                                "x has {x_len} elements; argmax indices must fit an int"
                            ));
                        }
                        Memory::disjoint(&outs, &[("x", x)])?;
                        Plan::Maxpool {
                            x,
                            y,
                            argmax,
                            planes,
                            win,
                        }
                    }
                    Op::Maxpool2dBackward => {
                        let dy = mem.span("dy", a[0], y_len)?;
                        let argmax = mem.span("argmax", a[1], y_len)?;
                        let dx = mem.span("dx", a[2], x_len)?;
                        Memory::disjoint(&[("dx", dx)], &[("dy", dy), ("argmax", argmax)])?;
                        Plan::MaxpoolBack { dy, argmax, dx }
                    }
                    _ => {
                        let x = mem.span("x", a[0], x_len)?;
                        let y = mem.span("y", a[1], y_len)?;
                        Memory::disjoint(&[("y", y)], &[("x", x)])?;
                        Plan::Avgpool { x, y, planes, win }
                    }
                }
            }
            Op::Add | Op::Mul | Op::ReluBackward => {
                let len = size("len", a[3])?;
                let (sa, sb, out) = (
                    mem.span("a", a[0], len)?,
                    mem.span("b", a[1], len)?,
                    mem.span("out", a[2], len)?,
                );
                Memory::in_place_or_disjoint(("out", out), &[("a", sa), ("b", sb)])?;
                Plan::Binary {
                    op,
                    a: sa,
                    b: sb,
                    out,
                }
            }
            Op::Axpy => {
                let len = size("len", a[2])?;
                let (x, y) = (mem.span("x", a[0], len)?, mem.span("y", a[1], len)?);
                Memory::in_place_or_disjoint(("y", y), &[("x", x)])?;
                Plan::Axpy { x, y }
            }
            Op::BiasAdd => {
                let (rows, cols) = (size("rows", a[2])?, size("cols", a[3])?);
                let x = mem.span("x", a[0], product("rows*cols", &[rows, cols])?)?;
                let bias = mem.span("bias", a[1], cols)?;
                Memory::disjoint(&[("x", x)], &[("bias", bias)])?;
                Plan::BiasAdd { x, bias, cols }
            }
            Op::Relu | Op::Sigmoid | Op::Tanh => {
                let len = size("len", a[2])?;
                let (x, y) = (mem.span("x", a[0], len)?, mem.span("y", a[1], len)?);
                Memory::in_place_or_disjoint(("y", y), &[("x", x)])?;
                Plan::Unary { op, x, y }
            }
            Op::Softmax | Op::SumRows | Op::ArgmaxRows => {
                let (rows, cols) = (size("rows", a[2])?, size("cols", a[3])?);
                if op == Op::ArgmaxRows && rows > 0 && cols == 0 {
                    return err("argmax_rows needs cols >= 1".into());
                }
                let x = mem.span("x", a[0], product("rows*cols", &[rows, cols])?)?;
                let out_len = match op {
                    Op::Softmax => x.len,
                    Op::SumRows => cols,
                    _ => rows,
                };
                let out = mem.span("out", a[1], out_len)?;
                if op == Op::Softmax {
                    Memory::in_place_or_disjoint(("y", out), &[("x", x)])?;
                } else {
                    Memory::disjoint(&[("out", out)], &[("x", x)])?;
                }
                Plan::Rows {
                    op,
                    x,
                    out,
                    rows,
                    cols,
                }
            }
        })
    }

    /// Fuel for this call: [`CALL_COST`] plus multiply-adds (or comparisons) plus elements
    /// touched; [`EXP_COST`] per element for ops evaluating exp. Saturates at u64::MAX.
    fn cost(&self) -> u64 {
        let work: u128 = match *self {
            Plan::Gemm {
                a, b, c, m, n, k, ..
            } => (m * n) as u128 * k as u128 + (a.len + b.len + c.len) as u128,
            Plan::Conv {
                x,
                w,
                y,
                n,
                oc,
                win,
                ..
            } => {
                // per image: oc x (c*kh*kw) x (oh*ow) multiply-adds, plus the im2col copy (none when
                // oc = 0: nothing is written), plus writing y (also when c*kh*kw = 0)
                let patch = (win.c * win.kh * win.kw) as u128;
                let plane = (win.oh * win.ow) as u128;
                let images = if oc == 0 { 0 } else { n as u128 };
                (y.len as u128) * (patch + 1) + images * patch * plane + (x.len + w.len) as u128
            }
            Plan::Im2col { x, cols, .. } | Plan::Col2im { cols, x, .. } => {
                (x.len + cols.len) as u128
            }
            Plan::Maxpool { x, y, win, .. } | Plan::Avgpool { x, y, win, .. } => {
                y.len as u128 * (win.kh * win.kw) as u128 + x.len as u128
            }
            Plan::MaxpoolBack { dy, dx, .. } => (dy.len * 2 + dx.len) as u128,
            Plan::Binary { out, .. } => out.len as u128 * 3,
            Plan::Axpy { y, .. } => y.len as u128 * 3,
            Plan::BiasAdd { x, .. } => x.len as u128 * 2,
            Plan::Unary { op, y, .. } => {
                y.len as u128
                    * if op == Op::Relu {
                        2
                    } else {
                        u128::from(EXP_COST)
                    }
            }
            Plan::Rows { op, x, out, .. } => {
                x.len as u128
                    * if op == Op::Softmax {
                        u128::from(EXP_COST)
                    } else {
                        1
                    }
                    + out.len as u128
            }
        };
        u64::try_from(work + u128::from(CALL_COST)).unwrap_or(u64::MAX)
    }

    /// The f32 region the op writes (argmax outputs are i32).
    fn float_output(&self) -> Span {
        match *self {
            Plan::Gemm { c, .. } => c,
            Plan::Conv { y, .. }
            | Plan::Maxpool { y, .. }
            | Plan::Avgpool { y, .. }
            | Plan::Unary { y, .. } => y,
            Plan::Axpy { y, .. } => y,
            Plan::Im2col { cols, .. } => cols,
            Plan::Col2im { x, .. } | Plan::BiasAdd { x, .. } => x,
            Plan::MaxpoolBack { dx, .. } => dx,
            Plan::Binary { out, .. } => out,
            Plan::Rows {
                op: Op::ArgmaxRows,
                out,
                ..
            } => Span {
                start: out.start,
                len: 0,
            },
            Plan::Rows { out, .. } => out,
        }
    }

    fn run(self, mem: &Memory<'_>, alpha: f32, path: Path) -> Result<(), TensorError> {
        let out = self.float_output();
        self.compute(mem, alpha, path)?;
        // SAFETY: the views `compute` made are gone; this is the only one.
        let out = unsafe { mem.write::<f32>(out) };
        // NaN bits differ between CPUs (x86 makes 0xFFC00000, Arm 0x7FC00000, and payloads travel
        // differently): every NaN written is the canonical one, as the engine's own float arithmetic.
        for v in out.iter_mut().filter(|v| v.is_nan()) {
            *v = f32::from_bits(CANONICAL_NAN);
        }
        Ok(())
    }

    fn compute(self, mem: &Memory<'_>, alpha: f32, path: Path) -> Result<(), TensorError> {
        // SAFETY (every `read`/`write` below): `Plan::new` checked each output region disjoint from
        // every other region of the op, except elementwise outputs, which either equal an input
        // (then only the output view is made and read in place) or are disjoint from it.
        unsafe {
            match self {
                Plan::Gemm {
                    a,
                    b,
                    c,
                    m,
                    n,
                    k,
                    ta,
                    tb,
                    acc,
                } => {
                    let (a, b, c) = (mem.read::<f32>(a), mem.read::<f32>(b), mem.write::<f32>(c));
                    let a = if ta {
                        Mat {
                            data: a,
                            rs: 1,
                            cs: m,
                        }
                    } else {
                        Mat {
                            data: a,
                            rs: k,
                            cs: 1,
                        }
                    };
                    let b = if tb {
                        Mat {
                            data: b,
                            rs: 1,
                            cs: k,
                        }
                    } else {
                        Mat {
                            data: b,
                            rs: n,
                            cs: 1,
                        }
                    };
                    gemm(path, m, n, k, a, b, c, n, acc);
                }
                Plan::Conv {
                    x,
                    w,
                    bias,
                    y,
                    n,
                    oc,
                    win,
                } => {
                    let bias = bias.map(|s| mem.read::<f32>(s));
                    conv2d(
                        path,
                        mem.read(x),
                        mem.read(w),
                        bias,
                        mem.write(y),
                        n,
                        oc,
                        &win,
                    );
                }
                Plan::Im2col { x, cols, win } => im2col(
                    mem.read(x),
                    mem.write(cols),
                    &win,
                    0,
                    win.patch()?,
                    0,
                    win.oh * win.ow,
                ),
                Plan::Col2im { cols, x, win } => col2im(mem.read(cols), mem.write(x), &win),
                Plan::Maxpool {
                    x,
                    y,
                    argmax,
                    planes,
                    win,
                } => {
                    let argmax = argmax.map(|s| mem.write::<i32>(s));
                    maxpool(mem.read(x), mem.write(y), argmax, planes, &win);
                }
                Plan::MaxpoolBack { dy, argmax, dx } => {
                    maxpool_backward(mem.read(dy), mem.read(argmax), mem.write(dx))?
                }
                Plan::Avgpool { x, y, planes, win } => {
                    avgpool(mem.read(x), mem.write(y), planes, &win)
                }
                Plan::Binary { op, a, b, out } => match op {
                    Op::Add => binary(mem, a, b, out, |a, b| a + b),
                    Op::Mul => binary(mem, a, b, out, |a, b| a * b),
                    _ => binary(mem, a, b, out, |x, dy| if x > 0.0 { dy } else { 0.0 }),
                },
                Plan::Axpy { x, y } => binary(mem, y, x, y, |y, x| y + alpha * x),
                Plan::BiasAdd { x, bias, cols } => {
                    let bias = mem.read::<f32>(bias);
                    if cols > 0 {
                        for row in mem.write::<f32>(x).chunks_exact_mut(cols) {
                            row.iter_mut().zip(bias).for_each(|(v, &b)| *v += b);
                        }
                    }
                }
                Plan::Unary { op, x, y } => match op {
                    Op::Relu => unary(mem, x, y, |v| if v > 0.0 { v } else { 0.0 }),
                    Op::Sigmoid => unary(mem, x, y, sigmoid),
                    _ => unary(mem, x, y, tanh),
                },
                Plan::Rows {
                    op,
                    x,
                    out,
                    rows,
                    cols,
                } => match op {
                    Op::Softmax if x == out => softmax_rows(mem.write(out), None, cols),
                    Op::Softmax => softmax_rows(mem.write(out), Some(mem.read(x)), cols),
                    Op::SumRows => sum_rows(mem.read(x), mem.write(out), rows, cols),
                    _ => argmax_rows(mem.read(x), mem.write(out), cols),
                },
            }
        }
        Ok(())
    }
}

/// out[i] = f(a[i], b[i]), where `out` may be `a` and/or `b` itself.
///
/// # Safety
/// The spans come from [`Plan::new`]: `out` equals or is disjoint from each input.
unsafe fn binary(mem: &Memory<'_>, a: Span, b: Span, out: Span, f: impl Fn(f32, f32) -> f32) {
    // SAFETY: an input equal to `out` is read through the output view only.
    unsafe {
        let o = mem.write::<f32>(out);
        match (a == out, b == out) {
            (true, true) => o.iter_mut().for_each(|v| *v = f(*v, *v)),
            (true, false) => o
                .iter_mut()
                .zip(mem.read::<f32>(b))
                .for_each(|(v, &b)| *v = f(*v, b)),
            (false, true) => o
                .iter_mut()
                .zip(mem.read::<f32>(a))
                .for_each(|(v, &a)| *v = f(a, *v)),
            (false, false) => {
                let (a, b) = (mem.read::<f32>(a), mem.read::<f32>(b));
                o.iter_mut()
                    .zip(a.iter().zip(b))
                    .for_each(|(v, (&a, &b))| *v = f(a, b));
            }
        }
    }
}

/// y[i] = f(x[i]), where `y` may be `x` itself.
///
/// # Safety
/// As [`binary`].
unsafe fn unary(mem: &Memory<'_>, x: Span, y: Span, f: impl Fn(f32) -> f32) {
    // SAFETY: as `binary`.
    unsafe {
        let o = mem.write::<f32>(y);
        if x == y {
            o.iter_mut().for_each(|v| *v = f(*v));
        } else {
            o.iter_mut()
                .zip(mem.read::<f32>(x))
                .for_each(|(v, &x)| *v = f(x));
        }
    }
}

// ------------------------------------------------------------------------------------------------
// GEMM: packed panels, a register-blocked micro-kernel per path

/// A strided read-only matrix: element (i, j) is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
struct Mat<'a> {
    data: &'a [f32],
    rs: usize,
    cs: usize,
}

impl Mat<'_> {
    #[inline(always)]
    fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.rs + j * self.cs]
    }
}

/// SIMD lanes of f32 for the micro-kernel. Implementations use only lane-wise IEEE add and mul.
trait Lanes: Copy {
    const W: usize;
    /// # Safety
    /// The CPU supports the lanes' instructions (checked by [`Path::available`]).
    unsafe fn splat(x: f32) -> Self;
    /// # Safety
    /// As `splat`; `p` is valid for reading `W` floats.
    unsafe fn load(p: *const f32) -> Self;
    /// # Safety
    /// As `splat`; `p` is valid for writing `W` floats.
    unsafe fn store(self, p: *mut f32);
    /// `self + a * b`, the product rounded before the sum (no FMA).
    /// # Safety
    /// As `splat`.
    unsafe fn add_mul(self, a: Self, b: Self) -> Self;
}

impl Lanes for f32 {
    const W: usize = 1;
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        x
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        unsafe { *p }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        unsafe { *p = self }
    }
    #[inline(always)]
    unsafe fn add_mul(self, a: Self, b: Self) -> Self {
        self + a * b
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Lanes;
    use std::arch::x86_64::*;

    /// `Lanes` for one vector type, from its width and its set1, loadu, storeu, add and mul intrinsics.
    macro_rules! lanes {
        ($ty:ty, $w:literal: $splat:ident, $load:ident, $store:ident, $add:ident, $mul:ident) => {
            // SAFETY: callers hold the Lanes contract (CPU feature checked, pointers valid for W
            // floats); unaligned loads and stores are used, so no alignment is assumed.
            impl Lanes for $ty {
                const W: usize = $w;
                #[inline(always)]
                unsafe fn splat(x: f32) -> Self {
                    unsafe { $splat(x) }
                }
                #[inline(always)]
                unsafe fn load(p: *const f32) -> Self {
                    unsafe { $load(p) }
                }
                #[inline(always)]
                unsafe fn store(self, p: *mut f32) {
                    unsafe { $store(p, self) }
                }
                #[inline(always)]
                unsafe fn add_mul(self, a: Self, b: Self) -> Self {
                    unsafe { $add(self, $mul(a, b)) }
                }
            }
        };
    }

    lanes! { __m128, 4: _mm_set1_ps, _mm_loadu_ps, _mm_storeu_ps, _mm_add_ps, _mm_mul_ps }
    lanes! { __m256, 8: _mm256_set1_ps, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_add_ps, _mm256_mul_ps }
    lanes! { __m512, 16: _mm512_set1_ps, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_add_ps, _mm512_mul_ps }

    /// The gemm driver compiled for each instruction set.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn gemm_avx2(g: &mut super::Gemm<'_>, scratch: &mut [f32]) {
        unsafe { g.run::<__m256, 6, 2>(scratch) }
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn gemm_avx512(g: &mut super::Gemm<'_>, scratch: &mut [f32]) {
        unsafe { g.run::<__m512, 8, 2>(scratch) }
    }

    pub(super) fn gemm_sse2(g: &mut super::Gemm<'_>, scratch: &mut [f32]) {
        // SAFETY: SSE2 is part of x86-64.
        unsafe { g.run::<__m128, 4, 2>(scratch) }
    }
}

/// Scratch kept by each thread between calls, up to this many floats (16 MiB): buffers from the
/// allocator would be fresh pages, zeroed by the kernel on first touch, on every call.
const SCRATCH_KEPT: usize = 4 << 20;

thread_local! {
    static GEMM_SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    static CONV_SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Run `f` on `len` floats of this thread's `cache` (taken out meanwhile, so nesting is safe).
fn with_scratch<R>(
    cache: &'static std::thread::LocalKey<std::cell::RefCell<Vec<f32>>>,
    len: usize,
    f: impl FnOnce(&mut [f32]) -> R,
) -> R {
    let mut buf = cache.with(|c| std::mem::take(&mut *c.borrow_mut()));
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    let out = f(&mut buf[..len]);
    if buf.len() <= SCRATCH_KEPT {
        cache.with(|c| *c.borrow_mut() = buf);
    }
    out
}

/// One C = op(A).op(B) (+ C) problem.
struct Gemm<'a> {
    m: usize,
    n: usize,
    k: usize,
    a: Mat<'a>,
    b: Mat<'a>,
    c: &'a mut [f32],
    ldc: usize,
    accumulate: bool,
}

impl Gemm<'_> {
    /// Floats of scratch [`Gemm::run`] needs on any path (MR <= 8, NV*W <= 32): at most about
    /// 4.7 MiB, whatever the shapes (the packs hold one NC x KC block of B and one block of A).
    fn scratch_len(&self) -> usize {
        (self.n.min(NC) + 32 + self.m.min(MC_BLOCKS * 8) + 8) * KC.min(self.k) + 8 * 32
    }

    /// Blocks of MR rows x NV*W columns of C, taken NC columns and MC_BLOCKS*MR rows at a time; for
    /// each column block, k ascending in passes of at most KC rows, each pass reloading the f32
    /// partial sums the previous one stored (exactly the same arithmetic for any blocking).
    #[inline(always)]
    unsafe fn run<V: Lanes, const MR: usize, const NV: usize>(&mut self, scratch: &mut [f32]) {
        let nr = NV * V::W;
        let (m, n, k) = (self.m, self.n, self.k);
        let block_cols = (NC / nr).min(n.div_ceil(nr)) * nr;
        let block_rows = MC_BLOCKS.min(m.div_ceil(MR)) * MR;
        let (bpack, rest) = scratch.split_at_mut(block_cols * KC.min(k));
        let (apack, tile) = rest.split_at_mut(block_rows * KC.min(k));
        let mut jc = 0;
        while jc < n {
            let jc_end = n.min(jc + block_cols);
            let panels = (jc_end - jc).div_ceil(nr);
            let mut p0 = 0;
            while p0 < k {
                let kc = KC.min(k - p0);
                let acc = self.accumulate || p0 > 0;
                for (jp, panel) in bpack.chunks_exact_mut(nr * kc).take(panels).enumerate() {
                    let (j0, cols) = (jc + jp * nr, nr.min(jc_end - jc - jp * nr));
                    for (p, dst) in panel.chunks_exact_mut(nr).enumerate() {
                        if self.b.cs == 1 {
                            // rows of B are contiguous: copy each panel row at once
                            let start = (p0 + p) * self.b.rs + j0;
                            dst[..cols].copy_from_slice(&self.b.data[start..start + cols]);
                        } else {
                            for (col, v) in dst[..cols].iter_mut().enumerate() {
                                *v = self.b.at(p0 + p, j0 + col);
                            }
                        }
                        dst[cols..].fill(0.0);
                    }
                }
                let mut ic = 0;
                while ic < m {
                    let ic_end = m.min(ic + block_rows);
                    let blocks = (ic_end - ic).div_ceil(MR);
                    for (ib, block) in apack.chunks_exact_mut(MR * kc).take(blocks).enumerate() {
                        for p in 0..kc {
                            for r in 0..MR {
                                let i = ic + ib * MR + r;
                                block[p * MR + r] = if i < ic_end {
                                    self.a.at(i, p0 + p)
                                } else {
                                    0.0
                                };
                            }
                        }
                    }
                    for jp in 0..panels {
                        let (j0, cols) = (jc + jp * nr, nr.min(jc_end - jc - jp * nr));
                        let panel = &bpack[jp * nr * kc..(jp + 1) * nr * kc];
                        for ib in 0..blocks {
                            let (i0, rows) = (ic + ib * MR, MR.min(ic_end - ic - ib * MR));
                            let block = &apack[ib * MR * kc..(ib + 1) * MR * kc];
                            // SAFETY: the CPU supports V (the caller), the packs hold kc*MR and kc*nr floats.
                            unsafe {
                                self.tile::<V, MR, NV>(
                                    kc, block, panel, tile, i0, rows, j0, cols, acc,
                                )
                            };
                        }
                    }
                    ic = ic_end;
                }
                p0 += kc;
            }
            jc = jc_end;
        }
    }

    /// One MR x nr tile of C at (i0, j0), of which `rows` x `cols` lie inside C.
    ///
    /// # Safety
    /// The CPU supports `V`; `block` holds kc*MR floats, `panel` kc*nr, `tile` MR*nr.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<V: Lanes, const MR: usize, const NV: usize>(
        &mut self,
        kc: usize,
        block: &[f32],
        panel: &[f32],
        tile: &mut [f32],
        i0: usize,
        rows: usize,
        j0: usize,
        cols: usize,
        acc: bool,
    ) {
        let nr = NV * V::W;
        if rows == MR && cols == nr {
            let start = i0 * self.ldc + j0;
            let end = (i0 + MR - 1) * self.ldc + j0 + nr;
            let c = &mut self.c[start..end];
            // SAFETY: `c` holds rows MR x ldc ending at column nr of the last row;
            // the packs hold kc*MR and kc*nr floats.
            unsafe { micro::<V, MR, NV>(kc, block, panel, c.as_mut_ptr(), self.ldc, acc) };
        } else {
            for r in 0..MR {
                for col in 0..nr {
                    tile[r * nr + col] = if acc && r < rows && col < cols {
                        self.c[(i0 + r) * self.ldc + j0 + col]
                    } else {
                        0.0
                    };
                }
            }
            // SAFETY: `tile` holds MR x nr floats.
            unsafe { micro::<V, MR, NV>(kc, block, panel, tile.as_mut_ptr(), nr, true) };
            for r in 0..rows {
                let row = (i0 + r) * self.ldc + j0;
                self.c[row..row + cols].copy_from_slice(&tile[r * nr..r * nr + cols]);
            }
        }
    }
}

/// acc[r][col] = (accumulate ? C : 0), then acc += A[r,p] * B[p,col] for p ascending; C = acc.
///
/// # Safety
/// The CPU supports `V`; `a` holds kc*MR floats, `b` kc*NV*W, and `c` MR rows of NV*W floats
/// `ldc` apart.
#[inline(always)]
unsafe fn micro<V: Lanes, const MR: usize, const NV: usize>(
    kc: usize,
    a: &[f32],
    b: &[f32],
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    let nr = NV * V::W;
    debug_assert!(a.len() >= kc * MR && b.len() >= kc * nr);
    unsafe {
        let mut acc = [[V::splat(0.0); NV]; MR];
        if accumulate {
            for (r, row) in acc.iter_mut().enumerate() {
                for (v, lane) in row.iter_mut().enumerate() {
                    *lane = V::load(c.add(r * ldc + v * V::W));
                }
            }
        }
        let (a, b) = (a.as_ptr(), b.as_ptr());
        for p in 0..kc {
            let mut bv = [V::splat(0.0); NV];
            for (v, lane) in bv.iter_mut().enumerate() {
                *lane = V::load(b.add(p * nr + v * V::W));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let av = V::splat(*a.add(p * MR + r));
                for (lane, &bl) in row.iter_mut().zip(&bv) {
                    *lane = lane.add_mul(av, bl);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (v, lane) in row.iter().enumerate() {
                lane.store(c.add(r * ldc + v * V::W));
            }
        }
    }
}

/// C[m, n] (row stride `ldc`) = a . b (+ C when `accumulate`), on `path`.
#[allow(clippy::too_many_arguments)]
fn gemm(
    path: Path,
    m: usize,
    n: usize,
    k: usize,
    a: Mat<'_>,
    b: Mat<'_>,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                c[i * ldc..i * ldc + n].fill(0.0);
            }
        }
        return;
    }
    let mut g = Gemm {
        m,
        n,
        k,
        a,
        b,
        c,
        ldc,
        accumulate,
    };
    with_scratch(&GEMM_SCRATCH, g.scratch_len(), |s| match path {
        // SAFETY: plain f32 arithmetic needs no CPU feature.
        Path::Scalar => unsafe { g.run::<f32, 4, 4>(s) },
        #[cfg(target_arch = "x86_64")]
        Path::Sse2 => x86::gemm_sse2(&mut g, s),
        // SAFETY: `Prepared::run`, the only way here, refused a path this CPU cannot run.
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 => unsafe { x86::gemm_avx2(&mut g, s) },
        #[cfg(target_arch = "x86_64")]
        Path::Avx512 => unsafe { x86::gemm_avx512(&mut g, s) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => unsafe { g.run::<f32, 4, 4>(s) },
    });
}

// ------------------------------------------------------------------------------------------------
// Convolution and pooling

/// Rows `r0..r1` and columns `q0..q1` of the im2col matrix of one image, written row-major into
/// `cols` (row stride q1 - q0).
fn im2col(x: &[f32], cols: &mut [f32], win: &Window, r0: usize, r1: usize, q0: usize, q1: usize) {
    let (width, hw) = (q1 - q0, win.h * win.wd);
    for r in r0..r1 {
        let (ci, ky, kx) = (r / (win.kh * win.kw), r / win.kw % win.kh, r % win.kw);
        let out = &mut cols[(r - r0) * width..(r - r0 + 1) * width];
        let plane = &x[ci * hw..(ci + 1) * hw];
        let (lo, hi) = win.columns_inside(kx);
        // one output row (oy) at a time: its input row is inside or all padding
        let mut q = q0;
        while q < q1 {
            let (oy, ox0) = (q / win.ow, q % win.ow);
            let ox1 = win.ow.min(ox0 + q1 - q);
            let seg = &mut out[q - q0..q - q0 + ox1 - ox0];
            let iy = oy * win.stride + ky;
            if iy < win.pad || iy - win.pad >= win.h {
                seg.fill(0.0);
            } else {
                let row = &plane[(iy - win.pad) * win.wd..(iy - win.pad + 1) * win.wd];
                for (ox, v) in (ox0..ox1).zip(seg.iter_mut()) {
                    *v = if ox >= lo && ox < hi {
                        row[ox * win.stride + kx - win.pad]
                    } else {
                        0.0
                    };
                }
            }
            q += ox1 - ox0;
        }
    }
}

fn col2im(cols: &[f32], x: &mut [f32], win: &Window) {
    let plane = win.oh * win.ow;
    for r in 0..win.c * win.kh * win.kw {
        let (ci, ky, kx) = (r / (win.kh * win.kw), r / win.kw % win.kh, r % win.kw);
        for q in 0..plane {
            let (iy, ix) = (
                (q / win.ow) * win.stride + ky,
                (q % win.ow) * win.stride + kx,
            );
            if iy >= win.pad && ix >= win.pad && iy - win.pad < win.h && ix - win.pad < win.wd {
                x[(ci * win.h + iy - win.pad) * win.wd + ix - win.pad] += cols[r * plane + q];
            }
        }
    }
}

/// Each image: y = W . im2col(x) (+ bias per output channel), in tiles of at most KC rows of the
/// patch and CONV_TILE output positions, so host scratch stays small whatever the shapes.
#[allow(clippy::too_many_arguments)]
fn conv2d(
    path: Path,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    n: usize,
    oc: usize,
    win: &Window,
) {
    let (patch, plane) = (win.c * win.kh * win.kw, win.oh * win.ow);
    with_scratch(
        &CONV_SCRATCH,
        KC.min(patch) * CONV_TILE.min(plane),
        |cols| conv2d_images(path, x, w, bias, y, n, oc, win, cols),
    );
}

/// [`conv2d`] with its im2col tile buffer.
#[allow(clippy::too_many_arguments)]
fn conv2d_images(
    path: Path,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    n: usize,
    oc: usize,
    win: &Window,
    cols: &mut [f32],
) {
    let (patch, plane, image) = (
        win.c * win.kh * win.kw,
        win.oh * win.ow,
        win.c * win.h * win.wd,
    );
    if oc == 0 {
        return; // y is empty; the output plane may still be huge (padding), so walk none of it
    }
    for b in 0..n {
        let (xb, yb) = (
            &x[b * image..(b + 1) * image],
            &mut y[b * oc * plane..(b + 1) * oc * plane],
        );
        let mut q0 = 0;
        while q0 < plane {
            let q1 = plane.min(q0 + CONV_TILE);
            if patch == 0 {
                for o in 0..oc {
                    yb[o * plane + q0..o * plane + q1].fill(0.0);
                }
            }
            let mut r0 = 0;
            while r0 < patch {
                let r1 = patch.min(r0 + KC);
                let tile = &mut cols[..(r1 - r0) * (q1 - q0)];
                im2col(xb, tile, win, r0, r1, q0, q1);
                let a = Mat {
                    data: &w[r0..],
                    rs: patch,
                    cs: 1,
                };
                let bm = Mat {
                    data: tile,
                    rs: q1 - q0,
                    cs: 1,
                };
                gemm(
                    path,
                    oc,
                    q1 - q0,
                    r1 - r0,
                    a,
                    bm,
                    &mut yb[q0..],
                    plane,
                    r0 > 0,
                );
                r0 = r1;
            }
            q0 = q1;
        }
        if let Some(bias) = bias {
            for (o, &bo) in bias.iter().enumerate() {
                yb[o * plane..(o + 1) * plane]
                    .iter_mut()
                    .for_each(|v| *v += bo);
            }
        }
    }
}

fn maxpool(x: &[f32], y: &mut [f32], mut argmax: Option<&mut [i32]>, planes: usize, win: &Window) {
    let (hw, ohw) = (win.h * win.wd, win.oh * win.ow);
    for p in 0..planes {
        for q in 0..ohw {
            let (y0, x0) = ((q / win.ow) * win.stride, (q % win.ow) * win.stride);
            let mut best = p * hw + y0 * win.wd + x0;
            for ky in 0..win.kh {
                for kx in 0..win.kw {
                    let i = p * hw + (y0 + ky) * win.wd + x0 + kx;
                    if x[i] > x[best] {
                        best = i;
                    }
                }
            }
            y[p * ohw + q] = x[best];
            if let Some(am) = argmax.as_deref_mut() {
                // fits: Plan::new refused tensors of more than i32::MAX elements when argmax is given
                am[p * ohw + q] = best as i32;
            }
        }
    }
}

fn maxpool_backward(dy: &[f32], argmax: &[i32], dx: &mut [f32]) -> Result<(), TensorError> {
    if let Some((i, &bad)) = argmax
        .iter()
        .enumerate()
        .find(|&(_, &a)| usize::try_from(a).map_or(true, |a| a >= dx.len()))
    {
        return err(format!(
            "argmax[{i}]={bad} is outside dx ({} elements)",
            dx.len()
        ));
    }
    dx.fill(0.0);
    for (&g, &a) in dy.iter().zip(argmax) {
        dx[a as usize] += g;
    }
    Ok(())
}

fn avgpool(x: &[f32], y: &mut [f32], planes: usize, win: &Window) {
    let (hw, ohw) = (win.h * win.wd, win.oh * win.ow);
    let count = (win.kh * win.kw) as f32;
    for p in 0..planes {
        for q in 0..ohw {
            let (y0, x0) = ((q / win.ow) * win.stride, (q % win.ow) * win.stride);
            let mut sum = 0.0f32;
            for ky in 0..win.kh {
                for kx in 0..win.kw {
                    sum += x[p * hw + (y0 + ky) * win.wd + x0 + kx];
                }
            }
            y[p * ohw + q] = sum / count;
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Rows

/// Softmax of each row of `src` (or of `y` itself, in place) into `y`.
fn softmax_rows(y: &mut [f32], src: Option<&[f32]>, cols: usize) {
    if cols == 0 {
        return;
    }
    for (r, row) in y.chunks_exact_mut(cols).enumerate() {
        if let Some(src) = src {
            row.copy_from_slice(&src[r * cols..(r + 1) * cols]);
        }
        let m = row[1..]
            .iter()
            .fold(row[0], |m, &v| if v > m { v } else { m });
        let mut s = 0.0f32;
        for v in row.iter_mut() {
            *v = exp(*v - m);
            s += *v;
        }
        row.iter_mut().for_each(|v| *v /= s);
    }
}

fn sum_rows(x: &[f32], out: &mut [f32], rows: usize, cols: usize) {
    out.fill(0.0);
    if cols == 0 {
        return; // no columns to sum: walking 2^31 empty rows would be work nobody is charged for
    }
    for r in 0..rows {
        out.iter_mut()
            .zip(&x[r * cols..(r + 1) * cols])
            .for_each(|(o, &v)| *o += v);
    }
}

fn argmax_rows(x: &[f32], out: &mut [i32], cols: usize) {
    for (o, row) in out.iter_mut().zip(x.chunks_exact(cols.max(1))) {
        let mut best = 0;
        for (j, &v) in row.iter().enumerate() {
            if v > row[best] {
                best = j;
            }
        }
        // cols <= i32::MAX (a size argument)
        *o = best as i32;
    }
}

// ------------------------------------------------------------------------------------------------
// Deterministic transcendental functions: f64 IEEE basic operations only, rounded once to f32.

/// e^x for an f32 argument, in f64 (relative error below 1e-15 before the final rounding).
fn exp_f64(x: f32) -> f64 {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    const LN2_HI: f64 = 6.931_471_803_691_238e-1; // ln 2 with its last 20 bits cleared
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    const ROUND: f64 = 6_755_399_441_055_744.0; // 1.5 * 2^52: adding it rounds to an integer
    if x.is_nan() {
        return f64::NAN;
    }
    // Beyond +-104, e^x and e^-x round to 0 and inf as f32, also inside sigmoid's 1 / (1 + e^-x).
    let x = f64::from(x.clamp(-104.0, 104.0));
    let kf = (x * LOG2E + ROUND) - ROUND;
    let r = (x - kf * LN2_HI) - kf * LN2_LO; // |r| <= 0.35
                                             // Taylor series to r^11/11! (truncation below 2e-16 relative on |r| <= 0.35), Horner form.
    let mut p = 1.0 / 39_916_800.0;
    for d in [
        3_628_800.0,
        362_880.0,
        40_320.0,
        5_040.0,
        720.0,
        120.0,
        24.0,
        6.0,
        2.0,
        1.0,
        1.0,
    ] {
        p = p * r + 1.0 / d;
    }
    // 2^k for k in [-151, 151]: built from bits (exact, no libm).
    let k = kf as i64;
    p * f64::from_bits(((k + 1023) as u64) << 52)
}

/// e^x rounded to f32.
pub fn exp(x: f32) -> f32 {
    exp_f64(x) as f32
}

/// 1 / (1 + e^-x), computed in f64 and rounded once to f32.
pub fn sigmoid(x: f32) -> f32 {
    (1.0 / (1.0 + exp_f64(-x))) as f32
}

/// tanh(x), computed in f64 and rounded once to f32: x - x^3/3 for |x| < 2^-12, else
/// (e^2|x| - 1) / (e^2|x| + 1) with the sign of x.
pub fn tanh(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let a = f64::from(x.abs());
    let t = if a < 1.0 / 4096.0 {
        a - a * a * a / 3.0
    } else if a > 10.0 {
        1.0
    } else {
        let e = exp_f64(2.0 * x.abs());
        (e - 1.0) / (e + 1.0)
    };
    (if x < 0.0 { -t } else { t }) as f32
}

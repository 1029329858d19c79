//! PyO3 bindings: the private extension module `gaia_native._gaia_native`.

use crate::hashing as h;
use crate::scheduler as sched;
use crate::tensor;
use pyo3::exceptions::{PyBufferError, PyOverflowError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyBytes, PyString, PyTuple};

/// Inputs of at least this many bytes in all are hashed with the GIL released, when that is safe.
const DETACH_THRESHOLD: usize = 64 * 1024;

/// The bytes of one Python argument, held for the length of one call, never copied.
///
/// Which inputs may be read with the GIL released is decided here: only `bytes` objects, which no
/// one can change. Every other buffer (bytearray, memoryview, array, mmap, ...) may be written by
/// another thread while it is exported, even through a read-only view of it, so it is read only
/// while this thread holds the GIL: no Python code runs meanwhile, and the hash is that of its
/// contents at the time of the call.
enum Buf<'py> {
    Bytes(Bound<'py, PyBytes>),
    /// A C-contiguous buffer export (PyBUF_SIMPLE), boxed so its address stays put until released.
    View(Box<ffi::Py_buffer>),
}

impl<'py> Buf<'py> {
    fn get(obj: &Bound<'py, PyAny>) -> PyResult<Self> {
        if let Ok(b) = obj.cast::<PyBytes>() {
            return Ok(Buf::Bytes(b.clone()));
        }
        let mut view = Box::new(ffi::Py_buffer::new());
        // SAFETY: `obj` is a live object and this thread holds the GIL (we have `obj`'s `'py`);
        // `view` is a zeroed Py_buffer owned by this call. On success the export is released
        // exactly once, by `Drop`, on this thread (`Buf` is not `Send`).
        let rc = unsafe { ffi::PyObject_GetBuffer(obj.as_ptr(), &mut *view, ffi::PyBUF_SIMPLE) };
        if rc != 0 {
            return Err(PyErr::take(obj.py()).unwrap_or_else(|| {
                PyBufferError::new_err("expected a bytes-like object with one contiguous buffer")
            }));
        }
        Ok(Buf::View(view))
    }

    /// Whether the bytes may be read with the GIL released.
    fn immutable(&self) -> bool {
        matches!(self, Buf::Bytes(_))
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Buf::Bytes(b) => b.as_bytes(),
            Buf::View(view) => match usize::try_from(view.len) {
                Ok(len) if len > 0 && !view.buf.is_null() => {
                    // SAFETY (lifetime): the exporter keeps `buf[..len]` allocated, and refuses to
                    // resize it, while the export is held, i.e. while `self` lives, which bounds the
                    // returned borrow.
                    // SAFETY (concurrency): the memory may be writable by others. A `View` slice is
                    // only read while this thread holds the GIL (`may_detach` allows releasing it only
                    // when every input is `bytes`) and no Python code runs while it is borrowed,
                    // so no Python thread writes to it meanwhile. A writer that ignores the GIL
                    // (a C thread that released it, another process sharing the memory) races
                    // with every reader of that memory, hashlib's included; that is documented as
                    // the caller's to avoid.
                    unsafe { std::slice::from_raw_parts(view.buf as *const u8, len) }
                }
                _ => &[],
            },
        }
    }
}

impl Drop for Buf<'_> {
    fn drop(&mut self) {
        if let Buf::View(view) = self {
            // SAFETY: `view` comes from a successful PyObject_GetBuffer and is released once, here,
            // on the thread that holds the GIL (`Buf<'py>` cannot outlive or leave that thread).
            unsafe { ffi::PyBuffer_Release(&mut **view) };
        }
    }
}

fn bufs<'py>(items: &Bound<'py, PyAny>) -> PyResult<Vec<Buf<'py>>> {
    let mut out = Vec::with_capacity(items.len().unwrap_or(0));
    for item in items.try_iter()? {
        out.push(Buf::get(&item?)?);
    }
    Ok(out)
}

/// Whether inputs may be hashed with the GIL released: only when they are all `bytes` (see
/// [`Buf`]), and only when there are at least [`DETACH_THRESHOLD`] bytes, worth the switch.
fn may_detach(held: &[Buf<'_>], total: usize) -> bool {
    total >= DETACH_THRESHOLD && held.iter().all(Buf::immutable)
}

fn digest_of(data: &Bound<'_, PyAny>) -> PyResult<h::Digest> {
    let buf = Buf::get(data)?;
    let bytes = buf.as_slice();
    Ok(if may_detach(std::slice::from_ref(&buf), bytes.len()) {
        data.py().detach(|| h::digest(bytes))
    } else {
        h::digest(bytes)
    })
}

/// BLAKE3 digest (32 bytes) of a bytes-like object (any C-contiguous buffer, not copied).
///
/// Inputs of 1 MiB or more are hashed on several threads. The GIL is released for ``bytes`` of
/// 64 KiB or more; other buffers are hashed with the GIL held, so no Python thread changes them
/// meanwhile.
#[pyfunction]
fn blake3_digest<'py>(data: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    Ok(PyBytes::new(data.py(), &digest_of(data)?))
}

/// Content id: lowercase hex of the BLAKE3 digest (64 characters); see ``blake3_digest``.
#[pyfunction]
fn content_id<'py>(data: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyString>> {
    Ok(PyString::new(data.py(), &h::to_hex(&digest_of(data)?)))
}

/// Merkle root (32 bytes) of a sequence of leaves (RFC 9162 shape, BLAKE3, domain-separated:
/// leaf = BLAKE3(0x00 || leaf), node = BLAKE3(0x01 || left || right); empty tree = BLAKE3(b"")).
#[pyfunction]
fn merkle_root<'py>(py: Python<'py>, leaves: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let held = bufs(leaves)?;
    let slices: Vec<&[u8]> = held.iter().map(Buf::as_slice).collect();
    let root = if may_detach(&held, slices.iter().map(|s| s.len()).sum()) {
        py.detach(|| h::merkle_root(&slices))
    } else {
        h::merkle_root(&slices)
    };
    Ok(PyBytes::new(py, &root))
}

/// Size the one hashing pool for a budget of ``cores`` threads and return its size.
///
/// The pool never exceeds the cores this process may run on, nor ``GAIA_HASH_THREADS`` when that is
/// a positive integer; 1 means everything is hashed on the calling thread. A pool of another size is
/// replaced (its threads exit once the calls using it return). Until this is called, the pool is
/// sized for every core this process may run on.
#[pyfunction]
fn set_hash_threads(cores: i64) -> PyResult<usize> {
    match usize::try_from(cores) {
        Ok(n) if n > 0 => Ok(h::set_pool_threads(n)),
        _ => Err(PyValueError::new_err(format!(
            "hashing needs at least one thread, got cores={cores}; pass a positive count"
        ))),
    }
}

/// Work (fuel) from which a tensor call releases the GIL: below it, the switch costs more than it frees.
const TENSOR_DETACH_COST: u64 = 1 << 16;

/// A writable, C-contiguous buffer export (PyBUF_WRITABLE), released on drop.
struct WritableBuf(Box<ffi::Py_buffer>);

impl WritableBuf {
    fn get(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        let mut view = Box::new(ffi::Py_buffer::new());
        // SAFETY: as in `Buf::get`: a live object, the GIL held, a zeroed Py_buffer owned here and
        // released exactly once by `Drop` on this thread (`WritableBuf` is not `Send`).
        let rc = unsafe { ffi::PyObject_GetBuffer(obj.as_ptr(), &mut *view, ffi::PyBUF_WRITABLE) };
        if rc != 0 {
            return Err(PyErr::take(obj.py()).unwrap_or_else(|| {
                PyBufferError::new_err("expected a writable buffer (the guest memory)")
            }));
        }
        Ok(WritableBuf(view))
    }

    /// The exported bytes.
    ///
    /// SAFETY (lifetime): the exporter keeps `buf[..len]` allocated and unresized while the
    /// export is held, i.e. while `self` lives, which bounds the borrow.
    /// SAFETY (exclusivity): `tensor_call` is documented to require that nothing else reads or
    /// writes the buffer during the call. Its one user, the WASM runner, passes the linear memory
    /// of the guest that made the host call: a wasmtime Store is used by one thread at a time,
    /// and that thread is blocked in this call, so neither the guest nor the runner touches the
    /// memory until it returns (the memory cannot grow meanwhile either: only the guest or the
    /// runner could grow it).
    fn as_mut_slice(&mut self) -> &mut [u8] {
        match usize::try_from(self.0.len) {
            Ok(len) if len > 0 && !self.0.buf.is_null() => unsafe {
                std::slice::from_raw_parts_mut(self.0.buf.cast::<u8>(), len)
            },
            _ => &mut [],
        }
    }
}

impl Drop for WritableBuf {
    fn drop(&mut self) {
        // SAFETY: a successful export, released once, here, on the thread holding the GIL.
        unsafe { ffi::PyBuffer_Release(&mut *self.0) };
    }
}

/// Run one ``gaia_tensor`` function on a guest's linear memory; return its cost in fuel.
///
/// ``op`` is the import name (``gemm``, ``conv2d``, ...), ``args`` its integer arguments in the
/// header's order (axpy's ``alpha`` goes in ``alpha``). The op runs only when its cost is at most
/// ``budget``; the cost is returned either way, so ``cost > budget`` means nothing ran. A bad
/// argument (out of the memory, negative or overflowing size, misaligned, overlapping output)
/// raises ValueError naming it, before anything is written. ``path`` picks a kernel
/// implementation (``tensor_paths()``; all give the same bits), default the fastest.
///
/// The caller must ensure nothing else reads or writes ``memory`` during the call: from a work of
/// 65536 fuel on, it runs with the GIL released.
#[pyfunction]
#[pyo3(signature = (op, memory, args, *, alpha = 0.0, budget = u64::MAX, path = None))]
fn tensor_call(
    py: Python<'_>,
    op: &str,
    memory: &Bound<'_, PyAny>,
    args: Vec<i64>,
    alpha: f32,
    budget: u64,
    path: Option<&str>,
) -> PyResult<u64> {
    let value_err = |e: tensor::TensorError| PyValueError::new_err(e.to_string());
    let op = tensor::Op::parse(op).map_err(value_err)?;
    let path = path
        .map_or(Ok(tensor::Path::best()), tensor::Path::parse)
        .map_err(value_err)?;
    let mut buf = WritableBuf::get(memory)?;
    let prepared = tensor::Prepared::new(buf.as_mut_slice(), op, &args).map_err(value_err)?;
    let cost = prepared.cost();
    if cost > budget {
        return Ok(cost);
    }
    if cost >= TENSOR_DETACH_COST {
        py.detach(|| prepared.run(alpha, path)).map_err(value_err)?;
    } else {
        prepared.run(alpha, path).map_err(value_err)?;
    }
    Ok(cost)
}

/// The ``gaia_tensor`` functions: import name -> WASM parameter types (``i`` i32, ``f`` f32).
#[pyfunction]
fn tensor_signatures() -> Vec<(&'static str, &'static str)> {
    tensor::Op::ALL
        .iter()
        .map(|op| (op.name(), op.params()))
        .collect()
}

/// The tensor kernel paths this CPU can run, slowest first (``scalar`` always).
#[pyfunction]
fn tensor_paths() -> Vec<&'static str> {
    tensor::Path::available()
        .into_iter()
        .map(tensor::Path::name)
        .collect()
}

/// A task key: the caller's own `str` object (no copy on push, the same object back on pop).
impl sched::TaskKey for PyBackedStr {
    fn as_str(&self) -> &str {
        self
    }
}

fn py_key(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<PyBackedStr> {
    let s = obj.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{what} must be str, not {}",
            obj.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })?;
    PyBackedStr::try_from(s.clone())
}

fn sched_err(e: sched::SchedError) -> PyErr {
    match e {
        sched::SchedError::Full(..) => PyOverflowError::new_err(e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    }
}

/// Priority / EDF / fair-share / FIFO scheduler keyed by task id (``str``).
///
/// Pop order:
///
/// 1. Highest ``priority`` first; priority classes are strict.
/// 2. Inside the top class, fair share among the submitters that have items there: the submitter
///    with the smallest virtual time (served / weight) goes next, and each pop adds
///    ``cost / weight`` to its virtual time. A submitter that becomes active (from no queued item to
///    one, in any class) starts at ``max(own virtual time, smallest virtual time among the active
///    submitters)``, so nobody banks credit while idle (stride / virtual-time scheduling, like
///    BOINC's resource-share debt). Ties between submitters: earliest deadline of their head item,
///    then earliest arrival.
/// 3. Inside one submitter and class: earliest deadline first (``None`` = +inf), then FIFO.
///
/// ``remove`` and ``pop_expired`` do not charge the submitter. Batched methods (``push_many``,
/// ``pop_many``, ``pop_expired``) do all their work in one native call. Every method runs
/// holding the GIL, so calls from several threads are serialized.
#[pyclass(module = "gaia_native")]
struct Scheduler {
    inner: sched::Scheduler<PyBackedStr>,
}

#[pymethods]
impl Scheduler {
    #[new]
    fn new() -> Self {
        Scheduler {
            inner: sched::Scheduler::new(),
        }
    }

    /// Queue ``key``. ValueError if it is still queued, the deadline is NaN or the cost is not
    /// finite and >= 0.
    #[pyo3(signature = (key, priority = 0, deadline = None, submitter = "", cost = 1.0))]
    fn push(
        &mut self,
        key: &Bound<'_, PyAny>,
        priority: i64,
        deadline: Option<f64>,
        submitter: &str,
        cost: f64,
    ) -> PyResult<()> {
        let key = py_key(key, "key")?;
        self.inner
            .push(key, priority, deadline, submitter, cost)
            .map_err(sched_err)
    }

    /// Queue many ``(key, priority, deadline, submitter)`` tuples (cost 1.0) in one call.
    /// All-or-nothing: on a duplicate or invalid item nothing is queued.
    fn push_many(&mut self, items: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut batch: Vec<(PyBackedStr, i64, Option<f64>, PyBackedStr)> =
            Vec::with_capacity(items.len().unwrap_or(0));
        for item in items.try_iter()? {
            let item = item?;
            let t = item
                .cast::<PyTuple>()
                .ok()
                .filter(|t| t.len() == 4)
                .ok_or_else(|| {
                    PyTypeError::new_err(format!(
                        "push_many expects (key, priority, deadline, submitter) tuples, got {}",
                        item.repr().map(|r| r.to_string()).unwrap_or_default()
                    ))
                })?;
            batch.push((
                py_key(&t.get_item(0)?, "key")?,
                t.get_item(1)?.extract()?,
                t.get_item(2)?.extract()?,
                py_key(&t.get_item(3)?, "submitter")?,
            ));
        }
        self.inner.push_many(batch).map_err(sched_err)
    }

    /// Remove and return the next task id, or None when empty.
    fn pop(&mut self) -> Option<PyBackedStr> {
        self.inner.pop()
    }

    /// Remove and return up to ``n`` task ids in pop order (none when ``n <= 0``).
    fn pop_many(&mut self, n: i64) -> Vec<PyBackedStr> {
        self.inner
            .pop_many(usize::try_from(n.max(0)).unwrap_or(usize::MAX))
    }

    /// Cancel ``key``; True when it was queued.
    fn remove(&mut self, key: &str) -> bool {
        self.inner.remove(key)
    }

    /// Remove and return every item whose deadline is < ``now``, earliest deadline first.
    fn pop_expired(&mut self, now: f64) -> Vec<PyBackedStr> {
        self.inner.pop_expired(now)
    }

    /// Set a submitter's share weight (finite, > 0; default 1.0).
    fn set_share(&mut self, submitter: &str, weight: f64) -> PyResult<()> {
        self.inner.set_share(submitter, weight).map_err(sched_err)
    }

    /// The submitter's virtual service time (sum of cost / weight, plus catch-up on activation).
    fn served(&self, submitter: &str) -> f64 {
        self.inner.served(submitter)
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __contains__(&self, key: &Bound<'_, PyAny>) -> bool {
        key.cast::<PyString>()
            .ok()
            .and_then(|s| s.to_str().ok().map(|k| self.inner.contains(k)))
            .unwrap_or(false)
    }

    fn __repr__(&self) -> String {
        format!("<gaia_native.Scheduler with {} queued>", self.inner.len())
    }
}

#[pymodule]
fn _gaia_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add(
        "build_profile",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    )?;
    m.add_function(wrap_pyfunction!(blake3_digest, m)?)?;
    m.add_function(wrap_pyfunction!(content_id, m)?)?;
    m.add_function(wrap_pyfunction!(merkle_root, m)?)?;
    m.add_function(wrap_pyfunction!(set_hash_threads, m)?)?;
    m.add_function(wrap_pyfunction!(tensor_call, m)?)?;
    m.add_function(wrap_pyfunction!(tensor_paths, m)?)?;
    m.add_function(wrap_pyfunction!(tensor_signatures, m)?)?;
    m.add_class::<Scheduler>()?;
    Ok(())
}

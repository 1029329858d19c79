//! PyO3 bindings: the private extension module `gaia_native._gaia_native`.

use crate::hashing as h;
use crate::scheduler as sched;
use pyo3::exceptions::{PyBufferError, PyIndexError, PyOSError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};
use std::path::PathBuf;

/// Inputs at least this large are hashed with the GIL released.
const DETACH_THRESHOLD: usize = 64 * 1024;

/// A held, C-contiguous byte view of a Python object (zero-copy). `bytes` objects take a fast path;
/// anything else goes through the buffer protocol (PyBUF_SIMPLE: contiguous, read-only is fine).
struct Buf<'py> {
    _obj: Bound<'py, PyAny>,
    view: Option<Box<ffi::Py_buffer>>,
    ptr: *const u8,
    len: usize,
}

impl<'py> Buf<'py> {
    fn get(obj: &Bound<'py, PyAny>) -> PyResult<Self> {
        if let Ok(b) = obj.cast::<PyBytes>() {
            let s = b.as_bytes();
            return Ok(Buf {
                ptr: s.as_ptr(),
                len: s.len(),
                view: None,
                _obj: obj.clone(),
            });
        }
        let mut view = Box::new(ffi::Py_buffer::new());
        // SAFETY: `view` is a valid, zeroed Py_buffer; on success it is released in Drop.
        let rc = unsafe { ffi::PyObject_GetBuffer(obj.as_ptr(), &mut *view, ffi::PyBUF_SIMPLE) };
        if rc != 0 {
            let err = PyErr::take(obj.py()).unwrap_or_else(|| {
                PyBufferError::new_err("object does not expose a contiguous byte buffer")
            });
            return Err(err);
        }
        let len = view.len.max(0) as usize;
        let ptr = if len == 0 || view.buf.is_null() {
            std::ptr::NonNull::<u8>::dangling().as_ptr() as *const u8
        } else {
            view.buf as *const u8
        };
        Ok(Buf {
            _obj: obj.clone(),
            view: Some(view),
            ptr,
            len,
        })
    }

    fn as_slice(&self) -> &[u8] {
        // SAFETY: the exporter keeps `ptr[..len]` alive and unmoved while the buffer (or the bytes
        // object, which is immutable) is held, which `self` guarantees.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for Buf<'_> {
    fn drop(&mut self) {
        if let Some(view) = self.view.as_mut() {
            // SAFETY: obtained from a successful PyObject_GetBuffer; Buf is dropped while attached.
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

fn threads_arg(threads: i64) -> PyResult<usize> {
    if threads < 0 {
        return Err(PyValueError::new_err(format!(
            "threads must be >= 0 (0 = all cores, 1 = single thread), got {threads}"
        )));
    }
    Ok(threads as usize)
}

fn digest_of(py: Python<'_>, data: &[u8], threads: usize) -> PyResult<h::Digest> {
    let r = if data.len() >= DETACH_THRESHOLD {
        py.detach(|| h::digest_with_threads(data, threads))
    } else {
        h::digest_with_threads(data, threads)
    };
    r.map_err(|e| PyOSError::new_err(e.0))
}

/// BLAKE3 digest (32 bytes) of a bytes-like object.
///
/// Zero-copy for any C-contiguous buffer. The GIL is released for inputs of 64 KiB or more, and
/// inputs of 1 MiB or more are hashed on several threads unless ``threads == 1``
/// (0 = all cores, n = n threads).
#[pyfunction]
#[pyo3(signature = (data, threads = 0))]
fn blake3_digest<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    threads: i64,
) -> PyResult<Bound<'py, PyBytes>> {
    let t = threads_arg(threads)?;
    let buf = Buf::get(data)?;
    let d = digest_of(py, buf.as_slice(), t)?;
    Ok(PyBytes::new(py, &d))
}

/// Content id: lowercase hex of the BLAKE3 digest (64 characters).
///
/// ``threads``: 0 = all cores (default), 1 = single thread, n = n threads; used for inputs >= 1 MiB.
#[pyfunction]
#[pyo3(signature = (data, threads = 0))]
fn content_id<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    threads: i64,
) -> PyResult<Bound<'py, PyString>> {
    let t = threads_arg(threads)?;
    let buf = Buf::get(data)?;
    let d = digest_of(py, buf.as_slice(), t)?;
    Ok(PyString::new(py, &h::to_hex(&d)))
}

/// Content id of a file's bytes (memory-mapped, multi-threaded, GIL released).
#[pyfunction]
fn content_id_file(py: Python<'_>, path: PathBuf) -> PyResult<String> {
    py.detach(|| h::content_id_file(&path))
        .map_err(|e| match e.raw_os_error() {
            // OSError(errno, strerror, filename) picks the subclass (FileNotFoundError, ...) itself.
            Some(code) => {
                let msg = std::io::Error::from_raw_os_error(code).to_string();
                let msg = msg.split(" (os error").next().unwrap_or(&msg).to_owned();
                PyOSError::new_err((code, msg, path.to_string_lossy().into_owned()))
            }
            None => PyErr::from(e),
        })
}

/// Content ids of many (small) items in one call, in order.
#[pyfunction]
fn content_ids<'py>(py: Python<'py>, items: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
    let held = bufs(items)?;
    let slices: Vec<&[u8]> = held.iter().map(|b| b.as_slice()).collect();
    let total: usize = slices.iter().map(|s| s.len()).sum();
    let digests: Vec<h::Digest> = if total >= DETACH_THRESHOLD {
        py.detach(|| {
            use rayon::prelude::*;
            slices
                .par_iter()
                .with_min_len(256)
                .map(|s| h::digest(s))
                .collect()
        })
    } else {
        slices.iter().map(|s| h::digest(s)).collect()
    };
    let mut out = Vec::with_capacity(digests.len());
    for d in &digests {
        out.push(PyString::new(py, &h::to_hex(d)));
    }
    PyList::new(py, out)
}

/// An int argument as i64, or None when it does not fit (such an index is out of range anyway).
fn small_int(v: &Bound<'_, PyAny>) -> PyResult<Option<i64>> {
    match v.extract::<i64>() {
        Ok(x) => Ok(Some(x)),
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyOverflowError>(v.py()) => Ok(None),
        Err(e) => Err(e),
    }
}

fn leaf_digests(py: Python<'_>, leaves: &Bound<'_, PyAny>) -> PyResult<Vec<h::Digest>> {
    let held = bufs(leaves)?;
    let slices: Vec<&[u8]> = held.iter().map(|b| b.as_slice()).collect();
    let total: usize = slices.iter().map(|s| s.len()).sum();
    Ok(if total >= DETACH_THRESHOLD {
        py.detach(|| h::leaf_hashes(&slices))
    } else {
        h::leaf_hashes(&slices)
    })
}

/// Merkle root (32 bytes) of a sequence of leaves (RFC 9162 shape, BLAKE3, domain-separated:
/// leaf = BLAKE3(0x00 || leaf), node = BLAKE3(0x01 || left || right); empty tree = BLAKE3(b"")).
#[pyfunction]
fn merkle_root<'py>(py: Python<'py>, leaves: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let hashes = leaf_digests(py, leaves)?;
    let root = if hashes.len() > 4096 {
        py.detach(|| h::root_from_hashes(hashes))
    } else {
        h::root_from_hashes(hashes)
    };
    Ok(PyBytes::new(py, &root))
}

/// Merkle root where the leaves are consecutive ``chunk_size``-byte chunks of ``data`` (the last
/// one may be short; empty data gives the empty tree's root).
#[pyfunction]
fn merkle_root_chunks<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    chunk_size: i64,
) -> PyResult<Bound<'py, PyBytes>> {
    if chunk_size <= 0 {
        return Err(PyValueError::new_err(format!(
            "chunk_size must be > 0, got {chunk_size}"
        )));
    }
    let buf = Buf::get(data)?;
    let slice = buf.as_slice();
    let cs = chunk_size as usize;
    let root = if slice.len() >= DETACH_THRESHOLD {
        py.detach(|| h::merkle_root_chunks(slice, cs))
    } else {
        h::merkle_root_chunks(slice, cs)
    };
    Ok(PyBytes::new(py, &root))
}

/// RFC 9162 inclusion proof (audit path, bottom-up list of 32-byte hashes) for leaf ``index``.
/// Raises IndexError when ``index`` is out of range.
#[pyfunction]
fn merkle_proof<'py>(
    py: Python<'py>,
    leaves: &Bound<'py, PyAny>,
    index: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyList>> {
    let raw = small_int(index)?;
    let hashes = leaf_digests(py, leaves)?;
    let n = hashes.len();
    let index = raw.unwrap_or(i64::MAX);
    if raw.is_none() || index < 0 || index as u64 >= n as u64 {
        return Err(PyIndexError::new_err(format!(
            "leaf index {index} out of range for a tree of {n} leaves"
        )));
    }
    let path = py
        .detach(|| h::merkle_proof_from_hashes(&hashes, index as usize))
        .expect("in range");
    let items: Vec<Bound<'py, PyBytes>> = path.iter().map(|d| PyBytes::new(py, d)).collect();
    PyList::new(py, items)
}

/// Check an RFC 9162 inclusion proof. Returns False (never raises) for any wrong but well-typed input.
#[pyfunction]
fn merkle_verify(
    root: &Bound<'_, PyAny>,
    leaf: &Bound<'_, PyAny>,
    index: &Bound<'_, PyAny>,
    count: &Bound<'_, PyAny>,
    proof: &Bound<'_, PyAny>,
) -> PyResult<bool> {
    let (index, count) = (small_int(index)?, small_int(count)?);
    let root = Buf::get(root)?;
    let leaf = Buf::get(leaf)?;
    let held = bufs(proof)?;
    let (Some(index), Some(count)) = (index, count) else {
        return Ok(false);
    };
    if index < 0 || count <= 0 {
        return Ok(false);
    }
    let slices: Vec<&[u8]> = held.iter().map(|b| b.as_slice()).collect();
    Ok(h::merkle_verify(
        root.as_slice(),
        leaf.as_slice(),
        index as u64,
        count as u64,
        &slices,
    ))
}

/// A task key held as the caller's own `str` object: no copy on push and the same object back on
/// pop. Its text is read from the UTF-8 form that CPython caches inside the (immutable) string.
struct PyKey {
    obj: Py<PyString>,
    ptr: *const u8,
    len: usize,
}

// SAFETY: `ptr[..len]` is immutable data owned by `obj`, which PyKey keeps alive; Py<T> itself is
// Send + Sync and every use of the scheduler goes through PyO3's borrow checking.
unsafe impl Send for PyKey {}
unsafe impl Sync for PyKey {}

impl PyKey {
    fn new(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Self> {
        let s = obj.cast::<PyString>().map_err(|_| {
            pyo3::exceptions::PyTypeError::new_err(format!(
                "{what} must be str, not {}",
                obj.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        })?;
        let mut len: ffi::Py_ssize_t = 0;
        // SAFETY: `s` is a str; the returned buffer lives as long as the object.
        let ptr = unsafe { ffi::PyUnicode_AsUTF8AndSize(s.as_ptr(), &mut len) };
        if ptr.is_null() {
            return Err(PyErr::fetch(obj.py()));
        }
        Ok(PyKey {
            obj: s.clone().unbind(),
            ptr: ptr as *const u8,
            len: len as usize,
        })
    }
}

impl sched::TaskKey for PyKey {
    fn as_str(&self) -> &str {
        // SAFETY: CPython's UTF-8 form of a str is valid UTF-8 and lives as long as `obj`.
        unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(self.ptr, self.len)) }
    }
}

impl AsRef<str> for PyKey {
    fn as_ref(&self) -> &str {
        sched::TaskKey::as_str(self)
    }
}

fn keys_list<'py>(py: Python<'py>, keys: Vec<PyKey>) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, keys.into_iter().map(|k| k.obj.into_bound(py)))
}

fn sched_err(e: sched::SchedError) -> PyErr {
    PyValueError::new_err(e.to_string())
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
    inner: sched::Scheduler<PyKey>,
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
        let key = PyKey::new(key, "key")?;
        self.inner
            .push(key, priority, deadline, submitter, cost)
            .map_err(sched_err)
    }

    /// Queue many ``(key, priority, deadline, submitter)`` tuples (cost 1.0) in one call.
    /// All-or-nothing: on a duplicate or invalid item nothing is queued.
    fn push_many(&mut self, items: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut batch: Vec<(PyKey, i64, Option<f64>, PyKey)> =
            Vec::with_capacity(items.len().unwrap_or(0));
        for item in items.try_iter()? {
            let item = item?;
            let t = item
                .cast::<PyTuple>()
                .ok()
                .filter(|t| t.len() == 4)
                .ok_or_else(|| {
                    pyo3::exceptions::PyTypeError::new_err(format!(
                        "push_many expects (key, priority, deadline, submitter) tuples, got {}",
                        item.repr().map(|r| r.to_string()).unwrap_or_default()
                    ))
                })?;
            batch.push((
                PyKey::new(&t.get_item(0)?, "key")?,
                t.get_item(1)?.extract()?,
                t.get_item(2)?.extract()?,
                PyKey::new(&t.get_item(3)?, "submitter")?,
            ));
        }
        self.inner.push_many(batch).map_err(sched_err)
    }

    /// Remove and return the next task id, or None when empty.
    fn pop<'py>(&mut self, py: Python<'py>) -> Option<Bound<'py, PyString>> {
        self.inner.pop().map(|k| k.obj.into_bound(py))
    }

    /// Remove and return up to ``n`` task ids in pop order.
    fn pop_many<'py>(&mut self, py: Python<'py>, n: i64) -> PyResult<Bound<'py, PyList>> {
        keys_list(py, self.inner.pop_many(n.max(0) as usize))
    }

    /// Cancel ``key``; True when it was queued.
    fn remove(&mut self, key: &str) -> bool {
        self.inner.remove(key)
    }

    /// Remove and return every item whose deadline is < ``now``, earliest deadline first.
    fn pop_expired<'py>(&mut self, py: Python<'py>, now: f64) -> PyResult<Bound<'py, PyList>> {
        keys_list(py, self.inner.pop_expired(now))
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
    m.add_function(wrap_pyfunction!(content_id_file, m)?)?;
    m.add_function(wrap_pyfunction!(content_ids, m)?)?;
    m.add_function(wrap_pyfunction!(merkle_root, m)?)?;
    m.add_function(wrap_pyfunction!(merkle_root_chunks, m)?)?;
    m.add_function(wrap_pyfunction!(merkle_proof, m)?)?;
    m.add_function(wrap_pyfunction!(merkle_verify, m)?)?;
    m.add_class::<Scheduler>()?;
    Ok(())
}

//! BLAKE3 content ids and RFC 9162-style Merkle roots (pure Rust, no Python), through the public
//! `blake3` API only.
//!
//! * content id: lowercase hex of the 32-byte BLAKE3 digest.
//! * Merkle tree (RFC 9162 section 2.1, with BLAKE3 in place of SHA-256):
//!   leaf = BLAKE3(0x00 || leaf), node = BLAKE3(0x01 || left || right), the tree is split at the largest
//!   power of two smaller than the leaf count, and the empty tree's root is BLAKE3("").
//!
//! Large inputs are hashed on one process-wide pool of threads, sized by [`set_pool_threads`]
//! (the node's core budget) or, until then, by the cores this process may run on; either way capped
//! by [`THREADS_ENV`].

use rayon::prelude::*;
use std::sync::{Arc, Mutex, PoisonError};

/// A 32-byte BLAKE3 digest.
pub type Digest = [u8; 32];

/// Inputs at least this large are hashed on the pool's threads.
pub const PARALLEL_BYTES: usize = 1 << 20;
/// Total leaf bytes from which a Merkle tree is hashed on the pool.
const PARALLEL_LEAF_BYTES: usize = 1 << 18;
/// Pool tasks per pool thread for one Merkle tree: enough that a thread slowed by other processes
/// hands its share to the others.
const TASKS_PER_THREAD: usize = 16;
/// The fewest leaf bytes one pool task hashes, so that each task outweighs its scheduling.
const MIN_TASK_BYTES: usize = 64 << 10;
const LEAF_PREFIX: u8 = 0x00;
const NODE_PREFIX: u8 = 0x01;

/// The environment variable that caps the hashing pool's threads.
pub const THREADS_ENV: &str = "GAIA_HASH_THREADS";

/// Threads of the hashing pool: the value of [`THREADS_ENV`] when it is a positive integer (at most
/// `cores`), else `cores`, the cores this process may use.
pub fn pool_threads(setting: Option<&str>, cores: usize) -> usize {
    setting
        .and_then(|s| s.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .map_or(cores, |n| n.min(cores))
}

/// The hashing pool as sized last: `threads`, and the pool itself when `threads > 1` and it started.
struct HashPool {
    threads: usize,
    pool: Option<Arc<rayon::ThreadPool>>,
}

/// The one hashing pool; `None` until first sized.
static POOL: Mutex<Option<HashPool>> = Mutex::new(None);

fn start_pool(threads: usize) -> HashPool {
    let pool = (threads > 1)
        .then(|| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("gaia-hash-{i}"))
                .build()
                .ok()
        })
        .flatten()
        .map(Arc::new);
    HashPool {
        threads: if pool.is_some() { threads } else { 1 },
        pool,
    }
}

/// Threads for a budget of `cores`: at least 1, at most the cores this process may run on, capped
/// by [`THREADS_ENV`].
fn threads_for(cores: usize) -> usize {
    let cores = cores.clamp(
        1,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    pool_threads(std::env::var(THREADS_ENV).ok().as_deref(), cores)
}

/// Size the hashing pool for a budget of `cores` (see [`threads_for`]) and return its threads
/// (1: everything is hashed on the calling thread). A pool of another size is replaced; its threads
/// exit once the calls that use it return.
pub fn set_pool_threads(cores: usize) -> usize {
    let threads = threads_for(cores);
    let mut slot = POOL.lock().unwrap_or_else(PoisonError::into_inner);
    match slot.as_ref() {
        Some(current) if current.threads == threads => threads,
        _ => slot.insert(start_pool(threads)).threads,
    }
}

/// The hashing pool, started on first use for every core this process may use when
/// [`set_pool_threads`] was not called; `None` when it has a single thread or could not start
/// (then everything is hashed on the calling thread).
fn pool() -> Option<Arc<rayon::ThreadPool>> {
    let mut slot = POOL.lock().unwrap_or_else(PoisonError::into_inner);
    slot.get_or_insert_with(|| start_pool(threads_for(usize::MAX)))
        .pool
        .clone()
}

/// BLAKE3 digest of `data`; inputs of at least [`PARALLEL_BYTES`] are hashed on the pool.
pub fn digest(data: &[u8]) -> Digest {
    match (data.len() >= PARALLEL_BYTES).then(pool).flatten() {
        Some(pool) => pool.install(|| {
            let mut hasher = blake3::Hasher::new();
            hasher.update_rayon(data);
            *hasher.finalize().as_bytes()
        }),
        None => *blake3::hash(data).as_bytes(),
    }
}

/// Lowercase hex of a digest (64 characters, on the stack).
pub fn to_hex(d: &Digest) -> impl std::ops::Deref<Target = str> {
    blake3::Hash::from_bytes(*d).to_hex()
}

/// Content id (hex BLAKE3) of `data`.
pub fn content_id(data: &[u8]) -> String {
    to_hex(&digest(data)).to_string()
}

/// Merkle leaf hash: BLAKE3(0x00 || leaf).
pub fn leaf_hash(leaf: &[u8]) -> Digest {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[LEAF_PREFIX]);
    hasher.update(leaf);
    *hasher.finalize().as_bytes()
}

/// Merkle interior node hash: BLAKE3(0x01 || left || right).
pub fn node_hash(left: &Digest, right: &Digest) -> Digest {
    let mut buf = [0u8; 65];
    buf[0] = NODE_PREFIX;
    buf[1..33].copy_from_slice(left);
    buf[33..].copy_from_slice(right);
    *blake3::hash(&buf).as_bytes()
}

/// Root of the empty tree: BLAKE3("").
pub fn empty_root() -> Digest {
    *blake3::hash(b"").as_bytes()
}

/// One node of the next level up: the parent of a pair, or an odd last node carried up unchanged.
fn parent(pair: &[Digest]) -> Digest {
    match pair {
        [left, right] => node_hash(left, right),
        _ => pair[0],
    }
}

/// Root over the leaf hashes of one tree level, reduced in place: bottom-up pairing with an odd
/// last node carried up unchanged, which is the same tree as RFC 9162's split at the largest power
/// of two below n.
fn reduce(mut level: Vec<Digest>) -> Digest {
    if level.is_empty() {
        return empty_root();
    }
    while level.len() > 1 {
        // Node i of the next level only reads nodes 2i and 2i + 1 of this one.
        let next = level.len().div_ceil(2);
        for i in 0..next {
            level[i] = parent(&level[2 * i..(2 * i + 2).min(level.len())]);
        }
        level.truncate(next);
    }
    level[0]
}

/// Merkle root of `leaves` on the calling thread.
fn serial_root<T: AsRef<[u8]>>(leaves: &[T]) -> Digest {
    reduce(leaves.iter().map(|l| leaf_hash(l.as_ref())).collect())
}

/// Leaves per pool task: a power of two, so that every task but the last hashes a whole subtree;
/// about [`TASKS_PER_THREAD`] tasks per thread, each of at least [`MIN_TASK_BYTES`] on average.
fn subtree_leaves(leaves: usize, bytes: usize, threads: usize) -> usize {
    let by_count = leaves.div_ceil(threads * TASKS_PER_THREAD);
    let by_bytes = MIN_TASK_BYTES.div_ceil((bytes / leaves).max(1));
    by_count.max(by_bytes).next_power_of_two()
}

/// Merkle root of `leaves`. From [`PARALLEL_LEAF_BYTES`] in all, the pool's threads each hash
/// aligned runs of 2^k leaves up to their subtree's root, and the roots are joined on the calling
/// thread: level k of the bottom-up tree is exactly those roots, so the tree is unchanged.
pub fn merkle_root<T: AsRef<[u8]> + Sync>(leaves: &[T]) -> Digest {
    if leaves.len() < 2 {
        return serial_root(leaves);
    }
    let bytes: usize = leaves.iter().map(|l| l.as_ref().len()).sum();
    match (bytes >= PARALLEL_LEAF_BYTES).then(pool).flatten() {
        Some(pool) => root_on(&pool, leaves, bytes),
        None => serial_root(leaves),
    }
}

/// Merkle root of at least two `leaves` (`bytes` in all) on `pool`, as [`merkle_root`] describes.
fn root_on<T: AsRef<[u8]> + Sync>(pool: &rayon::ThreadPool, leaves: &[T], bytes: usize) -> Digest {
    let run = subtree_leaves(leaves.len(), bytes, pool.current_num_threads());
    reduce(pool.install(|| leaves.par_chunks(run).map(serial_root).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn largest_pow2_below(n: usize) -> usize {
        1 << (usize::BITS - 1 - (n - 1).leading_zeros())
    }

    /// RFC 9162's recursive definition, written independently of the bottom-up code.
    fn rfc_root(leaves: &[Vec<u8>]) -> Digest {
        match leaves.len() {
            0 => empty_root(),
            1 => leaf_hash(&leaves[0]),
            n => {
                let k = largest_pow2_below(n);
                node_hash(&rfc_root(&leaves[..k]), &rfc_root(&leaves[k..]))
            }
        }
    }

    #[test]
    fn bottom_up_equals_recursive_definition() {
        for n in 0..70usize {
            let leaves: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; i % 5]).collect();
            assert_eq!(merkle_root(&leaves), rfc_root(&leaves), "n={n}");
        }
    }

    #[test]
    fn pool_paths_equal_the_definition() {
        // Enough leaf bytes and nodes for the parallel paths (when the machine has 2+ cores).
        let leaves: Vec<Vec<u8>> = (0..5000usize)
            .map(|i| (0..70).map(|j| ((i * 7 + j) % 251) as u8).collect())
            .collect();
        assert_eq!(merkle_root(&leaves), rfc_root(&leaves));
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(digest(&big), *blake3::hash(&big).as_bytes());
    }

    #[test]
    fn subtrees_on_a_pool_equal_the_definition() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        for n in [2usize, 3, 33, 100, 257, 1000] {
            let leaves: Vec<Vec<u8>> = (0..n)
                .map(|i| vec![(i % 251) as u8; 1500 + (i % 7) * 100])
                .collect();
            let bytes = leaves.iter().map(Vec::len).sum();
            assert!(
                n < 100 || subtree_leaves(n, bytes, 3) < n,
                "n={n}: one task only"
            );
            assert_eq!(root_on(&pool, &leaves, bytes), rfc_root(&leaves), "n={n}");
        }
    }

    #[test]
    fn subtree_runs_are_powers_of_two_that_do_real_work() {
        for (leaves, bytes, threads) in
            [(65_536, 64 << 20, 2), (5000, 350_000, 2), (64, 16 << 20, 8)]
        {
            let run = subtree_leaves(leaves, bytes, threads);
            assert!(run.is_power_of_two(), "{run}");
            assert!(run * (bytes / leaves) >= MIN_TASK_BYTES, "{run}");
            assert!(leaves.div_ceil(run) <= threads * TASKS_PER_THREAD, "{run}");
        }
        assert_eq!(subtree_leaves(65_536, 64 << 20, 2), 2048);
        assert_eq!(subtree_leaves(64, 16 << 20, 2), 2); // 256 KiB blob chunks: 32 tasks of 512 KiB
        assert!(subtree_leaves(3, 10, 2) >= 3); // tiny leaves: one task
    }

    #[test]
    fn pool_size_follows_the_setting_within_the_cores() {
        assert_eq!(pool_threads(None, 8), 8);
        assert_eq!(pool_threads(Some("2"), 8), 2);
        assert_eq!(pool_threads(Some(" 3 "), 8), 3);
        assert_eq!(pool_threads(Some("64"), 8), 8);
        for bad in ["0", "-1", "", "many", "1.5"] {
            assert_eq!(pool_threads(Some(bad), 4), 4, "{bad:?}");
        }
    }
}

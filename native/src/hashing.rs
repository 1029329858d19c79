//! BLAKE3 content ids and RFC 9162-style Merkle roots (pure Rust, no Python), through the public
//! `blake3` API only.
//!
//! * content id: lowercase hex of the 32-byte BLAKE3 digest.
//! * Merkle tree (RFC 9162 section 2.1, with BLAKE3 in place of SHA-256):
//!   leaf = BLAKE3(0x00 || leaf), node = BLAKE3(0x01 || left || right), the tree is split at the largest
//!   power of two smaller than the leaf count, and the empty tree's root is BLAKE3("").
//!
//! Large inputs are hashed on one process-wide pool of threads (see [`pool_threads`]).

use rayon::prelude::*;
use std::sync::OnceLock;

/// A 32-byte BLAKE3 digest.
pub type Digest = [u8; 32];

/// Inputs at least this large are hashed on the pool's threads.
pub const PARALLEL_BYTES: usize = 1 << 20;
/// Total leaf bytes from which Merkle leaves are hashed on the pool.
const PARALLEL_LEAF_BYTES: usize = 1 << 18;
/// Tree levels with at least this many nodes are hashed on the pool.
const PARALLEL_NODES: usize = 1 << 12;
const LEAF_PREFIX: u8 = 0x00;
const NODE_PREFIX: u8 = 0x01;

/// The environment variable that caps the hashing pool's threads.
pub const THREADS_ENV: &str = "GAIA_HASH_THREADS";

/// Threads of the hashing pool: the value of [`THREADS_ENV`] when it is a positive integer (at most
/// `cores`), else `cores`, the cores this process may run on.
pub fn pool_threads(setting: Option<&str>, cores: usize) -> usize {
    setting
        .and_then(|s| s.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .map_or(cores, |n| n.min(cores))
}

/// The one hashing pool, started on first use; `None` when it would have a single thread or could
/// not start (then everything is hashed on the calling thread).
fn pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = pool_threads(std::env::var(THREADS_ENV).ok().as_deref(), cores);
        (threads > 1)
            .then(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("gaia-hash-{i}"))
                    .build()
                    .ok()
            })
            .flatten()
    })
    .as_ref()
}

/// BLAKE3 digest of `data`; inputs of at least [`PARALLEL_BYTES`] are hashed on the pool.
pub fn digest(data: &[u8]) -> Digest {
    match pool() {
        Some(pool) if data.len() >= PARALLEL_BYTES => pool.install(|| {
            let mut hasher = blake3::Hasher::new();
            hasher.update_rayon(data);
            *hasher.finalize().as_bytes()
        }),
        _ => *blake3::hash(data).as_bytes(),
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

/// Hash every leaf, on the pool when there are at least [`PARALLEL_LEAF_BYTES`] in all.
pub fn leaf_hashes<T: AsRef<[u8]> + Sync>(leaves: &[T]) -> Vec<Digest> {
    let total: usize = leaves.iter().map(|l| l.as_ref().len()).sum();
    match pool() {
        Some(pool) if total >= PARALLEL_LEAF_BYTES && leaves.len() > 1 => pool.install(|| {
            leaves
                .par_iter()
                .with_min_len(16)
                .map(|l| leaf_hash(l.as_ref()))
                .collect()
        }),
        _ => leaves.iter().map(|l| leaf_hash(l.as_ref())).collect(),
    }
}

/// One node of the next level up: the parent of a pair, or an odd last node carried up unchanged.
fn parent(pair: &[Digest]) -> Digest {
    match pair {
        [left, right] => node_hash(left, right),
        _ => pair[0],
    }
}

/// Root over already-hashed leaves. Bottom-up pairing with the odd last node carried up unchanged,
/// which is the same tree as RFC 9162's split at the largest power of two below n.
pub fn root_from_hashes(mut level: Vec<Digest>) -> Digest {
    if level.is_empty() {
        return empty_root();
    }
    while level.len() > 1 {
        match pool() {
            Some(pool) if level.len() >= PARALLEL_NODES => {
                level = pool.install(|| level.par_chunks(2).with_min_len(64).map(parent).collect());
            }
            _ => {
                // In place: node i of the next level only reads nodes 2i and 2i + 1 of this one.
                let next = level.len().div_ceil(2);
                for i in 0..next {
                    level[i] = parent(&level[2 * i..(2 * i + 2).min(level.len())]);
                }
                level.truncate(next);
            }
        }
    }
    level[0]
}

/// Merkle root of `leaves`.
pub fn merkle_root<T: AsRef<[u8]> + Sync>(leaves: &[T]) -> Digest {
    root_from_hashes(leaf_hashes(leaves))
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

//! BLAKE3 content ids and RFC 9162-style Merkle trees (pure Rust, no Python).
//!
//! * content id: lowercase hex of the 32-byte BLAKE3 digest.
//! * Merkle tree (RFC 9162 section 2.1, with BLAKE3 in place of SHA-256):
//!   leaf = BLAKE3(0x00 || leaf), node = BLAKE3(0x01 || left || right), the tree is split at the largest
//!   power of two smaller than the leaf count, and the empty tree's root is BLAKE3("").

use rayon::prelude::*;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

/// A 32-byte BLAKE3 digest.
pub type Digest = [u8; 32];

/// Inputs at least this large are hashed with the multi-threaded (rayon) BLAKE3 tree when allowed.
pub const RAYON_THRESHOLD: usize = 1 << 20;
/// Total leaf bytes above which Merkle leaves are hashed in parallel.
const PAR_LEAVES_BYTES: usize = 1 << 18;
const LEAF_PREFIX: u8 = 0x00;
const NODE_PREFIX: u8 = 0x01;

/// Error for a thread count that is not a valid choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadsError(pub String);

fn pool_for(threads: usize) -> Result<Arc<rayon::ThreadPool>, ThreadsError> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    let mut pools = POOLS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(pool) = pools.get(&threads) {
        return Ok(pool.clone());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("gaia-hash-{i}"))
        .build()
        .map_err(|e| ThreadsError(format!("cannot start a {threads}-thread hashing pool: {e}")))?;
    let pool = Arc::new(pool);
    pools.insert(threads, pool.clone());
    Ok(pool)
}

/// BLAKE3 digest of `data`. `threads`: 0 = all cores, 1 = this thread only, n = a pool of n threads.
/// Multi-threading is used only for inputs of at least [`RAYON_THRESHOLD`] bytes.
pub fn digest_with_threads(data: &[u8], threads: usize) -> Result<Digest, ThreadsError> {
    if threads == 1 || data.len() < RAYON_THRESHOLD {
        return Ok(*blake3::hash(data).as_bytes());
    }
    let run = || {
        let mut h = blake3::Hasher::new();
        h.update_rayon(data);
        *h.finalize().as_bytes()
    };
    if threads == 0 {
        Ok(run())
    } else {
        Ok(pool_for(threads)?.install(run))
    }
}

/// Single-threaded BLAKE3 digest.
pub fn digest(data: &[u8]) -> Digest {
    *blake3::hash(data).as_bytes()
}

/// Lowercase hex of a digest (64 characters).
pub fn to_hex(d: &Digest) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for b in d {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
    out
}

/// Content id (hex BLAKE3) of `data`, single-threaded.
pub fn content_id(data: &[u8]) -> String {
    to_hex(&digest(data))
}

/// Content id of a file, memory-mapped and hashed on all cores when large (read otherwise).
pub fn content_id_file(path: &Path) -> std::io::Result<String> {
    let mut h = blake3::Hasher::new();
    h.update_mmap_rayon(path)?;
    Ok(h.finalize().to_hex().to_string())
}

/// Merkle leaf hash: BLAKE3(0x00 || leaf).
pub fn leaf_hash(leaf: &[u8]) -> Digest {
    let mut h = blake3::Hasher::new();
    h.update(&[LEAF_PREFIX]);
    h.update(leaf);
    *h.finalize().as_bytes()
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
    digest(b"")
}

/// Hash every leaf (in parallel when the total is large).
pub fn leaf_hashes<T: AsRef<[u8]> + Sync>(leaves: &[T]) -> Vec<Digest> {
    let total: usize = leaves.iter().map(|l| l.as_ref().len()).sum();
    let mut out = vec![[0u8; 32]; leaves.len()];
    if total >= PAR_LEAVES_BYTES && leaves.len() > 1 {
        out.par_chunks_mut(GROUP)
            .zip(leaves.par_chunks(GROUP))
            .for_each(|(o, l)| simd::leaf_group(l, o));
    } else {
        for (o, l) in out.chunks_mut(GROUP).zip(leaves.chunks(GROUP)) {
            simd::leaf_group(l, o);
        }
    }
    out
}

/// Leaves hashed per task: enough to fill the widest SIMD lanes several times.
const GROUP: usize = 64;

/// Many-input BLAKE3 for equal-length leaves and for interior nodes, using the blake3 crate's
/// SIMD `hash_many` (16 inputs at a time on AVX-512, 8 on AVX2) instead of one input at a time.
/// It builds exactly the BLAKE3 tree of each input (see the spec, section 2), so results equal
/// `blake3::hash`; the golden vectors and the tests below check that.
///
/// `blake3::platform` is the crate's unstable (doc-hidden) benchmark API, hence the exact version
/// pin in Cargo.toml.
mod simd {
    use super::{leaf_hash, Digest, LEAF_PREFIX, NODE_PREFIX};
    use blake3::platform::Platform;
    use blake3::IncrementCounter;
    use std::sync::OnceLock;

    const IV: [u32; 8] = [
        0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB,
        0x5BE0CD19,
    ];
    const CHUNK_START: u8 = 1;
    const CHUNK_END: u8 = 2;
    const PARENT: u8 = 4;
    const ROOT: u8 = 8;
    const CHUNK: usize = 1024;
    const BLOCK: usize = 64;

    fn platform() -> Platform {
        static P: OnceLock<Platform> = OnceLock::new();
        *P.get_or_init(Platform::detect)
    }

    fn words(b: &[u8; 32]) -> [u32; 8] {
        std::array::from_fn(|i| u32::from_le_bytes(b[4 * i..4 * i + 4].try_into().unwrap()))
    }

    fn bytes(w: &[u32; 8]) -> Digest {
        let mut out = [0u8; 32];
        for (i, x) in w.iter().enumerate() {
            out[4 * i..4 * i + 4].copy_from_slice(&x.to_le_bytes());
        }
        out
    }

    /// Chaining value of one chunk (1..=1024 bytes, not the root) at chunk index `counter`.
    fn chunk_cv(p: Platform, data: &[u8], counter: u64) -> [u32; 8] {
        let mut cv = IV;
        let n = data.len().div_ceil(BLOCK).max(1);
        for (i, blk) in data.chunks(BLOCK).enumerate() {
            let mut b = [0u8; BLOCK];
            b[..blk.len()].copy_from_slice(blk);
            let mut flags = if i == 0 { CHUNK_START } else { 0 };
            if i == n - 1 {
                flags |= CHUNK_END;
            }
            p.compress_in_place(&mut cv, &b, blk.len() as u8, counter, flags);
        }
        cv
    }

    fn parent(p: Platform, l: &[u32; 8], r: &[u32; 8], flags: u8) -> [u32; 8] {
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(&bytes(l));
        block[32..].copy_from_slice(&bytes(r));
        let mut cv = IV;
        p.compress_in_place(&mut cv, &block, 64, 0, PARENT | flags);
        cv
    }

    /// BLAKE3 root over chunk chaining values (>= 2): split at the largest power of two below n.
    fn tree(p: Platform, cvs: &[[u32; 8]], root: bool) -> [u32; 8] {
        if cvs.len() == 1 {
            return cvs[0];
        }
        let k = 1 << (usize::BITS - 1 - (cvs.len() - 1).leading_zeros());
        let l = tree(p, &cvs[..k], false);
        let r = tree(p, &cvs[k..], false);
        parent(p, &l, &r, if root { ROOT } else { 0 })
    }

    /// Leaf hashes for a group of leaves into `out`.
    pub(super) fn leaf_group<T: AsRef<[u8]>>(leaves: &[T], out: &mut [Digest]) {
        let len = leaves.first().map_or(0, |l| l.as_ref().len());
        let uniform = leaves.len() > 1 && leaves.iter().all(|l| l.as_ref().len() == len);
        // Messages of one chunk (prefix + leaf <= 1024 bytes) gain nothing from this path.
        if !uniform || len < CHUNK {
            for (o, l) in out.iter_mut().zip(leaves) {
                *o = leaf_hash(l.as_ref());
            }
            return;
        }
        let p = platform();
        let m = len + 1; // message = 0x00 || leaf
        let chunks = m.div_ceil(CHUNK);
        let n = leaves.len();
        // cvs[leaf * chunks + j]
        let mut cvs = vec![[0u32; 8]; n * chunks];
        let mut cv_bytes = vec![0u8; 32 * n];
        // Chunk 0 of every message, shifted by the prefix byte: copy into contiguous blocks.
        let mut first: Vec<[u8; CHUNK]> = vec![[0u8; CHUNK]; n];
        for (f, l) in first.iter_mut().zip(leaves) {
            f[0] = LEAF_PREFIX;
            f[1..].copy_from_slice(&l.as_ref()[..CHUNK - 1]);
        }
        let refs: Vec<&[u8; CHUNK]> = first.iter().collect();
        p.hash_many(
            &refs,
            &IV,
            0,
            IncrementCounter::No,
            0,
            CHUNK_START,
            CHUNK_END,
            &mut cv_bytes,
        );
        for i in 0..n {
            cvs[i * chunks] = words(cv_bytes[32 * i..32 * i + 32].try_into().unwrap());
        }
        // Full middle chunks j = 1..chunks-1 are contiguous in the leaf itself (offset by one).
        for j in 1..chunks - 1 {
            let refs: Vec<&[u8; CHUNK]> = leaves
                .iter()
                .map(|l| {
                    l.as_ref()[CHUNK * j - 1..CHUNK * (j + 1) - 1]
                        .try_into()
                        .unwrap()
                })
                .collect();
            p.hash_many(
                &refs,
                &IV,
                j as u64,
                IncrementCounter::No,
                0,
                CHUNK_START,
                CHUNK_END,
                &mut cv_bytes,
            );
            for i in 0..n {
                cvs[i * chunks + j] = words(cv_bytes[32 * i..32 * i + 32].try_into().unwrap());
            }
        }
        let last = chunks - 1;
        for (i, l) in leaves.iter().enumerate() {
            let tail = &l.as_ref()[CHUNK * last - 1..];
            cvs[i * chunks + last] = chunk_cv(p, tail, last as u64);
            out[i] = bytes(&tree(p, &cvs[i * chunks..(i + 1) * chunks], true));
        }
    }

    /// `out[i] = BLAKE3(0x01 || pairs[2i] || pairs[2i+1])`: the first 64-byte block of every node in
    /// one SIMD pass, then the 1-byte final block each.
    pub(super) fn node_group(pairs: &[Digest], out: &mut [Digest]) {
        let p = platform();
        let n = out.len();
        let mut blocks: Vec<[u8; BLOCK]> = vec![[0u8; BLOCK]; n];
        for (i, b) in blocks.iter_mut().enumerate() {
            b[0] = NODE_PREFIX;
            b[1..33].copy_from_slice(&pairs[2 * i]);
            b[33..].copy_from_slice(&pairs[2 * i + 1][..31]);
        }
        let refs: Vec<&[u8; BLOCK]> = blocks.iter().collect();
        let mut cv_bytes = vec![0u8; 32 * n];
        p.hash_many(
            &refs,
            &IV,
            0,
            IncrementCounter::No,
            0,
            CHUNK_START,
            0,
            &mut cv_bytes,
        );
        for i in 0..n {
            let mut cv = words(cv_bytes[32 * i..32 * i + 32].try_into().unwrap());
            let mut last = [0u8; BLOCK];
            last[0] = pairs[2 * i + 1][31];
            p.compress_in_place(&mut cv, &last, 1, 0, CHUNK_END | ROOT);
            out[i] = bytes(&cv);
        }
    }
}

/// Root over already-hashed leaves. Bottom-up pairing with the odd last node carried up unchanged,
/// which is the same tree as RFC 9162's split at the largest power of two below n.
pub fn root_from_hashes(mut level: Vec<Digest>) -> Digest {
    if level.is_empty() {
        return empty_root();
    }
    let mut next: Vec<Digest> = Vec::with_capacity(level.len() / 2);
    while level.len() > 1 {
        let n = level.len();
        next.clear();
        next.resize(n / 2, [0u8; 32]);
        let pairs = &level[..n / 2 * 2];
        if n >= 4 * GROUP {
            next.par_chunks_mut(GROUP)
                .zip(pairs.par_chunks(2 * GROUP))
                .for_each(|(o, p)| simd::node_group(p, o));
        } else {
            simd::node_group(pairs, &mut next);
        }
        if n % 2 == 1 {
            next.push(level[n - 1]);
        }
        std::mem::swap(&mut level, &mut next);
    }
    level[0]
}

/// Merkle root of `leaves`.
pub fn merkle_root<T: AsRef<[u8]> + Sync>(leaves: &[T]) -> Digest {
    root_from_hashes(leaf_hashes(leaves))
}

/// Merkle root where the leaves are consecutive `chunk_size`-byte chunks of `data` (the last may be
/// short; empty data is the empty tree). `chunk_size` must be > 0.
pub fn merkle_root_chunks(data: &[u8], chunk_size: usize) -> Digest {
    assert!(chunk_size > 0, "chunk_size must be > 0");
    let chunks: Vec<&[u8]> = data.chunks(chunk_size).collect();
    merkle_root(&chunks)
}

fn largest_pow2_below(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

fn subtree_root(hashes: &[Digest]) -> Digest {
    root_from_hashes(hashes.to_vec())
}

/// RFC 9162 inclusion proof (audit path) for leaf `index`, or `None` when out of range.
pub fn merkle_proof_from_hashes(hashes: &[Digest], index: usize) -> Option<Vec<Digest>> {
    if index >= hashes.len() {
        return None;
    }
    let mut path = Vec::new();
    let (mut lo, mut hi, mut m) = (0usize, hashes.len(), index);
    // Walk down from the root; siblings are collected top-down, the path is bottom-up.
    while hi - lo > 1 {
        let k = largest_pow2_below(hi - lo);
        if m < k {
            path.push(subtree_root(&hashes[lo + k..hi]));
            hi = lo + k;
        } else {
            path.push(subtree_root(&hashes[lo..lo + k]));
            lo += k;
            m -= k;
        }
    }
    path.reverse();
    Some(path)
}

/// RFC 9162 inclusion proof for leaf `index` of `leaves`, or `None` when out of range.
pub fn merkle_proof<T: AsRef<[u8]> + Sync>(leaves: &[T], index: usize) -> Option<Vec<Digest>> {
    if index >= leaves.len() {
        return None;
    }
    merkle_proof_from_hashes(&leaf_hashes(leaves), index)
}

/// RFC 9162 section 2.1.3.2 inclusion-proof verification. Never panics; wrong input gives `false`.
pub fn merkle_verify(root: &[u8], leaf: &[u8], index: u64, count: u64, proof: &[&[u8]]) -> bool {
    if root.len() != 32 || index >= count || proof.iter().any(|p| p.len() != 32) {
        return false;
    }
    let (mut fnode, mut snode) = (index, count - 1);
    let mut r = leaf_hash(leaf);
    for p in proof {
        let p: &Digest = (*p).try_into().expect("length checked");
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r[..] == *root
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn proofs_verify_and_tamper_fails() {
        for n in 1..40usize {
            let leaves: Vec<Vec<u8>> = (0..n).map(|i| format!("leaf-{i}").into_bytes()).collect();
            let root = merkle_root(&leaves);
            for i in 0..n {
                let proof = merkle_proof(&leaves, i).unwrap();
                let refs: Vec<&[u8]> = proof.iter().map(|p| &p[..]).collect();
                assert!(merkle_verify(&root, &leaves[i], i as u64, n as u64, &refs));
                assert!(!merkle_verify(&root, b"other", i as u64, n as u64, &refs));
                assert!(!merkle_verify(&root, &leaves[i], n as u64, n as u64, &refs));
                if let Some(first) = proof.first() {
                    let mut bad = *first;
                    bad[0] ^= 1;
                    let mut refs2 = refs.clone();
                    refs2[0] = &bad;
                    assert!(!merkle_verify(
                        &root, &leaves[i], i as u64, n as u64, &refs2
                    ));
                }
            }
            assert!(merkle_proof(&leaves, n).is_none());
        }
    }

    #[test]
    fn simd_paths_equal_plain_blake3() {
        for len in [
            0usize, 1, 1022, 1023, 1024, 1025, 2047, 2048, 2049, 3000, 4096, 5121, 9000,
        ] {
            let leaves: Vec<Vec<u8>> = (0..37)
                .map(|i| (0..len).map(|j| ((i * 7 + j) % 251) as u8).collect())
                .collect();
            let mut out = vec![[0u8; 32]; leaves.len()];
            simd::leaf_group(&leaves, &mut out);
            for (l, o) in leaves.iter().zip(&out) {
                assert_eq!(*o, leaf_hash(l), "len={len}");
            }
        }
        let pairs: Vec<Digest> = (0..42u8).map(|i| digest(&[i])).collect();
        let mut out = vec![[0u8; 32]; 21];
        simd::node_group(&pairs, &mut out);
        for i in 0..21 {
            assert_eq!(out[i], node_hash(&pairs[2 * i], &pairs[2 * i + 1]));
        }
    }

    #[test]
    fn threads_agree() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let one = digest_with_threads(&data, 1).unwrap();
        assert_eq!(digest_with_threads(&data, 0).unwrap(), one);
        assert_eq!(digest_with_threads(&data, 2).unwrap(), one);
    }
}

//! The priority structure behind GAIA's task queue (pure Rust, no Python).
//!
//! Pop order:
//! 1. Highest `priority` first; priority classes are strict.
//! 2. Inside the top class, fair share among the submitters that have items there: the submitter with
//!    the smallest virtual time (`served / weight`) goes next, and each pop adds `cost / weight` to its
//!    virtual time. A submitter that becomes active (goes from no queued item to one) starts at
//!    `max(own virtual time, smallest virtual time among the active submitters)`, so nobody banks
//!    credit while idle (stride / virtual-time scheduling, cf. BOINC's resource-share debt). Ties
//!    between submitters: earliest deadline of their head item, then earliest arrival.
//! 3. Inside one submitter and class: earliest deadline first (`None` = +inf), then FIFO by arrival.
//!
//! "Active" means having at least one queued item in any class. Items removed by `remove` or
//! `pop_expired` are not charged to their submitter.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

/// FxHash-style word hashing with a Murmur3 finalizer: fast for the short string keys used here.
/// Not DoS-resistant, which is fine: a node's scheduler is fed by its own validated queue.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);
impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            h = (h.rotate_left(5) ^ u64::from_le_bytes(c.try_into().unwrap())).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            h = (h.rotate_left(5) ^ b as u64).wrapping_mul(K);
        }
        self.0 = h;
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0.rotate_left(5) ^ i as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // Murmur3's fmix64 finalizer: Fx alone leaves keys that differ only in their last bytes
        // ("task-0000001", "task-0000002", ...) clustered in hashbrown's buckets.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}
type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// 64-bit hash of a task key (FxHash words + fmix64).
fn key_hash(key: &str) -> u64 {
    let mut h = FxHasher::default();
    h.write(key.as_bytes());
    h.finish()
}

/// Identity hasher for keys that are already well-mixed 64-bit hashes.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);
impl Hasher for IdHasher {
    fn write(&mut self, _: &[u8]) {
        unreachable!("IdHasher only hashes u64")
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A task key: anything that can lend its text. The Python bindings store the `str` object itself
/// (no copy in, no new object out); Rust callers use `String`.
pub trait TaskKey {
    fn as_str(&self) -> &str;
}

impl TaskKey for String {
    fn as_str(&self) -> &str {
        self
    }
}

impl TaskKey for Box<str> {
    fn as_str(&self) -> &str {
        self
    }
}

/// Task key -> slot, indexed by the key's 64-bit hash so that growing, probing and removing never
/// touch the key strings; the (rare) second key with an already-used hash goes to `overflow`.
#[derive(Default)]
struct KeyIndex {
    by_hash: HashMap<u64, u32, BuildHasherDefault<IdHasher>>,
    overflow: FxMap<String, u32>,
}

impl KeyIndex {
    fn len(&self) -> usize {
        self.by_hash.len() + self.overflow.len()
    }

    fn get<K: TaskKey>(&self, slots: &[Option<Item<K>>], key: &str, h: u64) -> Option<u32> {
        if let Some(&slot) = self.by_hash.get(&h) {
            if slots[slot as usize]
                .as_ref()
                .is_some_and(|it| it.key.as_str() == key)
            {
                return Some(slot);
            }
        }
        if self.overflow.is_empty() {
            None
        } else {
            self.overflow.get(key).copied()
        }
    }

    fn insert(&mut self, key: &str, h: u64, slot: u32) {
        match self.by_hash.entry(h) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(slot);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.overflow.insert(key.to_owned(), slot);
            }
        }
    }

    fn remove<K: TaskKey>(&mut self, item: &Item<K>, slot: u32) {
        if self.by_hash.get(&item.hash) == Some(&slot) {
            self.by_hash.remove(&item.hash);
        } else {
            self.overflow.remove(item.key.as_str());
        }
    }
}

/// Errors raised by the scheduler (ValueError in Python).
#[derive(Debug, Clone, PartialEq)]
pub enum SchedError {
    DuplicateKey(String),
    InvalidDeadline(String, f64),
    InvalidCost(String, f64),
    InvalidWeight(String, f64),
    /// Every task slot or every submitter id (a `u32`) is in use; the count held.
    Full(IdKind, usize),
}

/// What a scheduler numbers with `u32` ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    Task,
    Submitter,
}

impl fmt::Display for SchedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchedError::DuplicateKey(k) => write!(
                f,
                "task {k:?} is already queued; remove() it first or use a different key"
            ),
            SchedError::InvalidDeadline(k, d) => {
                write!(f, "task {k:?}: deadline must be a number or None, got {d}")
            }
            SchedError::InvalidCost(k, c) => {
                write!(f, "task {k:?}: cost must be finite and >= 0, got {c}")
            }
            SchedError::InvalidWeight(s, w) => {
                write!(
                    f,
                    "submitter {s:?}: share weight must be finite and > 0, got {w}"
                )
            }
            SchedError::Full(IdKind::Task, n) => write!(
                f,
                "the scheduler already holds {n} tasks, the most it can; pop or remove tasks first"
            ),
            SchedError::Full(IdKind::Submitter, n) => write!(
                f,
                "the scheduler already knows {n} submitters, the most it can; submitters are never \
                 forgotten, so start a new scheduler"
            ),
        }
    }
}
impl std::error::Error for SchedError {}

/// Map a non-NaN f64 to a u64 with the same order (-0.0 and 0.0 map together).
#[inline]
fn fkey(x: f64) -> u64 {
    let b = (x + 0.0).to_bits();
    if b >> 63 == 1 {
        !b
    } else {
        b | (1 << 63)
    }
}

/// (deadline key, arrival seq, slot): the order inside one submitter's queue and in the deadline
/// index. An entry is live while `slots[slot]` holds the item with that `seq`.
type QKey = (u64, u64, u32);
/// (virtual time key, head deadline key, head seq, submitter): the order among submitters.
type RKey = (u64, u64, u64, u32);

struct Item<K> {
    key: K,
    hash: u64,
    priority: i64,
    deadline: f64,
    sub: u32,
    seq: u64,
    cost: f64,
}

impl<K> Item<K> {
    fn qkey(&self, slot: u32) -> QKey {
        (fkey(self.deadline), self.seq, slot)
    }

    fn expires(&self) -> bool {
        // +inf never expires; NaN is refused at push.
        self.deadline != f64::INFINITY
    }
}

struct Submitter {
    name: String,
    weight: f64,
    vtime: f64,
    queued: usize,
    /// Priority classes where this submitter has items (usually one or a few).
    classes: Vec<i64>,
}

/// A min-heap of queue keys with lazy deletion: removed entries stay as tombstones until they reach
/// the top (the top is always kept live) or the heap is compacted.
#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Reverse<QKey>>,
    live: usize,
}

fn is_live<K>(slots: &[Option<Item<K>>], k: &QKey) -> bool {
    slots[k.2 as usize].as_ref().is_some_and(|it| it.seq == k.1)
}

impl Queue {
    fn head(&self) -> Option<QKey> {
        self.heap.peek().map(|r| r.0)
    }

    /// Drop tombstones from the top; compact when they dominate.
    fn clean<K>(&mut self, slots: &[Option<Item<K>>]) {
        if self.heap.len() == self.live {
            return; // no tombstones
        }
        while let Some(Reverse(top)) = self.heap.peek() {
            if is_live(slots, top) {
                break;
            }
            self.heap.pop();
        }
        if self.heap.len() > 2 * self.live + 32 {
            let live: Vec<Reverse<QKey>> =
                self.heap.drain().filter(|r| is_live(slots, &r.0)).collect();
            self.heap = BinaryHeap::from(live);
        }
    }
}

#[derive(Default)]
struct Class {
    queues: FxMap<u32, Queue>,
    ready: BTreeSet<RKey>,
}

/// Slots and submitters are numbered with `u32` ids (they fill the heaps and ordered sets), so there
/// can be at most this many of each.
const ID_LIMIT: usize = u32::MAX as usize;

/// The next id of a table that holds `len` entries, when `len` is below `limit`.
fn next_id(len: usize, limit: usize, what: IdKind) -> Result<u32, SchedError> {
    u32::try_from(len)
        .ok()
        .filter(|_| len < limit)
        .ok_or(SchedError::Full(what, len))
}

/// Priority / EDF / fair-share / FIFO scheduler keyed by task id.
pub struct Scheduler<K = String> {
    slots: Vec<Option<Item<K>>>,
    free: Vec<u32>,
    index: KeyIndex,
    classes: BTreeMap<i64, Class>,
    subs: Vec<Submitter>,
    sub_index: FxMap<String, u32>,
    active: BTreeSet<(u64, u32)>,
    /// Items that can expire (deadline < +inf), with tombstones; `expiring` counts the live ones.
    deadlines: BinaryHeap<Reverse<QKey>>,
    expiring: usize,
    seq: u64,
    /// Most slots and most submitters ([`ID_LIMIT`]; lowered by tests).
    id_limit: usize,
}

impl<K: TaskKey> Default for Scheduler<K> {
    fn default() -> Self {
        Scheduler {
            slots: Vec::new(),
            free: Vec::new(),
            index: KeyIndex::default(),
            classes: BTreeMap::new(),
            subs: Vec::new(),
            sub_index: FxMap::default(),
            active: BTreeSet::new(),
            deadlines: BinaryHeap::new(),
            expiring: 0,
            seq: 0,
            id_limit: ID_LIMIT,
        }
    }
}

impl<K: TaskKey> Scheduler<K> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.len() == 0
    }

    pub fn contains(&self, key: &str) -> bool {
        self.index.get(&self.slots, key, key_hash(key)).is_some()
    }

    fn sub_id(&mut self, name: &str) -> Result<u32, SchedError> {
        if let Some(&id) = self.sub_index.get(name) {
            return Ok(id);
        }
        let id = next_id(self.subs.len(), self.id_limit, IdKind::Submitter)?;
        self.subs.push(Submitter {
            name: name.to_owned(),
            weight: 1.0,
            vtime: 0.0,
            queued: 0,
            classes: Vec::new(),
        });
        self.sub_index.insert(name.to_owned(), id);
        Ok(id)
    }

    /// The slot for a new item: a freed one, or the next new one while ids remain.
    fn take_slot(&mut self) -> Result<u32, SchedError> {
        if let Some(slot) = self.free.pop() {
            return Ok(slot);
        }
        let slot = next_id(self.slots.len(), self.id_limit, IdKind::Task)?;
        self.slots.push(None);
        Ok(slot)
    }

    /// Whether `n` more items fit (freed slots plus the ids not yet used).
    fn has_room_for(&self, n: usize) -> bool {
        self.free.len() + self.id_limit.saturating_sub(self.slots.len()) >= n
    }

    fn check(key: &str, deadline: Option<f64>, cost: f64) -> Result<f64, SchedError> {
        let d = deadline.unwrap_or(f64::INFINITY);
        if d.is_nan() {
            return Err(SchedError::InvalidDeadline(key.to_owned(), d));
        }
        if !cost.is_finite() || cost < 0.0 {
            return Err(SchedError::InvalidCost(key.to_owned(), cost));
        }
        Ok(d)
    }

    /// Queue `key`. Errors on a key that is still queued, a NaN deadline, a bad cost or a full
    /// scheduler.
    pub fn push(
        &mut self,
        key: impl Into<K>,
        priority: i64,
        deadline: Option<f64>,
        submitter: &str,
        cost: f64,
    ) -> Result<(), SchedError> {
        let key: K = key.into();
        let k = key.as_str();
        let h = key_hash(k);
        if self.index.get(&self.slots, k, h).is_some() {
            return Err(SchedError::DuplicateKey(k.to_owned()));
        }
        let d = Self::check(k, deadline, cost)?;
        let sub = self.sub_id(submitter)?;
        let slot = self.take_slot()?;
        self.insert(slot, key, h, priority, d, sub, cost);
        Ok(())
    }

    /// Queue many `(key, priority, deadline, submitter)` items with cost 1.0. All-or-nothing: when any
    /// item is invalid (or a duplicate, also within the batch) or they do not all fit, nothing is
    /// queued.
    pub fn push_many<Q: Into<K>, S: AsRef<str>>(
        &mut self,
        items: Vec<(Q, i64, Option<f64>, S)>,
    ) -> Result<(), SchedError> {
        let items: Vec<(K, i64, Option<f64>, S)> = items
            .into_iter()
            .map(|(k, p, d, s)| (k.into(), p, d, s))
            .collect();
        let mut ids = Vec::with_capacity(items.len());
        let mut seen: FxMap<&str, ()> = FxMap::default();
        seen.reserve(items.len());
        let mut last: Option<(&str, u32)> = None;
        for (key, _, deadline, submitter) in &items {
            let k = key.as_str();
            let h = key_hash(k);
            if self.index.get(&self.slots, k, h).is_some() || seen.insert(k, ()).is_some() {
                return Err(SchedError::DuplicateKey(k.to_owned()));
            }
            Self::check(k, *deadline, 1.0)?;
            let name = submitter.as_ref();
            let sub = match last {
                Some((prev, id)) if prev == name => id,
                _ => self.sub_id(name)?,
            };
            last = Some((name, sub));
            ids.push((h, sub));
        }
        if !self.has_room_for(items.len()) {
            return Err(SchedError::Full(IdKind::Task, self.len()));
        }
        drop(seen);
        self.index.by_hash.reserve(items.len());
        for ((key, priority, deadline, _), (h, sub)) in items.into_iter().zip(ids) {
            let slot = self.take_slot()?;
            self.insert(
                slot,
                key,
                h,
                priority,
                deadline.unwrap_or(f64::INFINITY),
                sub,
                1.0,
            );
        }
        Ok(())
    }

    /// Put an item into the free `slot` (from [`Self::take_slot`]) and every structure.
    #[allow(clippy::too_many_arguments)]
    fn insert(
        &mut self,
        slot: u32,
        key: K,
        hash: u64,
        priority: i64,
        deadline: f64,
        sub: u32,
        cost: f64,
    ) {
        let seq = self.seq;
        self.seq += 1;
        self.index.insert(key.as_str(), hash, slot);
        let item = Item {
            key,
            hash,
            priority,
            deadline,
            sub,
            seq,
            cost,
        };
        let qk = item.qkey(slot);
        if item.expires() {
            self.deadlines.push(Reverse(qk));
            self.expiring += 1;
        }
        self.slots[slot as usize] = Some(item);

        // Activation: catch up to the least-served active submitter.
        if self.subs[sub as usize].queued == 0 {
            if let Some(&(_, min_sub)) = self.active.first() {
                let min_vt = self.subs[min_sub as usize].vtime;
                let s = &mut self.subs[sub as usize];
                if min_vt > s.vtime {
                    s.vtime = min_vt;
                }
            }
            self.active
                .insert((fkey(self.subs[sub as usize].vtime), sub));
        }
        let s = &mut self.subs[sub as usize];
        s.queued += 1;
        let vt = fkey(s.vtime);

        let class = self.classes.entry(priority).or_default();
        let q = class.queues.entry(sub).or_insert_with(|| {
            s.classes.push(priority);
            Queue::default()
        });
        let old = q.head();
        q.heap.push(Reverse(qk));
        q.live += 1;
        if old.is_none_or(|o| qk < o) {
            if let Some((dl, sq, _)) = old {
                class.ready.remove(&(vt, dl, sq, sub));
            }
            class.ready.insert((vt, qk.0, qk.1, sub));
        }
    }

    /// Take the item in `slot` out of every structure. Does not charge the submitter. The caller
    /// has already popped `slot`'s entry from the deadline heap, or leaves it there as a tombstone.
    fn detach(&mut self, slot: u32) -> Item<K> {
        let item = self.slots[slot as usize].take().expect("live slot");
        self.free.push(slot);
        self.index.remove(&item, slot);
        if item.expires() {
            self.expiring -= 1;
            if self.deadlines.len() > 2 * self.expiring + 1024 {
                let slots = &self.slots;
                let live: Vec<Reverse<QKey>> = self
                    .deadlines
                    .drain()
                    .filter(|r| is_live(slots, &r.0))
                    .collect();
                self.deadlines = BinaryHeap::from(live);
            }
        }
        let qk = item.qkey(slot);
        let sub = item.sub;
        let vt = fkey(self.subs[sub as usize].vtime);
        let class = self.classes.get_mut(&item.priority).expect("class exists");
        let q = class.queues.get_mut(&sub).expect("queue exists");
        q.live -= 1;
        if q.live == 0 {
            class.ready.remove(&(vt, qk.0, qk.1, sub));
            class.queues.remove(&sub);
            if class.queues.is_empty() {
                self.classes.remove(&item.priority);
            }
            self.subs[sub as usize]
                .classes
                .retain(|&c| c != item.priority);
        } else if q.head() == Some(qk) {
            q.heap.pop();
            q.clean(&self.slots);
            let (dl, sq, _) = q.head().expect("live items remain");
            class.ready.remove(&(vt, qk.0, qk.1, sub));
            class.ready.insert((vt, dl, sq, sub));
        } else if q.heap.len() > 2 * q.live + 32 {
            q.clean(&self.slots);
        }
        let s = &mut self.subs[sub as usize];
        s.queued -= 1;
        if s.queued == 0 {
            self.active.remove(&(vt, sub));
        }
        item
    }

    /// Add `cost / weight` to the submitter's virtual time, re-keying it everywhere.
    fn charge(&mut self, sub: u32, cost: f64) {
        let s = &self.subs[sub as usize];
        let old_vt = fkey(s.vtime);
        let new_vtime = s.vtime + cost / s.weight;
        let new_vt = fkey(new_vtime);
        if old_vt != new_vt {
            for &c in &s.classes {
                let class = self.classes.get_mut(&c).expect("class exists");
                let (dl, sq, _) = class.queues[&sub].head().expect("non-empty queue");
                class.ready.remove(&(old_vt, dl, sq, sub));
                class.ready.insert((new_vt, dl, sq, sub));
            }
            if s.queued > 0 {
                self.active.remove(&(old_vt, sub));
                self.active.insert((new_vt, sub));
            }
        }
        self.subs[sub as usize].vtime = new_vtime;
    }

    /// Remove and return the next task id, or `None` when empty.
    pub fn pop(&mut self) -> Option<K> {
        let (_, class) = self.classes.last_key_value()?;
        let &(_, _, _, sub) = class
            .ready
            .first()
            .expect("non-empty class has a ready submitter");
        let (_, _, slot) = class.queues[&sub].head().expect("non-empty queue");
        let item = self.detach(slot);
        self.charge(item.sub, item.cost);
        Some(item.key)
    }

    /// Pop up to `n` task ids.
    pub fn pop_many(&mut self, n: usize) -> Vec<K> {
        let mut out = Vec::with_capacity(n.min(self.len()));
        while out.len() < n {
            match self.pop() {
                Some(k) => out.push(k),
                None => break,
            }
        }
        out
    }

    /// Cancel `key`; `true` when it was queued.
    pub fn remove(&mut self, key: &str) -> bool {
        match self.index.get(&self.slots, key, key_hash(key)) {
            Some(slot) => {
                self.detach(slot);
                true
            }
            None => false,
        }
    }

    /// Remove and return every item whose deadline is `< now`, earliest deadline first (ties: arrival).
    pub fn pop_expired(&mut self, now: f64) -> Vec<K> {
        let mut out = Vec::new();
        while let Some(&Reverse(top)) = self.deadlines.peek() {
            match &self.slots[top.2 as usize] {
                Some(it) if it.seq == top.1 => {
                    // Written so that a NaN `now` expires nothing (like Python's `<`).
                    #[allow(clippy::neg_cmp_op_on_partial_ord)]
                    let keep = !(it.deadline < now);
                    if keep {
                        break;
                    }
                    self.deadlines.pop();
                    out.push(self.detach(top.2).key);
                }
                _ => {
                    self.deadlines.pop();
                }
            }
        }
        out
    }

    /// Set a submitter's share weight (> 0, default 1.0). Its virtual time is kept.
    pub fn set_share(&mut self, submitter: &str, weight: f64) -> Result<(), SchedError> {
        if !(weight.is_finite() && weight > 0.0) {
            return Err(SchedError::InvalidWeight(submitter.to_owned(), weight));
        }
        let id = self.sub_id(submitter)?;
        self.subs[id as usize].weight = weight;
        Ok(())
    }

    /// The submitter's virtual service time (sum of cost/weight plus catch-up), 0.0 when unknown.
    pub fn served(&self, submitter: &str) -> f64 {
        self.sub_index
            .get(submitter)
            .map_or(0.0, |&id| self.subs[id as usize].vtime)
    }

    /// Names of known submitters (for debugging).
    pub fn submitters(&self) -> impl Iterator<Item = &str> {
        self.subs.iter().map(|s| s.name.as_str())
    }

    #[doc(hidden)]
    pub fn check_invariants(&self) {
        let mut n = 0;
        for (p, class) in &self.classes {
            assert!(!class.queues.is_empty());
            assert_eq!(class.ready.len(), class.queues.len());
            for (&sub, q) in &class.queues {
                assert!(q.live > 0);
                let live = q.heap.iter().filter(|r| is_live(&self.slots, &r.0)).count();
                assert_eq!(live, q.live);
                let head = q.head().unwrap();
                assert!(is_live(&self.slots, &head));
                let vt = fkey(self.subs[sub as usize].vtime);
                assert!(class.ready.contains(&(vt, head.0, head.1, sub)));
                assert!(self.subs[sub as usize].classes.contains(p));
                n += q.live;
            }
        }
        assert_eq!(n, self.index.len());
        let expiring = self
            .deadlines
            .iter()
            .filter(|r| is_live(&self.slots, &r.0))
            .count();
        assert_eq!(expiring, self.expiring);
        let act: usize = self.subs.iter().filter(|s| s.queued > 0).count();
        assert_eq!(act, self.active.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_then_edf_then_fifo() {
        let mut s: Scheduler = Scheduler::new();
        s.push("a", 0, None, "", 1.0).unwrap();
        s.push("b", 0, Some(5.0), "", 1.0).unwrap();
        s.push("c", 1, None, "", 1.0).unwrap();
        s.push("d", 0, Some(5.0), "", 1.0).unwrap();
        assert!(s.push("a", 3, None, "", 1.0).is_err());
        s.check_invariants();
        assert_eq!(s.pop_many(10), vec!["c", "b", "d", "a"]);
        assert_eq!(s.pop(), None);
        s.check_invariants();
    }

    #[test]
    fn fair_share_round_robin_and_weights() {
        let mut s: Scheduler = Scheduler::new();
        for i in 0..6 {
            s.push(format!("x{i}"), 0, None, "x", 1.0).unwrap();
            s.push(format!("y{i}"), 0, None, "y", 1.0).unwrap();
        }
        s.set_share("y", 2.0).unwrap();
        let order = s.pop_many(6);
        let ys = order.iter().filter(|k| k.starts_with('y')).count();
        assert_eq!(ys, 4, "{order:?}");
        s.check_invariants();
    }

    #[test]
    fn tombstones_are_compacted_and_order_kept() {
        let mut s: Scheduler = Scheduler::new();
        for i in 0..3000 {
            let dl = if i % 3 == 0 {
                None
            } else {
                Some((i % 97) as f64)
            };
            s.push(
                format!("k{i}"),
                (i % 2) as i64,
                dl,
                if i % 5 == 0 { "a" } else { "b" },
                1.0,
            )
            .unwrap();
        }
        for i in (0..3000).filter(|i| i % 4 != 0) {
            assert!(s.remove(&format!("k{i}")));
        }
        s.check_invariants();
        assert!(s.deadlines.len() <= 2 * s.expiring + 1024);
        for q in s.classes.values().flat_map(|c| c.queues.values()) {
            assert!(q.heap.len() <= 2 * q.live + 32);
        }
        let expired = s.pop_expired(50.0);
        assert!(expired.windows(2).all(|w| w[0] != w[1]));
        s.check_invariants();
        let rest = s.pop_many(usize::MAX);
        assert_eq!(expired.len() + rest.len(), 750);
        assert!(s.is_empty());
        s.check_invariants();
    }

    #[test]
    fn hash_collisions_are_handled() {
        let mut s: Scheduler = Scheduler::new();
        s.push("a", 0, None, "", 1.0).unwrap();
        let slot_a = s.index.by_hash[&key_hash("a")];
        // Force "b" and "c" into the overflow map as if their hashes collided with "a".
        for k in ["b", "c"] {
            s.push(k, 0, None, "", 1.0).unwrap();
            let slot = s.index.by_hash.remove(&key_hash(k)).unwrap();
            s.index.overflow.insert(k.to_owned(), slot);
            s.slots[slot as usize].as_mut().unwrap().hash = key_hash("a");
        }
        assert_eq!(s.len(), 3);
        assert!(s.contains("b") && s.contains("c") && s.contains("a"));
        assert!(s.push("b", 0, None, "", 1.0).is_err());
        assert!(s.remove("a"));
        assert!(!s.index.by_hash.contains_key(&key_hash("a")) && s.contains("b"));
        assert_eq!(s.pop_many(5), vec!["b", "c"]);
        assert_eq!(s.len(), 0);
        let _ = slot_a;
    }

    #[test]
    fn ids_are_checked_not_truncated() {
        let mut s: Scheduler = Scheduler::new();
        s.id_limit = 3;
        for k in ["a", "b", "c"] {
            s.push(k, 0, None, "p", 1.0).unwrap();
        }
        assert_eq!(
            s.push("d", 0, None, "p", 1.0),
            Err(SchedError::Full(IdKind::Task, 3))
        );
        // All-or-nothing: a batch that does not fit queues nothing.
        assert!(s.push_many(vec![("x".to_owned(), 0, None, "p")]).is_err());
        assert_eq!(s.len(), 3);
        assert_eq!(s.pop().as_deref(), Some("a"));
        s.push("d", 0, None, "p", 1.0).unwrap(); // the freed slot is reused
        s.set_share("q", 1.0).unwrap();
        s.set_share("r", 1.0).unwrap();
        assert_eq!(
            s.set_share("z", 1.0),
            Err(SchedError::Full(IdKind::Submitter, 3))
        );
        let err = s.push("e", 0, None, "new", 1.0).unwrap_err().to_string();
        assert!(
            err.contains("3 submitters") && err.contains("new scheduler"),
            "{err}"
        );
        let err = s.push("e", 0, None, "p", 1.0).unwrap_err().to_string();
        assert!(
            err.contains("3 tasks") && err.contains("pop or remove"),
            "{err}"
        );
        s.check_invariants();
        // Beyond u32 an id is refused whatever the limit, never wrapped around.
        assert!(next_id(u32::MAX as usize + 1, usize::MAX, IdKind::Task).is_err());
        assert_eq!(next_id(7, ID_LIMIT, IdKind::Task), Ok(7));
    }

    #[test]
    fn expire_and_remove() {
        let mut s: Scheduler = Scheduler::new();
        s.push("a", 0, Some(3.0), "p", 1.0).unwrap();
        s.push("b", 2, Some(1.0), "q", 1.0).unwrap();
        s.push("c", 0, None, "p", 1.0).unwrap();
        assert!(s.remove("c"));
        assert!(!s.remove("c"));
        assert_eq!(s.pop_expired(5.0), vec!["b", "a"]);
        assert!(s.is_empty());
        assert_eq!(s.served("p"), 0.0);
        s.check_invariants();
    }
}

//! Content digests of context files remembered across builds, so a rebuild with unchanged
//! files reads none of them (the role of BuildKit's content-hash cache).
//!
//! A digest is trusted only while the file's `lstat` (device, inode, size, mtime, ctime)
//! is exactly as when it was read, and it is recorded only for files whose mtime and ctime
//! were already [`SETTLED`] seconds old then, so a write in the same clock tick as the read
//! cannot hide behind an equal timestamp (git's "racy" rule). Pure data: the executor
//! stores the bytes (atomically, in the store); a corrupt or foreign memo reads as empty.
//! Invariant: a memo can only save work, never change a key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::view::Node;
use crate::digest::Digest;

/// Seconds a file must have been left alone before its digest is remembered.
pub const SETTLED: i64 = 2;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, u32),
    ctime: (i64, u32),
    digest: Digest,
}

impl Entry {
    fn of(node: &Node, digest: Digest) -> Entry {
        Entry {
            dev: node.identity.0,
            ino: node.identity.1,
            size: node.size,
            mtime: node.mtime,
            ctime: node.ctime,
            digest,
        }
    }
}

/// Digests by host path (see the module doc).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentMemo {
    files: BTreeMap<String, Entry>,
    #[serde(skip)]
    changed: bool,
}

impl ContentMemo {
    /// Reads a memo written by [`ContentMemo::to_json`]; anything else is an empty memo.
    pub fn from_json(bytes: &[u8]) -> ContentMemo {
        serde_json::from_slice(bytes).unwrap_or_default()
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Whether a digest was added or replaced since it was read (worth saving).
    pub fn changed(&self) -> bool {
        self.changed
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    pub(super) fn get(&self, key: &str, node: &Node) -> Option<&Digest> {
        self.files
            .get(key)
            .filter(|e| **e == Entry::of(node, e.digest.clone()))
            .map(|e| &e.digest)
    }

    /// Remembers `digest` for the file `node` at `key` if it had settled by `now` (secs).
    pub(super) fn put(&mut self, key: String, node: &Node, digest: Digest, now: i64) {
        if node.mtime.0 > now - SETTLED || node.ctime.0 > now - SETTLED {
            return;
        }
        let e = Entry::of(node, digest);
        if self.files.get(&key) != Some(&e) {
            self.files.insert(key, e);
            self.changed = true;
        }
    }
}

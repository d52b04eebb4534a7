//! The inode table: FUSE inode numbers to what each one is at this moment.
//!
//! A node knows its parent and name (so its path can be rebuilt), the lower entry at
//! that path if any, and whether it exists in the upper dir. Owns inode numbering:
//! a lower entry's inode is its index `ino + 1` (hardlinks share it; a copied-up file
//! keeps it); an upper-only file gets the next free number, remembered by host inode,
//! so numbers are stable for the life of the mount. Never does I/O.

use std::collections::HashMap;

use fuser::FileType;

use crate::tarindex::EntryId;

pub const ROOT: u64 = 1;

#[derive(Clone, Debug)]
pub struct Node {
    pub parent: u64,
    pub name: Vec<u8>,
    /// The lower entry visible at this path (None for upper-only, opaque or replaced).
    pub lower: Option<EntryId>,
    /// Exists in the upper dir.
    pub upper: bool,
    pub kind: FileType,
    /// Kernel references (lookups minus forgets).
    pub nlookup: u64,
    /// Its last name was removed; it lives on only through open files.
    pub gone: bool,
    /// Other names the kernel looked this inode up by (hardlinks).
    pub alt: Vec<(u64, Vec<u8>)>,
}

pub struct Nodes {
    map: HashMap<u64, Node>,
    /// Host inode of an upper file -> our inode number.
    by_host: HashMap<u64, u64>,
    next: u64,
}

impl Nodes {
    /// A table holding only the root, for an index of `lower_len` entries.
    pub fn new(lower_len: u32) -> Nodes {
        let mut map = HashMap::new();
        map.insert(
            ROOT,
            Node {
                parent: ROOT,
                name: Vec::new(),
                lower: Some(0),
                upper: true,
                kind: FileType::Directory,
                nlookup: 1,
                gone: false,
                alt: Vec::new(),
            },
        );
        Nodes {
            map,
            by_host: HashMap::new(),
            next: u64::from(lower_len) + 2,
        }
    }

    pub fn get(&self, ino: u64) -> Option<&Node> {
        self.map.get(&ino)
    }

    pub fn get_mut(&mut self, ino: u64) -> Option<&mut Node> {
        self.map.get_mut(&ino)
    }

    /// The path of `ino` relative to the mount root (`b""` for the root).
    pub fn path(&self, ino: u64) -> Option<Vec<u8>> {
        let mut parts: Vec<&[u8]> = Vec::new();
        let mut cur = ino;
        let mut guard = 0u32;
        while cur != ROOT {
            let n = self.map.get(&cur)?;
            parts.push(&n.name);
            cur = n.parent;
            guard += 1;
            if guard > 4096 {
                return None;
            }
        }
        let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
        for (i, p) in parts.iter().rev().enumerate() {
            if i > 0 {
                out.push(b'/');
            }
            out.extend_from_slice(p);
        }
        Some(out)
    }

    /// The inode number for an upper file with host inode `host`: the one already
    /// given to it, else `lower_ino` (a copied-up lower file), else a new one.
    pub fn ino_for_host(&mut self, host: u64, lower_ino: Option<u64>) -> u64 {
        if let Some(&i) = self.by_host.get(&host) {
            return i;
        }
        let i = lower_ino.unwrap_or_else(|| {
            self.next += 1;
            self.next - 1
        });
        self.by_host.insert(host, i);
        i
    }

    /// The inode already known for a host inode.
    pub fn known_host(&self, host: u64) -> Option<u64> {
        self.by_host.get(&host).copied()
    }

    /// Records that `host` now backs inode `ino` (after copy-up or create).
    pub fn bind_host(&mut self, host: u64, ino: u64) {
        self.by_host.insert(host, ino);
    }

    /// Forgets a host inode (its last name is gone from the upper dir).
    pub fn unbind_host(&mut self, host: u64) {
        self.by_host.remove(&host);
    }

    /// A kernel lookup of `ino` now named `name` in `parent`: insert or refresh.
    pub fn looked_up(&mut self, ino: u64, node: Node) {
        match self.map.get_mut(&ino) {
            Some(n) => {
                n.nlookup += 1;
                if (n.parent, &n.name) != (node.parent, &node.name) {
                    let old = (n.parent, std::mem::take(&mut n.name));
                    n.alt.retain(|a| (a.0, &a.1) != (node.parent, &node.name));
                    if !n.gone && !n.alt.contains(&old) {
                        n.alt.push(old);
                    }
                }
                n.parent = node.parent;
                n.name = node.name;
                n.lower = node.lower;
                n.upper = node.upper;
                n.kind = node.kind;
                n.gone = false;
            }
            None => {
                self.map.insert(ino, Node { nlookup: 1, ..node });
            }
        }
    }

    /// The name `parent/name` of `ino` was removed. The node takes one of its other
    /// names, or is marked gone when it has none left.
    pub fn drop_name(&mut self, ino: u64, parent: u64, name: &[u8]) {
        let Some(n) = self.map.get_mut(&ino) else {
            return;
        };
        if n.parent == parent && n.name == name {
            match n.alt.pop() {
                Some((p, nm)) => {
                    n.parent = p;
                    n.name = nm;
                }
                None => n.gone = true,
            }
        } else {
            n.alt.retain(|a| !(a.0 == parent && a.1 == name));
        }
    }

    /// The name `from` of `ino` became `to` (a rename).
    pub fn move_name(&mut self, ino: u64, from: (u64, &[u8]), to: (u64, &[u8])) {
        let Some(n) = self.map.get_mut(&ino) else {
            return;
        };
        n.alt.retain(|a| !(a.0 == from.0 && a.1 == from.1));
        if n.parent == from.0 && n.name == from.1 {
            n.parent = to.0;
            n.name = to.1.to_vec();
        } else {
            n.alt.push((to.0, to.1.to_vec()));
        }
        n.gone = false;
    }

    /// The kernel dropped `n` references.
    pub fn forget(&mut self, ino: u64, n: u64) {
        if ino == ROOT {
            return;
        }
        if let Some(node) = self.map.get_mut(&ino) {
            node.nlookup = node.nlookup.saturating_sub(n);
            if node.nlookup == 0 {
                self.map.remove(&ino);
            }
        }
    }

    /// Nodes below `dir` (not `dir` itself), for updating a moved or copied-up tree.
    pub fn descendants(&self, dir: u64) -> Vec<u64> {
        let mut out = Vec::new();
        for (&ino, _) in self.map.iter() {
            let mut cur = ino;
            let mut guard = 0u32;
            while cur != ROOT && guard < 4096 {
                let Some(n) = self.map.get(&cur) else { break };
                if n.parent == dir {
                    out.push(ino);
                    break;
                }
                cur = n.parent;
                guard += 1;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(parent: u64, name: &str) -> Node {
        Node {
            parent,
            name: name.as_bytes().to_vec(),
            lower: None,
            upper: true,
            kind: FileType::Directory,
            nlookup: 0,
            gone: false,
            alt: Vec::new(),
        }
    }

    #[test]
    fn paths_follow_renames_and_forget_drops() {
        let mut t = Nodes::new(10);
        t.looked_up(2, dir(ROOT, "a"));
        t.looked_up(3, dir(2, "b"));
        assert_eq!(t.path(3).unwrap(), b"a/b");
        t.get_mut(2).unwrap().name = b"z".to_vec();
        assert_eq!(t.path(3).unwrap(), b"z/b");
        assert_eq!(t.descendants(ROOT).len(), 2);
        assert_eq!(t.descendants(2), vec![3]);
        t.looked_up(3, dir(2, "b"));
        t.forget(3, 1);
        assert!(t.get(3).is_some());
        t.forget(3, 1);
        assert!(t.get(3).is_none());
        assert_eq!(t.path(3), None);
    }

    #[test]
    fn upper_inodes_are_stable_and_do_not_collide_with_lower() {
        let mut t = Nodes::new(10);
        let a = t.ino_for_host(500, None);
        assert!(a > 11);
        assert_eq!(t.ino_for_host(500, None), a);
        let b = t.ino_for_host(501, Some(4));
        assert_eq!(b, 4);
        assert_ne!(t.ino_for_host(502, None), a);
    }
}

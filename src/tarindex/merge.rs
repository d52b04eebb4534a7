//! Merging the indexes of a layer chain into the lower view the overlay serves.

use std::collections::BTreeMap;

use super::build::{Node, Tree, implicit_dir};
use super::*;

/// The lower view of a stack of layer indexes (bottom first): whiteouts and opaque
/// directories applied, hardlinks resolved, each entry's `layer` naming its tar.
/// The result holds no whiteouts, no hardlinks and no opaque flags.
pub fn merge<B: AsRef<[u8]>>(layers: &[&Index<B>]) -> Result<Vec<u8>, IndexError> {
    if layers.len() > usize::from(u16::MAX) + 1 {
        return Err(IndexError::TooManyLayers(layers.len()));
    }
    let mut tree = Tree::new();
    for (li, idx) in layers.iter().enumerate() {
        let layer = li as u16;
        let Some(root) = idx.get(0) else { continue };
        if root.opaque() {
            tree.nodes[0].children.clear();
        }
        if !root.implicit() {
            tree.nodes[0].e = NewEntry {
                layer,
                opaque: false,
                ..root.to_new()
            };
            tree.nodes[0].implicit = false;
        }
        let mut stack: Vec<(usize, EntryId)> = vec![(0, 0)];
        while let Some((tdir, ldir)) = stack.pop() {
            for c in idx.children(ldir) {
                let Some(e) = idx.get(c) else { continue };
                let name = e.name();
                let existing = tree.child(tdir, name);
                match e.kind() {
                    Kind::Whiteout => {
                        tree.nodes[tdir].children.remove(name);
                    }
                    Kind::Dir => {
                        let node = match existing {
                            Some(n) if tree.nodes[n].e.kind == Kind::Dir => {
                                if e.opaque() {
                                    tree.nodes[n].children.clear();
                                }
                                n
                            }
                            _ => {
                                let id = tree.push(implicit_dir());
                                tree.set_child(tdir, name, id);
                                id
                            }
                        };
                        if !e.implicit() {
                            tree.nodes[node].e = NewEntry {
                                layer,
                                opaque: false,
                                ..e.to_new()
                            };
                            tree.nodes[node].implicit = false;
                        }
                        stack.push((node, c));
                    }
                    kind => {
                        let mut ne = NewEntry {
                            layer,
                            ..e.to_new()
                        };
                        if kind == Kind::Hardlink {
                            ne.kind = Kind::File;
                            ne.link = Vec::new();
                        }
                        let id = tree.push(Node {
                            e: ne,
                            implicit: false,
                            children: BTreeMap::new(),
                        });
                        tree.set_child(tdir, name, id);
                    }
                }
            }
        }
    }
    Ok(tree.write())
}

//! Arbitrary bytes as a layer index: `Index::open` either refuses them or every accessor
//! answers without panicking, lookups agree with paths, and merging never fails.
#![no_main]

use camada::tarindex::{merge, Index};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(idx) = Index::open(data) else { return };
    for id in 0..idx.len() {
        let e = idx.get(id).expect("id < len");
        let _ = (e.name(), e.kind(), e.mode(), e.uid(), e.gid(), e.mtime(), e.size());
        let _ = (e.data_offset(), e.link(), e.rdev(), e.opaque(), e.layer(), e.parent());
        let _ = (e.ino(), e.nlink(), e.implicit(), e.xattrs().count());
        let path = idx.path(id);
        assert_eq!(idx.lookup(&path), Some(id), "lookup(path(id)) == id");
        for c in idx.children(id) {
            let name = idx.get(c).expect("child in range").name();
            assert_eq!(idx.lookup_child(id, name), Some(c));
        }
    }
    assert!(idx.get(idx.len()).is_none());
    let _ = idx.lookup(b"a/b/../c");
    let merged = merge(&[&idx, &idx]).expect("merging valid indexes");
    Index::open(&merged[..]).expect("a merged index opens");
});

//! Arbitrary bytes as a layer blob: `ingest` either refuses them with an error or writes
//! the whole stream out and an index that opens, whose file data lies inside the tar.
#![no_main]

use camada::layer::ingest;
use camada::tarindex::{merge, Index, Kind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut tar = Vec::new();
    let mut idx = Vec::new();
    let Ok(got) = ingest(data, &mut tar, &mut idx) else { return };
    assert_eq!(got.tar_size, tar.len() as u64);
    assert_eq!(got.compressed_size, data.len() as u64);
    let index = Index::open(&idx[..]).expect("an index ingest wrote opens");
    for id in 0..index.len() {
        let e = index.get(id).expect("id < len");
        if matches!(e.kind(), Kind::File | Kind::Hardlink) {
            let end = e.data_offset().checked_add(e.size()).expect("no overflow");
            assert!(end <= got.tar_size, "file data inside the tar");
        }
    }
    let merged = merge(&[&index]).expect("merge of one layer");
    Index::open(&merged[..]).expect("a merged index opens");
});

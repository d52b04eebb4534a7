use super::*;

fn file(path: &str, off: u64, size: u64) -> NewEntry {
    NewEntry {
        path: path.into(),
        kind: Kind::File,
        mode: 0o644,
        size,
        data_offset: off,
        ..NewEntry::default()
    }
}
fn dir(path: &str) -> NewEntry {
    NewEntry {
        path: path.into(),
        kind: Kind::Dir,
        mode: 0o700,
        uid: 7,
        ..NewEntry::default()
    }
}
fn of_kind(path: &str, kind: Kind) -> NewEntry {
    NewEntry {
        path: path.into(),
        kind,
        ..NewEntry::default()
    }
}
fn link(path: &str, target: &str) -> NewEntry {
    NewEntry {
        path: path.into(),
        kind: Kind::Hardlink,
        link: target.into(),
        mode: 0o777,
        ..NewEntry::default()
    }
}

fn build(entries: Vec<NewEntry>) -> Vec<u8> {
    let mut b = IndexBuilder::new();
    for e in entries {
        b.add(e).unwrap();
    }
    b.finish()
}

/// Every path in the index with its kind, depth-first in name order.
fn listing<B: AsRef<[u8]>>(idx: &Index<B>) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![0];
    while let Some(d) = stack.pop() {
        for c in idx.children(d).rev() {
            stack.push(c);
        }
        if d != 0 {
            let e = idx.get(d).unwrap();
            let tag = match e.kind() {
                Kind::Dir => "/",
                Kind::Whiteout => " (wh)",
                Kind::Symlink => " ->",
                Kind::Hardlink => " =>",
                _ => "",
            };
            out.push(format!("{}{tag}", String::from_utf8_lossy(&idx.path(d))));
        }
    }
    out
}

#[test]
fn builds_and_reads_back_every_field() {
    let mut f = file("usr/bin/sh", 1536, 42);
    f.mode = 0o104755;
    f.uid = 1000;
    f.gid = 100;
    f.mtime = -5;
    f.mtime_nsec = 999;
    f.xattrs = vec![
        (b"user.b".to_vec(), b"2".to_vec()),
        (b"security.capability".to_vec(), vec![0, 1, 2]),
    ];
    let mut dev = of_kind("dev/null", Kind::Char);
    dev.rdev_major = 1;
    dev.rdev_minor = 3;
    let mut sym = of_kind("bin", Kind::Symlink);
    sym.link = b"/../../etc/passwd".to_vec();
    let bytes = build(vec![dir("usr"), f, dev, sym]);
    let idx = Index::open(&bytes[..]).unwrap();
    assert_eq!(
        listing(&idx),
        [
            "bin ->",
            "dev/",
            "dev/null",
            "usr/",
            "usr/bin/",
            "usr/bin/sh"
        ]
    );

    let sh = idx.get(idx.lookup(b"usr/bin/sh").unwrap()).unwrap();
    assert_eq!(sh.name(), b"sh");
    assert_eq!(sh.kind(), Kind::File);
    assert_eq!(sh.mode(), 0o4755, "file-type bits are dropped");
    assert_eq!((sh.uid(), sh.gid()), (1000, 100));
    assert_eq!(sh.mtime(), (-5, 999));
    assert_eq!((sh.size(), sh.data_offset()), (42, 1536));
    assert_eq!(sh.nlink(), 1);
    assert_eq!(sh.ino(), sh.id());
    let x: Vec<_> = sh.xattrs().collect();
    assert_eq!(
        x,
        [
            (&b"security.capability"[..], &[0u8, 1, 2][..]),
            (b"user.b", b"2")
        ]
    );
    assert_eq!(idx.path(sh.id()), b"usr/bin/sh");

    let usr = idx.get(idx.lookup(b"usr").unwrap()).unwrap();
    assert_eq!((usr.mode(), usr.uid(), usr.implicit()), (0o700, 7, false));
    assert_eq!(usr.nlink(), 3, "2 + one subdirectory");
    let bin = idx.get(idx.lookup(b"usr/bin").unwrap()).unwrap();
    assert_eq!((bin.mode(), bin.uid(), bin.implicit()), (0o755, 0, true));
    assert_eq!(bin.parent(), usr.id());

    let null = idx.get(idx.lookup(b"dev/null").unwrap()).unwrap();
    assert_eq!((null.kind(), null.rdev()), (Kind::Char, (1, 3)));
    let s = idx.get(idx.lookup(b"bin").unwrap()).unwrap();
    assert_eq!(s.link(), b"/../../etc/passwd", "symlinks are kept verbatim");

    let root = idx.get(0).unwrap();
    assert_eq!(
        (root.kind(), root.name(), root.implicit()),
        (Kind::Dir, &b""[..], true)
    );
    assert_eq!(idx.lookup(b""), Some(0));
    assert_eq!(idx.lookup(b"usr/bin/sh/x"), None);
    assert_eq!(idx.lookup(b"usr/nope"), None);
    assert_eq!(idx.children(sh.id()), 0..0);
}

#[test]
fn children_are_contiguous_and_sorted_by_bytes() {
    let names = ["b", "a", "B", "a.b", "\u{e9}", "a-", "zz", "0"];
    let bytes = build(
        names
            .iter()
            .map(|n| file(&format!("d/{n}"), 0, 0))
            .collect(),
    );
    let idx = Index::open(&bytes[..]).unwrap();
    let d = idx.lookup(b"d").unwrap();
    let got: Vec<&[u8]> = idx
        .children(d)
        .map(|c| idx.get(c).unwrap().name())
        .collect();
    let mut want: Vec<&[u8]> = names.iter().map(|n| n.as_bytes()).collect();
    want.sort();
    assert_eq!(got, want);
    for n in names {
        let c = idx.lookup_child(d, n.as_bytes()).unwrap();
        assert_eq!(idx.get(c).unwrap().name(), n.as_bytes());
    }
    assert_eq!(idx.lookup_child(d, b"c"), None);
}

#[test]
fn later_entries_replace_earlier_ones() {
    let mut d2 = dir("d");
    d2.mode = 0o711;
    let bytes = build(vec![
        dir("d"),
        file("d/x", 512, 1),
        d2, // a dir again: metadata replaced, children kept
        file("f", 1024, 1),
        dir("f"), // a dir over a file
        file("f/y", 2048, 1),
        dir("g"),
        file("g/z", 3072, 1),
        file("g", 4096, 5), // a file over a dir: the subtree goes
    ]);
    let idx = Index::open(&bytes[..]).unwrap();
    assert_eq!(listing(&idx), ["d/", "d/x", "f/", "f/y", "g"]);
    assert_eq!(idx.get(idx.lookup(b"d").unwrap()).unwrap().mode(), 0o711);
    assert_eq!(idx.get(idx.lookup(b"g").unwrap()).unwrap().size(), 5);
}

#[test]
fn whiteouts_and_opaque_dirs_are_recorded() {
    let mut b = IndexBuilder::new();
    b.add(of_kind("etc/gone", Kind::Whiteout)).unwrap();
    b.set_opaque(b"var/cache").unwrap();
    b.add(dir("var/cache")).unwrap();
    b.add(file("var/cache/new", 0, 0)).unwrap();
    b.add(of_kind("w", Kind::Whiteout)).unwrap();
    b.add(file("w/inside", 0, 0)).unwrap();
    let bytes = b.finish();
    let idx = Index::open(&bytes[..]).unwrap();
    assert_eq!(
        listing(&idx),
        [
            "etc/",
            "etc/gone (wh)",
            "var/",
            "var/cache/",
            "var/cache/new",
            "w/",
            "w/inside"
        ]
    );
    let cache = idx.get(idx.lookup(b"var/cache").unwrap()).unwrap();
    assert!(
        cache.opaque(),
        "the opaque flag survives the directory's own entry"
    );
    assert_eq!(cache.mode(), 0o700);
    assert!(
        idx.get(idx.lookup(b"w").unwrap()).unwrap().opaque(),
        "a whiteout then entries under it: a fresh (opaque) directory"
    );
    assert!(!idx.get(idx.lookup(b"var").unwrap()).unwrap().opaque());
}

#[test]
fn hardlinks_take_their_targets_inode() {
    let mut t = file("bin/busybox", 4096, 100);
    t.uid = 3;
    let bytes = build(vec![
        t,
        link("bin/sh", "bin/busybox"),
        link("bin/ls", "bin/sh"),
        file("bin/other", 8192, 1),
    ]);
    let idx = Index::open(&bytes[..]).unwrap();
    let bb = idx.get(idx.lookup(b"bin/busybox").unwrap()).unwrap();
    for p in ["bin/sh", "bin/ls"] {
        let e = idx.get(idx.lookup(p.as_bytes()).unwrap()).unwrap();
        assert_eq!(e.kind(), Kind::Hardlink);
        assert_eq!(
            (e.size(), e.data_offset(), e.uid(), e.mode()),
            (100, 4096, 3, 0o644)
        );
        assert_eq!(e.ino(), bb.ino());
        assert_eq!(e.nlink(), 3);
    }
    assert_eq!(
        idx.get(idx.lookup(b"bin/sh").unwrap()).unwrap().link(),
        b"bin/busybox"
    );
    let other = idx.get(idx.lookup(b"bin/other").unwrap()).unwrap();
    assert_eq!((other.nlink(), other.ino()), (1, other.id()));

    let mut b = IndexBuilder::new();
    b.add(dir("d")).unwrap();
    for (p, t) in [("x", "nowhere"), ("y", "d"), ("z", "../etc/passwd")] {
        let err = b.add(link(p, t)).unwrap_err();
        assert!(err.to_string().contains(&format!("{t:?}")), "{err}");
    }
}

#[test]
fn bad_paths_are_refused() {
    let mut b = IndexBuilder::new();
    for p in ["/abs", "a/../b", "./a", "a//b", "a/", "a/.", "a\0b"] {
        let err = b.add(file(p, 0, 0)).unwrap_err();
        assert!(matches!(err, IndexError::BadPath { .. }), "{p}: {err}");
    }
    assert!(b.add(file("", 0, 0)).is_err(), "a file as the root");
    b.add(file("f", 0, 0)).unwrap();
    let err = b.add(file("f/g", 0, 0)).unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");
    assert!(b.set_opaque(b"f").is_err());
}

#[test]
fn long_names_and_deep_paths() {
    let long = "n".repeat(255);
    let deep = vec!["d"; 2047].join("/") + "/ff";
    assert_eq!(deep.len(), 4096);
    let bytes = build(vec![file(&long, 0, 1), file(&deep, 512, 2)]);
    let idx = Index::open(&bytes[..]).unwrap();
    assert_eq!(
        idx.path(idx.lookup(long.as_bytes()).unwrap()),
        long.as_bytes()
    );
    let id = idx.lookup(deep.as_bytes()).unwrap();
    assert_eq!(idx.path(id), deep.as_bytes());
    assert_eq!(idx.get(id).unwrap().size(), 2);
}

#[test]
fn an_empty_builder_gives_a_root() {
    let bytes = IndexBuilder::new().finish();
    let idx = Index::open(&bytes[..]).unwrap();
    assert_eq!(idx.len(), 1);
    assert_eq!(idx.children(0), 0..0);
    assert_eq!(listing(&idx), Vec::<String>::new());
}

/// Exercises every accessor over the whole index: what the fuzz target does.
fn walk<B: AsRef<[u8]>>(idx: &Index<B>) -> usize {
    let mut n = 0;
    for id in 0..idx.len() + 2 {
        if let Some(e) = idx.get(id) {
            n += e.name().len() + e.link().len() + e.xattrs().count();
            let _ = (e.kind(), e.mode(), e.uid(), e.gid(), e.mtime(), e.size());
            let _ = (e.data_offset(), e.rdev(), e.opaque(), e.layer(), e.parent());
            let _ = (e.ino(), e.nlink(), e.to_new());
            let p = idx.path(id);
            assert_eq!(idx.lookup(&p), Some(id));
            for c in idx.children(id) {
                assert_eq!(idx.lookup_child(id, idx.get(c).unwrap().name()), Some(c));
            }
        }
    }
    n
}

#[test]
fn open_refuses_damaged_bytes_without_panicking() {
    let mut x = file("a/b", 0, 3);
    x.xattrs = vec![(b"user.k".to_vec(), b"v".to_vec())];
    let mut s = of_kind("a/s", Kind::Symlink);
    s.link = b"target".to_vec();
    let good = build(vec![x, s, dir("c"), file("c/d", 512, 1)]);
    assert!(walk(&Index::open(&good[..]).unwrap()) > 0);
    // every truncation
    for n in 0..good.len() {
        assert!(Index::open(&good[..n]).is_err(), "truncated to {n}");
    }
    // every single-byte change either is refused or still reads consistently
    let mut accepted = 0;
    for i in 0..good.len() {
        for v in [0u8, 1, 0x7f, 0xff] {
            let mut bad = good.clone();
            if bad[i] == v {
                continue;
            }
            bad[i] = v;
            if let Ok(idx) = Index::open(&bad[..]) {
                accepted += 1;
                walk(&idx);
            }
        }
    }
    assert!(
        accepted > 0,
        "changes to plain fields (mode, size) stay readable"
    );
    let err = Index::open(&b"camadaix\x02\0\0\0"[..]).err().unwrap();
    assert!(err.to_string().contains("corrupt layer index"), "{err}");
    let mut v2 = good.clone();
    v2[8] = 2;
    assert!(
        Index::open(&v2[..])
            .err()
            .unwrap()
            .to_string()
            .contains("version 2")
    );
}

#[test]
fn open_survives_random_bytes() {
    // a small deterministic generator: no dependency, same bytes every run
    let mut s: u64 = 0x9e3779b97f4a7c15;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let good = build(vec![file("a/b", 0, 3), dir("c"), file("c/d", 512, 1)]);
    for _ in 0..2000 {
        let mut b = good.clone();
        for _ in 0..(next() % 8 + 1) {
            let i = (next() as usize) % b.len();
            b[i] = next() as u8;
        }
        if let Ok(idx) = Index::open(&b[..]) {
            walk(&idx);
        }
    }
}

// ---- merge ----

struct Layer(Vec<NewEntry>, Vec<&'static str>);

fn merged(layers: Vec<Layer>) -> (Vec<u8>, Vec<String>) {
    let built: Vec<Vec<u8>> = layers
        .into_iter()
        .map(|Layer(es, opq)| {
            let mut b = IndexBuilder::new();
            for e in es {
                b.add(e).unwrap();
            }
            for o in opq {
                b.set_opaque(o.as_bytes()).unwrap();
            }
            b.finish()
        })
        .collect();
    let idxs: Vec<Index<&[u8]>> = built.iter().map(|b| Index::open(&b[..]).unwrap()).collect();
    let refs: Vec<&Index<&[u8]>> = idxs.iter().collect();
    let out = merge(&refs).unwrap();
    let list = listing(&Index::open(&out[..]).unwrap());
    (out, list)
}

#[test]
fn merge_semantics_table() {
    let wh = |p| of_kind(p, Kind::Whiteout);
    let cases: Vec<(&str, Vec<Layer>, Vec<&str>)> = vec![
        (
            "union of two layers",
            vec![
                Layer(vec![file("a/x", 0, 1)], vec![]),
                Layer(vec![file("a/y", 0, 1), file("b", 0, 1)], vec![]),
            ],
            vec!["a/", "a/x", "a/y", "b"],
        ),
        (
            "a whiteout deletes a lower file",
            vec![
                Layer(vec![file("a/x", 0, 1), file("a/y", 512, 1)], vec![]),
                Layer(vec![wh("a/x")], vec![]),
            ],
            vec!["a/", "a/y"],
        ),
        (
            "a whiteout deletes a lower subtree",
            vec![
                Layer(vec![file("a/x/deep/f", 0, 1), file("b", 0, 1)], vec![]),
                Layer(vec![wh("a")], vec![]),
            ],
            vec!["b"],
        ),
        (
            "a whiteout of nothing is harmless",
            vec![
                Layer(vec![file("b", 0, 1)], vec![]),
                Layer(vec![wh("zz/q")], vec![]),
            ],
            vec!["b", "zz/"],
        ),
        (
            "an opaque dir hides lower children and keeps its own",
            vec![
                Layer(vec![file("d/old", 0, 1), file("d/sub/x", 0, 1)], vec![]),
                Layer(vec![dir("d"), file("d/new", 0, 1)], vec!["d"]),
            ],
            vec!["d/", "d/new"],
        ),
        (
            "opaque applies only to layers below",
            vec![
                Layer(vec![file("d/old", 0, 1)], vec![]),
                Layer(vec![file("d/mid", 0, 1)], vec!["d"]),
                Layer(vec![file("d/top", 0, 1)], vec![]),
            ],
            vec!["d/", "d/mid", "d/top"],
        ),
        (
            "a file over a dir replaces the subtree",
            vec![
                Layer(vec![file("d/x", 0, 1)], vec![]),
                Layer(vec![file("d", 0, 1)], vec![]),
            ],
            vec!["d"],
        ),
        (
            "a dir over a file replaces it",
            vec![
                Layer(vec![file("d", 0, 1)], vec![]),
                Layer(vec![file("d/x", 0, 1)], vec![]),
            ],
            vec!["d/", "d/x"],
        ),
        (
            "a symlink over a dir replaces it",
            vec![
                Layer(vec![file("d/x", 0, 1)], vec![]),
                Layer(vec![of_kind("d", Kind::Symlink)], vec![]),
            ],
            vec!["d ->"],
        ),
        (
            "whiteout then recreate in the same layer",
            vec![
                Layer(vec![file("d/old", 0, 1)], vec![]),
                Layer(vec![wh("d"), file("d/new", 0, 1)], vec![]),
            ],
            vec!["d/", "d/new"],
        ),
        (
            "whiteout then a dir entry in the same layer",
            vec![
                Layer(vec![file("d/old", 0, 1)], vec![]),
                Layer(vec![wh("d"), dir("d")], vec![]),
            ],
            vec!["d/"],
        ),
        (
            "an opaque root hides everything below",
            vec![
                Layer(vec![file("a", 0, 1)], vec![]),
                Layer(vec![file("b", 0, 1)], vec![""]),
            ],
            vec!["b"],
        ),
        (
            "a deleted file comes back from a higher layer",
            vec![
                Layer(vec![file("a", 0, 1)], vec![]),
                Layer(vec![wh("a")], vec![]),
                Layer(vec![file("a", 0, 1)], vec![]),
            ],
            vec!["a"],
        ),
    ];
    for (name, layers, want) in cases {
        let (_, got) = merged(layers);
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn merge_records_layers_metadata_and_inodes() {
    let mut low_dir = dir("etc");
    low_dir.mode = 0o755;
    let mut top_dir = dir("etc");
    top_dir.mode = 0o750;
    let (out, list) = merged(vec![
        Layer(
            vec![
                low_dir,
                file("etc/a", 512, 10),
                file("usr/bin/bb", 1024, 20),
            ],
            vec![],
        ),
        Layer(
            vec![
                file("etc/b", 512, 11),
                link("etc/b2", "etc/b"),
                file("usr/bin/x", 2048, 1), // implicit usr, usr/bin: lower metadata kept
            ],
            vec![],
        ),
        Layer(vec![top_dir, file("etc/a", 4096, 12)], vec![]),
    ]);
    assert_eq!(
        list,
        [
            "etc/",
            "etc/a",
            "etc/b",
            "etc/b2",
            "usr/",
            "usr/bin/",
            "usr/bin/bb",
            "usr/bin/x"
        ]
    );
    let idx = Index::open(&out[..]).unwrap();
    let get = |p: &str| idx.get(idx.lookup(p.as_bytes()).unwrap()).unwrap();
    assert_eq!((get("etc").mode(), get("etc").layer()), (0o750, 2));
    assert_eq!(
        (
            get("etc/a").layer(),
            get("etc/a").data_offset(),
            get("etc/a").size()
        ),
        (2, 4096, 12)
    );
    assert_eq!((get("etc/b").layer(), get("etc/b").data_offset()), (1, 512));
    let b2 = get("etc/b2");
    assert_eq!(b2.kind(), Kind::File, "hardlinks are resolved");
    assert_eq!((b2.layer(), b2.data_offset(), b2.size()), (1, 512, 11));
    assert_eq!(b2.ino(), get("etc/b").ino());
    assert_eq!((b2.nlink(), get("etc/b").nlink()), (2, 2));
    assert_ne!(
        get("etc/a").ino(),
        b2.ino(),
        "same offset, other layer: other inode"
    );
    assert_eq!(
        get("usr/bin").layer(),
        0,
        "an implicit dir keeps the lower metadata"
    );
    assert_eq!(get("usr/bin").mode(), 0o755);
    assert_eq!(get("usr/bin/bb").layer(), 0);
    for id in 0..idx.len() {
        let e = idx.get(id).unwrap();
        assert!(!matches!(e.kind(), Kind::Whiteout | Kind::Hardlink));
        assert!(!e.opaque());
    }
}

#[test]
fn merge_of_a_hardlink_whose_target_was_deleted_above() {
    let (out, list) = merged(vec![
        Layer(vec![file("a", 512, 3), link("b", "a")], vec![]),
        Layer(vec![of_kind("a", Kind::Whiteout)], vec![]),
    ]);
    assert_eq!(list, ["b"]);
    let idx = Index::open(&out[..]).unwrap();
    let b = idx.get(idx.lookup(b"b").unwrap()).unwrap();
    assert_eq!(
        (b.kind(), b.data_offset(), b.size(), b.nlink()),
        (Kind::File, 512, 3, 1)
    );
}

#[test]
fn merge_of_nothing_is_an_empty_root() {
    let none: [&Index<Vec<u8>>; 0] = [];
    let out = merge(&none).unwrap();
    assert_eq!(Index::open(&out[..]).unwrap().len(), 1);
}

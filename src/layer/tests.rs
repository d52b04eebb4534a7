use super::*;
use crate::tarindex::Index;
use std::path::Path;
use std::process::Command;

/// Ingests `blob`; returns the result, the tar written and the index bytes.
fn run(blob: &[u8]) -> Result<(Ingested, Vec<u8>, Vec<u8>), LayerError> {
    let (mut tar, mut idx) = (Vec::new(), Vec::new());
    let got = ingest(blob, &mut tar, &mut idx)?;
    Ok((got, tar, idx))
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn zstd(b: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(b, 1).unwrap()
}

fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(1_700_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// A tar made with the `tar` crate: files, dirs, links, a device, long names, PAX xattrs.
fn sample_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.append_data(
        &mut header(tar::EntryType::Directory, 0, 0o755),
        "etc/",
        &b""[..],
    )
    .unwrap();
    let mut h = header(tar::EntryType::Regular, 5, 0o640);
    h.set_uid(1000);
    h.set_gid(50);
    b.append_data(&mut h, "etc/hosts", &b"hello"[..]).unwrap();
    b.append_pax_extensions([
        ("SCHILY.xattr.user.note", &b"v1"[..]),
        ("SCHILY.xattr.security.capability", &[1u8, 0, 0, 2][..]),
        ("mtime", &b"1700000000.25"[..]),
    ])
    .unwrap();
    b.append_data(
        &mut header(tar::EntryType::Regular, 3, 0o4755),
        "bin/ping",
        &b"elf"[..],
    )
    .unwrap();
    let mut l = header(tar::EntryType::Symlink, 0, 0o777);
    b.append_link(&mut l, "etc/passwd-link", "/../../../etc/passwd")
        .unwrap();
    let mut hl = header(tar::EntryType::Link, 0, 0o640);
    b.append_link(&mut hl, "etc/hosts2", "etc/hosts").unwrap();
    let long = format!("usr/{}", "x".repeat(255));
    b.append_data(
        &mut header(tar::EntryType::Regular, 4, 0o644),
        &long,
        &b"long"[..],
    )
    .unwrap();
    let mut dev = header(tar::EntryType::Char, 0, 0o666);
    dev.set_device_major(1).unwrap();
    dev.set_device_minor(3).unwrap();
    b.append_data(&mut dev, "dev/null", &b""[..]).unwrap();
    b.append_data(
        &mut header(tar::EntryType::Fifo, 0, 0o600),
        "run/fifo",
        &b""[..],
    )
    .unwrap();
    b.into_inner().unwrap()
}

fn content<'a>(tar: &'a [u8], idx: &Index<&[u8]>, path: &str) -> &'a [u8] {
    let e = idx.get(idx.lookup(path.as_bytes()).unwrap()).unwrap();
    &tar[e.data_offset() as usize..(e.data_offset() + e.size()) as usize]
}

#[test]
fn ingests_every_compression_with_the_same_diff_id() {
    let raw = sample_tar();
    let mut seen = Vec::new();
    for (blob, c) in [
        (raw.clone(), Compression::None),
        (gzip(&raw), Compression::Gzip),
        (zstd(&raw), Compression::Zstd),
    ] {
        let (got, tar, idx) = run(&blob).unwrap();
        assert_eq!(got.compression, c);
        assert_eq!(tar, raw, "the tar written is the uncompressed stream");
        assert_eq!(got.diff_id.0, Digest::of(&raw));
        assert_eq!(got.compressed, Digest::of(&blob));
        assert_eq!(got.compressed_size, blob.len() as u64);
        assert_eq!(got.tar_size, raw.len() as u64);
        assert_eq!(got.entries, 8);
        seen.push(idx);
    }
    assert!(
        seen.windows(2).all(|w| w[0] == w[1]),
        "same index whatever the compression"
    );
}

#[test]
fn the_index_describes_the_tar() {
    let (_, tar, idx) = run(&sample_tar()).unwrap();
    let idx = Index::open(&idx[..]).unwrap();
    let get = |p: &str| idx.get(idx.lookup(p.as_bytes()).unwrap()).unwrap();
    assert_eq!(content(&tar, &idx, "etc/hosts"), b"hello");
    let hosts = get("etc/hosts");
    assert_eq!((hosts.mode(), hosts.uid(), hosts.gid()), (0o640, 1000, 50));
    assert_eq!(hosts.mtime(), (1_700_000_000, 0));
    let ping = get("bin/ping");
    assert_eq!(content(&tar, &idx, "bin/ping"), b"elf");
    assert_eq!(ping.mode(), 0o4755);
    assert_eq!(ping.mtime(), (1_700_000_000, 250_000_000));
    let x: Vec<_> = ping.xattrs().collect();
    assert_eq!(
        x,
        [
            (&b"security.capability"[..], &[1u8, 0, 0, 2][..]),
            (&b"user.note"[..], &b"v1"[..])
        ]
    );
    assert!(get("bin").implicit());
    let l = get("etc/passwd-link");
    assert_eq!(
        (l.kind(), l.link()),
        (Kind::Symlink, &b"/../../../etc/passwd"[..])
    );
    let h2 = get("etc/hosts2");
    assert_eq!((h2.kind(), h2.link()), (Kind::Hardlink, &b"etc/hosts"[..]));
    assert_eq!((h2.data_offset(), h2.size()), (hosts.data_offset(), 5));
    assert_eq!(h2.ino(), hosts.ino());
    let long = format!("usr/{}", "x".repeat(255));
    assert_eq!(content(&tar, &idx, &long), b"long");
    let null = get("dev/null");
    assert_eq!(
        (null.kind(), null.rdev(), null.mode()),
        (Kind::Char, (1, 3), 0o666)
    );
    assert_eq!(get("run/fifo").kind(), Kind::Fifo);
}

/// Raw ustar header with a correct checksum, for cases the `tar` crate will not write.
fn raw_header(name: &[u8], typeflag: u8, size: u64, link: &[u8]) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name);
    h[100..107].copy_from_slice(b"0000644");
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = typeflag;
    h[157..157 + link.len()].copy_from_slice(link);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    fix_checksum(&mut h);
    h
}

fn fix_checksum(h: &mut [u8; 512]) {
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&c| u32::from(c)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
}

fn entry(name: &[u8], typeflag: u8, data: &[u8], link: &[u8]) -> Vec<u8> {
    let mut v = raw_header(name, typeflag, data.len() as u64, link).to_vec();
    v.extend_from_slice(data);
    v.resize(v.len().div_ceil(512) * 512, 0);
    v
}

fn pax(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut data = Vec::new();
    for (k, v) in records {
        let body = [k.as_bytes(), b"=", v, b"\n"].concat();
        let mut len = body.len() + 2;
        while format!("{len} ").len() + body.len() != len {
            len += 1;
        }
        data.extend_from_slice(format!("{len} ").as_bytes());
        data.extend_from_slice(&body);
    }
    entry(b"PaxHeader", b'x', &data, b"")
}

fn finish(mut t: Vec<u8>) -> Vec<u8> {
    t.extend_from_slice(&[0; 1024]);
    t
}

fn listing(idx: &[u8]) -> Vec<String> {
    let idx = Index::open(idx).unwrap();
    let mut out: Vec<String> = (1..idx.len())
        .map(|i| {
            let e = idx.get(i).unwrap();
            let tag = match e.kind() {
                Kind::Dir if e.opaque() => "/ (opaque)",
                Kind::Dir => "/",
                Kind::Whiteout => " (wh)",
                _ => "",
            };
            format!("{}{tag}", String::from_utf8_lossy(&idx.path(i)))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn whiteouts_opaque_markers_and_aufs_metadata() {
    let t = finish(
        [
            entry(b"etc/.wh.gone", b'0', b"", b""),
            entry(b"var/cache/.wh..wh..opq", b'0', b"", b""),
            entry(b"var/cache/", b'5', b"", b""),
            entry(b".wh..wh.plnk/123.456", b'0', b"x", b""),
            entry(b".wh..wh.aufs", b'0', b"", b""),
            entry(b".wh.top", b'5', b"", b""),
        ]
        .concat(),
    );
    let (got, _, idx) = run(&t).unwrap();
    assert_eq!(got.entries, 4);
    assert_eq!(
        listing(&idx),
        [
            "etc/",
            "etc/gone (wh)",
            "top (wh)",
            "var/",
            "var/cache/ (opaque)"
        ]
    );
    let err = run(&finish(entry(b"a/.wh.", b'0', b"", b""))).unwrap_err();
    assert!(err.to_string().contains("whiteout without a name"), "{err}");
}

#[test]
fn paths_are_normalised_inside_the_root() {
    let t = finish(
        [
            entry(b"../../etc/x", b'0', b"1", b""),
            entry(b"/abs/y", b'0', b"2", b""),
            entry(b"./a/./b//c/", b'5', b"", b""),
            entry(b"./", b'5', b"", b""),
            entry(b"a/../../z", b'1', b"", b"../../etc/x"),
        ]
        .concat(),
    );
    let (_, tar, idx) = run(&t).unwrap();
    assert_eq!(
        listing(&idx),
        [
            "a/", "a/b/", "a/b/c/", "abs/", "abs/y", "etc/", "etc/x", "z"
        ]
    );
    let i = Index::open(&idx[..]).unwrap();
    assert_eq!(
        content(&tar, &i, "z"),
        b"1",
        "the hardlink target is normalised too"
    );
    assert!(!i.get(0).unwrap().implicit(), "./ describes the root");
}

#[test]
fn hardlinks_must_point_earlier_in_the_layer() {
    for (target, t) in [
        (
            "later",
            [
                entry(b"l", b'1', b"", b"later"),
                entry(b"later", b'0', b"", b""),
            ]
            .concat(),
        ),
        ("etc/passwd", entry(b"l", b'1', b"", b"/etc/passwd")),
        (
            "d",
            [entry(b"d/", b'5', b"", b""), entry(b"l", b'1', b"", b"d")].concat(),
        ),
    ] {
        let err = run(&finish(t)).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("{target:?}")) && msg.contains("hardlink"),
            "{msg}"
        );
        assert!(msg.contains("at byte"), "{msg}");
    }
}

#[test]
fn pax_overrides_and_libarchive_xattrs() {
    let long_path = vec!["p"; 2047].join("/") + "/ff";
    assert_eq!(long_path.len(), 4096);
    let t = finish(
        [
            pax(&[
                ("path", long_path.as_bytes()),
                ("uid", b"100000"),
                ("gid", b"4294967295"),
                ("mtime", b"-1.5"),
                ("LIBARCHIVE.xattr.user.a%3Db", b"aGk="),
                ("SCHILY.xattr.user.raw", b"x\0y"),
                ("atime", b"1"),
            ]),
            entry(b"short", b'0', b"data", b""),
            pax(&[("linkpath", b"/very/long/target"), ("size", b"0")]),
            entry(b"s", b'2', b"", b"ignored"),
        ]
        .concat(),
    );
    let (_, tar, idx) = run(&t).unwrap();
    let i = Index::open(&idx[..]).unwrap();
    let e = i.get(i.lookup(long_path.as_bytes()).unwrap()).unwrap();
    assert_eq!(
        (e.uid(), e.gid(), e.mtime()),
        (100000, u32::MAX, (-2, 500_000_000))
    );
    let x: Vec<_> = e.xattrs().collect();
    assert_eq!(
        x,
        [
            (&b"user.a=b"[..], &b"hi"[..]),
            (&b"user.raw"[..], &b"x\0y"[..])
        ]
    );
    assert_eq!(content(&tar, &i, &long_path), b"data");
    assert_eq!(i.lookup(b"short"), None, "the PAX path wins");
    assert_eq!(
        i.get(i.lookup(b"s").unwrap()).unwrap().link(),
        b"/very/long/target"
    );
}

#[test]
fn sparse_files_are_refused() {
    let old_gnu = finish(entry(b"sparse", b'S', b"", b""));
    let err = run(&old_gnu).unwrap_err();
    assert!(matches!(err, LayerError::Sparse { .. }), "{err}");
    assert!(err.to_string().contains("\"sparse\""), "{err}");
    let pax_sparse = finish(
        [
            pax(&[("GNU.sparse.major", b"1"), ("GNU.sparse.name", b"f")]),
            entry(b"GNUSparseFile.0/f", b'0', b"", b""),
        ]
        .concat(),
    );
    assert!(matches!(
        run(&pax_sparse).unwrap_err(),
        LayerError::Sparse { .. }
    ));
}

#[test]
fn trailing_bytes_belong_to_the_tar() {
    let mut t = finish(entry(b"f", b'0', b"x", b""));
    t.extend_from_slice(&[0; 9000]);
    t.extend_from_slice(b"trailing garbage");
    for blob in [t.clone(), gzip(&t)] {
        let (got, tar, _) = run(&blob).unwrap();
        assert_eq!(tar, t);
        assert_eq!(got.diff_id.0, Digest::of(&t));
    }
}

#[test]
fn truncated_and_corrupt_tars_are_errors_naming_the_place() {
    let t = sample_tar();
    // cutting anywhere before the end-of-archive blocks is an error, never a panic
    let end = t.len() - 1024;
    for cut in (0..end).step_by(97).chain([512, 1024, end - 1]) {
        match run(&t[..cut]) {
            Err(e) => assert!(e.to_string().contains("byte"), "{cut}: {e}"),
            Ok(_) => assert!(cut % 512 == 0, "cut at {cut} accepted"),
        }
        if let Err(e) = run(&gzip(&t[..cut])) {
            assert!(e.to_string().contains("byte"), "{e}");
        }
    }
    let data_cut = run(&entry(b"file", b'0', &[7; 2000], b"")[..1000]).unwrap_err();
    assert_eq!(
        data_cut.to_string(),
        "truncated layer tar: data of \"file\" at byte 512 ends early (the stream stops at byte 1000)"
    );
    // a truncated gzip stream
    let gz = gzip(&t);
    let err = run(&gz[..gz.len() / 2]).unwrap_err();
    assert!(
        err.to_string().contains("gzip") || err.to_string().contains("truncated"),
        "{err}"
    );
    // a flipped header byte
    let mut bad = t.clone();
    bad[3] ^= 0x20;
    let err = run(&bad).unwrap_err();
    assert_eq!(
        err.to_string(),
        "corrupt layer tar: header at byte 0: checksum mismatch (not a tar, or corrupt)"
    );
    // not a tar at all
    let err = run(&b"{\"json\": true}\n".repeat(100)).unwrap_err();
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
    // a bad size field
    let mut h = raw_header(b"f", b'0', 0, b"");
    h[124..135].copy_from_slice(b"0000000009x");
    fix_checksum(&mut h);
    let err = run(&h).unwrap_err();
    assert!(err.to_string().contains("invalid size field"), "{err}");
    // a zero block then a header
    let mut z = vec![0; 512];
    z.extend_from_slice(&entry(b"f", b'0', b"", b""));
    assert!(
        run(&z)
            .unwrap_err()
            .to_string()
            .contains("single zero block")
    );
    // unsupported entry types and compressions
    let err = run(&finish(entry(b"vol", b'V', b"", b""))).unwrap_err();
    assert!(err.to_string().contains("type 'V'"), "{err}");
    let err = run(b"\xfd7zXZ\0rest").unwrap_err();
    assert!(err.to_string().contains("xz"), "{err}");
}

#[test]
fn empty_input_is_an_empty_layer() {
    for blob in [Vec::new(), vec![0; 1024], gzip(&[0; 1024])] {
        let (got, _, idx) = run(&blob).unwrap();
        assert_eq!(got.entries, 0);
        assert_eq!(Index::open(&idx[..]).unwrap().len(), 1);
    }
}

#[test]
fn numbers_times_and_encodings() {
    assert_eq!(numeric(b"0000644\0"), Some(0o644));
    assert_eq!(numeric(b"   755 \0"), Some(0o755));
    assert_eq!(numeric(b"\0\0\0\0"), Some(0));
    assert_eq!(numeric(b"0009"), None);
    assert_eq!(
        numeric(&[0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]),
        Some(1 << 32)
    );
    assert_eq!(numeric(&[0xff; 8]), Some(-1));
    assert_eq!(
        numeric(&[0x80, 0xff, 0, 0, 0, 0, 0, 0, 0]),
        None,
        "overflow"
    );
    assert_eq!(parse_pax_time(b"12"), Some((12, 0)));
    assert_eq!(parse_pax_time(b"12.000000001999"), Some((12, 1)));
    assert_eq!(parse_pax_time(b"-0.25"), Some((-1, 750_000_000)));
    assert_eq!(parse_pax_time(b"1e3"), None);
    assert_eq!(base64_decode(b"aGVsbG8="), Some(b"hello".to_vec()));
    assert_eq!(base64_decode(b"aGk"), Some(b"hi".to_vec()));
    assert_eq!(base64_decode(b"a"), None);
    assert_eq!(percent_decode(b"user.a%3db%2"), b"user.a=b%2");
    assert_eq!(normalise(b"../../etc/x"), b"etc/x");
    assert_eq!(normalise(b"/"), b"");
    assert_eq!(normalise(b"a/b/../../.."), b"");
    assert_eq!(Compression::detect(b"").unwrap(), Compression::None);
}

// ---- tars written by real tools ----

/// A tree on disk with what layers hold: nested dirs, a 255-byte name, a long path,
/// symlinks (one pointing out of the root), a hardlink, a fifo, an empty file.
/// ustar cannot hold a 255-byte name (`long_names` false leaves it out).
fn make_tree(root: &Path, long_names: bool) {
    let mk = |p: &str, data: &[u8]| {
        let p = root.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    };
    mk("etc/passwd", b"root:x:0:0::/root:/bin/sh\n");
    mk("etc/empty", b"");
    mk("bin/busybox", &vec![0x7f; 70_000]);
    if long_names {
        mk(&format!("usr/share/{}", "n".repeat(255)), b"255");
    }
    let deep = format!("{}/leaf", ["deep"; 40].join("/"));
    mk(&deep, b"deep");
    std::os::unix::fs::symlink("/../../etc/shadow", root.join("etc/escape")).unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    std::fs::hard_link(root.join("bin/busybox"), root.join("bin/ls")).unwrap();
    assert!(
        Command::new("mkfifo")
            .arg(root.join("etc/fifo"))
            .status()
            .unwrap()
            .success()
    );
}

/// Every file under `root` is in the index with its content, size, kind and link.
fn check_against_tree(root: &Path, tar: &[u8], idx: &[u8], fmt: &str) {
    let idx = Index::open(idx).unwrap();
    let mut stack = vec![root.to_path_buf()];
    let mut n = 0;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_owned();
            let id = idx
                .lookup(rel.as_bytes())
                .unwrap_or_else(|| panic!("{fmt}: {rel} missing"));
            let ie = idx.get(id).unwrap();
            let ft = e.file_type().unwrap();
            n += 1;
            if ft.is_dir() {
                assert_eq!(ie.kind(), Kind::Dir, "{fmt}: {rel}");
                stack.push(p);
            } else if ft.is_symlink() {
                assert_eq!(ie.kind(), Kind::Symlink, "{fmt}: {rel}");
                let t = std::fs::read_link(&p).unwrap();
                assert_eq!(ie.link(), t.to_str().unwrap().as_bytes(), "{fmt}: {rel}");
            } else if ft.is_file() {
                assert!(
                    matches!(ie.kind(), Kind::File | Kind::Hardlink),
                    "{fmt}: {rel}"
                );
                let want = std::fs::read(&p).unwrap();
                let off = ie.data_offset() as usize;
                assert_eq!(
                    &tar[off..off + ie.size() as usize],
                    &want[..],
                    "{fmt}: {rel}"
                );
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
                assert_eq!(ie.mode(), mode, "{fmt}: {rel}");
            } else {
                assert_eq!(ie.kind(), Kind::Fifo, "{fmt}: {rel}");
            }
        }
    }
    assert_eq!(n, idx.len() - 1, "{fmt}: nothing extra in the index");
    let ls = idx.get(idx.lookup(b"bin/ls").unwrap()).unwrap();
    let bb = idx.get(idx.lookup(b"bin/busybox").unwrap()).unwrap();
    assert_eq!(ls.ino(), bb.ino(), "{fmt}: hardlink");
}

#[test]
fn gnu_tar_formats_and_busybox_tar() {
    let dir = tempfile::tempdir().unwrap();
    let mut done = 0;
    for fmt in ["gnu", "posix", "ustar", "busybox"] {
        let root = dir.path().join(format!("root-{fmt}"));
        make_tree(&root, fmt != "ustar");
        let out = dir.path().join(format!("{fmt}.tar"));
        let status = if fmt == "busybox" {
            Command::new("busybox")
                .args(["tar", "-cf"])
                .arg(&out)
                .arg("-C")
                .arg(&root)
                .arg(".")
                .status()
                .unwrap()
        } else {
            Command::new("tar")
                .arg(format!("--format={fmt}"))
                .args(["--sort=name", "-cf"])
                .arg(&out)
                .arg("-C")
                .arg(&root)
                .arg(".")
                .status()
                .unwrap()
        };
        assert!(status.success(), "{fmt}: tar failed");
        let blob = std::fs::read(&out).unwrap();
        let (got, tar, idx) = run(&blob).unwrap_or_else(|e| panic!("{fmt}: {e}"));
        assert_eq!(tar, blob);
        assert_eq!(got.diff_id.0, Digest::of(&blob));
        check_against_tree(&root, &tar, &idx, fmt);
        done += 1;
    }
    assert_eq!(done, 4);
}

#[test]
fn gnu_tar_sparse_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let f = std::fs::File::create(root.join("holes")).unwrap();
    f.set_len(10 << 20).unwrap();
    drop(f);
    for fmt in ["gnu", "posix"] {
        let out = dir.path().join(format!("{fmt}.tar"));
        let ok = Command::new("tar")
            .arg(format!("--format={fmt}"))
            .args(["--sparse", "-cf"])
            .arg(&out)
            .arg("-C")
            .arg(&root)
            .arg("holes")
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let err = run(&std::fs::read(&out).unwrap()).unwrap_err();
        assert!(matches!(err, LayerError::Sparse { .. }), "{fmt}: {err}");
    }
}

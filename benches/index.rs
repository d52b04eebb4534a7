//! Layer ingestion and the merged chain index (issue 2, "Benchmarks").
//!
//! (a) `ingest` of a big layer of many small files (decompress + hash both digests + parse +
//!     index, the tar written to a file on /var/tmp like the store does), for gzip, zstd and
//!     plain input, against `tar -xzf` of the same blob into a fresh directory (what podman
//!     and umoci do at pull), in the same run. Throughput is in bytes of uncompressed tar.
//! (b) the merged index of a 5-layer chain: build time, `Index::open` (the check done at
//!     every mount) and `lookup` of paths over an mmapped index file.
//!
//! The layer: `/var/tmp/camada-bench/layer.tar` if present; else a tar of
//! `/var/tmp/camada-bench/debian-rootfs` (make it with
//! `debootstrap --variant=minbase bookworm /var/tmp/camada-bench/debian-rootfs`); else a
//! generated tree (about 5,000 files with a debian-like size mix, ~150 MB), made once and
//! cached there. Set CAMADA_BENCH_DIR to use another directory.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use camada::layer::ingest;
use camada::tarindex::{Index, IndexBuilder, Kind, NewEntry, merge};
use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};

fn bench_dir() -> PathBuf {
    let d = std::env::var_os("CAMADA_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/camada-bench"));
    fs::create_dir_all(d.join("work")).unwrap();
    d
}

/// A deterministic generator (xorshift64*), so the generated tree is the same every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// A tree shaped like a distribution rootfs: many small files, some medium, a few big.
fn generate_tree(root: &Path) {
    let mut rng = Rng(0x5eed);
    let dirs = [
        "usr/bin",
        "usr/sbin",
        "usr/lib/x86_64-linux-gnu",
        "usr/share/doc",
        "usr/share/man/man1",
        "usr/share/locale/de/LC_MESSAGES",
        "usr/share/zoneinfo/Europe",
        "usr/lib/python3/dist-packages",
        "etc",
        "etc/default",
        "var/lib/dpkg/info",
        "usr/include/linux",
    ];
    let mut filler = vec![0u8; 40 << 20];
    for b in filler.iter_mut() {
        // compressible like binaries and text are (about 3:1), not like random bytes
        let r = rng.next();
        *b = if r % 3 == 0 {
            (r >> 8) as u8
        } else {
            b"etc/usr/lib\n    "[(r >> 16) as usize % 16]
        };
    }
    for i in 0..5_000u64 {
        let d = root
            .join(dirs[(rng.next() % dirs.len() as u64) as usize])
            .join(format!("d{}", i % 97));
        fs::create_dir_all(&d).unwrap();
        let r = rng.next() % 1000;
        let size = match r {
            0..=599 => 64 + rng.next() % 4_000,
            600..=899 => 4_000 + rng.next() % 40_000,
            900..=989 => 40_000 + rng.next() % 400_000,
            _ => 400_000 + rng.next() % 6_000_000,
        } as usize;
        let start = (rng.next() as usize) % (filler.len() - size);
        fs::write(d.join(format!("file-{i}")), &filler[start..start + size]).unwrap();
    }
    for i in 0..1500 {
        std::os::unix::fs::symlink(
            format!("../file-{i}"),
            root.join("etc").join(format!("link-{i}")),
        )
        .ok();
    }
}

fn tar_dir(src: &Path, out: &Path) {
    let tmp = out.with_extension("tmp");
    let ok = Command::new("tar")
        .args(["--sort=name", "--numeric-owner", "--format=posix", "-cf"])
        .arg(&tmp)
        .arg("-C")
        .arg(src)
        .arg(".")
        .status()
        .unwrap()
        .success();
    assert!(ok, "tar of {} failed", src.display());
    fs::rename(tmp, out).unwrap();
}

/// The layer blobs: (plain tar, gzip, zstd).
fn layer_blobs() -> (PathBuf, PathBuf, PathBuf) {
    let dir = bench_dir();
    let tar = dir.join("layer.tar");
    if !tar.exists() {
        let rootfs = dir.join("debian-rootfs");
        if rootfs.join("usr/bin").exists() {
            tar_dir(&rootfs, &tar);
        } else {
            let generated = dir.join("generated-rootfs");
            if !generated.join("etc").exists() {
                generate_tree(&generated);
            }
            tar_dir(&generated, &tar);
        }
    }
    let gz = dir.join("layer.tar.gz");
    if !gz.exists() {
        let mut e = flate2::write::GzEncoder::new(
            BufWriter::new(File::create(gz.with_extension("tmp")).unwrap()),
            flate2::Compression::new(6),
        );
        std::io::copy(&mut File::open(&tar).unwrap(), &mut e).unwrap();
        e.finish().unwrap().flush().unwrap();
        fs::rename(gz.with_extension("tmp"), &gz).unwrap();
    }
    let zst = dir.join("layer.tar.zst");
    if !zst.exists() {
        let out = File::create(zst.with_extension("tmp")).unwrap();
        zstd::stream::copy_encode(File::open(&tar).unwrap(), out, 3).unwrap();
        fs::rename(zst.with_extension("tmp"), &zst).unwrap();
    }
    (tar, gz, zst)
}

fn ingest_file(blob: &Path, out: &Path) -> (u64, Vec<u8>) {
    let tar_out = BufWriter::with_capacity(1 << 20, File::create(out.join("tar")).unwrap());
    let mut idx = Vec::new();
    let got = ingest(
        BufReader::with_capacity(1 << 20, File::open(blob).unwrap()),
        tar_out,
        &mut idx,
    )
    .unwrap();
    fs::write(out.join("idx"), &idx).unwrap();
    (got.entries, idx)
}

fn workdir() -> tempfile::TempDir {
    tempfile::tempdir_in(bench_dir().join("work")).unwrap()
}

fn bench_ingest(c: &mut Criterion) {
    let (tar, gz, zst) = layer_blobs();
    let tar_size = fs::metadata(&tar).unwrap().len();
    let probe = workdir();
    let (entries, _) = ingest_file(&tar, probe.path());
    eprintln!(
        "layer: {:.1} MiB tar, {} entries; gzip {:.1} MiB, zstd {:.1} MiB",
        tar_size as f64 / 1048576.0,
        entries,
        fs::metadata(&gz).unwrap().len() as f64 / 1048576.0,
        fs::metadata(&zst).unwrap().len() as f64 / 1048576.0
    );
    drop(probe);
    let mut g = c.benchmark_group("layer");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(20))
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Bytes(tar_size));
    for (name, blob) in [
        ("ingest_gzip", &gz),
        ("ingest_zstd", &zst),
        ("ingest_plain", &tar),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched(
                workdir,
                |d| {
                    ingest_file(blob, d.path());
                    d
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.bench_function("tar_xzf", |b| {
        b.iter_batched(
            workdir,
            |d| {
                let ok = Command::new("tar")
                    .arg("-xzf")
                    .arg(&gz)
                    .arg("-C")
                    .arg(d.path())
                    .status()
                    .unwrap()
                    .success();
                assert!(ok);
                d
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn file(path: String, layer_off: u64) -> NewEntry {
    NewEntry {
        path: path.into_bytes(),
        kind: Kind::File,
        mode: 0o644,
        size: 100,
        data_offset: layer_off,
        ..NewEntry::default()
    }
}

/// A 5-layer chain: the big layer at the bottom, then a layer of 10,000 new small files,
/// one rewriting 2,000 existing files and deleting 100, one with opaque directories, and
/// a small top layer.
fn chain_indexes() -> Vec<Vec<u8>> {
    let (tar, _, _) = layer_blobs();
    let base_dir = workdir();
    let (_, base) = ingest_file(&tar, base_dir.path());
    let bi = Index::open(&base[..]).unwrap();
    let files: Vec<Vec<u8>> = (0..bi.len())
        .filter(|&i| bi.get(i).unwrap().kind() == Kind::File)
        .map(|i| bi.path(i))
        .collect();
    let mut out = vec![base.clone()];
    let mut b = IndexBuilder::new();
    for i in 0..10_000u64 {
        b.add(file(
            format!("app/node_modules/m{}/lib/f{i}.js", i % 300),
            i * 1024,
        ))
        .unwrap();
    }
    out.push(b.finish());
    let mut b = IndexBuilder::new();
    for (n, p) in files
        .iter()
        .step_by((files.len() / 2000).max(1))
        .enumerate()
    {
        let mut e = file(String::from_utf8_lossy(p).into_owned(), n as u64 * 1024);
        if n % 20 == 0 {
            e.kind = Kind::Whiteout;
        }
        b.add(e).unwrap();
    }
    out.push(b.finish());
    let mut b = IndexBuilder::new();
    b.set_opaque(b"app/node_modules/m7").unwrap();
    b.set_opaque(b"etc").unwrap();
    b.add(file("etc/hostname".into(), 512)).unwrap();
    b.add(file("app/node_modules/m7/index.js".into(), 1024))
        .unwrap();
    out.push(b.finish());
    let mut b = IndexBuilder::new();
    b.add(file("app/main.js".into(), 512)).unwrap();
    out.push(b.finish());
    out
}

fn bench_chain(c: &mut Criterion) {
    let layers = chain_indexes();
    let idxs: Vec<Index<&[u8]>> = layers
        .iter()
        .map(|b| Index::open(&b[..]).unwrap())
        .collect();
    let refs: Vec<&Index<&[u8]>> = idxs.iter().collect();
    let merged = merge(&refs).unwrap();
    let dir = workdir();
    let path = dir.path().join("chain.idx");
    fs::write(&path, &merged).unwrap();
    let f = File::open(&path).unwrap();
    // SAFETY: nothing else writes the file while it is mapped (a private temp dir).
    let map = unsafe { memmap2::Mmap::map(&f) }.unwrap();
    let idx = Index::open(&map[..]).unwrap();
    // every path of the merged view, in a scrambled order
    let mut paths: Vec<Vec<u8>> = (0..idx.len()).map(|i| idx.path(i)).collect();
    let mut rng = Rng(42);
    for i in (1..paths.len()).rev() {
        paths.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    eprintln!(
        "chain: 5 layers, {} entries in the merged index ({:.1} MiB)",
        idx.len(),
        merged.len() as f64 / 1048576.0
    );

    let mut g = c.benchmark_group("chain");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.bench_function("merge_5_layers", |b| b.iter(|| merge(&refs).unwrap()));
    g.bench_function("open_merged", |b| {
        b.iter(|| Index::open(&map[..]).unwrap().len())
    });
    g.throughput(Throughput::Elements(paths.len() as u64));
    g.bench_function("lookup_every_path_mmap", |b| {
        b.iter(|| {
            let mut found = 0u32;
            for p in &paths {
                found += idx.lookup(p).is_some() as u32;
            }
            assert_eq!(found as usize, paths.len());
        })
    });
    g.finish();
}

criterion_group!(benches, bench_ingest, bench_chain);
criterion_main!(benches);

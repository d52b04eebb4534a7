//! The overlay against the kernel's overlayfs: the same layers, the same operations,
//! every result compared; then the cases where we must differ from (or beat) it.
//!
//! Our overlay runs in a child process (this test binary re-executed with a job in
//! `CAMADA_OVL_JOB`): as root, or as the unprivileged user `camadatest` inside a user
//! and mount namespace of its own (`unshare -Urm`), where it mounts /dev/fuse itself.
//! Tests that need root (kernel overlayfs, the other user) are skipped without it,
//! except on CI, where they fail (tests/common `require`).

mod common;
mod overlay_fixture;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::require;
use overlay_fixture::ops::{Op, Runner, overflow};
use overlay_fixture::{Built, Layer, build, standard};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Job {
    merged: PathBuf,
    tars: Vec<PathBuf>,
    upper: PathBuf,
    work: PathBuf,
    side_table: PathBuf,
    mnt: PathBuf,
    ops: Vec<Op>,
    out: PathBuf,
    single_id: bool,
    /// Serve until a signal instead of running `ops`.
    serve_only: bool,
    /// Mount without allow_other (only the mounting user's processes).
    #[serde(default)]
    owner_only: bool,
}

/// Not a test: the child side. Does nothing unless a job is given.
#[test]
fn child() {
    let Ok(job) = std::env::var("CAMADA_OVL_JOB") else {
        return;
    };
    let job: Job = serde_json::from_str(&job).unwrap();
    let opts = camada::overlay::Options {
        lower_index: job.merged.clone(),
        layer_tars: job.tars.clone(),
        upper: job.upper.clone(),
        work: job.work.clone(),
        side_table: job.side_table.clone(),
        threads: 2,
        allow_other: !job.owner_only,
        squash_unmapped: false,
    };
    if job.serve_only {
        camada::overlay::serve(&opts, &job.mnt).unwrap_or_else(|e| panic!("{e}"));
        fs::write(&job.out, b"served").unwrap();
        return;
    }
    let m = camada::overlay::mount(&opts, &job.mnt).unwrap_or_else(|e| panic!("{e}"));
    let mut r = if job.single_id {
        Runner::new(&job.mnt, overflow)
    } else {
        Runner::plain(&job.mnt)
    };
    let lines = r.run(&job.ops);
    fs::write(&job.out, serde_json::to_vec(&lines).unwrap()).unwrap();
    m.unmount().unwrap();
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("camada-ovl-")
        .tempdir_in("/var/tmp")
        .unwrap()
}

/// Runs `ops` on our overlay in a child; returns the result lines and the upper dir.
fn run_ours(dir: &Path, built: &Built, ops: &[Op], unprivileged: bool) -> (Vec<String>, PathBuf) {
    let ours = dir.join("ours");
    for d in ["upper", "work", "mnt"] {
        fs::create_dir_all(ours.join(d)).unwrap();
    }
    let job = Job {
        merged: built.merged.clone(),
        tars: built.tars.clone(),
        upper: ours.join("upper"),
        work: ours.join("work"),
        side_table: ours.join("ownership.json"),
        mnt: ours.join("mnt"),
        ops: ops.to_vec(),
        out: ours.join("out.json"),
        single_id: unprivileged,
        serve_only: false,
        owner_only: false,
    };
    let exe = std::env::current_exe().unwrap();
    let job_s = serde_json::to_string(&job).unwrap();
    let mut cmd;
    if unprivileged {
        let user = common::test_user().expect("the test user (checked by the caller)");
        let (uid, gid) = (user.uid, user.gid);
        let c = common::Camada::as_user().expect("the test user (checked by the caller)");
        let exe = c.executable(&exe);
        let st = Command::new("chown")
            .arg("-R")
            .arg(format!("{uid}:{gid}"))
            .arg(dir)
            .status()
            .unwrap();
        assert!(st.success());
        fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .args(["--init-groups", "--reset-env", "env"])
            .arg(format!("CAMADA_OVL_JOB={job_s}"))
            .args(["unshare", "-Urm"])
            .arg(&exe);
    } else {
        cmd = Command::new(&exe);
        cmd.env("CAMADA_OVL_JOB", &job_s);
    }
    cmd.args(["--exact", "child", "--nocapture", "--test-threads=1"]);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "overlay child failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = serde_json::from_slice(&fs::read(&job.out).unwrap()).unwrap();
    (lines, job.upper)
}

/// Runs `ops` on the kernel's overlayfs (root only).
fn run_kernel(dir: &Path, built: &Built, ops: &[Op], single_id: bool) -> (Vec<String>, PathBuf) {
    let k = dir.join("kernel");
    for d in ["upper", "work", "mnt"] {
        fs::create_dir_all(k.join(d)).unwrap();
    }
    let lowers: Vec<String> = built
        .lower_dirs
        .iter()
        .rev()
        .map(|p| p.display().to_string())
        .collect();
    let o = format!(
        "lowerdir={},upperdir={},workdir={},redirect_dir=off,index=on,metacopy=off",
        lowers.join(":"),
        k.join("upper").display(),
        k.join("work").display()
    );
    let st = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &o])
        .arg(k.join("mnt"))
        .status()
        .unwrap();
    assert!(st.success(), "mount -t overlay failed");
    let lines = if single_id {
        Runner::new(&k.join("mnt"), overflow).run(ops)
    } else {
        Runner::plain(&k.join("mnt")).run(ops)
    };
    let st = Command::new("umount").arg(k.join("mnt")).status().unwrap();
    assert!(st.success());
    (lines, k.join("upper"))
}

/// The upper dir as a layer would record it: OCI whiteouts, contents by digest.
/// The kernel's char 0:0 whiteouts and opaque xattrs are translated to OCI form.
fn upper_tree(root: &Path, kernel: bool) -> Vec<String> {
    let mut out = BTreeMap::new();
    walk(root, root, kernel, &mut out);
    out.into_iter().map(|(k, v)| format!("{k} {v}")).collect()
}

/// Our upper dir, less the extra names of hardlinked lower files: we link every name of
/// a copied-up hardlink group at once (so the upper dir is a complete layer diff), the
/// kernel (index=on) links the others lazily through its index dir.
fn upper_tree_like(root: &Path, kernel_tree: &[String], layers: &[Layer]) -> Vec<String> {
    let linked = overlay_fixture::hardlinked_names(layers);
    upper_tree(root, false)
        .into_iter()
        .filter(|l| {
            let path = l.split(' ').next().unwrap_or("");
            kernel_tree.contains(l) || !linked.iter().any(|n| n == path)
        })
        .collect()
}

fn walk(root: &Path, dir: &Path, kernel: bool, out: &mut BTreeMap<String, String>) {
    let rel = |p: &Path| p.strip_prefix(root).unwrap().display().to_string();
    if kernel && overlay_fixture::lgetxattr(dir, "trusted.overlay.opaque").as_deref() == Some(b"y")
    {
        out.insert(format!("{}/.wh..wh..opq", rel(dir)), "file".into());
    }
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        let m = fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        if kernel && ft.is_char_device() && m.rdev() == 0 {
            let name = format!(".wh.{}", e.file_name().to_string_lossy());
            out.insert(rel(&dir.join(name)), "file".into());
            continue;
        }
        let v = if ft.is_dir() {
            walk(root, &p, kernel, out);
            "dir".to_string()
        } else if ft.is_symlink() {
            format!("link {}", fs::read_link(&p).unwrap().display())
        } else if ft.is_file() {
            let d = fs::read(&p).unwrap();
            if d.is_empty() {
                "file".into()
            } else {
                format!("file len={}", d.len())
            }
        } else {
            "special".into()
        };
        out.insert(rel(&p), v);
    }
}

/// Where the kernel is wrong and we are right on purpose (issue 4): an open file whose
/// last name was removed has nlink 0; the kernel's overlayfs reports 1 for a lower one.
fn known_deviation(kernel: &str, ours: &str) -> bool {
    kernel.starts_with("OpenUnlinkFstat(") && kernel.replace("nlink=1 ", "nlink=0 ") == ours
}

fn compare(what: &str, kernel: &[String], ours: &[String]) {
    let n = kernel.len().max(ours.len());
    let first = (0..n).find(|&i| {
        let (k, o) = (kernel.get(i), ours.get(i));
        k != o && !matches!((k, o), (Some(k), Some(o)) if known_deviation(k, o))
    });
    let Some(first) = first else { return };
    let mut msg = format!("{what}: our overlay differs from the kernel's\n");
    for l in &kernel[first.saturating_sub(25)..first] {
        msg.push_str(&format!("  same:   {l}\n"));
    }
    for i in first..n {
        let k = kernel.get(i).map_or("<none>", String::as_str);
        let o = ours.get(i).map_or("<none>", String::as_str);
        if k != o {
            msg.push_str(&format!("  kernel: {k}\n  ours:   {o}\n"));
        }
    }
    panic!("{msg}");
}

fn s(x: &str) -> String {
    x.to_string()
}

/// The named edge cases, in an order that builds on itself.
fn script(unprivileged: bool) -> Vec<Op> {
    use Op::*;
    let mut v = vec![
        List(s("")),
        List(s("d1")),
        List(s("d2")),
        List(s("opq")),
        List(s("d3")),
        Stat(s("a")),
        Stat(s("d1/f")),
        Stat(s("ro")),
        Stat(s("owned")),
        Stat(s("h1")),
        Stat(s("h2")),
        Stat(s("d1/h3")),
        Stat(s("l1")),
        Stat(s("fifo")),
        Stat(s("gone")),
        Stat(s("d2/y")),
        Read(s("a")),
        Read(s("big")),
        Read(s("holes")),
        Read(s("l1")),
        Readlink(s("l1")),
        // symlink loops
        Read(s("loop1")),
        Readlink(s("loop1")),
        // xattrs on lower files and dirs
        GetXattr(s("a"), s("user.test")),
        GetXattr(s("d1"), s("user.dir")),
        GetXattr(s("a"), s("user.nope")),
        ListXattr(s("a")),
        // copy-up on write keeps xattrs
        Append(s("a"), b"more\n".to_vec()),
        Stat(s("a")),
        GetXattr(s("a"), s("user.test")),
        // delete then recreate a file
        Unlink(s("d1/f")),
        Stat(s("d1/f")),
        List(s("d1")),
        Write(s("d1/f"), b"again\n".to_vec()),
        Read(s("d1/f")),
        // delete then recreate a dir: opaque
        Rmdir(s("d1/sub")),
        Unlink(s("d1/sub/deep")),
        Rmdir(s("d1/sub")),
        Stat(s("d1/sub")),
        Mkdir(s("d1/sub")),
        List(s("d1/sub")),
        Stat(s("d1/sub/deep")),
        // rename over a whiteout
        Unlink(s("c")),
        RenameFile(s("b"), s("c")),
        List(s("")),
        Read(s("c")),
        Stat(s("c")),
        // hardlink then write to one name
        Write(s("h1"), b"written through h1\n".to_vec()),
        Read(s("h2")),
        Read(s("d1/h3")),
        Stat(s("h1")),
        Stat(s("h2")),
        Link(s("h2"), s("h4")),
        Stat(s("h1")),
        // chmod of a lower file without write
        Chmod(s("ro"), 0o400),
        Read(s("ro")),
        Stat(s("ro")),
        // truncate to larger, write past EOF with holes
        Truncate(s("d2/x"), 10_000),
        WriteAt(s("holes"), 1_000_000, b"end".to_vec()),
        Read(s("holes")),
        // open across unlink and rename
        OpenUnlinkFstat(s("d2/x")),
        OpenUnlinkFstat(s("opq/new")),
        // written after its last name went: a lower file, an upper one
        OpenUnlinkWrite(s("d1/w")),
        Write(s("d2/up"), b"upper bytes\n".to_vec()),
        OpenUnlinkWrite(s("d2/up")),
        OpenUnlinkTruncate(s("d1/t")),
        Write(s("d2/up2"), b"upper, to truncate\n".to_vec()),
        OpenUnlinkTruncate(s("d2/up2")),
        List(s("d2")),
        List(s("d1")),
        OpenRenameWrite(s("d1/g"), s("d1/g2")),
        List(s("d1")),
        // mmap of a lower and an upper file
        MmapRead(s("big")),
        Write(s("m"), b"0123456789".to_vec()),
        MmapWrite(s("m"), b"abc".to_vec()),
        MmapRead(s("m")),
        // renames of files: plain, noreplace, exchange
        RenameNoReplace(s("d1/g2"), s("a")),
        RenameExchange(s("d1/g2"), s("a")),
        Read(s("a")),
        Read(s("d1/g2")),
        RenameFile(s("d3/z"), s("d1/z")),
        List(s("d3")),
        // other objects
        Mkfifo(s("newfifo")),
        Stat(s("newfifo")),
        Symlink(s("d1/f"), s("sl")),
        Read(s("sl")),
        Readlink(s("sl")),
        SetXattr(s("d2"), s("user.new"), b"nv".to_vec()),
        GetXattr(s("d2"), s("user.new")),
        RemoveXattr(s("a"), s("user.test")),
        ListXattr(s("a")),
        Utimes(s("big"), 12345),
        Stat(s("big")),
        // errors
        Mkdir(s("d1")),
        Rmdir(s("a")),
        Unlink(s("d1")),
        Rmdir(s("d1")),
        Stat(s("nope/x")),
        Write(s("a/x"), b"".to_vec()),
        // delete whole lower trees
        Unlink(s("d2/x")),
        Unlink(s("d2/y")),
        Rmdir(s("d2")),
        Rmdir(s("opq")),
        Unlink(s("opq/new")),
        Rmdir(s("opq")),
        List(s("")),
    ];
    if !unprivileged {
        v.push(Chown(s("owned"), 5, 6));
        v.push(Chown(s("newfifo"), 7, 8));
        v.push(Stat(s("owned")));
    }
    v
}

/// A random sequence over a small pool of names (fixed seeds: reproducible).
fn random_ops(seed: u64, n: usize) -> Vec<Op> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move |m: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % m as u64) as usize
    };
    let pool = [
        "a",
        "b",
        "c",
        "h1",
        "h2",
        "ro",
        "d1",
        "d1/f",
        "d1/g",
        "d1/sub",
        "d1/sub/deep",
        "d2",
        "d2/x",
        "d2/y",
        "d3",
        "d3/z",
        "opq",
        "opq/new",
        "opq/old",
        "new",
        "nd",
        "nd/f",
        "d1/new",
        "l1",
    ];
    let dirs = ["", "d1", "d2", "d3", "opq", "nd", "d1/sub"];
    let mut ops = Vec::new();
    for i in 0..n {
        let p = s(pool[next(pool.len())]);
        let q = s(pool[next(pool.len())]);
        let op = match next(14) {
            0 => Op::Stat(p),
            1 => Op::Read(p),
            2 => Op::Write(p, format!("w{i}\n").into_bytes()),
            3 => Op::Append(p, format!("a{i}\n").into_bytes()),
            4 => Op::Mkdir(p),
            5 => Op::Rmdir(p),
            6 => Op::Unlink(p),
            7 => Op::RenameFile(p, q),
            8 => Op::Link(p, q),
            9 => Op::Chmod(p, 0o600 + (next(2) as u32) * 0o55),
            10 => Op::Truncate(p, next(3) as u64 * 5),
            11 => Op::Symlink(s("target"), p),
            12 => Op::SetXattr(p, s("user.r"), format!("{i}").into_bytes()),
            _ => Op::List(s(dirs[next(dirs.len())])),
        };
        ops.push(op);
        if i % 10 == 9 {
            ops.push(Op::List(s(dirs[next(dirs.len())])));
        }
    }
    for d in dirs {
        ops.push(Op::List(s(d)));
    }
    ops
}

/// Unmounts a scratch filesystem when dropped.
struct ScratchMount(PathBuf);

impl Drop for ScratchMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn differential(layers: &[Layer], ops: &[Op], unprivileged: bool, what: &str) {
    differential_on(layers, ops, unprivileged, false, what)
}

/// `no_user_xattrs`: our upper dir (and side table) on a ramfs, which has no user
/// xattrs, so ownership goes to the side table.
fn differential_on(
    layers: &[Layer],
    ops: &[Op],
    unprivileged: bool,
    no_user_xattrs: bool,
    what: &str,
) {
    let dir = scratch();
    let built = build(dir.path(), layers, true);
    let _ramfs = no_user_xattrs.then(|| {
        let m = dir.path().join("ours");
        fs::create_dir_all(&m).unwrap();
        let st = Command::new("mount")
            .args(["-t", "ramfs", "ramfs"])
            .arg(&m)
            .status()
            .unwrap();
        assert!(st.success(), "mount -t ramfs");
        ScratchMount(m)
    });
    let (k_lines, k_upper) = run_kernel(dir.path(), &built, ops, unprivileged);
    let (o_lines, o_upper) = run_ours(dir.path(), &built, ops, unprivileged);
    compare(what, &k_lines, &o_lines);
    // The kernel marks every new dir in a merged dir opaque (an optimisation); in a
    // layer that marker is only needed where a lower layer has the dir.
    let k_tree: Vec<String> = upper_tree(&k_upper, true)
        .into_iter()
        .filter(|l| match l.strip_suffix("/.wh..wh..opq file") {
            Some(d) => built.lower_dirs.iter().any(|ld| ld.join(d).is_dir()),
            None => true,
        })
        .collect();
    compare(
        &format!("{what}: upper dir after unmount"),
        &k_tree,
        &upper_tree_like(&o_upper, &k_tree, layers),
    );
    if no_user_xattrs {
        let table = fs::read(dir.path().join("ours/ownership.json")).unwrap();
        let v: Vec<(Vec<u8>, camada::overlay::Own)> = serde_json::from_slice(&table).unwrap();
        assert!(
            v.len() > 10,
            "the side table holds the upper files' owners: {v:?}"
        );
    }
}

/// Root (for kernel overlayfs and mounts in the host namespace) and, when
/// `unprivileged`, the test user and a /dev/fuse it may open.
fn need_root(what: &str) -> bool {
    let root = if common::is_root() {
        Ok(())
    } else {
        Err("root, for kernel overlayfs and the test user".to_string())
    };
    require(what, root)
}

fn need_user(what: &str) -> bool {
    need_root(what)
        && require(what, common::test_user().map(|_| ()))
        && require(what, common::fuse_usable())
        && require(
            what,
            common::Camada::as_user()
                .ok_or_else(|| "the test user".to_string())
                .and_then(|c| c.userns_usable()),
        )
}

#[test]
fn same_as_kernel_overlayfs_named_cases_as_root() {
    if !need_root("differential as root") {
        return;
    }
    differential(&standard(), &script(false), false, "named cases, root");
}

#[test]
fn same_as_kernel_overlayfs_random_sequences_as_root() {
    if !need_root("random differential as root") {
        return;
    }
    for seed in [1, 2, 3, 4, 5, 6] {
        differential(
            &standard(),
            &random_ops(seed, 80),
            false,
            &format!("random seed {seed}, root"),
        );
    }
}

/// The upper dir on a filesystem without user xattrs (ramfs: none at all; tmpfs has
/// user xattrs since Linux 6.6): ownership of everything goes to the side table, found
/// by the server's own probe, as root and as the unprivileged user. Xattr operations
/// are left out: the host cannot hold a container's xattrs there.
#[test]
fn same_as_kernel_overlayfs_without_user_xattrs() {
    if !need_user("the upper dir on a filesystem without user xattrs") {
        return;
    }
    let no_xattr_ops = |ops: Vec<Op>| -> Vec<Op> {
        ops.into_iter()
            .filter(|o| {
                !matches!(
                    o,
                    Op::SetXattr(..) | Op::GetXattr(..) | Op::ListXattr(..) | Op::RemoveXattr(..)
                )
            })
            .collect()
    };
    for unprivileged in [false, true] {
        differential_on(
            &standard(),
            &no_xattr_ops(script(unprivileged)),
            unprivileged,
            true,
            &format!("named cases, no user xattrs, unprivileged={unprivileged}"),
        );
    }
    differential_on(
        &standard(),
        &no_xattr_ops(random_ops(9, 60)),
        true,
        true,
        "random seed 9, no user xattrs, unprivileged",
    );
}

#[test]
fn same_as_kernel_overlayfs_as_unprivileged_user() {
    if !need_user("differential as an unprivileged user") {
        return;
    }
    differential(
        &standard(),
        &script(true),
        true,
        "named cases, unprivileged",
    );
    for seed in [7, 8] {
        differential(
            &standard(),
            &random_ops(seed, 60),
            true,
            &format!("random seed {seed}, unprivileged"),
        );
    }
}

/// Where we must do better than the kernel without redirect_dir (EXDEV) and
/// fuse-overlayfs: renaming a lower dir works, and long names behave.
#[test]
fn beyond_the_kernel() {
    if !need_user("beyond the kernel") {
        return;
    }
    use Op::*;
    let long = "n".repeat(255);
    let too_long = "n".repeat(256);
    let ops = vec![
        Op::Rename(s("d1"), s("moved")),
        List(s("")),
        List(s("moved")),
        Read(s("moved/f")),
        Read(s("moved/sub/deep")),
        Stat(s("d1")),
        Write(long.clone(), b"long\n".to_vec()),
        Read(long.clone()),
        Stat(too_long.clone()),
        Write(too_long.clone(), b"x".to_vec()),
        Mkdir(too_long.clone()),
        Op::MknodChar(s("dev0"), 0, 0),
        Stat(s("dev0")),
        Unlink(s("new-name-never-in-lower")),
        Write(s("fresh"), b"f".to_vec()),
        Unlink(s("fresh")),
        ListFromMiddle(s("")),
    ];
    let dir = scratch();
    let built = build(dir.path(), &standard(), false);
    for unpriv in [false, true] {
        let sub = dir.path().join(if unpriv { "u" } else { "r" });
        fs::create_dir_all(&sub).unwrap();
        let (lines, upper) = run_ours(&sub, &built, &ops, unpriv);
        let expect = [
            "ok".to_string(),
            "a b big c d2/ d3/ fifo| h1 h2 holes l1@ loop1@ loop2@ moved/ opq/ owned ro".into(),
            "f g h3 sub/".into(),
            "len=8 sha=".into(),
            "len=5 sha=".into(),
            "ERR ENOENT".into(),
            "file mode=100644".into(),
            "len=5 sha=".into(),
            "ERR ENAMETOOLONG".into(),
            "ERR ENAMETOOLONG".into(),
            "ERR ENAMETOOLONG".into(),
            "ERR EPERM".into(),
            "ERR ENOENT".into(),
            "ERR ENOENT".into(),
            "file mode=100644".into(),
            "ok".into(),
            "entries=".into(),
        ];
        for (line, want) in lines.iter().zip(expect.iter()) {
            let got = line.split(" -> ").nth(1).unwrap_or("");
            assert!(
                got.starts_with(want.as_str()),
                "{line}\n  expected it to start with {want:?}"
            );
        }
        assert_eq!(lines.len(), expect.len());
        let tree = upper_tree(&upper, false);
        assert!(tree.iter().any(|l| l.starts_with(".wh.d1 ")), "{tree:#?}");
        assert!(
            tree.iter().any(|l| l.starts_with("moved/sub/deep ")),
            "{tree:#?}"
        );
        let strays: Vec<&String> = tree
            .iter()
            .filter(|l| {
                l.contains(".wh.fresh") || l.contains(".wh.new-name") || l.contains(".wh.dev0")
            })
            .collect();
        assert!(strays.is_empty(), "stray whiteouts: {strays:?}");
        let bytes = fs::read(upper.join(&long)).unwrap();
        assert_eq!(bytes, b"long\n");
        let _ = OsStrExt::as_bytes(long.as_ref() as &std::ffi::OsStr);
    }
}

fn mounted(mnt: &Path) -> bool {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let m = mnt.display().to_string();
    info.lines()
        .any(|l| l.split(' ').nth(4) == Some(m.as_str()))
}

/// A serving child, killed if the test fails before it ends.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts a serving child (root) and waits until its mount answers.
fn spawn_server(dir: &Path, built: &Built) -> (Server, PathBuf, PathBuf) {
    for d in ["upper", "work", "mnt"] {
        // A dead mount on mnt answers ENOTCONN: it exists, the server will detach it.
        match fs::create_dir_all(dir.join(d)) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            r => r.unwrap(),
        }
    }
    let job = Job {
        merged: built.merged.clone(),
        tars: built.tars.clone(),
        upper: dir.join("upper"),
        work: dir.join("work"),
        side_table: dir.join("ownership.json"),
        mnt: dir.join("mnt"),
        ops: Vec::new(),
        out: dir.join("out"),
        single_id: false,
        serve_only: true,
        owner_only: false,
    };
    let child = Server(
        Command::new(std::env::current_exe().unwrap())
            .env("CAMADA_OVL_JOB", serde_json::to_string(&job).unwrap())
            .args(["--exact", "child", "--nocapture", "--test-threads=1"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let live = || mounted(&job.mnt) && nix::sys::statvfs::statvfs(&job.mnt).is_ok();
    for _ in 0..500 {
        if live() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(live(), "the server did not mount {}", job.mnt.display());
    (child, job.mnt, job.out)
}

#[test]
fn sigterm_unmounts_and_a_crashed_server_is_detached() {
    if !need_root("mounting on the host's mount namespace") {
        return;
    }
    let dir = scratch();
    let built = build(dir.path(), &standard(), false);
    let (mut child, mnt, out) = spawn_server(&dir.path().join("a"), &built);
    assert_eq!(fs::read(mnt.join("c")).unwrap(), b"c\n");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let st = child.0.wait().unwrap();
    assert!(st.success(), "server exit after SIGTERM: {st}");
    assert_eq!(fs::read(&out).unwrap(), b"served");
    assert!(!mounted(&mnt));

    // A server killed outright leaves a dead mount (ENOTCONN); the next one detaches it.
    let (mut child, mnt, _) = spawn_server(&dir.path().join("b"), &built);
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let e = nix::sys::statvfs::statvfs(&mnt).unwrap_err();
    assert_eq!(e, nix::errno::Errno::ENOTCONN);
    let (mut child, mnt, _) = spawn_server(&dir.path().join("b"), &built);
    assert_eq!(fs::read(mnt.join("c")).unwrap(), b"c\n");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(child.0.wait().unwrap().success());
    assert!(!mounted(&mnt));
}

#[test]
fn big_directory_and_sparse_files_as_root() {
    if !need_root("big directory differential") {
        return;
    }
    use Op::*;
    let layers = vec![vec![
        overlay_fixture::Item::Many("many", 100_000),
        overlay_fixture::Item::File("holes", 0o644, {
            let mut v = vec![0u8; 1 << 20];
            v[700_000] = 1;
            v
        }),
    ]];
    let ops = vec![
        ListFromMiddle(s("many")),
        Stat(s("many/f99999")),
        Unlink(s("many/f5")),
        Write(s("many/new"), b"n".to_vec()),
        ListFromMiddle(s("many")),
        Sparse4G(s("sparse")),
        Stat(s("sparse")),
        Append(s("holes"), b"x".to_vec()),
    ];
    let dir = scratch();
    let built = build(dir.path(), &layers, true);
    let (k_lines, _) = run_kernel(dir.path(), &built, &ops, false);
    let (o_lines, o_upper) = run_ours(dir.path(), &built, &ops, false);
    compare("big directory, sparse files", &k_lines, &o_lines);
    assert!(
        o_lines[0].contains("entries=100002 unique=100002 resumed_same=true"),
        "{}",
        o_lines[0]
    );
    // Sparse stays sparse in the upper dir, for new files and for copy-ups.
    let m = fs::metadata(o_upper.join("sparse")).unwrap();
    assert_eq!(m.len(), 4 << 30);
    assert!(
        m.blocks() * 512 < 1 << 20,
        "4 GiB sparse file takes {} blocks",
        m.blocks()
    );
    let m = fs::metadata(o_upper.join("holes")).unwrap();
    assert!(
        m.blocks() * 512 < 512 << 10,
        "copied-up holes take {} blocks",
        m.blocks()
    );
}

#[test]
fn stress_two_writers_renaming_in_one_dir() {
    if !need_user("the stress run (as the unprivileged user)") {
        return;
    }
    let secs = std::env::var("CAMADA_OVL_STRESS_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = scratch();
    let built = build(dir.path(), &standard(), false);
    let (lines, _) = run_ours(
        dir.path(),
        &built,
        &[Op::Stress(s("d1/stress"), secs)],
        true,
    );
    let got = lines[0].split(" -> ").nth(1).unwrap_or("");
    assert_eq!(
        got,
        "lost=0 extra_names=0 fds_leaked=0 rss_growth_under_20mb=true rounds_ok=true"
    );
}

/// What `camada mount` needs: an overlay served inside the user's own user and mount
/// namespace, without allow_other, is reachable by the user's processes on the host
/// through /proc/PID/root of the server; other users (even root) are refused.
#[test]
fn owner_only_mount_is_reachable_by_the_user_from_the_host() {
    if !need_user("an owner-only mount in a user namespace") {
        return;
    }
    let user = common::test_user().expect("checked");
    let dir = scratch();
    let built = build(dir.path(), &standard(), false);
    let d = dir.path().join("o");
    for x in ["upper", "work", "mnt"] {
        fs::create_dir_all(d.join(x)).unwrap();
    }
    let st = Command::new("chown")
        .arg("-R")
        .arg(format!("{}:{}", user.uid, user.gid))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(st.success());
    fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let job = Job {
        merged: built.merged.clone(),
        tars: built.tars.clone(),
        upper: d.join("upper"),
        work: d.join("work"),
        side_table: d.join("ownership.json"),
        mnt: d.join("mnt"),
        ops: Vec::new(),
        out: d.join("out"),
        single_id: true,
        serve_only: true,
        owner_only: true,
    };
    let c = common::Camada::as_user().expect("checked");
    let exe = c.executable(&std::env::current_exe().unwrap());
    let server = Server(
        Command::new("setpriv")
            .arg(format!("--reuid={}", user.uid))
            .arg(format!("--regid={}", user.gid))
            .args(["--init-groups", "--reset-env", "env"])
            .arg(format!(
                "CAMADA_OVL_JOB={}",
                serde_json::to_string(&job).unwrap()
            ))
            .args(["unshare", "-Urm"])
            .arg(&exe)
            .args(["--exact", "child", "--nocapture", "--test-threads=1"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let via = PathBuf::from(format!("/proc/{}/root", server.0.id()))
        .join(job.mnt.strip_prefix("/").unwrap());
    let as_user = || {
        Command::new("setpriv")
            .arg(format!("--reuid={}", user.uid))
            .arg(format!("--regid={}", user.gid))
            .args(["--init-groups", "--reset-env", "cat"])
            .arg(via.join("c"))
            .output()
            .unwrap()
    };
    let mut out = as_user();
    for _ in 0..500 {
        if out.status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        out = as_user();
    }
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "c\n",
        "the user reads the mount through {}: {}",
        via.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let e = fs::read(via.join("c")).unwrap_err();
    assert_eq!(
        e.raw_os_error(),
        Some(libc::EACCES),
        "root from the host is refused"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut server = server;
    assert!(server.0.wait().unwrap().success());
}

fn xattr_fd(fd: &impl std::os::fd::AsRawFd, k: &str, v: &[u8]) -> std::io::Result<()> {
    let k = std::ffi::CString::new(k).unwrap();
    // SAFETY: k is NUL-terminated; v is valid for v.len() bytes.
    let r = unsafe { libc::fsetxattr(fd.as_raw_fd(), k.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The server runs as root here, the worst case: a directory of the upper dir swapped
/// for a symlink to a host dir (as a container racing renames against symlinks could
/// arrange) must never let a write, truncate, chmod, xattr, create or unlink reach the
/// host files it points to. Every request is sent for inodes the kernel already knows
/// (held fds and fresh dentries), so the server resolves the old path again.
#[test]
fn a_symlink_planted_in_the_upper_dir_never_leads_outside() {
    use nix::fcntl::{OFlag, openat};
    use nix::sys::stat::Mode;
    if !need_root("mounting on the host's mount namespace") {
        return;
    }
    let dir = scratch();
    let built = build(dir.path(), &standard(), false);
    let srv = dir.path().join("s");
    let (mut child, mnt, _) = spawn_server(&srv, &built);
    let outside = dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("f"), b"keep\n").unwrap();
    fs::set_permissions(
        outside.join("f"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let before = fs::metadata(outside.join("f")).unwrap();

    fs::create_dir(mnt.join("w")).unwrap();
    fs::write(mnt.join("w/f"), b"inside\n").unwrap();
    let wfd = nix::fcntl::open(
        &mnt.join("w"),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        Mode::empty(),
    )
    .unwrap();
    let ffd = fs::File::open(mnt.join("w/f")).unwrap();
    // The host swaps the upper dir `w` for a symlink to `outside`.
    let up = srv.join("upper");
    fs::rename(up.join("w"), dir.path().join("w.saved")).unwrap();
    std::os::unix::fs::symlink(&outside, up.join("w")).unwrap();

    let mut tried = Vec::new();
    let mut note = |what: &str, r: std::io::Result<()>| tried.push(format!("{what}: {r:?}"));
    note(
        "fchmod",
        nix::sys::stat::fchmod(&ffd, Mode::from_bits_truncate(0o600)).map_err(Into::into),
    );
    note("fsetxattr", xattr_fd(&ffd, "user.evil", b"1"));
    note(
        "open O_TRUNC + write",
        openat(&wfd, "f", OFlag::O_WRONLY | OFlag::O_TRUNC, Mode::empty())
            .map_err(std::io::Error::from)
            .and_then(|fd| std::io::Write::write_all(&mut fs::File::from(fd), b"pwned")),
    );
    note(
        "truncate",
        nix::unistd::truncate(&mnt.join("w/f"), 0).map_err(Into::into),
    );
    note(
        "utimens",
        nix::sys::stat::utimensat(
            &wfd,
            "f",
            &nix::sys::time::TimeSpec::new(1, 0),
            &nix::sys::time::TimeSpec::new(1, 0),
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .map_err(Into::into),
    );
    note(
        "create",
        openat(
            &wfd,
            "new",
            OFlag::O_WRONLY | OFlag::O_CREAT,
            Mode::from_bits_truncate(0o644),
        )
        .map(drop)
        .map_err(Into::into),
    );
    note(
        "mkdir",
        nix::sys::stat::mkdirat(&wfd, "newdir", Mode::from_bits_truncate(0o755))
            .map_err(Into::into),
    );
    note(
        "rename",
        nix::fcntl::renameat(&wfd, "f", &wfd, "g").map_err(Into::into),
    );
    note(
        "unlink",
        nix::unistd::unlinkat(&wfd, "f", nix::unistd::UnlinkatFlags::NoRemoveDir)
            .map_err(Into::into),
    );
    drop(ffd);
    drop(wfd);

    let names: Vec<_> = fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names,
        ["f"],
        "nothing made or removed outside; tried {tried:#?}"
    );
    assert_eq!(
        fs::read(outside.join("f")).unwrap(),
        b"keep\n",
        "{tried:#?}"
    );
    let after = fs::metadata(outside.join("f")).unwrap();
    assert_eq!(after.mode(), before.mode(), "{tried:#?}");
    assert_eq!(after.mtime(), before.mtime(), "{tried:#?}");
    assert_eq!(
        overlay_fixture::lgetxattr(&outside.join("f"), "user.evil"),
        None,
        "{tried:#?}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(child.0.wait().unwrap().success());
}

/// Paths longer than PATH_MAX inside the container: every call works, relative to a
/// directory fd, as on the kernel's overlayfs (the server never builds a host path).
#[test]
fn paths_longer_than_path_max_work() {
    use nix::fcntl::{OFlag, openat};
    use nix::sys::stat::Mode;
    if !need_root("mounting on the host's mount namespace") {
        return;
    }
    let dir = scratch();
    let built = build(dir.path(), &standard(), false);
    let srv = dir.path().join("s");
    let (mut child, mnt, _) = spawn_server(&srv, &built);
    let name = "d".repeat(250);
    let mut cur =
        nix::fcntl::open(&mnt, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
    for _ in 0..24 {
        nix::sys::stat::mkdirat(&cur, name.as_str(), Mode::from_bits_truncate(0o755)).unwrap();
        cur = openat(
            &cur,
            name.as_str(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
    }
    // 24 * 251 bytes: over 6000, beyond PATH_MAX on the host as well.
    let f = openat(
        &cur,
        "file",
        OFlag::O_RDWR | OFlag::O_CREAT,
        Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    let mut f = fs::File::from(f);
    std::io::Write::write_all(&mut f, b"deep\n").unwrap();
    drop(f);
    nix::sys::stat::fchmodat(
        &cur,
        "file",
        Mode::from_bits_truncate(0o600),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .unwrap();
    let fd = openat(&cur, "file", OFlag::O_RDONLY, Mode::empty()).unwrap();
    xattr_fd(&fd, "user.deep", b"1").unwrap();
    drop(fd);
    nix::unistd::symlinkat("file", &cur, "link").unwrap();
    nix::fcntl::renameat(&cur, "file", &cur, "moved").unwrap();
    let st = nix::sys::stat::fstatat(&cur, "moved", nix::fcntl::AtFlags::empty()).unwrap();
    assert_eq!(st.st_mode & 0o7777, 0o600);
    assert_eq!(st.st_size, 5);
    let f = openat(&cur, "moved", OFlag::O_RDONLY, Mode::empty()).unwrap();
    assert_eq!(
        std::io::read_to_string(fs::File::from(f)).unwrap(),
        "deep\n"
    );
    let names: Vec<Vec<u8>> = nix::dir::Dir::openat(
        &cur,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        Mode::empty(),
    )
    .unwrap()
    .iter()
    .map(|e| e.unwrap().file_name().to_bytes().to_vec())
    .filter(|n| n != b"." && n != b"..")
    .collect();
    let mut names = names;
    names.sort();
    assert_eq!(names, [b"link".to_vec(), b"moved".to_vec()]);
    nix::unistd::unlinkat(&cur, "link", nix::unistd::UnlinkatFlags::NoRemoveDir).unwrap();
    nix::unistd::unlinkat(&cur, "moved", nix::unistd::UnlinkatFlags::NoRemoveDir).unwrap();
    drop(cur);
    fs::remove_dir_all(mnt.join(&name)).unwrap();
    assert!(!mnt.join(&name).exists());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(child.0.wait().unwrap().success());
}

/// Owners kept in the side table (symlinks, fifos; everything on a filesystem without
/// user xattrs) are durable when the call returns: a server killed outright loses none.
#[test]
fn side_table_owners_survive_a_killed_server() {
    if !need_root("mounting on the host's mount namespace") {
        return;
    }
    let dir = scratch();
    let built = build(dir.path(), &standard(), false);
    let srv = dir.path().join("k");
    let (mut child, mnt, _) = spawn_server(&srv, &built);
    std::os::unix::fs::symlink("target", mnt.join("sl")).unwrap();
    std::os::unix::fs::lchown(mnt.join("sl"), Some(1234), Some(5678)).unwrap();
    nix::unistd::mkfifo(
        &mnt.join("ff"),
        nix::sys::stat::Mode::from_bits_truncate(0o640),
    )
    .unwrap();
    std::os::unix::fs::lchown(mnt.join("ff"), Some(42), Some(43)).unwrap();
    fs::rename(mnt.join("sl"), mnt.join("sl2")).unwrap();
    // The lower symlink l1, copied up by the chown.
    std::os::unix::fs::lchown(mnt.join("l1"), Some(7), Some(8)).unwrap();
    child.0.kill().unwrap();
    child.0.wait().unwrap();

    let (mut child, mnt, _) = spawn_server(&srv, &built);
    let ids = |p: &str| {
        let m = fs::symlink_metadata(mnt.join(p)).unwrap();
        (m.uid(), m.gid())
    };
    assert_eq!(ids("sl2"), (1234, 5678));
    assert_eq!(ids("ff"), (42, 43));
    assert_eq!(ids("l1"), (7, 8));
    assert!(fs::symlink_metadata(mnt.join("sl")).is_err());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(child.0.wait().unwrap().success());
}

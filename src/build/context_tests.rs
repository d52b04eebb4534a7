//! Tests of the context side of `build`: `.dockerignore`, wildcards, COPY/ADD plans,
//! their cache keys and layers, and a hostile context.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use super::archive::{Format, sniff};
use super::context::{Context, ContextError};
use super::copy::{CopyOpts, CopyPlan, Source, plan_copy};
use super::glob::{Pattern, clean};
use super::ignore::Ignore;
use super::imagefs::ImageFs;
use crate::layer::ingest;
use crate::tarindex::{Index, Kind, merge};

// ---- helpers ----

/// A tar built from (path, kind, data or link target, mode, uid, gid).
fn tar_of(entries: &[(&str, char, &str, u32, u64)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for &(path, kind, data, mode, owner) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(mode);
        h.set_uid(owner);
        h.set_gid(owner);
        h.set_mtime(1_600_000_000);
        h.set_size(0);
        match kind {
            'd' => {
                h.set_entry_type(tar::EntryType::Directory);
                b.append_data(&mut h, path, std::io::empty()).unwrap();
            }
            'l' => {
                h.set_entry_type(tar::EntryType::Symlink);
                b.append_link(&mut h, path, data).unwrap();
            }
            'h' => {
                h.set_entry_type(tar::EntryType::Link);
                b.append_link(&mut h, path, data).unwrap();
            }
            _ => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                // raw name bytes: the tar crate refuses `..`, hostile archives do not
                let name = &mut h.as_gnu_mut().unwrap().name;
                name[..path.len()].copy_from_slice(path.as_bytes());
                h.set_cksum();
                b.append(&h, data.as_bytes()).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// An image of one layer made of `entries`, stored under `dir`.
fn image(dir: &Path, entries: &[(&str, char, &str, u32, u64)]) -> ImageFs {
    let (mut t, mut idx) = (Vec::new(), Vec::new());
    ingest(&tar_of(entries)[..], &mut t, &mut idx).unwrap();
    let single = Index::open(idx).unwrap();
    let merged = merge(&[&single]).unwrap();
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("layer.tar"), &t).unwrap();
    fs::write(dir.join("chain.idx"), &merged).unwrap();
    ImageFs::open(
        "image test",
        &dir.join("chain.idx"),
        &[dir.join("layer.tar")],
    )
    .unwrap()
}

/// A Debian-like base: /bin -> usr/bin, /etc/passwd and /etc/group with users.
fn base(dir: &Path) -> ImageFs {
    image(
        dir,
        &[
            ("bin", 'l', "usr/bin", 0o777, 0),
            ("etc", 'd', "", 0o755, 0),
            (
                "etc/passwd",
                'f',
                "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
                0o644,
                0,
            ),
            (
                "etc/group",
                'f',
                "root:x:0:\nstaff:x:50:\napp:x:1001:\n",
                0o644,
                0,
            ),
            ("usr", 'd', "", 0o755, 0),
            ("usr/bin", 'd', "", 0o755, 0),
            ("usr/bin/sh", 'f', "#!", 0o755, 0),
            ("srv", 'd', "", 0o700, 7),
        ],
    )
}

/// What a plan's layer holds: path -> (kind, mode, uid, gid, content or link).
fn layer(plan: &CopyPlan) -> Vec<(String, Kind, u32, u32, u32, String)> {
    let mut tar = Vec::new();
    plan.write_layer(&mut tar).unwrap();
    let (mut t, mut idx) = (Vec::new(), Vec::new());
    ingest(&tar[..], &mut t, &mut idx).unwrap();
    let idx = Index::open(&idx[..]).unwrap();
    let mut out = Vec::new();
    for id in 1..idx.len() {
        let e = idx.get(id).unwrap();
        if e.implicit() {
            continue;
        }
        let body = match e.kind() {
            Kind::File => {
                let o = e.data_offset() as usize;
                String::from_utf8_lossy(&t[o..o + e.size() as usize]).into_owned()
            }
            _ => String::from_utf8_lossy(e.link()).into_owned(),
        };
        out.push((
            String::from_utf8_lossy(&idx.path(id)).into_owned(),
            e.kind(),
            e.mode(),
            e.uid(),
            e.gid(),
            body,
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn paths(plan: &CopyPlan) -> Vec<String> {
    plan.paths()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect()
}

struct Fixture {
    _tmp: tempfile::TempDir,
    ctx: PathBuf,
    img: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    fs::create_dir(&ctx).unwrap();
    let img = tmp.path().join("img");
    Fixture {
        ctx,
        img,
        _tmp: tmp,
    }
}

fn write(path: &Path, data: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
}

/// Plans `srcs` to `dest` (relative to `workdir`).
fn plan<'a>(
    source: Source<'a>,
    srcs: &[&str],
    dest: &str,
    workdir: &str,
    opts: CopyOpts,
    lower: &ImageFs,
) -> Result<CopyPlan<'a>, ContextError> {
    let srcs: Vec<String> = srcs.iter().map(|s| s.to_string()).collect();
    plan_copy(source, &srcs, dest, workdir, &opts, lower)
}

fn add_opts() -> CopyOpts {
    CopyOpts {
        add: true,
        ..CopyOpts::default()
    }
}

fn copy<'a>(ctx: &'a Context, lower: &ImageFs, srcs: &[&str], dest: &str) -> CopyPlan<'a> {
    let opts = CopyOpts::default();
    plan(Source::Context(ctx), srcs, dest, "/", opts, lower).unwrap()
}

fn copy_err(ctx: &Context, lower: &ImageFs, srcs: &[&str], dest: &str) -> String {
    let opts = CopyOpts::default();
    let e = plan(Source::Context(ctx), srcs, dest, "/", opts, lower).unwrap_err();
    e.to_string()
}

// ---- patterns ----

#[test]
fn go_filepath_match_rules() {
    let m = |p: &str, n: &str| {
        Pattern::new(p.as_bytes(), false)
            .unwrap()
            .matches(n.as_bytes())
    };
    assert!(m("*.py", "app.py"));
    assert!(m("*", ".hidden"), "Go's * matches a leading dot");
    assert!(!m("*.py", "dir/app.py"), "* never crosses /");
    assert!(m("a?c", "abc") && !m("a?c", "a/c"));
    assert!(m("[a-c]x", "bx") && !m("[a-c]x", "dx"));
    assert!(m("[^a-c]x", "dx") && !m("[^a-c]x", "ax"));
    assert!(
        !m("a[^x]b", "a/b"),
        "a class never matches / in filepath.Match"
    );
    let ig = |p: &str, n: &str| {
        Pattern::new(p.as_bytes(), true)
            .unwrap()
            .matches(n.as_bytes())
    };
    assert!(ig("a[^x]b", "a/b"), "in moby's regex translation it does");
    assert!(ig("**/*.go", "x.go") && ig("**/*.go", "a/b/x.go") && !ig("**/*.go", "a/x.goo"));
    assert!(ig("a/**", "a/b/c") && ig("a**b", "ab") && ig("a**b", "a/x/b"));
    assert!(m("[]]", "]"));
    assert!(m(r"\*", "*") && !m(r"\*", "a"));
    assert!(m("**", "abc") && !m("**", "a/b"), "no ** in COPY sources");
    for bad in ["[", "[a-", r"x\", "[z-a]"] {
        assert!(Pattern::new(bad.as_bytes(), false).is_err(), "{bad}");
    }
    // no exponential blow-up
    let p = Pattern::new("*a*a*a*a*a*a*a*a*a*a*a*b".as_bytes(), false).unwrap();
    assert!(!p.matches(&[b'a'; 200]));
}

#[test]
fn clean_is_go_filepath_clean() {
    for (i, o) in [
        ("", "."),
        ("./a/", "a"),
        ("a//b/./c/..", "a/b"),
        ("../x", "../x"),
        ("/../x", "/x"),
        ("a/../../b", "../b"),
        ("/", "/"),
    ] {
        assert_eq!(clean(i.as_bytes()), o.as_bytes(), "{i}");
    }
}

#[test]
fn dockerignore_follows_moby_rules() {
    let ig = Ignore::parse(
        b"# comment\n\n  *.log  \n/build\n./tmp/\n**/cache\ndocs/**/*.md\n!docs/keep.md\n!important.log\nsecret*\n#!secret-ok\n",
    )
    .unwrap();
    let ex = |p: &str| ig.excluded(p.as_bytes());
    assert!(
        ex("a.log") && !ex("sub/a.log"),
        "patterns are anchored at the root"
    );
    assert!(!ex("important.log"), "an exception re-includes");
    assert!(
        ex("build") && ex("build/out/x"),
        "a match on a parent excludes the children"
    );
    assert!(ex("tmp/x"));
    assert!(ex("cache") && ex("a/b/cache") && ex("a/cache/file"));
    assert!(ex("docs/a.md") && ex("docs/x/y/a.md") && !ex("docs/keep.md"));
    assert!(!ex("docs/a.txt"));
    assert!(
        ex("secret-ok"),
        "`#` only starts a comment at the line start"
    );
    assert!(!ex("README"));
    // last match wins
    let ig = Ignore::parse(b"!a.txt\n*.txt\n").unwrap();
    assert!(ig.excluded(b"a.txt"));
    let ig = Ignore::parse(b"*\n!src\n").unwrap();
    assert!(ig.excluded(b"x") && !ig.excluded(b"src") && !ig.excluded(b"src/m.rs"));
    assert!(ig.may_include_below(b"src") || !ig.excluded(b"src"));
    // errors name the line
    let e = Ignore::parse(b"ok\n!\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        ".dockerignore:2: illegal exclusion pattern: \"!\""
    );
    assert!(
        Ignore::parse(b"a[\n")
            .unwrap_err()
            .to_string()
            .contains(":1:")
    );
    assert!(Ignore::parse(b"").unwrap().is_empty());
}

// ---- COPY plans ----

#[test]
fn copy_dot_honours_dockerignore_and_keeps_the_dockerfile() {
    let f = fixture();
    write(&f.ctx.join("Dockerfile"), "FROM x\n");
    write(
        &f.ctx.join(".dockerignore"),
        "*.log\nnode_modules\n!node_modules/keep\ncache\n!*/*.md\n",
    );
    write(&f.ctx.join("app.py"), "print(1)\n");
    write(&f.ctx.join("debug.log"), "x");
    write(&f.ctx.join("node_modules/dep/index.js"), "x");
    write(&f.ctx.join("node_modules/keep"), "k");
    write(
        &f.ctx.join("cache/deep/x.md"),
        "not re-included: */*.md is one level",
    );
    let ctx = Context::open(&f.ctx, Some(&f.ctx.join("Dockerfile"))).unwrap();
    let lower = base(&f.img);
    let plan = copy(&ctx, &lower, &["."], "/app/");
    assert_eq!(
        paths(&plan),
        [
            "app",
            "app/.dockerignore",
            "app/Dockerfile",
            "app/app.py",
            "app/node_modules",
            "app/node_modules/keep"
        ]
    );
    let msg = copy_err(&ctx, &lower, &["debug.log"], "/x");
    assert_eq!(
        msg,
        "COPY failed: file not found in build context or excluded by .dockerignore: \"debug.log\""
    );
}

#[test]
fn per_dockerfile_ignore_file_wins() {
    let f = fixture();
    write(&f.ctx.join(".dockerignore"), "a\n");
    write(&f.ctx.join("web.Dockerfile.dockerignore"), "b\n");
    write(&f.ctx.join("a"), "a");
    write(&f.ctx.join("b"), "b");
    let ctx = Context::open(&f.ctx, Some(&f.ctx.join("web.Dockerfile"))).unwrap();
    assert!(!ctx.excluded(b"a") && ctx.excluded(b"b"));
    let ctx = Context::open(&f.ctx, None).unwrap();
    assert!(ctx.excluded(b"a") && !ctx.excluded(b"b"));
}

#[test]
fn destinations_follow_docker_rules() {
    let f = fixture();
    write(&f.ctx.join("a.txt"), "A");
    write(&f.ctx.join("b.txt"), "B");
    write(&f.ctx.join("dir/sub/c.txt"), "C");
    let ctx = Context::open(&f.ctx, None).unwrap();
    let lower = base(&f.img);
    // a file to a new path: that path
    assert_eq!(
        paths(&copy(&ctx, &lower, &["a.txt"], "/opt/x")),
        ["opt", "opt/x"]
    );
    // to an existing directory (through the image's /bin -> usr/bin): inside it
    let p = copy(&ctx, &lower, &["a.txt"], "/bin");
    assert_eq!(paths(&p), ["usr", "usr/bin", "usr/bin/a.txt"]);
    let l = layer(&p);
    assert_eq!(l[0].1, Kind::Dir, "the image's own /usr, as it is");
    // wildcards; several sources need a trailing /
    assert_eq!(
        copy_err(&ctx, &lower, &["*.txt"], "/x"),
        "When using COPY with more than one source file, the destination must be a directory and end with a /"
    );
    assert_eq!(
        paths(&copy(&ctx, &lower, &["*.txt"], "/x/")),
        ["x", "x/a.txt", "x/b.txt"]
    );
    // a directory copies its contents; a new destination is made 0755 (not after the
    // source directory), what is below keeps its modes (as buildah and BuildKit)
    fs::set_permissions(f.ctx.join("dir"), fs::Permissions::from_mode(0o751)).unwrap();
    fs::set_permissions(f.ctx.join("dir/sub"), fs::Permissions::from_mode(0o700)).unwrap();
    let l = layer(&copy(&ctx, &lower, &["dir"], "/d"));
    assert_eq!(
        l.iter().map(|e| (e.0.as_str(), e.2)).collect::<Vec<_>>(),
        [("d", 0o755), ("d/sub", 0o700), ("d/sub/c.txt", 0o644)]
    );
    // relative to WORKDIR
    let p = plan(
        Source::Context(&ctx),
        &["a.txt"],
        "rel/",
        "/srv/app",
        CopyOpts::default(),
        &lower,
    )
    .unwrap();
    assert_eq!(
        paths(&p),
        ["srv", "srv/app", "srv/app/rel", "srv/app/rel/a.txt"]
    );
    let l = layer(&p);
    assert_eq!(
        (l[0].2, l[0].3),
        (0o700, 7),
        "existing /srv kept as the image has it"
    );
    assert_eq!((l[1].2, l[1].3), (0o755, 0), "new parents: 0755 root");
    // a missing source, a pattern matching nothing
    assert!(copy_err(&ctx, &lower, &["nope"], "/").contains("\"nope\""));
    assert!(copy_err(&ctx, &lower, &["*.rs"], "/").contains("not found"));
    // a directory onto a file of the image
    assert!(copy_err(&ctx, &lower, &["dir"], "/etc/passwd").contains("/etc/passwd"));
}

#[test]
fn owners_and_modes() {
    let f = fixture();
    write(&f.ctx.join("run.sh"), "#!/bin/sh\n");
    fs::set_permissions(f.ctx.join("run.sh"), fs::Permissions::from_mode(0o751)).unwrap();
    write(&f.ctx.join("d/x"), "x");
    let ctx = Context::open(&f.ctx, None).unwrap();
    let lower = base(&f.img);
    let opts = |chown: Option<&str>, chmod: Option<&str>| CopyOpts {
        chown: chown.map(str::to_owned),
        chmod: chmod.map(str::to_owned),
        add: false,
    };
    let plan_with = |srcs: &[&str], dest: &str, o: CopyOpts| {
        plan(Source::Context(&ctx), srcs, dest, "/", o, &lower)
    };
    let l = layer(&plan_with(&["run.sh"], "/r", opts(None, None)).unwrap());
    assert_eq!(
        l,
        [("r".into(), Kind::File, 0o751, 0, 0, "#!/bin/sh\n".into())]
    );
    let l = layer(&plan_with(&["d"], "/new/d/", opts(Some("app"), Some("0640"))).unwrap());
    assert_eq!(
        l.iter()
            .map(|e| (e.0.as_str(), e.2, e.3, e.4))
            .collect::<Vec<_>>(),
        [
            ("new", 0o755, 1000, 1001),
            ("new/d", 0o755, 1000, 1001),
            ("new/d/x", 0o640, 1000, 1001)
        ]
    );
    let l = layer(&plan_with(&["run.sh"], "/r", opts(Some("app:staff"), None)).unwrap());
    assert_eq!((l[0].3, l[0].4), (1000, 50));
    let l = layer(&plan_with(&["run.sh"], "/r", opts(Some("42"), None)).unwrap());
    assert_eq!((l[0].3, l[0].4), (42, 42), "a number alone: the same gid");
    let l = layer(&plan_with(&["run.sh"], "/r", opts(Some("7:app"), None)).unwrap());
    assert_eq!((l[0].3, l[0].4), (7, 1001));
    for (o, want) in [
        (opts(Some("ghost"), None), "no such user \"ghost\""),
        (opts(Some("app:ghosts"), None), "no such group \"ghosts\""),
        (opts(None, Some("u+x")), "invalid --chmod=u+x"),
        (opts(None, Some("99999")), "invalid --chmod=99999"),
        (opts(Some(":1"), None), "invalid --chown=:1"),
    ] {
        let e = plan_with(&["run.sh"], "/r", o).unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
    }
}

#[test]
fn hardlinks_in_the_context_stay_hardlinks() {
    let f = fixture();
    write(&f.ctx.join("d/one"), "same");
    fs::hard_link(f.ctx.join("d/one"), f.ctx.join("d/two")).unwrap();
    let ctx = Context::open(&f.ctx, None).unwrap();
    let lower = ImageFs::empty("scratch");
    let plan = copy(&ctx, &lower, &["d"], "/d");
    let mut tar = Vec::new();
    plan.write_layer(&mut tar).unwrap();
    let mut a = tar::Archive::new(&tar[..]);
    let kinds: Vec<(String, tar::EntryType, String)> = a
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.path().unwrap().display().to_string(),
                e.header().entry_type(),
                e.link_name()
                    .unwrap()
                    .map(|l| l.display().to_string())
                    .unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("d".into(), tar::EntryType::Directory, String::new()),
            ("d/one".into(), tar::EntryType::Regular, String::new()),
            ("d/two".into(), tar::EntryType::Link, "d/one".into()),
        ]
    );
}

#[test]
fn cache_key_is_content_not_mtime() {
    let f = fixture();
    write(&f.ctx.join("a"), "one");
    let lower = ImageFs::empty("scratch");
    let key = || {
        let ctx = Context::open(&f.ctx, None).unwrap();
        copy(&ctx, &lower, &["a"], "/a").cache_key().unwrap()
    };
    let k1 = key();
    let t = fs::File::options()
        .write(true)
        .open(f.ctx.join("a"))
        .unwrap();
    t.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
    assert_eq!(key(), k1, "an mtime is not content");
    write(&f.ctx.join("a"), "two");
    let k2 = key();
    assert_ne!(k2, k1);
    fs::set_permissions(f.ctx.join("a"), fs::Permissions::from_mode(0o600)).unwrap();
    assert_ne!(key(), k2, "a mode is");
    let ctx = Context::open(&f.ctx, None).unwrap();
    let other_dest = copy(&ctx, &lower, &["a"], "/b").cache_key().unwrap();
    assert_ne!(other_dest, key(), "so is where it lands");
}

#[test]
fn mtimes_of_sources_are_kept_in_the_layer() {
    let f = fixture();
    write(&f.ctx.join("a"), "one");
    let t = fs::File::options()
        .write(true)
        .open(f.ctx.join("a"))
        .unwrap();
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_234_567_890);
    t.set_modified(when).unwrap();
    let ctx = Context::open(&f.ctx, None).unwrap();
    let plan = copy(&ctx, &ImageFs::empty("scratch"), &["a"], "/a");
    let mut tar = Vec::new();
    plan.write_layer(&mut tar).unwrap();
    let mut a = tar::Archive::new(&tar[..]);
    let e = a.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(e.header().mtime().unwrap(), 1_234_567_890);
}

// ---- a hostile context ----

#[test]
fn symlinks_out_of_the_context_are_copied_as_links_never_followed() {
    let f = fixture();
    let secret = f.ctx.parent().unwrap().join("secret");
    write(&secret.join("key"), "TOP SECRET");
    symlink("/etc/shadow", f.ctx.join("shadow")).unwrap();
    symlink("../secret", f.ctx.join("escape")).unwrap();
    write(&f.ctx.join("ok"), "ok");
    let ctx = Context::open(&f.ctx, None).unwrap();
    let lower = ImageFs::empty("scratch");
    let l = layer(&copy(&ctx, &lower, &["."], "/c/"));
    assert_eq!(
        l.iter()
            .map(|e| (e.0.as_str(), e.1, e.5.as_str()))
            .collect::<Vec<_>>(),
        [
            ("c", Kind::Dir, ""),
            ("c/escape", Kind::Symlink, "../secret"),
            ("c/ok", Kind::File, "ok"),
            ("c/shadow", Kind::Symlink, "/etc/shadow"),
        ]
    );
    // named as a source, a link is followed inside the context only: /etc/shadow is
    // <context>/etc/shadow (missing), ../secret is <context>/secret (missing)
    for src in ["shadow", "escape/key", "escape"] {
        let e = copy_err(&ctx, &lower, &[src], "/x");
        assert!(e.contains("not found in build context"), "{src}: {e}");
    }
    // paths climbing out are refused outright
    for src in ["../secret/key", "..", "a/../../secret"] {
        let e = copy_err(&ctx, &lower, &[src], "/x");
        assert_eq!(
            e,
            format!("COPY failed: forbidden path outside the build context: {src}")
        );
    }
}

#[test]
fn a_top_level_symlink_to_a_directory_inside_is_followed() {
    let f = fixture();
    write(&f.ctx.join("real/f"), "F");
    symlink("real", f.ctx.join("link")).unwrap();
    symlink("/real/f", f.ctx.join("abs")).unwrap();
    let ctx = Context::open(&f.ctx, None).unwrap();
    let lower = ImageFs::empty("scratch");
    // BuildKit follows the source: the directory's contents are copied
    assert_eq!(paths(&copy(&ctx, &lower, &["link"], "/d")), ["d", "d/f"]);
    // an absolute target is resolved with the context as /; the name is the link's
    let l = layer(&copy(&ctx, &lower, &["abs"], "/x/"));
    assert_eq!(l[1], ("x/abs".into(), Kind::File, 0o644, 0, 0, "F".into()));
}

#[test]
fn a_context_that_is_not_a_directory_is_an_error_naming_it() {
    let f = fixture();
    write(&f.ctx.join("file"), "x");
    let e = Context::open(&f.ctx.join("file"), None).unwrap_err();
    assert!(matches!(e, ContextError::OpenContext { .. }));
    assert!(e.to_string().contains("ctx/file"), "{e}");
}

// ---- COPY --from ----

#[test]
fn copy_from_an_image_keeps_owners_and_resolves_inside_it() {
    let f = fixture();
    let from = image(
        &f.img.join("from"),
        &[
            ("opt", 'd', "", 0o755, 0),
            ("opt/tool", 'f', "TOOL", 0o755, 33),
            ("opt/tool2", 'h', "opt/tool", 0o755, 33),
            ("current", 'l', "/opt", 0o777, 0),
        ],
    );
    let lower = base(&f.img.join("base"));
    let p = plan(
        Source::Image(&from),
        &["/current/"],
        "/usr/local/bin/",
        "/",
        CopyOpts::default(),
        &lower,
    )
    .unwrap();
    let l = layer(&p);
    let tool = l.iter().find(|e| e.0 == "usr/local/bin/tool").unwrap();
    assert_eq!((tool.3, tool.4, tool.5.as_str()), (33, 33, "TOOL"));
    assert!(l.iter().any(|e| e.0 == "usr/local/bin/tool2"));
    let e = plan(
        Source::Image(&from),
        &["/nope"],
        "/",
        "/",
        CopyOpts::default(),
        &lower,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "COPY failed: file not found in image test: \"/nope\""
    );
}

// ---- ADD ----

fn add<'a>(ctx: &'a Context, lower: &ImageFs, src: &str, dest: &str) -> CopyPlan<'a> {
    plan(Source::Context(ctx), &[src], dest, "/", add_opts(), lower).unwrap()
}

#[test]
fn add_unpacks_local_archives_of_every_compression() {
    let f = fixture();
    let tar = tar_of(&[
        ("top", 'd', "", 0o750, 5),
        ("top/f", 'f', "data", 0o600, 5),
        ("top/same", 'h', "top/f", 0o600, 5),
        ("../evil", 'f', "clipped", 0o644, 0),
    ]);
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&tar).unwrap();
        e.finish().unwrap()
    };
    let xz = {
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
        e.write_all(&tar).unwrap();
        e.finish().unwrap()
    };
    let bz = {
        let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        e.write_all(&tar).unwrap();
        e.finish().unwrap()
    };
    let zst = zstd::encode_all(&tar[..], 1).unwrap();
    let lower = base(&f.img);
    for (name, bytes, format) in [
        ("a.tar", &tar, Format::Tar),
        ("a.tgz", &gz, Format::Gzip),
        ("a.tar.xz", &xz, Format::Xz),
        ("a.tar.bz2", &bz, Format::Bzip2),
        ("a.tar.zst", &zst, Format::Zstd),
    ] {
        assert_eq!(sniff(&bytes[..]), Some(format), "{name}");
        fs::write(f.ctx.join(name), bytes).unwrap();
        let ctx = Context::open(&f.ctx, None).unwrap();
        let l = layer(&add(&ctx, &lower, name, "/x"));
        assert_eq!(
            l.iter()
                .map(|e| (e.0.as_str(), e.2, e.3, e.5.as_str()))
                .collect::<Vec<_>>(),
            [
                ("x", 0o755, 0, ""),
                ("x/evil", 0o644, 0, "clipped"),
                ("x/top", 0o750, 5, ""),
                ("x/top/f", 0o600, 5, "data"),
                ("x/top/same", 0o600, 5, "x/top/f"), // a hardlink, retargeted
            ],
            "{name}"
        );
    }
}

#[test]
fn add_copies_what_is_not_a_tar_as_a_file() {
    let f = fixture();
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b"just text, not a tar").unwrap();
        e.finish().unwrap()
    };
    fs::write(f.ctx.join("notes.gz"), &gz).unwrap();
    write(&f.ctx.join("plain.txt"), "hello");
    let ctx = Context::open(&f.ctx, None).unwrap();
    let lower = ImageFs::empty("scratch");
    let l = layer(&add(&ctx, &lower, "notes.gz", "/n/"));
    assert_eq!((l[1].0.as_str(), l[1].1), ("n/notes.gz", Kind::File));
    assert_eq!(l[1].5.as_bytes(), String::from_utf8_lossy(&gz).as_bytes());
    let l = layer(&add(&ctx, &lower, "plain.txt", "/p"));
    assert_eq!(l[0].5, "hello");
}

/// Serves one HTTP response (with `Last-Modified`) on a local port; returns the base URL.
fn serve_once(body: &'static [u8]) -> (String, std::thread::JoinHandle<()>) {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let t = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut line = String::new();
        while r.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
            line.clear();
        }
        write!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .unwrap();
        s.write_all(body).unwrap();
    });
    (url, t)
}

#[test]
fn add_fetches_urls_as_0600_files_named_after_the_url() {
    let f = fixture();
    let ctx = Context::open(&f.ctx, None).unwrap();
    let lower = base(&f.img);
    let (url, t) = serve_once(b"remote bytes");
    let p = add(&ctx, &lower, &format!("{url}/pkg/tool.tar.gz?x=1"), "/dl/");
    t.join().unwrap();
    let l = layer(&p);
    assert_eq!(
        l[1],
        (
            "dl/tool.tar.gz".into(),
            Kind::File,
            0o600,
            0,
            0,
            "remote bytes".into()
        ),
        "fetched, not unpacked (it is not even a tar)"
    );
    let mut tar = Vec::new();
    p.write_layer(&mut tar).unwrap();
    let mut a = tar::Archive::new(&tar[..]);
    let file = a.entries().unwrap().nth(1).unwrap().unwrap();
    assert_eq!(file.header().mtime().unwrap(), 784_111_777, "Last-Modified");
    assert_eq!(
        super::archive::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
        Some((784_111_777, 0))
    );
    assert_eq!(super::archive::parse_http_date("yesterday"), None);
    // sources are checked before anything is fetched (port 9 is never contacted)
    let srcs = ["http://127.0.0.1:9/a", "nope"];
    let e = plan(Source::Context(&ctx), &srcs, "/f", "/", add_opts(), &lower).unwrap_err();
    assert!(e.to_string().contains("\"nope\""), "{e}");
}

#[test]
fn add_unpacks_several_archives_into_one_directory() {
    let f = fixture();
    fs::write(f.ctx.join("a.tar"), tar_of(&[("a", 'f', "A", 0o644, 0)])).unwrap();
    fs::write(f.ctx.join("b.tar"), tar_of(&[("b", 'f', "B", 0o644, 0)])).unwrap();
    let ctx = Context::open(&f.ctx, None).unwrap();
    let scratch = ImageFs::empty("scratch");
    let srcs = ["a.tar", "b.tar"];
    let p = plan(
        Source::Context(&ctx),
        &srcs,
        "/x/",
        "/",
        add_opts(),
        &scratch,
    )
    .unwrap();
    let l = layer(&p);
    let names: Vec<&str> = l.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(names, ["x", "x/a", "x/b"]);
    // the key covers every archive's bytes
    let k = p.cache_key().unwrap();
    fs::write(f.ctx.join("b.tar"), tar_of(&[("b", 'f', "C", 0o644, 0)])).unwrap();
    assert_ne!(k, p.cache_key().unwrap());
}

#[test]
fn add_refuses_an_archive_writing_through_its_own_symlink() {
    let f = fixture();
    let tar = tar_of(&[
        ("etc", 'l', "/etc", 0o777, 0),
        ("etc/passwd", 'f', "pwned", 0o644, 0),
    ]);
    fs::write(f.ctx.join("evil.tar"), tar).unwrap();
    let ctx = Context::open(&f.ctx, None).unwrap();
    let plan = add(&ctx, &ImageFs::empty("scratch"), "evil.tar", "/x");
    let e = plan.write_layer(std::io::sink()).unwrap_err().to_string();
    assert!(
        e.contains("ADD failed: reading the archive \"evil.tar\"")
            && e.contains("lies under the archive's symlink \"x/etc\""),
        "{e}"
    );
}

#[test]
fn a_content_memo_saves_reads_only_while_the_file_is_unchanged() {
    use super::memo::ContentMemo;
    use super::view::View;
    let f = fixture();
    write(&f.ctx.join("a"), "one");
    let lower = ImageFs::empty("scratch");
    let ctx = Context::open(&f.ctx, None).unwrap();
    let plan = copy(&ctx, &lower, &["a"], "/a");
    let real_key = plan.cache_key().unwrap();
    // a file changed within the last seconds is read but not remembered (racy writes)
    let mut memo = ContentMemo::default();
    assert_eq!(plan.cache_key_memo(&mut memo).unwrap(), real_key);
    assert!(memo.is_empty() && !memo.changed());
    // a remembered digest is used as long as the file's lstat is the same ...
    let node = ctx.node(b"a").unwrap().unwrap();
    let canon = fs::canonicalize(&f.ctx).unwrap().join("a");
    let name = canon.to_str().unwrap().to_owned();
    let planted = crate::digest::Digest::of(b"what the memo says");
    memo.put(name.clone(), &node, planted.clone(), i64::MAX / 2);
    assert!(memo.changed());
    let memo = ContentMemo::from_json(&memo.to_json());
    let mut memo2 = memo.clone();
    assert_ne!(
        plan.cache_key_memo(&mut memo2).unwrap(),
        real_key,
        "read from the memo"
    );
    // ... and not once the file changed (here: its size and ctime)
    write(&f.ctx.join("a"), "other");
    let ctx = Context::open(&f.ctx, None).unwrap();
    let plan = copy(&ctx, &lower, &["a"], "/a");
    let mut memo3 = memo.clone();
    assert_eq!(
        plan.cache_key_memo(&mut memo3).unwrap(),
        plan.cache_key().unwrap()
    );
    // garbage reads as an empty memo
    assert!(ContentMemo::from_json(b"{not json").is_empty());
    // a file not yet settled at `now` is not remembered
    let mut m = ContentMemo::default();
    m.put(name, &node, planted, node.ctime.0);
    assert!(m.is_empty());
}

#[test]
fn exceptions_reenter_only_the_directories_they_name() {
    let f = fixture();
    write(
        &f.ctx.join(".dockerignore"),
        "cache\nlogs\n!cache/*.md\n!**/*.txt\n",
    );
    write(
        &f.ctx.join("cache/a.md"),
        "re-included: the exception names cache/",
    );
    write(&f.ctx.join("cache/b.bin"), "excluded");
    write(
        &f.ctx.join("logs/c.txt"),
        "matches !**/*.txt, yet logs/ is never entered",
    );
    write(&f.ctx.join("top.txt"), "kept");
    let ctx = Context::open(&f.ctx, None).unwrap();
    let scratch = ImageFs::empty("scratch");
    assert_eq!(
        paths(&copy(&ctx, &scratch, &["."], "/")),
        [".dockerignore", "cache", "cache/a.md", "top.txt"]
    );
}

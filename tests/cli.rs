//! The command line through the real binary, in a throwaway store: docker's output
//! shapes for the image commands, and bad input (each: one `Error:` line, exit 125).
//!
//! Images are seeded through the library (layer::ingest into a staged layer, config and
//! manifest via image::build_image, recorded with Store::update), so these tests need no
//! archive or registry.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Stdio;

use camada::digest::Digest;
use camada::image::{self, History, ImageConfig, ManifestFormat, Platform};
use camada::reference::Reference;
use common::Camada;

/// One entry of a layer tar.
enum Item<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    /// `.wh.NAME` next to `path`'s name: deletes `path` from the layers below.
    Whiteout(&'a str),
}

/// A step of an image's history: a layer, or a step that made none.
enum Step<'a> {
    Layer(&'a str, Vec<Item<'a>>),
    Empty(&'a str),
}

/// Adds to `c`'s store an image made of `steps` (bottom first), tagged `tag`; returns its ID.
fn seed(c: &Camada, tag: Option<&str>, created: &str, steps: Vec<Step>) -> Digest {
    let store = c.store();
    let mut config = ImageConfig::new(&Platform::host(), created);
    if let Some(rc) = config.config.as_mut() {
        rc.cmd = Some(vec!["sh".into()]);
        rc.env = vec!["PATH=/bin".into()];
    }
    let mut layers = Vec::new();
    for step in steps {
        match step {
            Step::Empty(by) => config.push_empty_step(History {
                created: Some(created.into()),
                created_by: Some(by.into()),
                ..History::default()
            }),
            Step::Layer(by, items) => {
                let tar = make_tar(&items);
                let stage = store.stage_layer().unwrap();
                let (t, i) = stage.create_files().unwrap();
                let got = camada::layer::ingest(&tar[..], t, i).unwrap();
                stage.commit(&got.diff_id).unwrap();
                store.link_layer_blob(&got.diff_id).unwrap();
                layers.push(image::uncompressed_layer(
                    ManifestFormat::Oci,
                    &got.diff_id,
                    got.tar_size,
                ));
                config.push_layer(
                    got.diff_id,
                    History {
                        created: Some(created.into()),
                        created_by: Some(by.into()),
                        ..History::default()
                    },
                );
            }
        }
    }
    let built = image::build_image(&config, &layers, ManifestFormat::Oci).unwrap();
    store.put_blob(&built.config_json).unwrap();
    store.put_blob(&built.manifest_json).unwrap();
    let manifest = built.manifest.digest.clone();
    let id = built.config.digest.clone();
    store
        .update(|db| {
            db.add_image(&manifest, &id, None);
            if let Some(t) = tag {
                db.tag(&Reference::parse(t).unwrap().to_string(), &manifest);
            }
            Ok::<_, camada::store::StoreError>(())
        })
        .unwrap();
    id
}

/// A small one-layer image in `c`'s store.
fn simple(c: &Camada, tag: &str, content: &[u8]) -> Digest {
    seed(
        c,
        Some(tag),
        "2020-01-01T00:00:00Z",
        vec![Step::Layer(
            "ADD file:x in /",
            vec![Item::Dir("bin"), Item::File("bin/tool", content)],
        )],
    )
}

/// Pretends a container of `c` uses image `id` (what `run` will record).
fn container_using(c: &Camada, id: &Digest) -> String {
    let cid = "c0ffee0000000000000000000000000000000000000000000000000000000001";
    let dir = c.root().join("containers").join(cid);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("config.json"), format!("{{\"Image\":\"{id}\"}}")).unwrap();
    cid.to_string()
}

fn make_tar(items: &[Item]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for item in items {
        let mut h = tar::Header::new_ustar();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_577_836_800);
        match item {
            Item::Dir(p) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, format!("{p}/"), &[][..]).unwrap();
            }
            Item::File(p, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, p, *data).unwrap();
            }
            Item::Whiteout(p) => {
                let (dir, name) = p.rsplit_once('/').map_or(("", *p), |(d, n)| (d, n));
                let wh = if dir.is_empty() {
                    format!(".wh.{name}")
                } else {
                    format!("{dir}/.wh.{name}")
                };
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(0);
                b.append_data(&mut h, wh, &[][..]).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// Every file under `dir` (relative paths), to check what a command left behind.
fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn images_on_an_empty_store_prints_the_header() {
    let c = Camada::new();
    c.run(["images"])
        .success()
        .stdout_is("REPOSITORY   TAG       IMAGE ID   CREATED   SIZE\n");
    c.run(["image", "ls", "-q"]).success().stdout_is("");
}

#[test]
fn images_lists_tags_and_dangling_images_like_docker() {
    let c = Camada::new();
    let old = simple(&c, "app:1", b"one");
    let id = old.short().to_string();
    c.ok(["tag", "app:1", "app:latest"]);
    c.ok(["tag", &id, "localhost:5000/team/app:v2"]);
    let out = c.ok(["images"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(
        lines[0].starts_with("REPOSITORY                TAG       IMAGE ID       CREATED"),
        "{out}"
    );
    for want in ["app ", "localhost:5000/team/app "] {
        assert!(
            lines.iter().any(|l| l.starts_with(want) && l.contains(&id)),
            "{want}: {out}"
        );
    }
    assert!(out.contains(" years ago "), "{out}");
    // a new image takes the tag: the old one is listed as <none>, as docker does
    c.run(["rmi", "app:latest", "localhost:5000/team/app:v2"])
        .success()
        .stdout_is("Untagged: app:latest\nUntagged: localhost:5000/team/app:v2\n");
    simple(&c, "app:1", b"two");
    let out = c.ok(["images"]);
    let none: Vec<&str> = out.lines().filter(|l| l.starts_with("<none>")).collect();
    assert_eq!(none.len(), 1, "{out}");
    assert!(
        none[0].contains(&id) && none[0].starts_with("<none>       <none>    "),
        "{out}"
    );
    // -aq grouped, ids only (one per row); --no-trunc gives the full ID
    let q = c.ok(["images", "-aq"]);
    assert_eq!(q.lines().count(), 2, "{q}");
    assert!(q.lines().all(|l| l.len() == 12), "{q}");
    let full = c.ok(["image", "list", "--no-trunc", "--quiet"]);
    assert!(full.contains(&old.to_string()), "{full}");
    // a filter shows only that repository, and no dangling rows
    let f = c.ok(["images", "app"]);
    assert_eq!(f.lines().count(), 2, "{f}");
    assert!(
        f.lines().nth(1).unwrap().starts_with("app          1  "),
        "{f}"
    );
    assert!(
        c.ok(["images", "--digests"])
            .starts_with("REPOSITORY   TAG       DIGEST    IMAGE ID")
    );
    // docker's filters: the dangling one for `rmi $(images -f dangling=true -q)`
    c.run(["images", "-q", "-f", "dangling=true"])
        .success()
        .stdout_is(&format!("{}\n", old.short()));
    assert_eq!(
        c.ok(["images", "--filter=dangling=false", "-q"])
            .lines()
            .count(),
        1
    );
    assert_eq!(c.ok(["images", "-qf", "reference=ap*"]).lines().count(), 1);
    assert_eq!(
        c.ok(["images", "-q", "-f", "reference=*:2"])
            .lines()
            .count(),
        0
    );
    let e = c.fails(["images", "-f", "label=x"]);
    assert!(e.contains("invalid filter"), "{e}");
}

#[test]
fn images_and_history_take_docker_formats() {
    let c = Camada::new();
    let id = simple(&c, "app:1", b"x");
    c.ok(["tag", "app:1", "app:2"]);
    c.run(["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"])
        .success()
        .stdout_is(&format!("app:1 {0}\napp:2 {0}\n", id.short()));
    c.run(["images", "--format=table {{.Tag}}\\t{{.Size}}", "app:2"])
        .success()
        .stdout_is("TAG       SIZE\n2         2.56kB\n");
    let json = c.ok(["images", "--format", "json", "app:1"]);
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v["Repository"], "app");
    assert_eq!(v["CreatedAt"], "2020-01-01 00:00:00 +0000 UTC");
    c.run([
        "history",
        "-H=false",
        "--format",
        "{{.CreatedSince}} {{.Size}}",
        "app:1",
    ])
    .success()
    .stdout_is("2020-01-01T00:00:00Z 2560\n");
    let e = c.fails(["images", "--format", "{{.Nope"]);
    assert!(e.starts_with("Error: template parsing error"), "{e}");
}

#[test]
fn tag_errors() {
    let c = Camada::new();
    assert_eq!(
        c.fails(["tag", "nosuch", "x:1"]),
        "Error: No such image: nosuch"
    );
    simple(&c, "a:1", b"x");
    let e = c.fails(["tag", "a:1", "Bad:Name"]);
    assert!(e.starts_with("Error: invalid reference format"), "{e}");
    let e = c.fails(["tag", "a:1"]);
    assert!(e.contains("requires"), "{e}");
}

#[test]
fn rmi_follows_dockers_rules() {
    let c = Camada::new();
    let id = simple(&c, "busybox:latest", b"bb");
    c.ok(["tag", "busybox", "mine:1"]);
    // one of two names: only that name goes
    c.run(["rmi", "mine:1"])
        .success()
        .stdout_is("Untagged: mine:1\n");
    c.ok(["tag", "busybox", "mine:2"]);
    // by ID with two names: refused unless forced
    let e = c.fails(["rmi", id.short()]);
    assert!(
        e.contains("must be forced") && e.contains(id.short()),
        "{e}"
    );
    let out = c.ok(["rmi", "-f", &id.short()[..6]]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "Untagged: busybox:latest", "{out}");
    assert_eq!(lines[1], "Untagged: mine:2", "{out}");
    assert_eq!(lines[2], format!("Deleted: {id}"), "{out}");
    assert!(
        lines[3..].iter().all(|l| l.starts_with("Deleted: sha256:")),
        "{out}"
    );
    // nothing of the image is left
    let left: Vec<String> = walk(&c.root())
        .into_iter()
        .filter(|p| p.starts_with("blobs/") || p.starts_with("layers/"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert_eq!(c.fails(["rmi", "busybox"]), "Error: No such image: busybox");
    assert_eq!(
        c.fails(["image", "rm", "nosuch:1"]),
        "Error: No such image: nosuch:1"
    );
}

#[test]
fn rmi_refuses_an_image_a_container_uses() {
    let c = Camada::new();
    let id = simple(&c, "app:1", b"x");
    let cid = container_using(&c, &id);
    let e = c.fails(["rmi", "app:1"]);
    assert!(e.contains("must force") && e.contains(&cid[..12]), "{e}");
    let e = c.fails(["rmi", id.short()]);
    assert!(
        e.contains("must be forced") && e.contains(&cid[..12]),
        "{e}"
    );
    // forced: the name goes, the content stays for the container
    c.run(["rmi", "-f", "app:1"])
        .success()
        .stdout_is(&format!("Untagged: app:1\nDeleted: {id}\n"));
    assert!(c.store().read_blob(&id).is_ok());
}

#[test]
fn rmi_of_several_reports_each_and_fails_once() {
    let c = Camada::new();
    simple(&c, "a:1", b"a");
    let out = c.run(["rmi", "a:1", "nosuch"]);
    out.exit(125).stderr_is("Error: No such image: nosuch\n");
    if !out.stdout().starts_with("Untagged: a:1\nDeleted: sha256:") {
        out.fail("expected stdout to start with the untagged and deleted lines");
    }
}

#[test]
fn inspect_prints_dockers_json_and_templates() {
    let c = Camada::new();
    let id = simple(&c, "busybox:latest", b"bb");
    let out = c.ok(["inspect", "busybox"]);
    assert!(
        out.starts_with("[\n    {\n        \"Id\": \"sha256:"),
        "{out}"
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let img = &v[0];
    assert_eq!(img["Id"], id.to_string());
    assert_eq!(img["RepoTags"][0], "busybox:latest");
    assert_eq!(img["Config"]["Cmd"][0], "sh");
    assert_eq!(img["RootFS"]["Type"], "layers");
    assert_eq!(img["RootFS"]["Layers"].as_array().unwrap().len(), 1);
    c.run(["inspect", "--format", "{{.Config.Cmd}}", "busybox"])
        .success()
        .stdout_is("[sh]\n");
    c.run(["image", "inspect", "--format={{.Id}}", "busybox"])
        .success()
        .stdout_is(&format!("{id}\n"));
    c.run(["inspect", "-f", "{{json .Config.Cmd}}", id.short()])
        .success()
        .stdout_is("[\"sh\"]\n");
    let layers = c.ok(["inspect", "-f", "{{.RootFS.Layers}}", "busybox"]);
    assert!(
        layers.starts_with("[sha256:") && layers.ends_with("]\n"),
        "{layers}"
    );
    assert_eq!(
        c.fails(["inspect", "nosuch"]),
        "Error: No such image: nosuch"
    );
    // "help" is a name here, not a request for help
    assert_eq!(c.fails(["inspect", "help"]), "Error: No such image: help");
    let e = c.fails(["inspect", "-f", "{{.Id", "busybox"]);
    assert!(e.starts_with("Error: template parsing error"), "{e}");
}

#[test]
fn an_ambiguous_id_prefix_is_refused_with_the_candidates() {
    let c = Camada::new();
    // 17 images: two of them share their first hex digit
    let mut ids = Vec::new();
    for i in 0..17 {
        ids.push(simple(
            &c,
            &format!("img:{i}"),
            format!("content {i}").as_bytes(),
        ));
    }
    let (a, b) = ids
        .iter()
        .enumerate()
        .find_map(|(i, a)| {
            ids[i + 1..]
                .iter()
                .find(|b| a.hex()[..1] == b.hex()[..1])
                .map(|b| (a, b))
        })
        .unwrap();
    let prefix = common_prefix(a.hex(), b.hex());
    let e = c.fails(["inspect", prefix]);
    assert!(
        e.contains("ambiguous") && e.contains(a.short()) && e.contains(b.short()),
        "{e}"
    );
    let e = c.fails(["rmi", prefix]);
    assert!(e.contains("ambiguous"), "{e}");
}

fn common_prefix<'a>(a: &'a str, b: &str) -> &'a str {
    let n = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    &a[..n]
}

fn three_step_image(c: &Camada) -> Digest {
    seed(
        c,
        Some("app:1"),
        "2021-06-01T10:00:00Z",
        vec![
            Step::Layer(
                "/bin/sh -c #(nop) ADD file:8e30b1ad0dfa2e2b5a5 in / ",
                vec![
                    Item::Dir("bin"),
                    Item::File("bin/sh", b"shell"),
                    Item::Dir("etc"),
                    Item::File("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
                    Item::File("etc/motd", b"hello"),
                ],
            ),
            Step::Empty("/bin/sh -c #(nop)  ENV PATH=/bin"),
            Step::Layer(
                "RUN /bin/sh -c adduser ana && rm /etc/motd # buildkit",
                vec![
                    Item::Dir("etc"),
                    Item::File(
                        "etc/passwd",
                        b"root:x:0:0::/root:/bin/sh\nana:x:1000:1000::/home/ana:/bin/sh\n",
                    ),
                    Item::Whiteout("etc/motd"),
                    Item::Dir("home"),
                    Item::Dir("home/ana"),
                ],
            ),
            Step::Empty("/bin/sh -c #(nop)  CMD [\"sh\"]"),
        ],
    )
}

#[test]
fn history_has_one_row_per_step_newest_first() {
    let c = Camada::new();
    let id = three_step_image(&c);
    let out = c.ok(["history", "app:1"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert!(
        lines[0].starts_with("IMAGE          CREATED       CREATED BY"),
        "{out}"
    );
    assert!(lines[0].ends_with("SIZE      COMMENT"), "{out}");
    assert!(lines[1].starts_with(&format!("{}   ", id.short())), "{out}");
    assert!(
        lines[1].contains("CMD [\"sh\"]") && lines[1].contains(" 0B "),
        "{out}"
    );
    assert!(
        lines[2].starts_with("<missing>      ") && lines[2].contains("kB"),
        "{out}"
    );
    assert!(
        lines[2].contains("RUN /bin/sh -c adduser ana && rm /etc/motd..."),
        "{out}"
    );
    assert!(
        lines[3].contains("ENV PATH=/bin") && lines[3].contains(" 0B "),
        "{out}"
    );
    assert!(
        lines[4].contains(" /bin/sh -c #(nop) ADD file:8e30b1ad0dfa2e2...   "),
        "{out}"
    );
    c.run(["image", "history", "-q", "app:1"])
        .success()
        .stdout_is(&format!(
            "{}\n<missing>\n<missing>\n<missing>\n",
            id.short()
        ));
    let full = c.ok(["history", "--no-trunc", "app:1"]);
    assert!(
        full.contains("adduser ana && rm /etc/motd # buildkit"),
        "{full}"
    );
    assert!(full.contains(&id.to_string()), "{full}");
    assert_eq!(
        c.fails(["history", "nosuch"]),
        "Error: No such image: nosuch"
    );
    let e = c.fails(["history"]);
    assert!(e.contains("\"camada history\" requires"), "{e}");
}

#[test]
fn image_tree_shows_what_each_layer_adds_changes_deletes() {
    let c = Camada::new();
    three_step_image(&c);
    let out = c.ok(["image", "tree", "--no-trunc", "app:1"]);
    assert!(out.starts_with("app:1  "), "{out}");
    assert!(out.contains("2 layers"), "{out}");
    let top = out.find("layer 2").unwrap();
    let bottom = out.find("layer 1 (bottom)").unwrap();
    assert!(top < bottom, "top of the stack first:\n{out}");
    let (upper, lower) = out.split_at(bottom);
    for want in [
        "+ home/",
        "+ home/ana/",
        "~ etc/passwd",
        "- etc/motd",
        "adduser ana",
    ] {
        assert!(upper[top..].contains(want), "{want} in layer 2:\n{out}");
    }
    for want in [
        "+ bin/sh",
        "+ etc/motd",
        "+ etc/passwd",
        "3 files",
        "5 added",
    ] {
        assert!(lower.contains(want), "{want} in layer 1:\n{out}");
    }
    assert!(
        !upper.contains("~ etc/\n"),
        "an unchanged directory is not a change:\n{out}"
    );
    assert!(
        out.contains("CMD [\"sh\"]") && out.contains("no layer"),
        "{out}"
    );
    assert_eq!(
        c.fails(["image", "tree", "nosuch"]),
        "Error: No such image: nosuch"
    );
    let id = c.ok(["images", "-q"]);
    let by_id = c.ok(["image", "tree", id.trim()]);
    assert!(by_id.starts_with("app:1  "), "{by_id}");
}

#[test]
fn image_prune_asks_and_removes_dangling_images() {
    let c = Camada::new();
    let old = simple(&c, "app:1", b"one");
    simple(&c, "app:1", b"two");
    let e = c.fails(["image", "prune"]);
    assert!(e.contains("confirmation") && e.contains("-f"), "{e}");
    let out = c.ok(["image", "prune", "-f"]);
    assert!(
        out.starts_with(&format!("Deleted Images:\ndeleted: {old}\n")),
        "{out}"
    );
    assert!(out.contains("\nTotal reclaimed space: "), "{out}");
    assert!(!out.contains("Total reclaimed space: 0B"), "{out}");
    assert_eq!(c.ok(["images", "-q"]).lines().count(), 1);
    c.run(["image", "prune", "-f"])
        .success()
        .stdout_is("Total reclaimed space: 0B\n");
    // -a: every image no container uses; an interrupted download's kept part goes too
    let partial = c.root().join("partial").join("ab".repeat(32));
    std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
    std::fs::write(&partial, vec![0u8; 3000]).unwrap();
    let out = c.ok(["system", "prune", "-af"]);
    assert!(out.contains("untagged: app:1\n"), "{out}");
    assert!(!partial.exists(), "{out}");
    c.run(["images", "-q"]).success().stdout_is("");
}

#[test]
fn system_df_info_version() {
    let c = Camada::new();
    simple(&c, "app:1", b"x");
    let df = c.ok(["system", "df"]);
    let lines: Vec<&str> = df.lines().collect();
    assert!(
        lines[0].starts_with("TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE"),
        "{df}"
    );
    assert!(
        lines[1].starts_with("Images          1         0  "),
        "{df}"
    );
    assert!(lines[1].ends_with("(100%)"), "{df}");
    let info = c.ok(["info"]);
    assert!(
        info.contains(&format!(" Root:              {}", c.root().display())),
        "{info}"
    );
    for want in [
        "Images:             1",
        "Subordinate UIDs:",
        "newuidmap:",
        "User namespaces:",
        "FUSE:",
        "Kernel Version:",
    ] {
        assert!(info.contains(want), "{want}: {info}");
    }
    assert_eq!(c.ok(["system", "info"]), info);
    c.run(["--version"])
        .success()
        .stdout_is(&format!("camada version {}\n", env!("CARGO_PKG_VERSION")));
    let v = c.ok(["version"]);
    assert!(
        v.starts_with(&format!("Version:       {}\n", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
}

#[test]
fn global_flags_choose_the_store() {
    let c = Camada::new();
    let other = c.dir().join("other");
    c.run(["--root", other.to_str().unwrap(), "info"])
        .success()
        .stdout_has(&format!(" Root:              {}", other.display()));
    let arg = format!("--root={}", other.display());
    c.run([arg.as_str(), "images"]).success();
    assert!(other.join("blobs").is_dir());
}

#[test]
fn bad_command_lines_are_one_error_line_and_125() {
    let c = Camada::new();
    assert_eq!(
        c.fails(["frobnicate"]),
        "Error: 'frobnicate' is not a camada command"
    );
    assert_eq!(
        c.fails(["image", "frob", "-x"]),
        "Error: 'image frob' is not a camada command"
    );
    assert_eq!(
        c.fails(["images", "--bogus"]),
        "Error: unknown flag: --bogus"
    );
    assert_eq!(c.fails(["images", "-x"]), "Error: unknown flag: -x");
    assert_eq!(
        c.fails(["rmi"]),
        "Error: \"camada rmi\" requires at least 1 argument"
    );
    assert_eq!(
        c.fails(["inspect"]),
        "Error: \"camada inspect\" requires at least 1 argument"
    );
    let e = c.fails(["inspect", "-f"]);
    assert!(e.contains("--format") || e.contains("-f"), "{e}");
    assert!(c.ok(["image"]).starts_with("Usage: camada image <command>"));
    // bare `camada` shows the help, as docker does
    assert!(c.ok([""; 0]).starts_with("Usage: camada"));
    let e = c.fails(["tag", "a", "b", "c"]);
    assert!(e.contains("unexpected argument: c"), "{e}");
    // the hint names the command's help
    c.run(["images", "--bogus"])
        .stderr_has("See 'camada images --help'.");
}

#[test]
fn every_command_has_help() {
    let c = Camada::new();
    for args in [
        vec!["--help"],
        vec!["images", "--help"],
        vec!["image", "ls", "--help"],
        vec!["rmi", "--help"],
        vec!["tag", "--help"],
        vec!["inspect", "--help"],
        vec!["history", "--help"],
        vec!["image", "prune", "--help"],
        vec!["image", "tree", "--help"],
        vec!["system", "df", "--help"],
        vec!["system", "prune", "--help"],
        vec!["info", "--help"],
        vec!["version", "--help"],
        vec!["help"],
        vec!["help", "image", "tree"],
        vec!["save", "-h"],
        vec!["load", "--help"],
        vec!["import", "--help"],
    ] {
        let out = c.ok(&args);
        assert!(out.starts_with("Usage: camada"), "{args:?}: {out}");
    }
}

#[test]
fn concurrent_tags_are_never_lost() {
    let c = Camada::new();
    simple(&c, "base:1", b"x");
    let children: Vec<_> = (0..8)
        .map(|i| {
            c.cmd(["tag", "base:1", &format!("t{i}:x")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut ch in children {
        assert!(ch.wait().unwrap().success());
    }
    assert_eq!(c.ok(["images", "-q"]).lines().count(), 9);
}

#[test]
fn image_commands_work_as_an_unprivileged_user() {
    let Some(u) = Camada::as_user() else {
        return;
    };
    u.run(["images"])
        .success()
        .stdout_is("REPOSITORY   TAG       IMAGE ID   CREATED   SIZE\n");
    let meta = fs::metadata(u.root()).unwrap();
    assert_eq!(meta.uid(), u.uid(), "the store belongs to the user");
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    let info = u.ok(["info"]);
    assert!(info.contains(&format!("(uid {},", u.uid())), "{info}");
    u.ok(["image", "prune", "-f"]);
    // the README's tour, as the user: the fixtures base image loaded, listed, explained
    let base = u.load_base();
    u.run(["images", "-q"])
        .success()
        .stdout_is(&format!("{}\n", base.short_id()));
    let history = u.ok(["history", "base"]);
    assert!(history.starts_with("IMAGE "), "{history}");
    assert!(history.contains(base.short_id()), "{history}");
    let tree = u.ok(["image", "tree", "base"]);
    assert!(
        tree.contains("layer 1 (bottom)") && tree.contains("+ bin/  ("),
        "{tree}"
    );
    u.run(["rmi", "base"])
        .success()
        .stdout_has("Untagged: base:latest\n");
    u.ok(["system", "df"]);
    u.run(["rmi", "nosuch"])
        .engine_error()
        .stderr_is("Error: No such image: nosuch\n");
}

#[test]
fn save_load_import_round_trip() {
    let c = Camada::new();
    let id = three_step_image(&c);
    let file = c.dir().join("app.tar");
    c.ok(["save", "-o", file.to_str().unwrap(), "app:1"]);
    c.ok(["rmi", "app:1"]);
    c.run(["load", "-i", file.to_str().unwrap()])
        .success()
        .stdout_is("Loaded image: app:1\n");
    c.run(["images", "-q", "--no-trunc"])
        .success()
        .stdout_is(&format!("{id}\n"));
    // through a pipe, as `docker save x | docker load`
    let saved = c.run(["save", "app:1"]);
    saved.success();
    let other = Camada::new();
    other
        .run_stdin(["image", "load"], &saved.stdout_bytes)
        .success()
        .stdout_is("Loaded image: app:1\n");
    // the loaded image reads the same
    assert_eq!(other.ok(["history", "app:1"]), c.ok(["history", "app:1"]));
    assert_eq!(
        other.ok(["image", "tree", "app:1"]),
        c.ok(["image", "tree", "app:1"])
    );
}

#[test]
fn import_makes_a_one_layer_image() {
    let c = Camada::new();
    let rootfs = c.dir().join("rootfs.tar");
    fs::write(
        &rootfs,
        make_tar(&[Item::Dir("bin"), Item::File("bin/sh", b"#!shell")]),
    )
    .unwrap();
    let out = c.ok(["import", rootfs.to_str().unwrap(), "mine:1"]);
    let id = out.trim();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{out}");
    let list = c.ok(["images", "mine"]);
    assert!(
        list.lines()
            .nth(1)
            .unwrap()
            .starts_with("mine         1         "),
        "{list}"
    );
    c.run(["inspect", "-f", "{{len .RootFS.Layers}}", "mine:1"])
        .success()
        .stdout_is("1\n");
    let tree = c.ok(["image", "tree", "mine:1"]);
    assert!(
        tree.contains("+ bin/  (1 entry inside)") && tree.contains("1 layer "),
        "{tree}"
    );
    assert!(tree.contains("│  Imported from "), "{tree}");
    let all = c.ok(["image", "tree", "--no-trunc", "mine:1"]);
    assert!(
        all.contains("+ bin/\n") && all.contains("+ bin/sh\n"),
        "{all}"
    );
}

#[test]
fn bad_archives_are_one_error_and_leave_nothing() {
    let c = Camada::new();
    simple(&c, "app:1", b"x");
    // what a failed command could leave: content, records, temp files (lock files may appear)
    let store = |c: &Camada| -> Vec<String> {
        walk(&c.root())
            .into_iter()
            .filter(|p| !p.ends_with("lock"))
            .collect()
    };
    let before = store(&c);
    let junk = c.dir().join("junk");
    fs::write(&junk, b"this is not a tar archive at all, just some text\n").unwrap();
    let e = c.fails(["load", "-i", junk.to_str().unwrap()]);
    assert!(e.starts_with("Error: "), "{e}");
    let e = c.fails(["import", junk.to_str().unwrap(), "x:1"]);
    assert!(e.contains("not a tar"), "{e}");
    let e = c.fails(["load", "-i", "/nonexistent/file.tar"]);
    assert!(e.contains("/nonexistent/file.tar"), "{e}");
    // an unknown name fails before anything is written
    let out = c.dir().join("out.tar");
    assert_eq!(
        c.fails(["save", "-o", out.to_str().unwrap(), "app:1", "nosuch"]),
        "Error: No such image: nosuch"
    );
    assert!(!out.exists(), "no half archive left");
    let e = c.fails([
        "save",
        "-o",
        out.to_str().unwrap(),
        "--format",
        "zip",
        "app:1",
    ]);
    assert!(e.contains("docker-archive or oci-archive"), "{e}");
    assert_eq!(
        c.fails(["save"]),
        "Error: \"camada save\" requires at least 1 argument"
    );
    assert_eq!(store(&c), before, "the store is as it was");
}

#[test]
fn prune_asks_on_a_terminal() {
    // `script` (util-linux, essential on Debian) gives the command a terminal
    let c = Camada::new();
    let old = simple(&c, "app:1", b"one");
    simple(&c, "app:1", b"two");
    let on_tty = |answer: &str| {
        let line = format!("{} image prune", common::BIN);
        let mut cmd = c.command("script");
        cmd.args(["-q", "-e", "-c", &line, "/dev/null"]);
        let out = c.exec_stdin(cmd, answer.as_bytes());
        out.success();
        out.stdout().replace('\r', "")
    };
    let no = on_tty("n\n");
    assert!(no.contains("WARNING! This will remove all dangling images.\nAre you sure you want to continue? [y/N]"), "{no}");
    assert!(!no.contains("Deleted Images"), "{no}");
    assert_eq!(c.ok(["images", "-q"]).lines().count(), 2);
    let yes = on_tty("y\n");
    assert!(
        yes.contains(&format!("Deleted Images:\ndeleted: {old}\n")),
        "{yes}"
    );
    assert_eq!(c.ok(["images", "-q"]).lines().count(), 1);
}

#[test]
fn a_damaged_image_is_still_listed_and_removable() {
    let c = Camada::new();
    let id = simple(&c, "app:1", b"x");
    // its config blob lost (a disk error, a hand-made mess)
    fs::remove_file(c.root().join("blobs/sha256").join(id.hex())).unwrap();
    let list = c.ok(["images"]);
    assert!(
        list.contains(id.short()) && list.contains(" N/A "),
        "{list}"
    );
    let e = c.fails(["inspect", "app:1"]);
    assert!(e.contains(&id.to_string()), "{e}");
    let out = c.ok(["rmi", "app:1"]);
    assert!(out.starts_with("Untagged: app:1\n"), "{out}");
    c.run(["images", "-q"]).success().stdout_is("");
}

/// Regression: `save -o FILE` truncated FILE before resolving the images, so a typo in an
/// image name destroyed an existing archive.
#[test]
fn a_failed_save_leaves_an_existing_output_file_alone() {
    let c = Camada::new();
    three_step_image(&c);
    let out = c.dir().join("prod.tar");
    fs::write(&out, b"the archive from yesterday").unwrap();
    let path = out.to_str().unwrap();
    let err = c.fails(["save", "-o", path, "app:1", "typo"]);
    assert!(err.contains("typo"), "{err}");
    assert_eq!(fs::read(&out).unwrap(), b"the archive from yesterday");
    let leftovers: Vec<_> = fs::read_dir(c.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    // and a good save replaces it with a real archive
    c.ok(["save", "-o", path, "app:1"]);
    assert!(fs::metadata(&out).unwrap().len() > 1024);
}

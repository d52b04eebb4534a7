//! `camada build` through the real binary on the fixtures base image: each instruction's
//! effect seen by running or inspecting the built image, the cache rules, multi-stage
//! builds, failures; as root, as `camadatest` with its subuid range, and as that user in
//! single-id mode (no newuidmap on PATH).

mod common;
#[path = "common/registry.rs"]
mod reg;

use std::fs;
use std::path::{Path, PathBuf};

use common::engines::{ALL, Who, engines};
use common::{Camada, require};

/// Writes a context dir `name` under the engine's work dir: (path, contents) pairs,
/// owned by the engine's user. Returns its path.
fn context(c: &Camada, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = c.work().join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    for (path, text) in files {
        let p = dir.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, text).unwrap();
    }
    if let Some(u) = c.user() {
        u.chown_tree(&dir);
    }
    dir
}

fn build(c: &Camada, args: &[&str], ctx: &Path) -> common::Run {
    let mut v: Vec<String> = vec!["build".into()];
    v.extend(args.iter().map(|s| s.to_string()));
    v.push(ctx.display().to_string());
    c.run(v)
}

fn inspect(c: &Camada, image: &str, format: &str) -> String {
    c.ok(["inspect", "--format", format, image])
        .trim()
        .to_owned()
}

/// Layer directories in the store (a rebuild from cache must add none).
fn layer_count(c: &Camada) -> usize {
    fs::read_dir(c.root().join("layers")).map_or(0, |d| d.count())
}

#[test]
fn instructions_take_effect_in_the_image() {
    for (who, c) in engines(ALL) {
        let ctx = context(
            &c,
            "meta",
            &[(
                "Dockerfile",
                r#"# syntax=docker/dockerfile:1
ARG BASE=base
FROM ${BASE}:latest
ARG GREETING=hello
ENV WHO=world PATH=/opt/bin:$PATH
LABEL maintainer 'Ana <ana@example.org>'
LABEL org.example.greeting="$GREETING"
RUN mkdir -p /opt/bin && printf '#!/bin/sh\necho "$GREETING $WHO from $(pwd) as $(id -u)"\n' > /opt/bin/greet && chmod 755 /opt/bin/greet
WORKDIR /srv
WORKDIR data
RUN echo "$GREETING" > built-with && rm -rf /home
EXPOSE 8080 53/udp
VOLUME /var/cache
STOPSIGNAL SIGINT
RUN <<EOF
echo "body of $GREETING" > /srv/heredoc
EOF
RUN cat > /srv/heredoc2 <<-EOT
	tab-stripped
	EOT
USER 1000
ENTRYPOINT ["greet"]
"#,
            )],
        );
        build(&c, &["-t", "meta:1", "--build-arg", "GREETING=hi"], &ctx)
            .success()
            .stdout_has("[1/16] FROM base:latest")
            .stdout_has("Successfully tagged meta:1");
        // ENTRYPOINT + ENV + WORKDIR + USER, and the ARG reached RUN but not the image env
        c.run(["run", "--rm", "meta:1"])
            .success()
            .stdout_is(" world from /srv/data as 1000\n");
        c.run(["run", "--rm", "--entrypoint", "cat", "meta:1", "built-with"])
            .success()
            .stdout_is("hi\n");
        c.run([
            "run",
            "--rm",
            "--entrypoint",
            "cat",
            "meta:1",
            "/srv/heredoc",
            "/srv/heredoc2",
        ])
        .success()
        .stdout_is("body of hi\ntab-stripped\n");
        // the RUN's deletion is a whiteout in its layer
        c.run(["run", "--rm", "--entrypoint", "ls", "meta:1", "/home"])
            .exit(1);
        assert_eq!(
            inspect(&c, "meta:1", "{{.Config.Labels}}"),
            "map[maintainer:Ana <ana@example.org> org.example.greeting:hi]",
            "{who:?}"
        );
        assert_eq!(inspect(&c, "meta:1", "{{.Author}}"), "");
        assert_eq!(inspect(&c, "meta:1", "{{.Config.StopSignal}}"), "SIGINT");
        let json = inspect(&c, "meta:1", "{{json .Config}}");
        for want in [
            r#""8080/tcp":{}"#,
            r#""53/udp":{}"#,
            r#""/var/cache":{}"#,
            r#""User":"1000""#,
            r#""WorkingDir":"/srv/data""#,
            r#""WHO=world""#,
            r#""PATH=/opt/bin:/usr/local/sbin"#,
        ] {
            assert!(json.contains(want), "{who:?}: {want} not in {json}");
        }
        assert!(
            !json.contains("GREETING="),
            "{who:?}: an ARG leaked: {json}"
        );
        // history: one entry per instruction after FROM (ARG adds none); layers: the base's,
        // three RUNs with changes, two WORKDIRs that made their directory
        let history = c.ok([
            "history",
            "--no-trunc",
            "--format",
            "{{.CreatedBy}}",
            "meta:1",
        ]);
        assert!(history.contains("#(nop)  ENV WHO=world"), "{history}");
        assert!(
            history.contains("|1 GREETING=hi /bin/sh -c echo"),
            "{history}"
        );
        assert_eq!(
            inspect(&c, "meta:1", "{{len .RootFS.Layers}}"),
            "7",
            "{who:?}"
        );
    }
}

#[test]
fn an_unchanged_rebuild_is_all_cached_and_makes_nothing() {
    for (who, c) in engines(&[Who::Root, Who::User]) {
        let ctx = context(
            &c,
            "cache",
            &[(
                "Dockerfile",
                "FROM base\nRUN echo one > /one\nARG V=1\nENV E=e\nRUN echo v$V > /v\nCMD cat /v\n",
            )],
        );
        let first = build(&c, &["-q", "-t", "c:1"], &ctx).success().stdout();
        let layers = layer_count(&c);
        let again = build(&c, &["-t", "c:2"], &ctx).success().stdout();
        assert_eq!(again.matches("CACHED").count(), 4, "{who:?}: {again}");
        assert!(again.contains(&format!("Successfully built {}", &first.trim()[7..19])));
        assert_eq!(
            layer_count(&c),
            layers,
            "{who:?}: a cached rebuild made a layer"
        );
        assert_eq!(inspect(&c, "c:2", "{{.Id}}"), first.trim());
        // a changed ARG value reruns from its first use (RUN uses every ARG declared before
        // it, as docker), not before
        let changed = build(&c, &["-t", "c:3", "--build-arg", "V=2"], &ctx)
            .success()
            .stdout();
        assert_eq!(changed.matches("CACHED").count(), 2, "{who:?}: {changed}");
        c.run(["run", "--rm", "c:3"]).success().stdout_is("v2\n");
        c.run(["run", "--rm", "c:1"]).success().stdout_is("v1\n");
        // --no-cache runs everything again
        let fresh = build(&c, &["--no-cache", "-t", "c:4"], &ctx)
            .success()
            .stdout();
        assert!(!fresh.contains("CACHED"), "{fresh}");
        // image prune keeps the cache (BuildKit's is separate); system prune drops it
        c.ok(["rmi", "c:2", "c:4"]);
        c.ok(["image", "prune", "-f"]);
        let after = build(&c, &["-t", "c:5"], &ctx).success().stdout();
        assert_eq!(after.matches("CACHED").count(), 4, "{who:?}: {after}");
        assert!(c.ok(["system", "df"]).contains("Build Cache"));
        c.ok(["system", "prune", "-f"]);
        let pruned = build(&c, &["-t", "c:6"], &ctx).success().stdout();
        assert!(!pruned.contains("CACHED"), "{who:?}: {pruned}");
        c.run(["run", "--rm", "c:6"]).success().stdout_is("v1\n");
    }
}

#[test]
fn a_failing_run_stops_the_build_and_moves_no_tag() {
    for (who, c) in engines(ALL) {
        let ok = context(
            &c,
            "ok",
            &[("Dockerfile", "FROM base\nRUN echo first > /f\n")],
        );
        let id = build(&c, &["-q", "-t", "app"], &ok).success().stdout();
        let bad = context(
            &c,
            "bad",
            &[(
                "Dockerfile",
                "FROM base\nRUN echo before-failing\nRUN echo about to fail; exit 3\nRUN echo never\n",
            )],
        );
        let r = build(&c, &["-t", "app"], &bad);
        r.exit(125)
            .stdout_has("about to fail")
            .stdout_lacks("never")
            .stderr_is("Error: RUN /bin/sh -c \"echo about to fail; exit 3\" exited with code 3\n");
        assert_eq!(inspect(&c, "app", "{{.Id}}"), id.trim(), "{who:?}");
        // quiet: the output of the failing step still shows, on stderr
        build(&c, &["-q", "-t", "app"], &bad)
            .exit(125)
            .stdout_is("")
            .stderr_has("about to fail\n");
    }
}

#[test]
fn dockerfile_errors_name_the_line() {
    let c = Camada::new();
    let ctx = context(
        &c,
        "syntax",
        &[("Dockerfile", "FROM base\n\nRUN true\nCOPPY a b\n")],
    );
    build(&c, &[], &ctx)
        .engine_error()
        .stderr_has("Dockerfile:4: unknown instruction: COPPY");
    let named = context(&c, "named", &[("build.df", "FROM base\nENV\n")]);
    build(
        &c,
        &["-f", &named.join("build.df").display().to_string()],
        &named,
    )
    .engine_error()
    .stderr_has("build.df:2:");
    build(
        &c,
        &["--target", "nope"],
        &named.parent().unwrap().join("syntax"),
    )
    .engine_error();
    let missing = context(&c, "missing", &[("x", "")]);
    build(&c, &[], &missing)
        .engine_error()
        .stderr_has("Dockerfile");
}

#[test]
fn stdin_dockerfile_quiet_tags_and_labels() {
    for (_, c) in engines(&[Who::Root, Who::User]) {
        let ctx = context(&c, "empty", &[]);
        let r = c.run_stdin(
            [
                "build",
                "-q",
                "-f",
                "-",
                "-t",
                "one",
                "-t",
                "two:x",
                "--label",
                "a=b",
                "--label",
                "c=d e",
                &ctx.display().to_string(),
            ],
            b"FROM base\nWORKDIR /tmp/w/x\nCMD [\"echo\", \"from stdin\"]\n",
        );
        r.success();
        let out = r.stdout();
        assert!(
            out.starts_with("sha256:") && out.len() == 72 && out.ends_with('\n'),
            "-q prints the ID only: {out:?}"
        );
        for name in ["one", "two:x"] {
            assert_eq!(inspect(&c, name, "{{.Id}}"), out.trim());
        }
        assert_eq!(inspect(&c, "one", "{{.Config.Labels}}"), "map[a:b c:d e]");
        c.run(["run", "--rm", "one"])
            .success()
            .stdout_is("from stdin\n");
        // WORKDIR made the missing directories only (as BuildKit): /tmp keeps its mode
        c.run([
            "run", "--rm", "one", "stat", "-c", "%a %U", "/tmp", "/tmp/w", "/tmp/w/x",
        ])
        .success()
        .stdout_is("1777 root\n755 root\n755 root\n");
    }
    // the context must exist even when no step reads it (as docker): one error line
    // naming it, and no image
    for (who, c) in engines(&[Who::Root, Who::User]) {
        let gone = c.root().join("no-such-context");
        let r = c.run_stdin(
            [
                "build",
                "-t",
                "never",
                "-f",
                "-",
                &gone.display().to_string(),
            ],
            b"FROM base\nRUN true\n",
        );
        r.engine_error()
            .stderr_has(&format!("opening the build context {}", gone.display()));
        c.run(["inspect", "never"]).engine_error();
        eprintln!("{who:?}: missing context refused");
    }
}

#[test]
fn multi_stage_builds_only_what_the_target_needs() {
    for (who, c) in engines(&[Who::Root, Who::User]) {
        let ctx = context(
            &c,
            "multi",
            &[(
                "Dockerfile",
                "FROM base AS builder\nRUN echo built > /artifact\n\
                 FROM base AS broken\nRUN exit 1\n\
                 FROM builder AS tested\nRUN cat /artifact > /tested\n\
                 FROM base\nRUN echo final > /final\n",
            )],
        );
        // the final stage needs none of the others
        let out = build(&c, &["-t", "m"], &ctx).success().stdout();
        assert!(
            !out.contains("broken") && !out.contains("builder"),
            "{who:?}: {out}"
        );
        // --target: the stage and what it builds on, never the broken one
        let out = build(&c, &["--target", "tested", "-t", "m:t"], &ctx)
            .success()
            .stdout();
        assert!(
            out.contains("[builder 1/2]") && out.contains("[tested 2/2]"),
            "{out}"
        );
        assert!(!out.contains("broken"), "{who:?}: {out}");
        c.run(["run", "--rm", "m:t", "cat", "/tested"])
            .success()
            .stdout_is("built\n");
        build(&c, &["--target", "broken"], &ctx).exit(125);
    }
}

#[test]
fn copy_follows_the_context_and_a_changed_file_reruns_from_its_copy() {
    for (who, c) in engines(&[Who::Root, Who::User]) {
        let ctx = context(
            &c,
            "copy",
            &[
                (
                    "Dockerfile",
                    "FROM base\nWORKDIR /app\nCOPY a.txt .\nRUN cat a.txt > seen-a\n\
                     COPY --chmod=0600 dir/ data/\nCOPY *.md docs/\nRUN ls -R /app > /listing\n",
                ),
                ("a.txt", "A1\n"),
                ("dir/one", "1\n"),
                ("dir/sub/two", "2\n"),
                ("dir/secret.key", "no\n"),
                ("x.md", "x\n"),
                ("y.md", "y\n"),
                (".dockerignore", "**/*.key\n"),
            ],
        );
        // a symlink out of the context is copied as a link, never followed
        std::os::unix::fs::symlink("/etc/shadow", ctx.join("dir/shadow")).unwrap();
        if let Some(u) = c.user() {
            u.chown_tree(&ctx);
        }
        build(&c, &["-t", "cp:1"], &ctx).success();
        let run = |cmd: &str| c.ok(["run", "--rm", "cp:1", "sh", "-c", cmd]);
        assert_eq!(run("cat /app/seen-a"), "A1\n", "{who:?}");
        assert_eq!(
            run("cd /app && find data docs | sort"),
            "data\ndata/one\ndata/shadow\ndata/sub\ndata/sub/two\ndocs\ndocs/x.md\ndocs/y.md\n",
            "{who:?}"
        );
        assert_eq!(run("readlink /app/data/shadow"), "/etc/shadow\n");
        assert_eq!(
            run("stat -c '%a %u:%g' /app/data/one /app/a.txt"),
            "600 0:0\n644 0:0\n"
        );
        // unchanged: all cached; one file changed: from the COPY that reads it on
        let again = build(&c, &["-t", "cp:2"], &ctx).success().stdout();
        assert_eq!(again.matches("CACHED").count(), 6, "{who:?}: {again}");
        fs::write(ctx.join("dir/sub/two"), "2 changed\n").unwrap();
        let changed = build(&c, &["-t", "cp:3"], &ctx).success().stdout();
        assert_eq!(changed.matches("CACHED").count(), 3, "{who:?}: {changed}");
        assert!(
            changed.contains("[5/7] COPY --chmod=0600 dir/ data/\n#5 DONE"),
            "{changed}"
        );
        // an ignored file changing changes nothing; neither does an mtime
        fs::write(ctx.join("dir/secret.key"), "still no\n").unwrap();
        let ignored = build(&c, &["-t", "cp:4"], &ctx).success().stdout();
        assert_eq!(ignored.matches("CACHED").count(), 6, "{who:?}: {ignored}");
        // a source outside the context is refused, with the line
        let bad = context(
            &c,
            "outside",
            &[("Dockerfile", "FROM base\nCOPY ../x /x\n")],
        );
        build(&c, &[], &bad)
            .engine_error()
            .stderr_has("Dockerfile:2: ");
        let missing = context(
            &c,
            "nofile",
            &[("Dockerfile", "FROM base\n\nCOPY app.py /\n")],
        );
        build(&c, &[], &missing).engine_error().stderr_is(
            "Error: Dockerfile:3: COPY failed: file not found in build context or excluded by .dockerignore: \"app.py\"\n",
        );
    }
}

#[test]
fn copy_from_a_stage_and_an_image() {
    for (who, c) in engines(&[Who::Root, Who::User]) {
        let ctx = context(
            &c,
            "from",
            &[(
                "Dockerfile",
                "FROM base AS build\nRUN mkdir /out && echo artifact > /out/a && chown 1000:1000 /out/a\n\
                 FROM scratch\nCOPY --from=build /out/a /a\nCOPY --from=0 /bin/busybox /bin/busybox\n\
                 COPY --from=base:latest /etc/passwd /etc/passwd\nENTRYPOINT [\"/bin/busybox\"]\n",
            )],
        );
        build(&c, &["-t", "from"], &ctx).success();
        c.run(["run", "--rm", "from", "cat", "/a"])
            .success()
            .stdout_is("artifact\n");
        // --from keeps the owners it had there
        c.run(["run", "--rm", "from", "stat", "-c", "%u:%g", "/a"])
            .success()
            .stdout_is("1000:1000\n");
        c.run(["run", "--rm", "from", "grep", "-c", "root", "/etc/passwd"])
            .success()
            .stdout_is("1\n");
        assert_eq!(
            inspect(&c, "from", "{{len .RootFS.Layers}}"),
            "3",
            "{who:?}"
        );
    }
}

#[test]
fn the_fixtures_example_builds_and_runs() {
    for (who, c) in engines(ALL) {
        let example = c.give(&common::fixtures_dir().join("example"));
        build(&c, &["-t", "hello:1.0"], &example)
            .success()
            .stdout_has("Successfully tagged hello:1.0");
        c.run(["run", "--rm", "hello:1.0", "cat", "www/index.html"])
            .success()
            .stdout_has("<h1>Hello from camada</h1>");
        c.run([
            "run",
            "--rm",
            "hello:1.0",
            "sh",
            "-c",
            "test -x app.sh && pwd",
        ])
        .success()
        .stdout_is("/app\n");
        assert_eq!(
            inspect(&c, "hello:1.0", "{{.Config.Labels.maintainer}}"),
            "Ana Teacher <ana@example.org>",
            "{who:?}"
        );
        assert_eq!(
            inspect(&c, "hello:1.0", "{{json .Config.Cmd}}"),
            r#"["./app.sh"]"#
        );
    }
}

/// Every entry under `root` as `path type mode uid:gid size link sha256` (no timestamps).
fn tree_listing(root: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let (kind, extra) = if m.is_dir() {
                stack.push(p.clone());
                ("d", String::new())
            } else if m.file_type().is_symlink() {
                ("l", fs::read_link(&p).unwrap().display().to_string())
            } else if m.is_file() {
                let bytes = fs::read(&p).unwrap();
                ("f", camada::digest::Digest::of(&bytes).short().to_owned())
            } else {
                ("o", String::new())
            };
            out.push(format!(
                "{rel} {kind} {:o} {}:{} {} {extra}",
                m.mode() & 0o7777,
                m.uid(),
                m.gid(),
                if kind == "f" { m.len() } else { 0 }
            ));
        }
    }
    out.sort();
    out
}

/// The file trees (umoci unpack, [`tree_listing`]) of the image that `buildah bud` and
/// `camada build` make of the context `ctx`, each given `flags` (buildah's and camada's
/// `--secret` are alike), as (buildah's, camada's). buildah's empty mount points of its
/// generated /etc files are left out: BuildKit and camada leave them out of a RUN's layer.
fn buildah_and_camada_trees(c: &Camada, ctx: &Path, flags: &[&str]) -> (Vec<String>, Vec<String>) {
    let base = c.load_base();
    let mut args = vec!["-q", "-t", "interop"];
    args.extend(flags);
    build(c, &args, ctx).success();
    let dir = c.dir();
    let archive = dir.join("camada.tar");
    c.ok([
        "save",
        "--format",
        "oci-archive",
        "-o",
        archive.to_str().unwrap(),
        "interop",
    ]);
    let oci = dir.join("camada-oci");
    fs::create_dir(&oci).unwrap();
    let tar = std::process::Command::new("tar")
        .arg("-C")
        .arg(&oci)
        .arg("-xf")
        .arg(&archive)
        .status()
        .unwrap();
    assert!(tar.success());
    let sh = |script: &str| {
        let out = std::process::Command::new("sh")
            .args(["-ec", script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let d = dir.display();
    let b = format!("buildah --root {d}/broot --runroot {d}/brun --storage-driver vfs");
    sh(&format!(
        "{b} pull -q oci-archive:{} >/dev/null && {b} tag $({b} images -q | head -1) base:latest \
         && {b} bud --isolation chroot -q {} -t interop {} >/dev/null \
         && {b} push -q interop oci:{d}/buildah-oci:interop \
         && umoci unpack --image {d}/buildah-oci:interop {d}/buildah-bundle >/dev/null \
         && umoci unpack --image {d}/camada-oci:latest {d}/camada-bundle >/dev/null",
        base.oci_tar.display(),
        flags.join(" "),
        ctx.display()
    ));
    let theirs = tree_listing(&dir.join("buildah-bundle/rootfs"));
    let ours = tree_listing(&dir.join("camada-bundle/rootfs"));
    let stubs = ["etc/hostname ", "etc/hosts ", "etc/resolv.conf "];
    let theirs: Vec<String> = theirs
        .into_iter()
        .filter(|l| !(stubs.iter().any(|s| l.starts_with(s)) && l.contains(" f ")))
        .collect();
    sh(&format!(
        "{b} prune -af >/dev/null 2>&1 || true; {b} rmi -a -f >/dev/null 2>&1 || true; \
         rm -rf {d}/broot {d}/brun"
    ));
    (theirs, ours)
}

/// buildah's and camada's trees must be equal (a diff on failure).
#[track_caller]
fn assert_same_trees(theirs: &[String], ours: &[String]) {
    assert!(
        theirs == ours,
        "buildah's tree (-) against camada's (+):\n{}",
        common::diff_lines(&theirs.join("\n"), &ours.join("\n"))
    );
}

fn buildah_usable() -> bool {
    if !common::is_root() {
        require("root (buildah with the vfs driver)", Err("not root".into()));
        return false;
    }
    for t in ["buildah", "umoci"] {
        common::tool(t);
    }
    true
}

#[test]
fn buildah_builds_the_same_file_tree() {
    if !buildah_usable() {
        return;
    }
    let c = Camada::new();
    let ctx = context(
        &c,
        "interop",
        &[
            (
                "Dockerfile",
                "FROM base:latest\nENV APP=/srv/app\n\
                 RUN mkdir -p $APP/gen && for i in 1 2 3; do echo \"file $i\" > $APP/gen/f$i; done \
                 && chown -R 1000:1000 $APP/gen && rm -rf /home && ln -s gen/f1 $APP/link \
                 && chmod 0700 $APP/gen/f2\n\
                 COPY --chown=1000:100 dir/ $APP/data/\nCOPY --chmod=0640 top.txt $APP/\n\
                 WORKDIR $APP\nRUN pwd > where && rm gen/f3\nCMD [\"ls\"]\n",
            ),
            ("dir/a", "a\n"),
            ("dir/sub/c", "c\n"),
            ("top.txt", "top\n"),
        ],
    );
    let (theirs, ours) = buildah_and_camada_trees(&c, &ctx, &[]);
    assert_same_trees(&theirs, &ours);
    assert!(
        ours.iter()
            .any(|l| l.starts_with("srv/app/gen/f2 f 700 1000:1000"))
    );
}

#[test]
fn buildah_builds_the_same_file_tree_with_run_mounts() {
    if !buildah_usable() {
        return;
    }
    let c = Camada::new();
    // buildah keeps cache mounts outside its --root, across runs: a fresh id
    let id = c.dir().file_name().unwrap().to_string_lossy().into_owned();
    let secret = c.work().join("token");
    fs::write(&secret, "t0ken\n").unwrap();
    let ctx = context(
        &c,
        "interop-mounts",
        &[
            (
                "Dockerfile",
                "FROM base:latest AS tools\nRUN mkdir /out && echo art > /out/a\n\
                 FROM base:latest\n\
                 RUN --mount=type=cache,id=ID,target=/cache echo x >> /cache/log && cp /cache/log /copied\n\
                 RUN --mount=type=bind,source=data,target=/mnt/data cat /mnt/data/in > /from-ctx\n\
                 RUN --mount=type=bind,from=tools,source=/out,target=/b cat /b/a > /from-stage\n\
                 RUN --mount=type=secret,id=tok wc -c < /run/secrets/tok > /len\n\
                 RUN --mount=type=tmpfs,target=/scratch echo y > /scratch/y\n",
            ),
            ("data/in", "in\n"),
        ],
    );
    let df = fs::read_to_string(ctx.join("Dockerfile")).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        df.replace("id=ID", &format!("id={id}")),
    )
    .unwrap();
    let flag = format!("id=tok,src={}", secret.display());
    let (theirs, ours) = buildah_and_camada_trees(&c, &ctx, &["--secret", &flag]);
    let _ = fs::remove_dir_all(Path::new("/var/tmp/buildah-cache").join(&id));
    // buildah removes a mount point it made but keeps the parents it made for it (/mnt
    // for /mnt/data, /run/secrets for the secret); camada removes those too
    let made_for_mounts = ["mnt ", "run/secrets "];
    let theirs: Vec<String> = theirs
        .into_iter()
        .filter(|l| !made_for_mounts.iter().any(|m| l.starts_with(m)))
        .collect();
    assert_same_trees(&theirs, &ours);
    for want in ["copied f", "from-ctx f", "from-stage f", "len f"] {
        assert!(ours.iter().any(|l| l.starts_with(want)), "{want}: {ours:?}");
    }
}

/// The debootstrap minbase rootfs as a tar every test user can read, made once per run
/// (the rootfs itself is cached between runs in /var/tmp/camada-bench/debian-rootfs).
fn debian_minbase() -> Option<PathBuf> {
    static TAR: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    let made = TAR.get_or_init(|| {
        let rootfs = Path::new("/var/tmp/camada-bench/debian-rootfs");
        let sh = |script: &str| -> Result<(), String> {
            let out = std::process::Command::new("sh")
                .args(["-ec", script])
                .output()
                .map_err(|e| e.to_string())?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "{script}: {}",
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
        };
        if !rootfs.join("usr/bin/apt-get").exists() {
            if !Path::new("/usr/sbin/debootstrap").exists() {
                return Err("debootstrap is not installed (apt-get install debootstrap)".into());
            }
            sh(&format!(
                "mkdir -p {0}.new && debootstrap --variant=minbase bookworm {0}.new >/dev/null \
                 && mv {0}.new {0}",
                rootfs.display()
            ))?;
        }
        // kept between runs beside the rootfs (made again when the rootfs is newer)
        let dir = Path::new("/var/tmp/camada-build-test");
        let tar = dir.join("debian-minbase.tar");
        let fresh = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
        if fresh(&tar).is_none() || fresh(&tar) < fresh(rootfs) {
            sh(&format!(
                "mkdir -p -m 0755 {d} && tar -C {r} -cf {t}.$$ . && chmod 0644 {t}.$$ \
                 && mv {t}.$$ {t}",
                d = dir.display(),
                r = rootfs.display(),
                t = tar.display()
            ))?;
        }
        Ok(tar)
    });
    match made {
        Ok(p) => Some(p.clone()),
        Err(why) => {
            require("a Debian minbase image", Err(why.clone()));
            None
        }
    }
}

/// A local Debian repository in `dir`: `hello-camada` and `plain-camada` (a file each)
/// and `svc-camada` (its postinst makes a system user and chowns a directory to it), plus
/// their Packages index.
fn make_repo(dir: &Path) {
    for (name, postinst) in [
        ("hello-camada", None),
        ("plain-camada", None),
        (
            "svc-camada",
            Some(
                "#!/bin/sh\nset -e\nuseradd --system --no-create-home svc-camada\n\
                 mkdir -p /var/lib/svc-camada\nchown svc-camada:svc-camada /var/lib/svc-camada\n",
            ),
        ),
    ] {
        let root = dir.join(format!("{name}-src"));
        fs::create_dir_all(root.join("DEBIAN")).unwrap();
        fs::create_dir_all(root.join(format!("usr/share/{name}"))).unwrap();
        fs::write(
            root.join("DEBIAN/control"),
            format!(
                "Package: {name}\nVersion: 1.0\nArchitecture: all\nMaintainer: camada <t@example.org>\n\
                 Description: camada test package\n"
            ),
        )
        .unwrap();
        fs::write(
            root.join(format!("usr/share/{name}/msg")),
            format!("{name} installed\n"),
        )
        .unwrap();
        if let Some(script) = postinst {
            let p = root.join("DEBIAN/postinst");
            fs::write(&p, script).unwrap();
            let exec = std::os::unix::fs::PermissionsExt::from_mode(0o755);
            fs::set_permissions(&p, exec).unwrap();
        }
        let st = std::process::Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zgzip", "--build"])
            .arg(&root)
            .arg(dir.join(format!("{name}_1.0_all.deb")))
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "dpkg-deb --build {name}");
        fs::remove_dir_all(&root).unwrap();
    }
    let out = std::process::Command::new("dpkg-scanpackages")
        .args([".", "/dev/null"])
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "dpkg-scanpackages");
    fs::write(dir.join("Packages"), out.stdout).unwrap();
}

#[test]
fn dpkg_and_apt_install_in_a_debian_image() {
    let Some(tar) = debian_minbase() else { return };
    for t in ["dpkg-deb", "dpkg-scanpackages"] {
        common::tool(t);
    }
    for (who, c) in engines(ALL) {
        c.ok(["import", tar.to_str().unwrap(), "debian:minbase"]);
        let ctx = context(
            &c,
            "debian",
            &[(
                "Dockerfile",
                "FROM debian:minbase\nCOPY repo/ /repo/\n\
                 RUN dpkg -i /repo/hello-camada_1.0_all.deb\nARG EXTRA=svc-camada\n\
                 RUN rm -f /etc/apt/sources.list && \
                 echo 'deb [trusted=yes] file:/repo ./' > /etc/apt/sources.list.d/local.list \
                 && apt-get update && apt-get install -y plain-camada $EXTRA\n",
            )],
        );
        make_repo(&ctx.join("repo"));
        if let Some(u) = c.user() {
            u.chown_tree(&ctx);
        }
        // single-id mode too: useradd writes /etc/gshadow (0640 root:shadow, a group the
        // namespace does not map: the overlay shows it as root's) and its chown is faked
        let extra = "EXTRA=svc-camada";
        build(&c, &["-t", "deb", "--build-arg", extra], &ctx).success();
        let run = |cmd: &str| c.ok(["run", "--rm", "deb", "sh", "-c", cmd]);
        assert_eq!(
            run("cat /usr/share/hello-camada/msg /usr/share/plain-camada/msg"),
            "hello-camada installed\nplain-camada installed\n",
            "{who:?}"
        );
        assert_eq!(
            run("dpkg-query -W -f '${Status}\\n' hello-camada plain-camada"),
            "install ok installed\ninstall ok installed\n",
            "{who:?}"
        );
        // with one id mapped the postinst's chown had no effect (fake ids)
        let owner = match who {
            Who::SingleId => "root:root",
            _ => "svc-camada:svc-camada",
        };
        assert_eq!(
            run("cat /usr/share/svc-camada/msg; stat -c %U:%G /var/lib/svc-camada"),
            format!("svc-camada installed\n{owner}\n"),
            "{who:?}"
        );
    }
}

#[test]
fn pushed_layers_are_compressed_as_build_said() {
    if !require("a local registry", reg::available()) {
        return;
    }
    let r = reg::Registry::start(reg::Auth::None);
    let c = Camada::new();
    c.load_base();
    let ctx = context(
        &c,
        "push",
        &[(
            "Dockerfile",
            "FROM base\nRUN echo pushed > /p\nCMD [\"cat\", \"/p\"]\n",
        )],
    );
    for (flag, suffix) in [(None, "tar+gzip"), (Some("zstd"), "tar+zstd")] {
        let name = format!("{}/built/{}", r.addr(), flag.unwrap_or("default"));
        let mut args = vec!["-t", name.as_str()];
        if let Some(f) = flag {
            args.extend(["--compression", f]);
        }
        build(&c, &args, &ctx).success();
        c.ok(["push", &name]);
        let raw = c
            .exec({
                let mut cmd = c.command("skopeo");
                cmd.args(["inspect", "--raw", "--tls-verify=false"])
                    .arg(format!("docker://{name}"));
                cmd
            })
            .success()
            .stdout();
        let m: serde_json::Value = serde_json::from_str(&raw).unwrap();
        let types: Vec<&str> = m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["mediaType"].as_str().unwrap())
            .collect();
        assert_eq!(types.len(), 2, "{raw}");
        // the store keeps every layer of a built image uncompressed; push compresses them
        assert!(types.iter().all(|t| t.ends_with(suffix)), "{flag:?}: {raw}");
        // a fresh store pulls it and runs it
        let other = Camada::new();
        other.ok(["pull", &name]);
        other
            .run(["run", "--rm", &name])
            .success()
            .stdout_is("pushed\n");
    }
}

/// Every file under `dir` whose bytes contain `needle` (layer tars, blobs).
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_containing(&p, needle));
        } else if fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle)) {
            out.push(p);
        }
    }
    out
}

#[test]
fn run_mount_cache_persists_between_builds_and_stays_out_of_the_image() {
    for (who, c) in engines(ALL) {
        let ctx = context(
            &c,
            "cachemount",
            &[(
                "Dockerfile",
                "FROM base AS seed\nRUN mkdir /s && echo seeded > /s/first\n\
                 FROM base\nARG N\n\
                 RUN --mount=type=cache,id=seeded,target=/sc,from=seed,source=/s \
                 cat /sc/first > /seen && echo \"$N\" >> /sc/first\n\
                 RUN --mount=type=cache,target=/cache,sharing=locked \
                 echo \"$N\" >> /cache/log && wc -l < /cache/log > /count\n\
                 RUN --mount=type=cache,id=owned,target=owned,uid=1000,gid=1000,mode=0700 \
                 stat -c %u:%g:%a /owned > /owned-stat\n\
                 USER 1000\n\
                 RUN --mount=type=cache,id=owned,target=/owned mkdir -p /owned/d/e && touch /owned/d/e/f\n\
                 USER 0\n",
            )],
        );
        build(&c, &["-t", "cm:1", "--build-arg", "N=1"], &ctx).success();
        // another value reruns the RUN, on the directory the first build left
        build(&c, &["-t", "cm:2", "--build-arg", "N=2"], &ctx).success();
        let cat = |image: &str, path: &str| {
            c.run(["run", "--rm", image, "cat", path])
                .success()
                .stdout()
        };
        assert_eq!(cat("cm:1", "/count").trim(), "1", "{who:?}");
        assert_eq!(cat("cm:2", "/count").trim(), "2", "{who:?}");
        // a cache with from= starts as a copy of the stage's files, then lives on its own
        assert_eq!(cat("cm:1", "/seen"), "seeded\n", "{who:?}");
        assert_eq!(cat("cm:2", "/seen"), "seeded\n1\n", "{who:?}");
        // neither the cache's files nor its mount point are in the image
        c.run(["run", "--rm", "cm:2", "ls", "/cache"]).exit(1);
        c.run(["run", "--rm", "cm:2", "ls", "/owned"]).exit(1);
        // uid/gid/mode apply when the cache is made (single-id mode maps no other id)
        let want = if who == Who::SingleId {
            "0:0:700"
        } else {
            "1000:1000:700"
        };
        assert_eq!(cat("cm:1", "/owned-stat").trim(), want, "{who:?}");
        // the caches live in the store, beside the images (/cache/log and /sc/first)
        let caches = c.root().join("cachemounts");
        assert_eq!(files_containing(&caches, b"1\n2\n").len(), 2, "{who:?}");
        assert_eq!(
            files_containing(&caches, b"seeded\n1\n2\n").len(),
            1,
            "{who:?}"
        );
        // system prune drops the caches (files of uid 1000 too: a subordinate id's on the
        // host for a ranged user): the count starts again
        c.ok(["system", "prune", "-f"]);
        let left: Vec<_> = fs::read_dir(c.root().join("cachemounts"))
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{who:?}: {left:?}");
        build(&c, &["-t", "cm:3", "--build-arg", "N=3"], &ctx).success();
        assert_eq!(cat("cm:3", "/count").trim(), "1", "{who:?}");
        assert_eq!(cat("cm:3", "/seen"), "seeded\n", "{who:?}");
    }
}

#[test]
fn run_mount_secret_is_readable_in_run_and_in_no_layer_or_history() {
    const SECRET: &str = "s3cret-9f1c2e";
    for (who, c) in engines(ALL) {
        let ctx = context(
            &c,
            "secret",
            &[(
                "Dockerfile",
                "FROM base\n\
                 RUN --mount=type=secret,id=tok,required \
                 cut -c1-6 /run/secrets/tok > /prefix && stat -c %a /run/secrets/tok > /mode\n\
                 RUN --mount=type=secret,id=tok,env=TOK,target=/etc/tok \
                 test \"$TOK\" = \"$(cat /etc/tok)\" && echo ${#TOK} > /len\n",
            )],
        );
        let files = context(&c, "secretfiles", &[("tok", SECRET), ("other", "changed")]);
        let flag = format!("id=tok,src={}", files.join("tok").display());
        build(&c, &["-t", "sec", "--secret", &flag], &ctx).success();
        c.run(["run", "--rm", "sec", "cat", "/prefix", "/mode", "/len"])
            .success()
            .stdout_is("s3cret\n400\n13\n");
        c.run(["run", "--rm", "sec", "ls", "/run/secrets/tok"])
            .exit(1);
        c.run(["run", "--rm", "sec", "ls", "/etc/tok"]).exit(1);
        let history = c.ok(["history", "--no-trunc", "sec"]);
        assert!(!history.contains(SECRET), "{who:?}: {history}");
        assert!(!files_containing(&files, SECRET.as_bytes()).is_empty());
        let mut leaks = files_containing(&c.root(), SECRET.as_bytes());
        leaks.extend(files_containing(&c.runroot(), SECRET.as_bytes()));
        assert!(
            leaks.is_empty(),
            "{who:?}: the secret is stored in {leaks:?}"
        );
        // the secret's bytes are no part of the key: another value is still a hit
        let other = format!("id=tok,src={}", files.join("other").display());
        let again = build(&c, &["-t", "sec2", "--secret", &other], &ctx)
            .success()
            .stdout();
        assert_eq!(again.matches("CACHED").count(), 2, "{who:?}: {again}");
        // a required secret not given stops the build, naming it
        build(&c, &["--no-cache", "-t", "sec3"], &ctx)
            .engine_error()
            .stderr_has("secret \"tok\" is required");
        build(&c, &["--secret", "id=tok,src=/nonexistent/x"], &ctx)
            .engine_error()
            .stderr_has("/nonexistent/x");
    }
}

#[test]
fn run_mount_binds_the_context_and_a_stage_and_tmpfs() {
    for (who, c) in engines(ALL) {
        let ctx = context(
            &c,
            "bind",
            &[
                (
                    "Dockerfile",
                    "FROM base AS tools\nRUN mkdir /out && echo from-stage > /out/artifact\n\
                     FROM base\nWORKDIR /app\n\
                     RUN --mount=type=bind,source=data,target=/mnt/data \
                     cat /mnt/data/in > /from-ctx && ls /mnt/data > /listed && \
                     { touch /mnt/data/x 2>/dev/null && echo writable || echo read-only; } > /ro\n\
                     RUN --mount=type=bind,from=tools,source=/out,target=/b cat /b/artifact > /from-stage\n\
                     RUN --mount=type=bind,source=data,target=w,rw \
                     echo scribble > w/in && cat w/in > /rw\n\
                     RUN --mount=type=tmpfs,target=/scratch,size=1m \
                     echo x > /scratch/f && grep ' /scratch tmpfs ' /proc/mounts | wc -l > /tmpfs\n",
                ),
                ("data/in", "from-context\n"),
                ("data/ignored.txt", "no\n"),
                (".dockerignore", "data/ignored.txt\n"),
            ],
        );
        let first = build(&c, &["-t", "bnd"], &ctx).success().stdout();
        assert!(first.contains("[tools 2/2] RUN"), "{who:?}: {first}");
        c.run([
            "run",
            "--rm",
            "bnd",
            "cat",
            "/from-ctx",
            "/listed",
            "/ro",
            "/from-stage",
            "/rw",
            "/tmpfs",
        ])
        .success()
        .stdout_is("from-context\nin\nread-only\nfrom-stage\nscribble\n1\n");
        // mount points and what was written under them are not in the image
        for gone in ["/mnt", "/app/w", "/scratch", "/b"] {
            c.run(["run", "--rm", "bnd", "ls", gone]).exit(1);
        }
        // rw writes went to a copy, never to the context
        assert_eq!(
            fs::read_to_string(ctx.join("data/in")).unwrap(),
            "from-context\n"
        );
        // the bound files are part of the key: unchanged, cached; changed, rerun
        let again = build(&c, &["-t", "bnd"], &ctx).success().stdout();
        assert_eq!(again.matches("CACHED").count(), 6, "{who:?}: {again}");
        fs::write(ctx.join("data/in"), "changed\n").unwrap();
        let changed = build(&c, &["-t", "bnd"], &ctx).success().stdout();
        assert_eq!(changed.matches("CACHED").count(), 2, "{who:?}: {changed}");
        c.run(["run", "--rm", "bnd", "cat", "/from-ctx"])
            .success()
            .stdout_is("changed\n");
    }
}

#[test]
fn run_network_flag_picks_the_steps_network() {
    for (who, c) in engines(ALL) {
        let ctx = context(
            &c,
            "runnet",
            &[(
                "Dockerfile",
                "FROM base\nRUN --network=none ls /sys/class/net > /none\n\
                 RUN --network=host ls /sys/class/net > /host\n",
            )],
        );
        build(&c, &["-t", "runnet"], &ctx).success();
        c.run(["run", "--rm", "runnet", "cat", "/none"])
            .success()
            .stdout_is("lo\n");
        let host: Vec<String> = fs::read_dir("/sys/class/net")
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let seen = c
            .run(["run", "--rm", "runnet", "cat", "/host"])
            .success()
            .stdout();
        for name in &host {
            assert!(
                seen.lines().any(|l| l == name),
                "{who:?}: {name} not in {seen}"
            );
        }
        let bad = context(
            &c,
            "runnet-bad",
            &[("Dockerfile", "FROM base\nRUN --network=bogus true\n")],
        );
        build(&c, &[], &bad)
            .engine_error()
            .stderr_has("Dockerfile:2: RUN: --network=bogus: network \"bogus\" is not supported");
    }
}

#[test]
fn run_mount_errors_name_the_option() {
    let c = Camada::new();
    c.load_base();
    for (line, says) in [
        (
            "RUN --mount=type=cache,target=/c,colour=red true",
            "Dockerfile:2: RUN: --mount=type=cache,target=/c,colour=red: unexpected key \"colour\"",
        ),
        (
            "RUN --mount=type=nfs,target=/c true",
            "unknown mount type \"nfs\"",
        ),
        ("RUN --mount=type=ssh true", "type=ssh is not supported"),
        ("RUN --mount=type=cache true", "needs a target"),
        (
            "RUN --mount=type=bind,source=nope,target=/x true",
            "Dockerfile:2: RUN: the bind mount at /x: COPY failed: file not found in build context",
        ),
        (
            "RUN --mount=type=bind,from=nostage:nosuchtag,target=/x true",
            "Dockerfile:2: RUN: the bind mount at /x: ",
        ),
    ] {
        let ctx = context(
            &c,
            "mounterr",
            &[("Dockerfile", &format!("FROM base\n{line}\n"))],
        );
        build(&c, &[], &ctx).engine_error().stderr_has(says);
    }
    let ctx = context(&c, "secreterr", &[("Dockerfile", "FROM base\n")]);
    build(&c, &["--secret", "src=/x"], &ctx)
        .engine_error()
        .stderr_has("invalid --secret \"src=/x\": it needs id=ID");
}

#[test]
fn onbuild_triggers_of_a_base_run_in_the_child() {
    for (who, c) in engines(ALL) {
        let parent = context(
            &c,
            "onbuild-parent",
            &[(
                "Dockerfile",
                "FROM base\nONBUILD ARG WHO=child\nONBUILD RUN echo \"built by $WHO\" > /trigger\n\
                 ONBUILD COPY hello.txt /hello.txt\nRUN echo parent > /parent\n",
            )],
        );
        build(&c, &["-t", "onb-parent"], &parent).success();
        assert_eq!(
            inspect(&c, "onb-parent", "{{json .Config.OnBuild}}"),
            r#"["ARG WHO=child","RUN echo \"built by $WHO\" > /trigger","COPY hello.txt /hello.txt"]"#,
            "{who:?}"
        );
        // the parent itself did not run them
        c.run(["run", "--rm", "onb-parent", "ls", "/trigger"])
            .exit(1);
        let child = context(
            &c,
            "onbuild-child",
            &[
                (
                    "Dockerfile",
                    "FROM onb-parent\nRUN cat /trigger /hello.txt > /both\n",
                ),
                ("hello.txt", "hello from the child's context\n"),
            ],
        );
        let out = build(&c, &["-t", "onb-child"], &child).success().stdout();
        assert!(out.contains("[1/2] FROM onb-parent"), "{who:?}: {out}");
        assert!(out.contains("[3/5] ONBUILD RUN echo"), "{who:?}: {out}");
        c.run(["run", "--rm", "onb-child", "cat", "/both"])
            .success()
            .stdout_is("built by child\nhello from the child's context\n");
        // triggers are not passed on to a grandchild
        assert_eq!(
            inspect(&c, "onb-child", "{{json .Config.OnBuild}}"),
            "null",
            "{who:?}"
        );
        let again = build(&c, &["-t", "onb-child"], &child).success().stdout();
        // ARG shows no CACHED
        assert_eq!(again.matches("CACHED").count(), 3, "{who:?}: {again}");
    }
}

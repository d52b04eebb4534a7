//! Unit tests of the image model on real samples: umoci and skopeo wrote the `umoci-*` and
//! `skopeo-*` files in testdata/ (see the commit message); the docker ones are written by
//! hand from docker's output and the specs.

use super::*;

const UMOCI_MANIFEST: &[u8] = include_bytes!("testdata/umoci-manifest.json");
const UMOCI_CONFIG: &[u8] = include_bytes!("testdata/umoci-config.json");
const SKOPEO_V2S2: &[u8] = include_bytes!("testdata/skopeo-v2s2-manifest.json");
const SKOPEO_ARCHIVE_MANIFEST: &[u8] = include_bytes!("testdata/skopeo-archive-manifest.json");
const SKOPEO_REPOSITORIES: &[u8] = include_bytes!("testdata/skopeo-repositories.json");
const SKOPEO_OCI_INDEX: &[u8] = include_bytes!("testdata/skopeo-oci-index.json");
const DOCKER_CONFIG: &[u8] = include_bytes!("testdata/docker-config.json");
const DOCKER_LIST: &[u8] = include_bytes!("testdata/docker-manifest-list.json");
const BUILDKIT_INDEX: &[u8] = include_bytes!("testdata/buildkit-index.json");

fn image(m: Manifest) -> ImageManifest {
    match m {
        Manifest::Image(i) => i,
        Manifest::Index(_) => panic!("expected an image manifest"),
    }
}

fn index(m: Manifest) -> Index {
    match m {
        Manifest::Index(i) => i,
        Manifest::Image(_) => panic!("expected an index"),
    }
}

fn d(n: char) -> Digest {
    format!("sha256:{}", n.to_string().repeat(64))
        .parse()
        .unwrap()
}

#[test]
fn umoci_manifest_parses_and_reserialises_byte_for_byte() {
    // no mediaType field and no Content-Type: the shape tells
    let m = image(parse_manifest(UMOCI_MANIFEST, None).unwrap());
    assert_eq!(m.media_type, None);
    assert_eq!(m.config.media_type, media_type::OCI_CONFIG);
    assert_eq!(m.config.size, 551);
    assert_eq!(m.layers.len(), 1);
    assert_eq!(m.layer_compressions().unwrap(), vec![Compression::Gzip]);
    // umoci ends its JSON with a newline (Go's json.Encoder); the rest is byte-identical
    assert_eq!(
        [m.to_json().unwrap(), b"\n".to_vec()].concat(),
        UMOCI_MANIFEST
    );
    // the Content-Type is used when the field is missing
    let with_ct = parse_manifest(
        UMOCI_MANIFEST,
        Some("application/vnd.oci.image.manifest.v1+json; charset=utf-8"),
    );
    assert_eq!(image(with_ct.unwrap()), m);
    // and a manifest served as an index is refused rather than misread
    assert!(parse_manifest(UMOCI_MANIFEST, Some(media_type::OCI_INDEX)).is_err());
}

#[test]
fn umoci_config_parses_and_reserialises_to_the_same_image_id() {
    let c = ImageConfig::parse(UMOCI_CONFIG).unwrap();
    assert_eq!(c.author.as_deref(), Some("me"));
    assert_eq!((c.os.as_str(), c.architecture.as_str()), ("linux", "amd64"));
    let rc = c.config.as_ref().unwrap();
    assert_eq!(rc.cmd.as_deref(), Some(&["/bin/sh".to_owned()][..]));
    assert_eq!(rc.entrypoint, None);
    assert_eq!(rc.env_value("PATH"), Some("/bin"));
    assert_eq!(rc.working_dir, "/app");
    assert!(rc.exposed_ports.contains("80/tcp"));
    assert!(rc.volumes.contains("/data"));
    assert_eq!(rc.labels.get("a").map(String::as_str), Some("b"));
    assert_eq!(c.rootfs.diff_ids.len(), 1);
    assert_eq!(c.history.len(), 2);
    assert!(c.history[0].empty_layer && !c.history[1].empty_layer);
    let pairs = c.history_with_layers();
    assert_eq!(pairs[0].1, None);
    assert_eq!(pairs[1].1.as_ref(), Some(&c.rootfs.diff_ids[0]));
    let again = [c.to_json().unwrap(), b"\n".to_vec()].concat();
    assert_eq!(again, UMOCI_CONFIG);
    assert_eq!(
        Digest::of(&again).hex(),
        "e2d6af052c4d8ac2cea97518dabfac15af8a28cc5ed281a46f79997be63690f5"
    );
}

#[test]
fn docker_schema2_manifest_from_skopeo() {
    let m = image(parse_manifest(SKOPEO_V2S2, None).unwrap());
    assert_eq!(m.media_type.as_deref(), Some(media_type::DOCKER_MANIFEST));
    assert_eq!(m.config.media_type, media_type::DOCKER_CONFIG);
    assert_eq!(m.layers[0].layer_compression().unwrap(), Compression::Gzip);
    assert_eq!(m.layers[0].size, 1_084_046);
}

#[test]
fn docker_config_with_nulls_and_extras() {
    let c = ImageConfig::parse(DOCKER_CONFIG).unwrap();
    let rc = c.config.as_ref().unwrap();
    assert_eq!(rc.user, "app");
    assert_eq!(
        rc.exposed_ports.iter().collect::<Vec<_>>(),
        ["53/udp", "8080/tcp"]
    );
    assert!(rc.volumes.is_empty());
    assert!(rc.on_build.is_empty());
    assert_eq!(rc.entrypoint.as_ref().unwrap()[0], "/docker-entrypoint.sh");
    assert_eq!(rc.stop_signal.as_deref(), Some("SIGQUIT"));
    assert_eq!(rc.args_escaped, Some(true));
    assert!(rc.healthcheck.is_some());
    assert_eq!(rc.shell.as_ref().unwrap().len(), 2);
    assert_eq!(rc.env_value("LANG"), Some("C.UTF-8"));
    assert_eq!(c.docker_version.as_deref(), Some("20.10.23"));
    // history: 4 entries, 2 layers; empty steps get no layer
    let pairs = c.history_with_layers();
    let layers: Vec<Option<char>> = pairs
        .iter()
        .map(|(_, l)| l.as_ref().map(|d| d.hex().chars().last().unwrap()))
        .collect();
    assert_eq!(layers, [Some('1'), None, Some('2'), None]);
    // what we write of it parses back equal
    assert_eq!(ImageConfig::parse(&c.to_json().unwrap()).unwrap(), c);
}

#[test]
fn config_accepts_minimal_and_null_fields() {
    let c = ImageConfig::parse(
        br#"{"architecture":"arm64","os":"linux","config":{"Env":null,"Cmd":null,"Labels":null,"ExposedPorts":null,"User":null},"rootfs":{"type":"layers","diff_ids":null},"history":null}"#,
    )
    .unwrap();
    assert!(c.rootfs.diff_ids.is_empty() && c.history.is_empty());
    assert_eq!(c.config.unwrap(), RunConfig::default());
    let bare = ImageConfig::parse(br#"{"rootfs":{"type":"layers","diff_ids":[]}}"#).unwrap();
    assert_eq!(bare.config, None);
    assert!(
        ImageConfig::parse(b"{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:zz\"]}}")
            .is_err()
    );
    assert!(
        ImageConfig::parse(b"42")
            .unwrap_err()
            .to_string()
            .starts_with("parsing image config: ")
    );
}

#[test]
fn env_set_replaces_in_place() {
    let mut rc = RunConfig {
        env: vec!["A=1".into(), "B=2".into()],
        ..RunConfig::default()
    };
    rc.set_env("A", "3");
    rc.set_env("C", "4");
    assert_eq!(rc.env, ["A=3", "B=2", "C=4"]);
    assert_eq!(rc.env_value("C"), Some("4"));
    assert_eq!(rc.env_value("D"), None);
}

#[test]
fn manifest_list_platform_selection() {
    let list = index(parse_manifest(DOCKER_LIST, None).unwrap());
    assert_eq!(list.manifests.len(), 5);
    let pick = |p: &str| {
        list.select(&Platform::parse(p).unwrap())
            .map(|d| d.digest.hex().chars().next().unwrap())
    };
    assert_eq!(pick("linux/amd64").unwrap(), '1');
    assert_eq!(pick("linux/arm/v6").unwrap(), '2');
    assert_eq!(pick("linux/arm/v7").unwrap(), '3');
    assert_eq!(pick("linux/arm").unwrap(), '3'); // arm means arm/v7
    assert_eq!(pick("linux/arm/v8").unwrap(), '3'); // v8 runs v7 (best compatible)
    assert_eq!(pick("linux/arm64").unwrap(), '4'); // entry says v8: same thing
    assert_eq!(pick("linux/aarch64/v8").unwrap(), '4');
    assert_eq!(pick("windows/amd64").unwrap(), '5');
    let e = pick("linux/arm/v5").unwrap_err().to_string();
    assert!(
        e.starts_with("no matching manifest for linux/arm/v5 in the manifest list entries"),
        "{e}"
    );
    assert!(
        e.contains("linux/amd64, linux/arm/v6, linux/arm/v7, linux/arm64/v8, windows/amd64"),
        "{e}"
    );
    let e = pick("linux/s390x").unwrap_err().to_string();
    assert!(e.contains("--platform"), "{e}");
    // the host is linux/amd64 on this machine class
    if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        assert_eq!(Platform::host().to_string(), "linux/amd64");
        assert_eq!(list.select(&Platform::host()).unwrap().digest, d('1'));
    }
}

#[test]
fn buildkit_attestations_are_never_chosen() {
    let idx = index(parse_manifest(BUILDKIT_INDEX, None).unwrap());
    let arm = idx
        .select(&Platform::parse("linux/arm64").unwrap())
        .unwrap();
    assert_eq!(arm.digest, d('a'));
    let e = idx
        .select(&Platform::parse("linux/amd64").unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("it offers: linux/arm64)"), "{e}");
    assert!(!e.contains("unknown"), "{e}");
}

#[test]
fn entries_without_platform_are_a_last_resort() {
    let mut idx = Index::new(vec![Descriptor::new(media_type::OCI_MANIFEST, d('9'), 10)]);
    let want = Platform::parse("linux/amd64").unwrap();
    assert_eq!(idx.select(&want).unwrap().digest, d('9'));
    let mut exact = Descriptor::new(media_type::OCI_MANIFEST, d('8'), 10);
    exact.platform = Some(want.clone());
    idx.manifests.push(exact);
    assert_eq!(idx.select(&want).unwrap().digest, d('8'));
    assert!(
        Index::new(vec![])
            .select(&want)
            .unwrap_err()
            .to_string()
            .contains("offers: nothing")
    );
}

#[test]
fn platform_parsing() {
    let p = |s: &str| Platform::parse(s).map(|p| p.to_string());
    assert_eq!(p("linux/amd64").unwrap(), "linux/amd64");
    assert_eq!(p("Linux/X86_64").unwrap(), "linux/amd64");
    assert_eq!(p("linux/x86-64/v1").unwrap(), "linux/amd64");
    assert_eq!(p("linux/amd64/v3").unwrap(), "linux/amd64/v3");
    assert_eq!(p("linux/i386").unwrap(), "linux/386");
    assert_eq!(p("linux/armhf").unwrap(), "linux/arm/v7");
    assert_eq!(p("linux/armel").unwrap(), "linux/arm/v6");
    assert_eq!(p("linux/arm/6").unwrap(), "linux/arm/v6");
    assert_eq!(p("linux/arm64/v8").unwrap(), "linux/arm64");
    assert_eq!(p("macos/arm64").unwrap(), "darwin/arm64");
    let host = Platform::host();
    assert_eq!(p("linux").unwrap(), host.to_string());
    assert_eq!(p("arm64").unwrap(), format!("{}/arm64", host.os));
    for bad in [
        "",
        "/",
        "linux/",
        "/amd64",
        "a/b/c/d",
        "linux amd64",
        "nonsense",
        "linux/amd64/v1/x",
    ] {
        let e = Platform::parse(bad).unwrap_err().to_string();
        assert!(e.starts_with("invalid platform"), "{bad:?}: {e}");
    }
}

#[test]
fn manifest_kinds_and_refusals() {
    let s1 = br#"{"schemaVersion":1,"name":"x","tag":"latest","fsLayers":[]}"#;
    let e = parse_manifest(s1, None).unwrap_err();
    assert!(matches!(e, ImageError::Schema1));
    assert!(e.to_string().contains("schema 1"));
    let s1 = br#"{"schemaVersion":1,"mediaType":"application/vnd.docker.distribution.manifest.v1+prettyjws"}"#;
    assert!(matches!(parse_manifest(s1, None), Err(ImageError::Schema1)));
    assert!(matches!(
        parse_manifest(b"{\"schemaVersion\":1}", Some(media_type::DOCKER_SCHEMA1)),
        Err(ImageError::Schema1)
    ));
    let odd = br#"{"schemaVersion":2,"mediaType":"application/vnd.example+json","config":{}}"#;
    let e = parse_manifest(odd, None).unwrap_err().to_string();
    assert!(e.contains("application/vnd.example+json"), "{e}");
    assert!(matches!(
        parse_manifest(b"{\"schemaVersion\":2}", None),
        Err(ImageError::ManifestKind)
    ));
    assert!(matches!(
        parse_manifest(b"not json", None),
        Err(ImageError::Json { .. })
    ));
    assert!(matches!(
        parse_manifest(b"{\"schemaVersion\":3,\"manifests\":[]}", None),
        Err(ImageError::SchemaVersion(3))
    ));
    // an OCI artifact (helm chart) is not an image
    let helm = format!(
        r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.cncf.helm.config.v1+json","digest":"{}","size":1}},"layers":[]}}"#,
        d('1')
    );
    let e = parse_manifest(helm.as_bytes(), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("not a container image") && e.contains("helm"),
        "{e}"
    );
    // a generic Content-Type does not override the shape
    assert!(matches!(
        parse_manifest(DOCKER_LIST, Some("application/json")).unwrap(),
        Manifest::Index(_)
    ));
    // a bad digest in a descriptor is an error, not a panic
    let bad = br#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:12","size":1},"layers":[]}"#;
    assert!(parse_manifest(bad, None).is_err());
}

#[test]
fn layer_media_types() {
    use media_type::*;
    let layer = |mt: &str| Descriptor::new(mt, d('1'), 1).layer_compression();
    assert_eq!(layer(OCI_LAYER).unwrap(), Compression::None);
    assert_eq!(layer(DOCKER_LAYER).unwrap(), Compression::None);
    assert_eq!(layer(OCI_LAYER_GZIP).unwrap(), Compression::Gzip);
    assert_eq!(layer(DOCKER_LAYER_GZIP).unwrap(), Compression::Gzip);
    assert_eq!(layer(OCI_LAYER_ZSTD).unwrap(), Compression::Zstd);
    for foreign in [
        DOCKER_LAYER_FOREIGN,
        OCI_LAYER_NONDIST,
        OCI_LAYER_NONDIST_GZIP,
        OCI_LAYER_NONDIST_ZSTD,
    ] {
        let e = layer(foreign).unwrap_err();
        assert!(matches!(e, ImageError::ForeignLayer { .. }));
        let msg = e.to_string();
        assert!(
            msg.contains(&d('1').to_string()) && msg.contains("foreign"),
            "{msg}"
        );
    }
    assert!(matches!(
        layer("application/octet-stream"),
        Err(ImageError::LayerMediaType { .. })
    ));
    for f in [ManifestFormat::Oci, ManifestFormat::Docker] {
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            assert_eq!(layer(f.layer_media_type(c)).unwrap(), c);
        }
    }
}

#[test]
fn compression_is_told_by_the_first_bytes() {
    let detect = Compression::detect;
    assert_eq!(detect(&[0x1f, 0x8b, 8, 0]), Ok(Compression::Gzip));
    assert_eq!(detect(&[0x28, 0xb5, 0x2f, 0xfd]), Ok(Compression::Zstd));
    assert_eq!(detect(b"etc/\0\0\0\0"), Ok(Compression::None));
    assert_eq!(detect(b""), Ok(Compression::None));
    assert_eq!(
        detect(&[0x28, 0xb5]),
        Ok(Compression::None),
        "half a zstd magic"
    );
    assert_eq!(detect(&[0xfd, b'7', b'z', b'X', b'Z', 0]), Err("xz"));
    assert_eq!(detect(b"BZh9"), Err("bzip2"));
    assert_eq!(Compression::Gzip.to_string(), "gzip");
    assert_eq!(Compression::None.to_string(), "uncompressed");
}

#[test]
fn media_types_agree_with_oci_spec() {
    use oci_spec::image::MediaType as M;
    assert_eq!(media_type::OCI_INDEX, M::ImageIndex.to_string());
    assert_eq!(media_type::OCI_MANIFEST, M::ImageManifest.to_string());
    assert_eq!(media_type::OCI_CONFIG, M::ImageConfig.to_string());
    assert_eq!(media_type::OCI_LAYER, M::ImageLayer.to_string());
    assert_eq!(media_type::OCI_LAYER_GZIP, M::ImageLayerGzip.to_string());
    assert_eq!(media_type::OCI_LAYER_ZSTD, M::ImageLayerZstd.to_string());
    assert_eq!(
        media_type::OCI_LAYER_NONDIST,
        M::ImageLayerNonDistributable.to_string()
    );
}

#[test]
fn docker_archive_manifest_from_skopeo() {
    let entries = parse_archive_manifest(SKOPEO_ARCHIVE_MANIFEST).unwrap();
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!(e.repo_tags, ["localhost/base:v1"]);
    assert_eq!(
        e.config,
        "e2d6af052c4d8ac2cea97518dabfac15af8a28cc5ed281a46f79997be63690f5.json"
    );
    assert_eq!(e.layers.len(), 1);
    assert_eq!(
        archive_manifest_json(&entries).unwrap(),
        SKOPEO_ARCHIVE_MANIFEST
    );
    let repos = parse_repositories(SKOPEO_REPOSITORIES).unwrap();
    assert_eq!(repos["localhost/base"]["v1"].len(), 64);
    assert_eq!(repositories_json(&repos).unwrap(), SKOPEO_REPOSITORIES);
}

#[test]
fn docker_archive_manifest_refuses_escaping_paths() {
    let make = |config: &str, layer: &str| {
        format!(r#"[{{"Config":"{config}","RepoTags":null,"Layers":["{layer}"]}}]"#)
    };
    let ok = parse_archive_manifest(make("blobs/sha256/aa", "blobs/sha256/bb").as_bytes()).unwrap();
    assert!(ok[0].repo_tags.is_empty());
    for (c, l) in [
        ("../x.json", "l.tar"),
        ("/etc/passwd", "l.tar"),
        ("c.json", "a/../../l.tar"),
        ("c.json", ""),
        ("c.json", "./"),
    ] {
        let e = parse_archive_manifest(make(c, l).as_bytes()).unwrap_err();
        assert!(matches!(e, ImageError::ArchivePath(_)), "{c} {l}: {e}");
    }
    assert!(matches!(
        parse_archive_manifest(b"[]"),
        Err(ImageError::ArchiveEmpty)
    ));
    assert!(parse_archive_manifest(b"{}").is_err());
}

#[test]
fn oci_layout_files() {
    parse_oci_layout(&oci_layout_json()).unwrap();
    parse_oci_layout(br#"{"imageLayoutVersion":"1.0.2"}"#).unwrap();
    assert!(matches!(
        parse_oci_layout(br#"{"imageLayoutVersion":"2.0.0"}"#),
        Err(ImageError::LayoutVersion(_))
    ));
    assert!(parse_oci_layout(b"{}").is_err());
    let idx = Index::parse(SKOPEO_OCI_INDEX).unwrap();
    assert_eq!(
        idx.manifests[0]
            .annotations
            .get(ANNOTATION_REF_NAME)
            .map(String::as_str),
        Some("localhost/base:v1")
    );
    assert_eq!(idx.to_json().unwrap(), SKOPEO_OCI_INDEX);
    // what we write oci-spec reads
    let mut entry = idx.manifests[0].clone();
    entry.annotations.insert(
        ANNOTATION_CONTAINERD_NAME.into(),
        "docker.io/library/x:1".into(),
    );
    let ours = Index::new(vec![entry]).to_json().unwrap();
    let theirs: oci_spec::image::ImageIndex = serde_json::from_slice(&ours).unwrap();
    assert_eq!(theirs.manifests().len(), 1);
    assert_eq!(theirs.manifests()[0].size(), 349);
}

#[test]
fn build_image_makes_consistent_blobs() {
    let platform = Platform::parse("linux/amd64").unwrap();
    let mut c = ImageConfig::new(&platform, "2024-01-02T03:04:05Z");
    let diff = DiffId(Digest::of(b"layer tar"));
    c.push_layer(
        diff.clone(),
        History {
            created_by: Some("camada import".into()),
            ..History::default()
        },
    );
    c.push_empty_step(History {
        created_by: Some("CMD [\"sh\"]".into()),
        ..History::default()
    });
    c.config.as_mut().unwrap().cmd = Some(vec!["sh".into()]);
    for format in [ManifestFormat::Oci, ManifestFormat::Docker] {
        let layer = uncompressed_layer(format, &diff, 9);
        let built = build_image(&c, std::slice::from_ref(&layer), format).unwrap();
        assert_eq!(built.config.digest, Digest::of(&built.config_json));
        assert_eq!(built.config.size, built.config_json.len() as u64);
        assert_eq!(built.manifest.digest, Digest::of(&built.manifest_json));
        let m = image(parse_manifest(&built.manifest_json, None).unwrap());
        assert_eq!(m.config, built.config);
        assert_eq!(m.layers, [layer]);
        assert_eq!(ImageConfig::parse(&built.config_json).unwrap(), c);
        // deterministic: the same input gives the same image ID
        assert_eq!(build_image(&c, &m.layers, format).unwrap(), built);
        // an independent reader (oci-spec) accepts what we wrote
        let theirs: oci_spec::image::ImageManifest =
            serde_json::from_slice(&built.manifest_json).unwrap();
        assert_eq!(theirs.layers().len(), 1);
        let cfg: oci_spec::image::ImageConfiguration =
            serde_json::from_slice(&built.config_json).unwrap();
        assert_eq!(cfg.rootfs().diff_ids(), &vec![diff.to_string()]);
        assert_eq!(cfg.history().as_ref().map(Vec::len), Some(2));
    }
    let e = build_image(&c, &[], ManifestFormat::Oci).unwrap_err();
    assert!(matches!(
        e,
        ImageError::LayerCount {
            diff_ids: 1,
            layers: 0
        }
    ));
    let foreign = Descriptor::new(media_type::DOCKER_LAYER_FOREIGN, diff.0.clone(), 9);
    assert!(matches!(
        build_image(&c, &[foreign], ManifestFormat::Docker),
        Err(ImageError::ForeignLayer { .. })
    ));
}

#[test]
fn inspect_has_dockers_shape() {
    let c = ImageConfig::parse(UMOCI_CONFIG).unwrap();
    let id = Digest::of(UMOCI_CONFIG);
    let facts = InspectFacts {
        id: &id,
        repo_tags: &["localhost/base:v1".to_owned()],
        repo_digests: &[],
        parent: None,
        config: &c,
        size: 1234,
        last_tag_time: None,
    };
    let json = serde_json::to_string(&inspect_json(&facts)).unwrap();
    let expect = format!(
        concat!(
            r#"{{"Id":"{id}","RepoTags":["localhost/base:v1"],"RepoDigests":[],"Parent":"","Comment":"","#,
            r#""Created":"2026-11-23T00:19:20.701705803Z","DockerVersion":"","Author":"me","#,
            r#""Config":{{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"#,
            r#""AttachStderr":false,"ExposedPorts":{{"80/tcp":{{}}}},"Tty":false,"OpenStdin":false,"#,
            r#""StdinOnce":false,"Env":["PATH=/bin"],"Cmd":["/bin/sh"],"Image":"","#,
            r#""Volumes":{{"/data":{{}}}},"WorkingDir":"/app","Entrypoint":null,"OnBuild":null,"#,
            r#""Labels":{{"a":"b"}}}},"Architecture":"amd64","Os":"linux","Size":1234,"#,
            r#""RootFS":{{"Type":"layers","Layers":["{diff}"]}},"#,
            r#""Metadata":{{"LastTagTime":"0001-01-01T00:00:00Z"}}}}"#
        ),
        id = id,
        diff = c.rootfs.diff_ids[0]
    );
    assert_eq!(json, expect);

    // a bare import: no config section at all, a parent and a tag time
    let bare = ImageConfig::parse(br#"{"architecture":"arm64","variant":"v8","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#).unwrap();
    let parent = d('7');
    let v = serde_json::to_value(inspect_json(&InspectFacts {
        parent: Some(&parent),
        config: &bare,
        last_tag_time: Some("2024-01-01T00:00:00Z"),
        ..facts
    }))
    .unwrap();
    assert_eq!(v["Config"], serde_json::Value::Null);
    assert_eq!(v["Parent"], parent.to_string());
    assert_eq!(v["Variant"], "v8");
    assert_eq!(v["RootFS"]["Layers"], serde_json::json!([]));
    assert_eq!(v["Metadata"]["LastTagTime"], "2024-01-01T00:00:00Z");
}

#[test]
fn rfc3339_round_trips() {
    assert_eq!(format_rfc3339(0, 0), "1970-01-01T00:00:00Z");
    assert_eq!(format_rfc3339(1_704_164_645, 0), "2024-01-02T03:04:05Z");
    assert_eq!(
        format_rfc3339(1_704_164_645, 120_000_000),
        "2024-01-02T03:04:05.12Z"
    );
    assert_eq!(
        format_rfc3339(951_782_400, 1),
        "2000-02-29T00:00:00.000000001Z"
    );
    assert_eq!(format_rfc3339(-1, 0), "1969-12-31T23:59:59Z");
    assert_eq!(
        parse_rfc3339("2024-01-02T03:04:05Z"),
        Some((1_704_164_645, 0))
    );
    assert_eq!(
        parse_rfc3339("2024-01-02T04:04:05.5+01:00"),
        Some((1_704_164_645, 500_000_000))
    );
    assert_eq!(
        parse_rfc3339("2024-01-02T02:34:05-00:30"),
        Some((1_704_164_645, 0))
    );
    assert_eq!(
        parse_rfc3339("2026-11-23T00:19:20.701705803Z"),
        Some((1_795_393_160, 701_705_803))
    );
    assert_eq!(
        format_rfc3339(1_795_393_160, 701_705_803),
        "2026-11-23T00:19:20.701705803Z"
    );
    for bad in [
        "",
        "2024-01-02",
        "2024-13-02T03:04:05Z",
        "2024-01-02T03:04:05",
        "2024-01-02T03:04:05.Z",
        "2024-01-02T03:04:05+0100",
        "2024-01-02T03:04:05Zjunk",
        "2024-01-0xT03:04:05Z",
        "2024-01-02T03:04:05.1é",
    ] {
        assert_eq!(parse_rfc3339(bad), None, "{bad}");
    }
    for secs in [
        0,
        86_399,
        86_400,
        951_868_799,
        4_102_444_800,
        -62_135_596_800,
    ] {
        assert_eq!(parse_rfc3339(&format_rfc3339(secs, 7)), Some((secs, 7)));
    }
}

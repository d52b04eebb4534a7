use super::log::{self, Stream};
use super::*;

fn rec(id_byte: char, name: &str, created: &str) -> Record {
    Record {
        id: std::iter::repeat_n(id_byte, 63).collect::<String>() + "0",
        created: created.into(),
        path: "sh".into(),
        image: format!("sha256:{}", "ab".repeat(32)),
        name: name.into(),
        ..Record::default()
    }
}

fn records() -> (tempfile::TempDir, Records) {
    let t = tempfile::tempdir().unwrap();
    let r = Records::open(&t.path().join("containers")).unwrap();
    (t, r)
}

#[test]
fn status_machine_answers_questions() {
    assert!(Status::Created.can_start() && Status::Exited.can_start());
    assert!(!Status::Running.can_start() && !Status::Removing.can_start());
    assert!(Status::Running.is_running() && !Status::Running.can_remove());
    assert!(Status::Exited.can_remove() && Status::Created.is_stopped());
    assert!(!Status::Running.is_stopped());
    let s = State::created().running("2026-01-01T00:00:00Z");
    assert!(s.running && s.status == Status::Running);
    let e = s.exited(3, "", "2026-01-01T00:00:01Z");
    assert_eq!(
        (e.status, e.exit_code, e.running),
        (Status::Exited, 3, false)
    );
    assert_eq!(e.started_at, "2026-01-01T00:00:00Z");
}

#[test]
fn create_resolve_by_id_name_and_prefix() {
    let (_t, r) = records();
    let a = r.create(rec('a', "web", "2026-01-01T00:00:00Z")).unwrap();
    let b = r.create(rec('b', "", "2026-01-02T00:00:00Z")).unwrap();
    assert!(b.name.contains('_'), "generated name {:?}", b.name);
    assert!(r.upper_dir(&a.id).is_dir());
    assert_eq!(r.resolve("web").unwrap(), a.id);
    assert_eq!(r.resolve("/web").unwrap(), a.id);
    assert_eq!(r.resolve(&a.id).unwrap(), a.id);
    assert_eq!(r.resolve("aaa").unwrap(), a.id);
    assert_eq!(r.resolve(&b.name).unwrap(), b.id);
    assert!(matches!(
        r.resolve("c"),
        Err(StateError::NoSuchContainer(_))
    ));
    assert!(matches!(r.resolve(""), Err(StateError::NoSuchContainer(_))));
    // newest first
    let ids: Vec<_> = r.list().unwrap().into_iter().map(|c| c.record.id).collect();
    assert_eq!(ids, vec![b.id.clone(), a.id.clone()]);
    // config.json names the image by ID under "Image" (the store's rmi hook reads it)
    let v: serde_json::Value =
        serde_json::from_slice(&fs::read(r.dir_of(&a.id).join("config.json")).unwrap()).unwrap();
    assert_eq!(v["Image"], format!("sha256:{}", "ab".repeat(32)));
}

#[test]
fn ambiguous_prefix_and_name_conflicts() {
    let (_t, r) = records();
    let mut x = rec('a', "one", "1");
    x.id = format!("ab{}", "0".repeat(62));
    let mut y = rec('a', "two", "2");
    y.id = format!("ac{}", "0".repeat(62));
    r.create(x.clone()).unwrap();
    r.create(y).unwrap();
    assert!(matches!(r.resolve("a"), Err(StateError::Ambiguous(_))));
    assert_eq!(r.resolve("ab").unwrap(), x.id);
    let mut z = rec('c', "one", "3");
    z.id = "c".repeat(64);
    let err = r.create(z).unwrap_err();
    assert!(matches!(err, StateError::NameInUse { .. }), "{err}");
    assert!(err.to_string().contains("\"/one\" is already in use"));
    assert!(!r.dir_of(&"c".repeat(64)).exists());
    let bad = rec('d', "-x", "4");
    assert!(matches!(r.create(bad), Err(StateError::InvalidName(_))));
    assert_eq!(r.ids().unwrap().len(), 2, "no staging dir left behind");
}

#[test]
fn names_are_valid_unique_and_follow_dockers_rule() {
    for _ in 0..200 {
        let n = generate_name(|_| false);
        assert!(valid_name(&n), "{n}");
        assert_ne!(n, "boring_wozniak");
    }
    // everything plain taken: a suffixed name comes back
    let n = generate_name(|n| !n.chars().last().unwrap().is_ascii_digit());
    assert!(n.chars().last().unwrap().is_ascii_digit(), "{n}");
    assert!(valid_name("a1") && valid_name("my-app.2_x"));
    assert!(!valid_name("a") && !valid_name("_x") && !valid_name("a b") && !valid_name("a/b"));
}

#[test]
fn state_is_replaced_atomically_and_removal_is_complete() {
    let (_t, r) = records();
    let a = r.create(rec('a', "web", "1")).unwrap();
    let c = r.load(&a.id).unwrap();
    assert_eq!(c.state.status, Status::Created);
    assert_eq!(c.state.started_at, ZERO_TIME);
    let s = c.state.running("2026-01-01T00:00:00Z");
    r.write_state(&a.id, &s).unwrap();
    assert_eq!(r.load(&a.id).unwrap().state, s);
    let leftovers: Vec<_> = fs::read_dir(r.dir_of(&a.id))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
    // a read-only dir in the writable layer does not stop rm
    let ro = r.upper_dir(&a.id).join("ro");
    fs::create_dir(&ro).unwrap();
    fs::write(ro.join("f"), "x").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o500)).unwrap();
    r.remove(&a.id).unwrap();
    assert!(!r.dir_of(&a.id).exists());
    assert!(matches!(
        r.write_state(&a.id, &s),
        Err(StateError::NoSuchContainer(_))
    ));
    assert!(r.ids().unwrap().is_empty());
    let entries: Vec<_> = fs::read_dir(r.dir.clone())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != ".lock")
        .collect();
    assert!(entries.is_empty(), "{entries:?}");
    r.remove(&a.id).unwrap();
}

#[test]
fn damaged_record_says_how_to_get_rid_of_it() {
    let (_t, r) = records();
    let a = r.create(rec('a', "web", "1")).unwrap();
    fs::write(r.dir_of(&a.id).join("state.json"), "{not json").unwrap();
    let e = r.load(&a.id).unwrap_err().to_string();
    assert!(e.contains("camada rm -f"), "{e}");
}

#[test]
fn log_reads_complete_lines_tails_and_follows() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("ctr.log");
    assert_eq!(log::read_from(&p, 0).unwrap(), (vec![], 0));
    let l1 = r#"{"log":"one\n","stream":"stdout","time":"2026-01-01T00:00:00.5Z"}"#;
    let l2 = r#"{"log":"two\n","stream":"stderr","time":"2026-01-01T00:00:01Z"}"#;
    let half = r#"{"log":"thr"#;
    fs::write(&p, format!("{l1}\n{l2}\ngarbage\n{half}")).unwrap();
    let (lines, off) = log::read_from(&p, 0).unwrap();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        (lines[0].text.as_str(), lines[0].stream),
        ("one\n", Stream::Stdout)
    );
    assert_eq!(lines[1].stream, Stream::Stderr);
    assert_eq!(off as usize, l1.len() + l2.len() + "garbage\n".len() + 2);
    let mut f = fs::OpenOptions::new().append(true).open(&p).unwrap();
    f.write_all(b"ee\\n\",\"stream\":\"stdout\",\"time\":\"2026-01-01T00:00:02Z\"}\n")
        .unwrap();
    let (more, _) = log::read_from(&p, off).unwrap();
    assert_eq!(more.len(), 1);
    assert_eq!(more[0].text, "three\n");
    let all = log::read_from(&p, 0).unwrap().0;
    assert_eq!(log::tail(all.clone(), Some(1)), vec![more[0].clone()]);
    assert_eq!(log::tail(all.clone(), Some(10)).len(), 3);
    assert_eq!(log::tail(all, Some(0)).len(), 0);
}

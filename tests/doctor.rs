//! `camada info`'s doctor through the real binary: as root, and as the unprivileged user
//! `camadatest` in environments made wrong on purpose (XDG_RUNTIME_DIR left by `su`, or
//! unset), asserting the finding and the one command that fixes it.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::Camada;

/// The lines of the `Checks:` section.
fn checks(info: &str) -> Vec<String> {
    info.lines()
        .skip_while(|l| *l != "Checks:")
        .skip(1)
        .map(str::to_string)
        .collect()
}

/// The finding about `what` and the fix printed under it, if any.
fn finding(info: &str, what: &str) -> (String, Option<String>) {
    let lines = checks(info);
    let i = lines
        .iter()
        .position(|l| l.contains(&format!(" {what}: ")))
        .unwrap_or_else(|| panic!("no check {what:?} in:\n{info}"));
    let fix = lines
        .get(i + 1)
        .and_then(|l| l.strip_prefix("          fix: "))
        .map(str::to_string);
    (lines[i].clone(), fix)
}

const ALL: &[&str] = &[
    "User namespaces",
    "Subordinate ids",
    "newuidmap/newgidmap",
    "FUSE",
    "Kernel",
    "Store",
    "Run root",
    "XDG_RUNTIME_DIR",
    "Network helper",
    "/dev/net/tun",
];

#[test]
fn root_sees_every_check_and_needs_no_ids() {
    if !common::is_root() {
        return;
    }
    let c = Camada::new();
    let info = c.ok(["info"]);
    for what in ALL {
        finding(&info, what);
    }
    // the old docker-like lines stay
    assert!(info.contains("Kernel Version:"), "{info}");
    let (line, fix) = finding(&info, "Subordinate ids");
    assert!(line.starts_with(" ok "), "{line}");
    assert_eq!(fix, None);
    let (line, _) = finding(&info, "Store");
    assert!(line.contains("writable, local"), "{line}");
}

#[test]
fn an_unprivileged_user_is_told_each_fix() {
    let Some(mut c) = Camada::as_user() else {
        return;
    };
    // unset, as `su` without a login session leaves it
    let info = c.ok(["info"]);
    for what in ALL {
        finding(&info, what);
    }
    let (line, fix) = finding(&info, "XDG_RUNTIME_DIR");
    assert!(line.starts_with(" WARNING "), "{line}");
    let fix = fix.unwrap_or_else(|| panic!("no fix under {line}"));
    assert!(
        fix.starts_with("export XDG_RUNTIME_DIR=/run/user/")
            || fix == "sudo loginctl enable-linger camadatest",
        "{fix}"
    );
    // the subordinate range the harness gives camadatest is found
    let (line, fix) = finding(&info, "Subordinate ids");
    assert!(line.contains("65536 uids"), "{line}");
    assert_eq!(fix, None);
    // /dev/net/tun as the machine has it
    let tun = std::fs::metadata("/dev/net/tun").map(|m| m.permissions().mode() & 0o006);
    let (line, fix) = finding(&info, "/dev/net/tun");
    match tun {
        Ok(0o006) => assert!(line.starts_with(" ok "), "{line}"),
        Ok(_) => assert_eq!(
            fix.as_deref(),
            Some("sudo chmod 0666 /dev/net/tun"),
            "{line}"
        ),
        Err(_) => assert_eq!(fix.as_deref(), Some("sudo modprobe tun"), "{line}"),
    }

    // another user's runtime dir (what `su` keeps from root's session), used for the runroot
    let theirs = c.dir().join("root-runtime");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(std::fs::metadata(&theirs).unwrap().uid(), 0, "made by root");
    c.env("XDG_RUNTIME_DIR", &theirs).env("CAMADA_RUNROOT", "");
    let info = c.ok(["info"]);
    let (line, fix) = finding(&info, "XDG_RUNTIME_DIR");
    assert!(
        line.starts_with(" MISSING ") && line.contains("belongs to uid 0"),
        "{line}"
    );
    let fix = fix.unwrap_or_else(|| panic!("no fix under {line}"));
    assert!(
        fix == "unset XDG_RUNTIME_DIR" || fix.starts_with("export XDG_RUNTIME_DIR=/run/user/"),
        "{fix}"
    );
    let (line, fix) = finding(&info, "Run root");
    assert!(
        line.starts_with(" MISSING ") && line.contains("not writable"),
        "{line}"
    );
    assert_eq!(
        fix.as_deref(),
        Some("export CAMADA_RUNROOT=/tmp/camada-$(id -u)")
    );
}

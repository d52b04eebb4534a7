//! `version`, `info` and `system df` printed.

use std::io::{self, Write};

use super::CliError;
use super::format::{Table, human_size};
use crate::engine::{self, Check, CheckStatus, Engine, Probe, UsageLine};

pub fn version() -> Result<(), CliError> {
    let v = engine::version();
    let mut out = io::stdout().lock();
    writeln!(out, "Version:       {}", v.version)?;
    writeln!(out, "OS/Arch:       {}/{}", v.os, go_arch(v.arch))?;
    writeln!(out, "Kernel:        {}", v.kernel)?;
    Ok(())
}

/// The architecture as OCI and docker name it.
fn go_arch(rust: &str) -> &str {
    match rust {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn yes_no(p: &Probe) -> String {
    format!("{} ({})", if p.ok { "yes" } else { "no" }, p.detail)
}

fn ranges(r: &[(u64, u64)], file: &str) -> String {
    if r.is_empty() {
        return format!(
            "none in {file} (containers get a single id; as root: usermod --add-subuids/--add-subgids)"
        );
    }
    r.iter()
        .map(|(first, count)| format!("{first}-{} ({count})", first + count.saturating_sub(1)))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn info(engine: &Engine) -> Result<(), CliError> {
    let i = engine.info()?;
    let found = |p: &Option<std::path::PathBuf>| {
        p.as_ref().map_or_else(
            || "not found (install the uidmap package)".into(),
            |p| p.display().to_string(),
        )
    };
    let mut out = io::stdout().lock();
    writeln!(out, "Version:            {}", i.version.version)?;
    writeln!(out, "Images:             {}", i.images)?;
    writeln!(out, "Containers:         {}", i.containers)?;
    writeln!(
        out,
        "Storage:            indexed layer tars, served by camada's own FUSE overlay"
    )?;
    writeln!(out, " Root:              {}", i.root.display())?;
    writeln!(out, " Run root:          {}", i.runroot.display())?;
    writeln!(out, " Config:            {}", i.config.display())?;
    writeln!(
        out,
        "User:               {} (uid {}, gid {})",
        i.user, i.uid, i.gid
    )?;
    writeln!(
        out,
        " Subordinate UIDs:  {}",
        ranges(&i.subuid, "/etc/subuid")
    )?;
    writeln!(
        out,
        " Subordinate GIDs:  {}",
        ranges(&i.subgid, "/etc/subgid")
    )?;
    writeln!(out, " newuidmap:         {}", found(&i.newuidmap))?;
    writeln!(out, " newgidmap:         {}", found(&i.newgidmap))?;
    writeln!(out, "Rootless support:")?;
    writeln!(out, " User namespaces:   {}", yes_no(&i.userns))?;
    writeln!(out, " FUSE:              {}", yes_no(&i.fuse))?;
    writeln!(out, "Kernel Version:     {}", i.version.kernel)?;
    writeln!(out, "OSType:             {}", i.version.os)?;
    writeln!(out, "Architecture:       {}", i.version.arch)?;
    writeln!(out, "Checks:")?;
    for c in &i.checks {
        out.write_all(check_lines(c).as_bytes())?;
    }
    Ok(())
}

/// One finding of the doctor: ` ok       WHAT: FOUND`, then `          fix: COMMAND`.
fn check_lines(c: &Check) -> String {
    let tag = match c.status {
        CheckStatus::Ok => "ok",
        CheckStatus::Warn => "WARNING",
        CheckStatus::Missing => "MISSING",
    };
    let mut s = format!(" {tag:<8} {}: {}\n", c.what, c.found);
    if let Some(fix) = &c.fix {
        s.push_str(&format!("          fix: {fix}\n"));
    }
    s
}

/// `4.26MB (100%)` as docker shows reclaimable space.
fn reclaimable(u: &UsageLine) -> String {
    if u.size == 0 {
        return human_size(u.reclaimable);
    }
    let pct = (u.reclaimable as f64 * 100.0 / u.size as f64) as u64;
    format!("{} ({pct}%)", human_size(u.reclaimable))
}

pub fn df(engine: &Engine) -> Result<(), CliError> {
    let du = engine.disk_usage()?;
    let mut t = Table::new(&["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]);
    for (name, u, pct) in [
        ("Images", &du.images, true),
        ("Containers", &du.containers, true),
        ("Local Volumes", &du.volumes, true),
        ("Build Cache", &du.build_cache, false),
    ] {
        t.row(vec![
            name.into(),
            u.total.to_string(),
            u.active.to_string(),
            human_size(u.size),
            if pct {
                reclaimable(u)
            } else {
                human_size(u.reclaimable)
            },
        ]);
    }
    io::stdout().lock().write_all(t.render().as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reclaimable_shows_a_percentage() {
        let u = UsageLine {
            total: 2,
            active: 1,
            size: 4_000_000,
            reclaimable: 1_000_000,
        };
        assert_eq!(reclaimable(&u), "1MB (25%)");
        assert_eq!(reclaimable(&UsageLine::default()), "0B");
    }

    #[test]
    fn a_check_shows_its_fix_under_it() {
        let c = Check {
            what: "FUSE",
            status: CheckStatus::Missing,
            found: "/dev/fuse cannot be opened".into(),
            fix: Some("sudo chmod 0666 /dev/fuse".into()),
        };
        assert_eq!(
            check_lines(&c),
            " MISSING  FUSE: /dev/fuse cannot be opened\n          fix: sudo chmod 0666 /dev/fuse\n"
        );
    }

    #[test]
    fn ranges_read_well() {
        assert_eq!(
            ranges(&[(100_000, 65_536)], "/etc/subuid"),
            "100000-165535 (65536)"
        );
        assert!(ranges(&[], "/etc/subuid").starts_with("none in /etc/subuid"));
    }
}

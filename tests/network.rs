//! Published ports and outbound network through the real binary, as root and as the
//! unprivileged user `camadatest` (with its subuid range, and in single-id mode):
//! two httpd containers of one image answer on their own host ports, a busy port is a
//! one-line error before anything runs, ports are free again after `stop`, `ps`/`port`/
//! `inspect` show them, `-P` puts every exposed port on a free host port; a container
//! reaches a server on the host's loopback through pasta, or slirp4netns when pasta is not
//! found, and without a usable /dev/net/tun it runs with loopback only after one warning.
//!
//! Host ports used here: 18081-18089 (one test at a time touches each), and free ones.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use common::engines::{Engine, Who, engines};
use common::{Camada, require};

/// One engine of `common::engines` (None when that user cannot run here).
fn engine(who: Who) -> Option<Engine> {
    engines(&[who]).pop().map(|(_, e)| e)
}

/// The network helper `name` of a detached container is one child of its monitor, and
/// is gone soon after `stop`.
fn helper_goes_with_its_container(c: &Camada, who: Who, name: &str) {
    let id = c.ok(["run", "-d", "base", "sleep", "100"]);
    let id = id.trim();
    let monitor: i32 = std::fs::read_to_string(c.runroot().join(id).join("monitor.pid"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("{who:?}: no monitor.pid"));
    let helpers = children_named(monitor, name);
    assert_eq!(
        helpers.len(),
        1,
        "{who:?}: {name} children of the monitor: {helpers:?}"
    );
    c.ok(["stop", "-t", "0", id]);
    assert!(
        gone_soon(helpers[0]),
        "{who:?}: {name} {} outlived its container",
        helpers[0]
    );
}

/// Serializes the tests that change or depend on /dev/net/tun's mode.
static TUN: Mutex<()> = Mutex::new(());

/// `GET /` on 127.0.0.1:`port`; the body, once something answers (a container's server
/// may still be starting: the forwarder then closes the connection without a byte).
fn http_get(port: u16) -> String {
    let mut last = String::new();
    for _ in 0..100 {
        if let Ok(mut s) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n");
            let mut text = String::new();
            let _ = s.read_to_string(&mut text);
            if let Some((_, body)) = text.split_once("\r\n\r\n") {
                return body.to_string();
            }
            last = text;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing answered on port {port}: {last:?}")
}

/// A detached busybox httpd serving `page` on its port 80, published as `publish`.
fn httpd(c: &Camada, name: &str, publish: &str, page: &str) -> String {
    let script =
        format!("mkdir -p /www && echo {page} > /www/index.html && exec httpd -f -p 80 -h /www");
    c.ok([
        "run", "-d", "--name", name, "-p", publish, "base", "sh", "-c", &script,
    ])
    .trim()
    .to_string()
}

#[test]
fn published_ports_answer_show_and_are_freed() {
    let _tun = TUN.lock().unwrap_or_else(|e| e.into_inner());
    for who in [Who::Root, Who::User, Who::SingleId] {
        let Some(c) = engine(who) else { continue };
        httpd(&c, "one", "18081:80", "page-one");
        httpd(&c, "two", "127.0.0.1:18082:80", "page-two");
        assert_eq!(http_get(18081), "page-one\n", "{who:?}");
        assert_eq!(http_get(18082), "page-two\n", "{who:?}");
        // again, on connections of their own
        assert_eq!(http_get(18082), "page-two\n", "{who:?}");

        let ps = c.ok(["ps"]);
        assert!(ps.contains("0.0.0.0:18081->80/tcp"), "{who:?}: {ps}");
        assert!(ps.contains("127.0.0.1:18082->80/tcp"), "{who:?}: {ps}");
        c.run(["port", "one"])
            .success()
            .stdout_is("80/tcp -> 0.0.0.0:18081\n");
        c.run(["port", "two", "80/tcp"])
            .success()
            .stdout_is("127.0.0.1:18082\n");
        c.run(["port", "two", "81"])
            .engine_error()
            .stderr_has("No public port '81/tcp' published for two");
        c.run([
            "inspect",
            "-f",
            "{{json .NetworkSettings.Ports}} {{json .HostConfig.PortBindings}}",
            "one",
        ])
        .success()
        .stdout_is(
            "{\"80/tcp\":[{\"HostIp\":\"0.0.0.0\",\"HostPort\":\"18081\"}]} \
             {\"80/tcp\":[{\"HostIp\":\"\",\"HostPort\":\"18081\"}]}\n",
        );

        // a port taken by a container, then by another program: refused before it runs
        c.run(["run", "-d", "--name", "late", "-p", "18081:80", "base", "true"])
            .exit(125)
            .stderr_has("host port 18081 is already in use (by another container or program): choose another with -p HOST:CTR");
        c.run(["inspect", "-f", "{{.State.Status}}", "late"])
            .success()
            .stdout_is("created\n");
        let held = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 18083)).unwrap();
        c.run(["run", "--rm", "-p", "18083:80", "base", "true"])
            .exit(125)
            .stderr_has("host port 18083 is already in use");
        drop(held);

        // stopped: its port is free at once, for another container
        c.ok(["stop", "-t", "1", "one"]);
        c.run(["port", "one"]).success().stdout_is("");
        let ps = c.ok(["ps", "-a"]);
        assert!(
            !ps.contains("18081"),
            "{who:?}: a stopped container shows ports: {ps}"
        );
        httpd(&c, "three", "18081:80", "page-three");
        assert_eq!(http_get(18081), "page-three\n", "{who:?}");
        // and the stopped one starts again on its port once that is free
        c.ok(["rm", "-f", "three"]);
        c.ok(["start", "one"]);
        assert_eq!(http_get(18081), "page-one\n", "{who:?}");

        // -p CTR: a free host port, shown by port
        httpd(&c, "random", "80", "page-random");
        let shown = c.ok(["port", "random", "80"]);
        let port: u16 = shown
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{who:?}: port printed {shown:?}"));
        assert_ne!(port, 0);
        assert_eq!(http_get(port), "page-random\n", "{who:?}");

        // no ports without the private network
        c.run([
            "run",
            "--rm",
            "--network",
            "host",
            "-p",
            "18084:80",
            "base",
            "true",
        ])
        .engine_error()
        .stderr_has("publishing ports (-p) needs the private network");
        eprintln!("{who:?}: ok");
    }
}

/// `(container port, host address)` of each `camada port` line (`80/tcp -> 0.0.0.0:32768`).
fn port_lines(text: &str) -> Vec<(String, std::net::SocketAddr)> {
    text.lines()
        .map(|l| {
            let (ctr, host) = l
                .split_once(" -> ")
                .unwrap_or_else(|| panic!("port printed {l:?}"));
            let host = host
                .parse()
                .unwrap_or_else(|_| panic!("port printed {l:?}"));
            (ctr.to_string(), host)
        })
        .collect()
}

#[test]
fn publish_all_puts_every_exposed_port_on_a_free_host_port() {
    for who in [Who::Root, Who::User] {
        let Some(c) = engine(who) else { continue };
        std::fs::write(
            c.work().join("Dockerfile"),
            "FROM base\nEXPOSE 80 8080/udp\n",
        )
        .unwrap();
        c.ok(["build", "-q", "-t", "exposing", "."]);
        let script =
            "mkdir -p /www && echo page-all > /www/index.html && exec httpd -f -p 80 -h /www";
        c.ok([
            "run",
            "-d",
            "--name",
            "all",
            "-P",
            "--expose",
            "81",
            "-p",
            "127.0.0.1:18087:8080/udp",
            "exposing",
            "sh",
            "-c",
            script,
        ]);
        // the image's EXPOSE and --expose on free ports of every address; -p as given
        let published = port_lines(&c.ok(["port", "all"]));
        let names: Vec<&str> = published.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(names, ["80/tcp", "81/tcp", "8080/udp"], "{who:?}");
        for (ctr, host) in &published[..2] {
            assert!(
                host.ip().is_unspecified() && host.port() != 0,
                "{who:?}: {ctr} on {host}"
            );
        }
        assert_ne!(published[0].1.port(), published[1].1.port(), "{who:?}");
        assert_eq!(published[2].1.to_string(), "127.0.0.1:18087", "{who:?}");
        assert_eq!(http_get(published[0].1.port()), "page-all\n", "{who:?}");
        let ps = c.ok(["ps"]);
        assert!(
            ps.contains(&format!("0.0.0.0:{}->80/tcp", published[0].1.port())),
            "{who:?}: {ps}"
        );
        c.run([
            "inspect",
            "-f",
            "{{json .Config.ExposedPorts}} {{.HostConfig.PublishAllPorts}} {{json .HostConfig.PortBindings}}",
            "all",
        ])
        .success()
        .stdout_is(
            "{\"80/tcp\":{},\"8080/udp\":{},\"81/tcp\":{}} true \
             {\"8080/udp\":[{\"HostIp\":\"127.0.0.1\",\"HostPort\":\"18087\"}]}\n",
        );

        // commit keeps what the container exposes, --expose included (as docker's)
        c.ok(["commit", "all", "committed"]);
        c.run([
            "inspect",
            "-f",
            "{{json .Config.ExposedPorts}}",
            "committed",
        ])
        .success()
        .stdout_is("{\"80/tcp\":{},\"8080/udp\":{},\"81/tcp\":{}}\n");

        // without -P an exposed port stays private
        c.ok(["run", "-d", "--name", "quiet", "exposing", "sleep", "100"]);
        c.run(["port", "quiet"]).success().stdout_is("");
        c.run(["run", "--rm", "--expose", "80-x", "base", "true"])
            .engine_error()
            .stderr_has("invalid --expose \"80-x\"");
        eprintln!("{who:?}: ok");
    }
}

#[test]
fn low_ports_name_the_sysctl_for_a_user() {
    let start: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    if start <= 80 {
        require(
            "net.ipv4.ip_unprivileged_port_start above 80",
            Err(format!("it is {start}")),
        );
        return;
    }
    let Some(c) = engine(Who::User) else { return };
    c.run(["run", "--rm", "-p", "80:80", "base", "true"])
        .exit(125)
        .stderr_has("host port 80 is below")
        .stderr_has("sysctl net.ipv4.ip_unprivileged_port_start");
}

/// /dev/net/tun's mode, put back when dropped.
struct TunMode(u32);

impl TunMode {
    fn set(mode: u32) -> Option<TunMode> {
        let old = std::fs::metadata("/dev/net/tun").ok()?.permissions().mode() & 0o7777;
        std::fs::set_permissions("/dev/net/tun", std::fs::Permissions::from_mode(mode)).ok()?;
        Some(TunMode(old))
    }
}

impl Drop for TunMode {
    fn drop(&mut self) {
        let _ = std::fs::set_permissions("/dev/net/tun", std::fs::Permissions::from_mode(self.0));
    }
}

/// A one-page HTTP server on the host's 127.0.0.1, on its own thread.
fn host_server(page: &'static str) -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{page}",
                page.len()
            );
        }
    });
    port
}

/// In the container: the default gateway (pasta maps it to the host), then the page at
/// `port` there.
fn fetch_from_host(port: u16) -> String {
    format!(
        "gw=$(ip route | awk '/default/ {{print $3}}'); test -n \"$gw\" || exit 9; \
         wget -q -O- http://$gw:{port}/"
    )
}

fn pasta_installed() -> Result<(), String> {
    if Path::new("/usr/bin/pasta").exists() {
        Ok(())
    } else {
        Err("pasta (Debian package passt)".into())
    }
}

#[test]
fn outbound_reaches_the_hosts_loopback_through_pasta() {
    if !require("pasta", pasta_installed()) {
        return;
    }
    let _tun = TUN.lock().unwrap_or_else(|e| e.into_inner());
    let port = host_server("from-the-host");
    for who in [Who::Root, Who::User] {
        let Some(c) = engine(who) else { continue };
        // the unprivileged user needs /dev/net/tun: given for this test (as /dev/fuse is),
        // when the tests run as root; as that user already, it must be usable
        let _mode = if who == Who::User && common::is_root() {
            TunMode::set(0o666)
        } else {
            None
        };
        let r = c.run(["run", "--rm", "base", "sh", "-c", &fetch_from_host(port)]);
        r.success().stdout_is("from-the-host");
        assert_eq!(r.stderr(), "", "{who:?}: pasta is usable, yet");
        // the container's resolver is the host's (not on its loopback) or pasta's
        let resolv = c.ok(["run", "--rm", "base", "cat", "/etc/resolv.conf"]);
        assert!(resolv.contains("nameserver "), "{who:?}: {resolv}");
        assert!(!resolv.contains("nameserver 127."), "{who:?}: {resolv}");

        // pasta is the monitor's child and goes with it
        helper_goes_with_its_container(&c, who, "pasta");
        // --network none: no helper, nothing said, no way out
        c.run([
            "run",
            "--rm",
            "--network",
            "none",
            "base",
            "sh",
            "-c",
            &fetch_from_host(port),
        ])
        .exit(9);
        let r = c.run(["run", "--rm", "--network", "none", "base", "true"]);
        assert_eq!(r.success().stderr(), "", "{who:?}: --network none warned");
        eprintln!("{who:?}: ok");
    }
}

#[test]
fn without_a_usable_tun_a_user_gets_loopback_and_one_warning() {
    if !common::is_root() {
        require(
            "root (to make /dev/net/tun 0600 for the test)",
            Err("not root".into()),
        );
        return;
    }
    let _tun = TUN.lock().unwrap_or_else(|e| e.into_inner());
    let Some(c) = engine(Who::User) else { return };
    let _mode = TunMode::set(0o600);
    let port = host_server("unreachable");
    let r = c.run(["run", "--rm", "base", "sh", "-c", &fetch_from_host(port)]);
    r.exit(9);
    let warnings: Vec<_> = r
        .stderr()
        .lines()
        .filter(|l| l.starts_with(common::NO_OUTBOUND))
        .map(String::from)
        .collect();
    assert_eq!(warnings.len(), 1, "{}", r.stderr());
    assert!(
        warnings[0].contains("/dev/net/tun") && warnings[0].contains("chmod 0666"),
        "{}",
        warnings[0]
    );
    // loopback works; published ports work without any helper
    httpd(&c, "lo", "18085:80", "page-lo");
    assert_eq!(http_get(18085), "page-lo\n");
}

/// A directory for PATH holding `slirp4netns` (a link to the installed one, or a script),
/// so that camada finds no pasta.
fn path_with_slirp(c: &Camada, dir: &str, script: Option<&str>) -> std::path::PathBuf {
    let bin = c.dir().join(dir);
    std::fs::create_dir(&bin).unwrap();
    let helper = bin.join("slirp4netns");
    match script {
        None => std::os::unix::fs::symlink("/usr/bin/slirp4netns", &helper).unwrap(),
        Some(text) => {
            std::fs::write(&helper, text).unwrap();
            std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

fn slirp_installed() -> Result<(), String> {
    if Path::new("/usr/bin/slirp4netns").exists() {
        Ok(())
    } else {
        Err("slirp4netns".into())
    }
}

#[test]
fn without_pasta_outbound_goes_through_slirp4netns() {
    if !require("slirp4netns", slirp_installed()) {
        return;
    }
    let _tun = TUN.lock().unwrap_or_else(|e| e.into_inner());
    let port = host_server("via-slirp");
    for who in [Who::Root, Who::User] {
        let Some(mut c) = engine(who) else { continue };
        let bin = path_with_slirp(&c, "slirp-only", None);
        c.0.env("PATH", &bin);
        // the user needs /dev/net/tun, as for pasta
        let mode = if who == Who::User && common::is_root() {
            TunMode::set(0o666)
        } else {
            None
        };
        let r = c.run(["run", "--rm", "base", "sh", "-c", &fetch_from_host(port)]);
        r.success().stdout_is("via-slirp");
        // slirp4netns says "sent tapfd=..." on each start: never on the container's output
        assert_eq!(r.stderr(), "", "{who:?}: slirp4netns is usable, yet");
        c.run(["run", "--rm", "base", "cat", "/etc/resolv.conf"])
            .success()
            .stdout_has("nameserver 10.0.2.3");

        // slirp4netns is the monitor's child and goes with it
        helper_goes_with_its_container(&c, who, "slirp4netns");

        // a helper that fails: what it said, in the one error line
        let bad = path_with_slirp(
            &c,
            "slirp-broken",
            Some("#!/bin/sh\necho starting >&2\necho 'boom: no tap device' >&2\nexit 3\n"),
        );
        c.0.env("PATH", &bad);
        let r = c.run(["run", "--rm", "base", "true"]);
        r.engine_error().stderr_has(
            "slirp4netns exited with status 3 before the container's network was up (it said: boom: no tap device)",
        );
        assert_eq!(r.stderr().lines().count(), 1, "{who:?}: {}", r.stderr());
        c.0.env("PATH", &bin);

        // without a usable /dev/net/tun: loopback only, after one warning line
        if who == Who::User && common::is_root() {
            drop(mode);
            let _closed = TunMode::set(0o600);
            let r = c.run(["run", "--rm", "base", "sh", "-c", &fetch_from_host(port)]);
            r.exit(9);
            let stderr = r.stderr();
            let lines: Vec<&str> = stderr.lines().collect();
            assert_eq!(lines.len(), 1, "{who:?}: {stderr}");
            assert!(
                lines[0].starts_with(common::NO_OUTBOUND) && lines[0].contains("/dev/net/tun"),
                "{who:?}: {stderr}"
            );
        }

        eprintln!("{who:?}: ok");
    }
}

/// The loopback-only warning lines of `r`'s stderr.
fn no_outbound_lines(r: &common::Run) -> Vec<String> {
    r.stderr()
        .lines()
        .filter(|l| l.starts_with(common::NO_OUTBOUND))
        .map(String::from)
        .collect()
}

#[test]
fn every_command_that_starts_a_loopback_only_container_warns_once() {
    let _tun = TUN.lock().unwrap_or_else(|e| e.into_inner());
    // as the user without a usable /dev/net/tun; as root and single-id without pasta or
    // slirp4netns on PATH
    let _mode = if common::is_root() {
        TunMode::set(0o600)
    } else {
        None
    };
    for who in [Who::Root, Who::User, Who::SingleId] {
        let Some(mut c) = engine(who) else { continue };
        let hint = match who {
            Who::User => "/dev/net/tun",
            Who::Root | Who::SingleId => {
                c.0.env("PATH", "/nonexistent");
                "install pasta"
            }
        };
        // (not root: this is the user, and /dev/net/tun is as the machine has it)
        let tun_usable = || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/net/tun")
                .is_ok()
        };
        if who == Who::User && !common::is_root() && tun_usable() {
            continue;
        }
        let once = |r: &common::Run, what: &str| {
            let w = no_outbound_lines(r);
            assert_eq!(w.len(), 1, "{who:?} {what}: {r}");
            assert!(w[0].contains(hint), "{who:?} {what}: {r}");
            // nothing else on stderr: the warning is the whole of it
            assert_eq!(r.stderr(), format!("{}\n", w[0]), "{who:?} {what}");
        };

        let r = c.run(["create", "--name", "made", "base", "sleep", "100"]);
        assert!(no_outbound_lines(r.success()).is_empty(), "{who:?}: {r}");
        let r = c.run(["start", "made"]);
        r.success().stdout_is("made\n");
        once(&r, "start");
        let r = c.run(["restart", "-t", "1", "made"]);
        r.success().stdout_is("made\n");
        once(&r, "restart");
        c.ok(["stop", "-t", "1", "made"]);

        c.ok(["create", "--name", "told", "base", "echo", "hi"]);
        let r = c.run(["start", "-a", "told"]);
        r.success().stdout_is("hi\n");
        once(&r, "start -a");
        let r = c.run(["run", "--rm", "base", "echo", "hi"]);
        r.success().stdout_is("hi\n");
        once(&r, "run");
        let r = c.run(["run", "-d", "base", "true"]);
        r.success();
        once(&r, "run -d");

        // a start refused before anything runs says only why
        let held = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 18086)).unwrap();
        c.ok(["create", "--name", "late", "-p", "18086:80", "base", "true"]);
        c.run(["start", "late"])
            .engine_error()
            .stderr_has("host port 18086 is already in use");
        drop(held);
        eprintln!("{who:?}: ok");
    }
}

/// Pids of `parent`'s children whose command (or argv[0]) is `name`.
fn children_named(parent: i32, name: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some((head, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let comm = head.split_once(" (").map(|(_, c)| c).unwrap_or("");
        let ppid: i32 = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        // pasta may re-exec itself (passt.avx2): its argv[0] stays
        let argv0 = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let argv0 = String::from_utf8_lossy(argv0.split(|&b| b == 0).next().unwrap_or(&[]))
            .rsplit('/')
            .next()
            .unwrap_or("")
            .to_string();
        if ppid == parent && (comm == name || argv0 == name) {
            out.push(pid);
        }
    }
    out
}

/// Whether `pid` is gone (or a zombie) within a few seconds.
fn gone_soon(pid: i32) -> bool {
    for _ in 0..100 {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(s) if s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')) => {
                return true;
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    false
}

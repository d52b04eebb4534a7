//! Outbound network for the default private network: pasta (Debian `passt`), else
//! slirp4netns, attached to the container's network namespace.
//!
//! Owns: choosing the helper ([`choose`]: installed, and /dev/net/tun usable by this user,
//! else loopback only with one warning that says what to do), the helper process (forked
//! by the monitor while it is still in the host's namespaces, released once the
//! container's namespaces exist, waited for until the network is configured), and the
//! container's /etc/resolv.conf when a helper forwards DNS ([`resolv_conf`]). Never touches
//! the container's processes or mounts. What the helper prints goes to a memfd, never to
//! the container's output; a helper that fails has its last line in the start's error.
//!
//! Invariant: the helper is the monitor's child and dies with it (PR_SET_PDEATHSIG), and
//! the container's first process starts only after the helper said the network is up
//! (pasta's pid file, slirp4netns' ready fd: both a pipe here), or the start fails.

use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};

use super::{Network, sys};

/// The address the container asks for DNS when pasta forwards it (the host's resolvers are
/// all on its loopback).
pub const PASTA_DNS: &str = "169.254.1.1";
/// slirp4netns' built-in resolver.
pub const SLIRP_DNS: &str = "10.0.2.3";

/// What gives a private-network container its way out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Outbound {
    /// pasta at this path.
    Pasta(PathBuf),
    /// slirp4netns at this path.
    Slirp(PathBuf),
    /// Nothing: loopback only (also `--network host` and `none`, which need no helper).
    #[default]
    Loopback,
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file()))
}

/// The helper for `network`, and the warning to show when a private network stays
/// loopback only (none for `host` and `none`, which ask for no helper).
pub fn choose(network: Network) -> (Outbound, Option<String>) {
    if network != Network::Private {
        return (Outbound::Loopback, None);
    }
    let pasta = find_in_path("pasta");
    let slirp = find_in_path("slirp4netns");
    if pasta.is_none() && slirp.is_none() {
        return (
            Outbound::Loopback,
            Some(
                "no outbound network for this container (loopback only): install pasta \
                 (Debian/Ubuntu package passt) or slirp4netns, or use --network host"
                    .into(),
            ),
        );
    }
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
    {
        return (
            Outbound::Loopback,
            Some(format!(
                "no outbound network for this container (loopback only): /dev/net/tun is not \
                 usable by this user ({e}): sudo chmod 0666 /dev/net/tun, or ask the admin; \
                 or use --network host"
            )),
        );
    }
    match (pasta, slirp) {
        (Some(p), _) => (Outbound::Pasta(p), None),
        (None, Some(s)) => (Outbound::Slirp(s), None),
        (None, None) => (Outbound::Loopback, None),
    }
}

/// /etc/resolv.conf of a container whose DNS goes through `outbound`, from the host's;
/// `None` when there is no helper (the caller keeps its own rules).
pub fn resolv_conf(host: &str, outbound: &Outbound) -> Option<String> {
    let reachable = |addr: &str| !(addr.starts_with("127.") || addr == "::1");
    let mut kept = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            if !reachable(words.next().unwrap_or("")) {
                continue;
            }
            servers += 1;
        }
        kept.push_str(line);
        kept.push('\n');
    }
    let others: String = kept
        .lines()
        .filter(|l| !l.trim_start().starts_with("nameserver"))
        .map(|l| format!("{l}\n"))
        .collect();
    match outbound {
        Outbound::Loopback => None,
        // the host's own resolvers are reached through pasta like any other address
        Outbound::Pasta(_) if servers > 0 => Some(kept),
        Outbound::Pasta(_) => Some(format!("{others}nameserver {PASTA_DNS}\n")),
        Outbound::Slirp(_) => Some(format!("{others}nameserver {SLIRP_DNS}\n")),
    }
}

/// The helper process, forked before the monitor left the host's namespaces.
pub(crate) struct Helper {
    pid: Pid,
    name: &'static str,
    go: Option<File>,
    ready: File,
    /// The helper's stdout and stderr (a memfd): slirp4netns talks on every start, and what
    /// a failing helper said belongs in the one error line, not on the container's output.
    said: Option<File>,
}

fn cstr(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}

impl Helper {
    /// Forks the helper for `outbound` (None for loopback): it waits until
    /// [`Helper::release`], then execs pasta or slirp4netns attached to this process's
    /// namespaces. Call it from the monitor before it unshares anything, single-threaded.
    pub(crate) fn fork(outbound: &Outbound, host_resolv: &str) -> nix::Result<Option<Helper>> {
        let (program, name) = match outbound {
            Outbound::Loopback => return Ok(None),
            Outbound::Pasta(p) => (p, "pasta"),
            Outbound::Slirp(p) => (p, "slirp4netns"),
        };
        let (go_r, go_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        let (ready_r, ready_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        let me = nix::unistd::getpid().as_raw();
        let fd = ready_w.as_raw_fd();
        let argv: Vec<CString> = match outbound {
            Outbound::Pasta(_) => {
                let mut a = vec![
                    "pasta".to_string(),
                    "--config-net".into(),
                    "--foreground".into(),
                    "--quiet".into(),
                    // ports are ours (the forwarder), not pasta's
                    "-t".into(),
                    "none".into(),
                    "-u".into(),
                    "none".into(),
                    "-T".into(),
                    "none".into(),
                    "-U".into(),
                    "none".into(),
                    "-P".into(),
                    format!("/proc/self/fd/{fd}"),
                ];
                if nix::unistd::geteuid().is_root() {
                    // pasta would switch to nobody, who cannot enter our namespaces
                    a.extend(["--runas".into(), "0".into()]);
                }
                if resolv_conf(host_resolv, outbound)
                    .is_some_and(|r| r.contains(&format!("nameserver {PASTA_DNS}")))
                {
                    a.extend(["--dns-forward".into(), PASTA_DNS.into()]);
                }
                a.push(me.to_string());
                a.iter().map(|s| cstr(s)).collect()
            }
            _ => [
                "slirp4netns".to_string(),
                "--configure".into(),
                "--mtu=65520".into(),
                format!("--ready-fd={fd}"),
                format!("--userns-path=/proc/{me}/ns/user"),
                me.to_string(),
                "tap0".into(),
            ]
            .iter()
            .map(|s| cstr(s))
            .collect(),
        };
        let program = CString::new(program.as_os_str().as_encoded_bytes()).unwrap_or_default();
        let said = nix::sys::memfd::memfd_create(name, nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .ok()
            .map(File::from);
        match sys::fork()? {
            ForkResult::Child => {
                drop(go_w);
                drop(ready_r);
                if let Some(said) = &said {
                    let _ = nix::unistd::dup2_stdout(said);
                    let _ = nix::unistd::dup2_stderr(said);
                }
                let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
                let mut b = [0u8; 1];
                if File::from(go_r).read(&mut b).unwrap_or(0) == 0 {
                    std::process::exit(0);
                }
                let _ = fcntl(&ready_w, FcntlArg::F_SETFD(FdFlag::empty()));
                sys::reset_signal_dispositions();
                let _ = nix::sys::signal::SigSet::empty().thread_set_mask();
                let _ = nix::unistd::execv(&program, &argv);
                std::process::exit(127);
            }
            ForkResult::Parent { child } => {
                drop(go_r);
                drop::<OwnedFd>(ready_w);
                Ok(Some(Helper {
                    pid: child,
                    name,
                    go: Some(File::from(go_w)),
                    ready: File::from(ready_r),
                    said,
                }))
            }
        }
    }

    /// Lets the helper attach: call once the container's user and network namespaces
    /// exist (the user namespace's maps written).
    pub(crate) fn release(&mut self) {
        if let Some(mut go) = self.go.take() {
            let _ = std::io::Write::write_all(&mut go, b"g");
        }
    }

    /// Waits until the helper has configured the network; else why it could not.
    pub(crate) fn wait_ready(&mut self) -> Result<(), String> {
        self.release();
        let mut buf = [0u8; 64];
        if self.ready.read(&mut buf).unwrap_or(0) > 0 {
            return Ok(());
        }
        let how = match waitpid(self.pid, None) {
            Ok(WaitStatus::Exited(_, 127)) => "could not be started".to_string(),
            Ok(WaitStatus::Exited(_, c)) => format!("exited with status {c}"),
            Ok(WaitStatus::Signaled(_, s, _)) => format!("was killed by {s}"),
            _ => "ended".to_string(),
        };
        let said = self.last_words();
        let why = if said.is_empty() {
            "run it by hand to see why".to_string()
        } else {
            format!("it said: {said}")
        };
        Err(format!(
            "{} {how} before the container's network was up ({why}); use --network none to run without it",
            self.name
        ))
    }

    /// The last line the helper wrote, if any.
    fn last_words(&mut self) -> String {
        let Some(f) = self.said.as_mut() else {
            return String::new();
        };
        let mut bytes = Vec::new();
        let _ = std::io::Seek::rewind(f).and_then(|_| f.take(64 * 1024).read_to_end(&mut bytes));
        String::from_utf8_lossy(&bytes)
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_none_need_no_helper_and_say_nothing() {
        assert_eq!(choose(Network::Host), (Outbound::Loopback, None));
        assert_eq!(choose(Network::None), (Outbound::Loopback, None));
    }

    #[test]
    fn dns_goes_to_the_hosts_servers_or_the_helpers_resolver() {
        let pasta = Outbound::Pasta("/usr/bin/pasta".into());
        let slirp = Outbound::Slirp("/usr/bin/slirp4netns".into());
        let host = "search example.org\nnameserver 10.1.1.1\nnameserver 127.0.0.53\n";
        assert_eq!(
            resolv_conf(host, &pasta).unwrap(),
            "search example.org\nnameserver 10.1.1.1\n"
        );
        let local = "nameserver 127.0.0.53\noptions edns0\n";
        assert_eq!(
            resolv_conf(local, &pasta).unwrap(),
            format!("options edns0\nnameserver {PASTA_DNS}\n")
        );
        assert_eq!(
            resolv_conf(host, &slirp).unwrap(),
            format!("search example.org\nnameserver {SLIRP_DNS}\n")
        );
        assert_eq!(resolv_conf(host, &Outbound::Loopback), None);
    }
}

//! Published ports (`-p [IP:][HOST:]CTR[/tcp|udp]`): parsing, binding the host side, and
//! the userspace forwarder that runs in the monitor.
//!
//! Owns: [`PortSpec`] (docker's `-p` syntax), [`bind`] (the host-side sockets, bound by
//! the caller in the host's network namespace before the container starts, so a busy or
//! privileged port is a one-line error before anything runs), the `<run_dir>/ports` file
//! ([`read_published`]: what `ps`, `port` and `inspect` show), and the forwarder: one
//! thread of the monitor, started after the monitor entered the container's network
//! namespace, so every socket it creates (the connections to `127.0.0.1:CTR`) lives there
//! while the listening sockets it was handed stay in the host's. TCP bytes move by
//! splice(2) through a pipe per direction; UDP datagrams go through one connected socket
//! per client address (a flow, dropped after [`UDP_IDLE`] without traffic).
//!
//! Never touches the store or records. Invariant: the host ports are held exactly as long
//! as the monitor's forwarder runs: `Forwarder::stop` closes them once the container's
//! process has exited, before anyone waiting on it is told, so a port is free again as
//! soon as `stop` returns.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, SpliceFFlags, fcntl, splice};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::socket::{
    AddressFamily, Shutdown, SockFlag, SockType, SockaddrIn, connect, getsockopt, shutdown, socket,
    sockopt,
};

/// The transport of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

impl FromStr for Proto {
    type Err = String;
    fn from_str(s: &str) -> Result<Proto, String> {
        match s {
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            other => Err(format!("unknown protocol {other:?}: use tcp or udp")),
        }
    }
}

/// One `-p`: which host address and port forward to which port of the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortSpec {
    /// `None`: every address (docker's `0.0.0.0`).
    pub host_ip: Option<IpAddr>,
    /// 0: a free port chosen when the container starts.
    pub host_port: u16,
    pub container_port: u16,
    pub proto: Proto,
}

impl FromStr for PortSpec {
    type Err = String;
    /// `CTR`, `HOST:CTR`, `IP:HOST:CTR`, `IP::CTR` (an IPv6 address in brackets), each
    /// with an optional `/tcp` or `/udp`.
    fn from_str(s: &str) -> Result<PortSpec, String> {
        let (rest, proto) = match s.rsplit_once('/') {
            Some((r, p)) => (r, p.parse()?),
            None => (s, Proto::Tcp),
        };
        let (head, ctr) = match rest.rsplit_once(':') {
            Some((h, c)) => (Some(h), c),
            None => (None, rest),
        };
        let container_port = port_number(ctr, "container")?;
        if container_port == 0 {
            return Err("the container port must not be 0".into());
        }
        let (host_ip, host_port) = match head {
            None => (None, 0),
            Some(h) => {
                let (ip, port) = match h.rsplit_once(':') {
                    Some((ip, port)) => (Some(ip), port),
                    None => (None, h),
                };
                let ip = match ip {
                    None | Some("") => None,
                    Some(ip) => {
                        let bare = ip.trim_start_matches('[').trim_end_matches(']');
                        Some(
                            bare.parse::<IpAddr>()
                                .map_err(|_| format!("{ip:?} is not an IP address"))?,
                        )
                    }
                };
                let port = if port.is_empty() {
                    0
                } else {
                    port_number(port, "host")?
                };
                (ip, port)
            }
        };
        Ok(PortSpec {
            host_ip,
            host_port,
            container_port,
            proto,
        })
    }
}

fn port_number(s: &str, which: &str) -> Result<u16, String> {
    s.parse::<u16>()
        .map_err(|_| format!("{s:?} is not a {which} port number (0-65535)"))
}

impl fmt::Display for PortSpec {
    /// The canonical `-p` form: `[IP:]HOST:CTR/PROTO` (HOST empty when random).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:")?,
            Some(ip) => write!(f, "{ip}:")?,
            None => {}
        }
        if self.host_port != 0 {
            write!(f, "{}", self.host_port)?;
        }
        write!(f, ":{}/{}", self.container_port, self.proto)
    }
}

/// Why a port could not be published.
#[derive(Debug, thiserror::Error)]
pub enum PortsError {
    #[error("invalid port {spec:?}: {why}; use -p [IP:]HOST:CTR[/tcp|udp] or -p CTR")]
    Parse { spec: String, why: String },
    #[error(
        "host port {port} is already in use (by another container or program): choose another with -p HOST:CTR"
    )]
    Busy { port: u16 },
    #[error(
        "host port {port} is below {start} (sysctl net.ipv4.ip_unprivileged_port_start), which only root may bind: choose a port of at least {start} (e.g. -p {example}:CTR) or ask the admin to lower it with: sysctl net.ipv4.ip_unprivileged_port_start={port}"
    )]
    Privileged { port: u16, start: u16, example: u32 },
    #[error("binding host address {addr} for -p {spec}: {source}")]
    Bind {
        addr: SocketAddr,
        spec: String,
        source: io::Error,
    },
}

/// Parses every `-p` as typed.
pub fn parse_all(specs: &[String]) -> Result<Vec<PortSpec>, PortsError> {
    specs
        .iter()
        .map(|s| {
            s.parse().map_err(|why| PortsError::Parse {
                spec: s.clone(),
                why,
            })
        })
        .collect()
}

enum HostSock {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

/// A host-side socket bound for one [`PortSpec`], ready for the monitor.
pub struct Bound {
    pub spec: PortSpec,
    /// The address actually bound (the chosen port when the spec asked for any).
    pub addr: SocketAddr,
    sock: HostSock,
}

impl fmt::Debug for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bound({} -> {})", self.addr, self.spec)
    }
}

/// The lowest port a non-root user may bind (`net.ipv4.ip_unprivileged_port_start`).
fn unprivileged_port_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024)
}

/// Binds the host side of every spec, in the calling process's network namespace
/// (listening sockets, close-on-exec). Fails on the first port that cannot be had.
pub fn bind(specs: &[PortSpec]) -> Result<Vec<Bound>, PortsError> {
    let mut out = Vec::new();
    for spec in specs {
        let ip = spec.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let addr = SocketAddr::new(ip, spec.host_port);
        let result = match spec.proto {
            Proto::Tcp => TcpListener::bind(addr).map(HostSock::Tcp),
            Proto::Udp => UdpSocket::bind(addr).map(HostSock::Udp),
        };
        let sock = result.map_err(|source| match source.raw_os_error() {
            Some(libc::EADDRINUSE) => PortsError::Busy {
                port: spec.host_port,
            },
            Some(libc::EACCES) if spec.host_port < unprivileged_port_start() => {
                let start = unprivileged_port_start();
                PortsError::Privileged {
                    port: spec.host_port,
                    start,
                    example: u32::from(spec.host_port) + 8000,
                }
            }
            _ => PortsError::Bind {
                addr,
                spec: spec.to_string(),
                source,
            },
        })?;
        let local = match &sock {
            HostSock::Tcp(l) => l.local_addr(),
            HostSock::Udp(u) => u.local_addr(),
        };
        let addr = local.map_err(|source| PortsError::Bind {
            addr,
            spec: spec.to_string(),
            source,
        })?;
        out.push(Bound {
            spec: *spec,
            addr,
            sock,
        });
    }
    Ok(out)
}

/// A published port as `ps`, `port` and `inspect` show it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Published {
    pub container_port: u16,
    pub proto: Proto,
    pub host: SocketAddr,
}

impl fmt::Display for Published {
    /// docker's PORTS column: `0.0.0.0:18081->80/tcp`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}->{}/{}", self.host, self.container_port, self.proto)
    }
}

/// The file under the run directory that lists the published ports.
pub(crate) const PORTS_FILE: &str = "ports";

/// Writes `<run_dir>/ports`: one `PROTO HOSTADDR CTRPORT` line per bound port.
pub(crate) fn write_published(run_dir: &Path, bound: &[Bound]) -> io::Result<()> {
    let text: String = bound
        .iter()
        .map(|b| format!("{} {} {}\n", b.spec.proto, b.addr, b.spec.container_port))
        .collect();
    std::fs::write(run_dir.join(PORTS_FILE), text)
}

/// The ports a running container publishes (empty when it publishes none or is not
/// running: the monitor removes the file when it exits).
pub fn read_published(run_dir: &Path) -> Vec<Published> {
    let text = std::fs::read_to_string(run_dir.join(PORTS_FILE)).unwrap_or_default();
    let mut out: Vec<Published> = text
        .lines()
        .filter_map(|line| {
            let mut w = line.split_whitespace();
            Some(Published {
                proto: w.next()?.parse().ok()?,
                host: w.next()?.parse().ok()?,
                container_port: w.next()?.parse().ok()?,
            })
        })
        .collect();
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------
// The forwarder

/// How long a UDP flow lives without a datagram either way.
pub const UDP_IDLE: Duration = Duration::from_secs(180);

/// How much one splice moves at most (and the size asked of each pipe).
const CHUNK: usize = 1 << 20;

/// The running forwarder thread; [`Forwarder::stop`] ends it and closes every socket.
pub(crate) struct Forwarder {
    stop_w: OwnedFd,
    thread: std::thread::JoinHandle<()>,
}

impl Forwarder {
    /// Closes the host ports and every connection, and waits for the thread to end.
    pub(crate) fn stop(self) {
        let _ = nix::unistd::write(&self.stop_w, b"x");
        let _ = self.thread.join();
    }
}

/// Starts the forwarder thread for `bound`. Call it in the container's network namespace
/// (the connections it opens to `127.0.0.1:CTR` are made there).
pub(crate) fn spawn(bound: Vec<Bound>) -> io::Result<Forwarder> {
    let (stop_r, stop_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io::Error::from)?;
    let mut fw = Loop::new(bound, stop_r)?;
    let thread = std::thread::Builder::new()
        .name("ports".into())
        .spawn(move || fw.run())?;
    Ok(Forwarder { stop_w, thread })
}

/// One direction of a TCP connection: bytes read from `fds[from]` wait in the pipe until
/// `fds[1 - from]` takes them.
struct Half {
    pipe_r: OwnedFd,
    pipe_w: OwnedFd,
    held: usize,
    /// A read found the pipe full (or the socket empty) with bytes still held: no more
    /// reading until some went out.
    stalled: bool,
    eof: bool,
    shut: bool,
}

/// Empty pipes of closed connections kept for the next ones (pipe2 and resizing cost a
/// new connection more than the rest of its set-up).
const POOL: usize = 64;

impl Half {
    fn new(pool: &mut Vec<(OwnedFd, OwnedFd)>) -> io::Result<Half> {
        let (pipe_r, pipe_w) = match pool.pop() {
            Some(p) => p,
            None => {
                let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
                    .map_err(io::Error::from)?;
                // a larger pipe moves more per splice; the default (64 KiB) when refused
                let _ = fcntl(&w, FcntlArg::F_SETPIPE_SZ(CHUNK as i32));
                (r, w)
            }
        };
        Ok(Half {
            pipe_r,
            pipe_w,
            held: 0,
            stalled: false,
            eof: false,
            shut: false,
        })
    }
    fn wants_read(&self) -> bool {
        !self.eof && !self.stalled
    }
}

/// A TCP connection: `fds[0]` the client's (host side), `fds[1]` the container's.
struct Conn {
    fds: [OwnedFd; 2],
    halves: [Half; 2],
    connecting: bool,
    interest: [EpollFlags; 2],
}

struct UdpFlow {
    sock: UdpSocket,
    host: usize,
    client: SocketAddr,
    last: Instant,
}

#[derive(Clone, Copy)]
enum Token {
    Stop,
    Listener(usize),
    Conn(u64, usize),
    Flow(u64),
}

const TOKEN_STOP: u64 = u64::MAX;

fn encode(t: Token) -> u64 {
    match t {
        Token::Stop => TOKEN_STOP,
        Token::Listener(i) => (i as u64) << 2,
        Token::Conn(id, side) => (id << 2) | 1 | ((side as u64) << 1),
        Token::Flow(id) => (id << 2) | 2,
    }
}

fn decode(v: u64) -> Token {
    if v == TOKEN_STOP {
        return Token::Stop;
    }
    match v & 3 {
        0 => Token::Listener((v >> 2) as usize),
        2 => Token::Flow(v >> 2),
        _ => Token::Conn(v >> 2, ((v >> 1) & 1) as usize),
    }
}

struct Loop {
    epoll: Epoll,
    bound: Vec<Bound>,
    _stop_r: OwnedFd,
    conns: HashMap<u64, Conn>,
    flows: HashMap<u64, UdpFlow>,
    flow_of: HashMap<(usize, SocketAddr), u64>,
    next: u64,
    pipes: Vec<(OwnedFd, OwnedFd)>,
}

fn would_block(e: Errno) -> bool {
    e == Errno::EAGAIN || e == Errno::EWOULDBLOCK
}

impl Loop {
    fn new(bound: Vec<Bound>, stop_r: OwnedFd) -> io::Result<Loop> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(io::Error::from)?;
        epoll
            .add(
                &stop_r,
                EpollEvent::new(EpollFlags::EPOLLIN, encode(Token::Stop)),
            )
            .map_err(io::Error::from)?;
        for (i, b) in bound.iter().enumerate() {
            let ev = EpollEvent::new(EpollFlags::EPOLLIN, encode(Token::Listener(i)));
            match &b.sock {
                HostSock::Tcp(l) => {
                    l.set_nonblocking(true)?;
                    epoll.add(l, ev)
                }
                HostSock::Udp(u) => {
                    u.set_nonblocking(true)?;
                    epoll.add(u, ev)
                }
            }
            .map_err(io::Error::from)?;
        }
        Ok(Loop {
            epoll,
            bound,
            _stop_r: stop_r,
            conns: HashMap::new(),
            flows: HashMap::new(),
            flow_of: HashMap::new(),
            next: 0,
            pipes: Vec::new(),
        })
    }

    fn run(&mut self) {
        let mut events = vec![EpollEvent::empty(); 64];
        let mut last_sweep = Instant::now();
        loop {
            let n = match self.epoll.wait(&mut events, EpollTimeout::from(10_000u16)) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(_) => return,
            };
            for ev in &events[..n] {
                match decode(ev.data()) {
                    Token::Stop => return,
                    Token::Listener(i) => self.on_listener(i),
                    Token::Conn(id, side) => self.on_conn(id, side, ev.events()),
                    Token::Flow(id) => self.on_flow(id),
                }
            }
            if last_sweep.elapsed() > Duration::from_secs(10) {
                last_sweep = Instant::now();
                self.sweep_flows();
            }
        }
    }

    fn on_listener(&mut self, i: usize) {
        let spec = self.bound[i].spec;
        match &self.bound[i].sock {
            HostSock::Tcp(_) => loop {
                let HostSock::Tcp(l) = &self.bound[i].sock else {
                    return;
                };
                let accepted = nix::sys::socket::accept4(
                    l.as_raw_fd(),
                    SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
                );
                match accepted {
                    Ok(fd) => {
                        let client = super::sys::own_fd(fd);
                        let _ = self.open_conn(client, spec.container_port);
                    }
                    Err(Errno::EINTR) | Err(Errno::ECONNABORTED) => continue,
                    // EAGAIN: all taken; else out of fds or memory: retried on the next event
                    Err(_) => return,
                }
            },
            HostSock::Udp(_) => self.on_udp_host(i),
        }
    }

    /// Connects to `127.0.0.1:port` in this (the container's) namespace for a client.
    fn open_conn(&mut self, client: OwnedFd, port: u16) -> io::Result<()> {
        let _ = nix::sys::socket::setsockopt(&client, sockopt::TcpNoDelay, &true);
        let inner = socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(io::Error::from)?;
        let _ = nix::sys::socket::setsockopt(&inner, sockopt::TcpNoDelay, &true);
        let target = SockaddrIn::new(127, 0, 0, 1, port);
        let connecting = match connect(inner.as_raw_fd(), &target) {
            Ok(()) => false,
            Err(Errno::EINPROGRESS) | Err(Errno::EINTR) => true,
            // nothing listens in the container (yet): the client's connection just closes
            Err(e) => return Err(e.into()),
        };
        let id = self.next;
        self.next += 1;
        let conn = Conn {
            fds: [client, inner],
            halves: [Half::new(&mut self.pipes)?, Half::new(&mut self.pipes)?],
            connecting,
            interest: [EpollFlags::empty(); 2],
        };
        for side in 0..2 {
            let ev = EpollEvent::new(EpollFlags::empty(), encode(Token::Conn(id, side)));
            self.epoll
                .add(&conn.fds[side], ev)
                .map_err(io::Error::from)?;
        }
        self.conns.insert(id, conn);
        if connecting {
            self.set_interest(id);
        } else {
            self.pump_both(id);
        }
        Ok(())
    }

    fn on_conn(&mut self, id: u64, side: usize, flags: EpollFlags) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if flags.contains(EpollFlags::EPOLLERR) && !conn.connecting {
            // reset: what either side still holds cannot be delivered
            self.close_conn(id);
            return;
        }
        if conn.connecting {
            if side == 1 && !flags.is_empty() {
                let err = getsockopt(&conn.fds[1], sockopt::SocketError).unwrap_or(libc::EIO);
                if err != 0 {
                    self.close_conn(id);
                    return;
                }
                conn.connecting = false;
            } else {
                return;
            }
        }
        self.pump_both(id);
    }

    /// Moves what can move both ways, then asks epoll for what each side waits on; closes
    /// the connection when both ways are finished or one failed.
    fn pump_both(&mut self, id: u64) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let ok = pump(conn, 0).and_then(|()| pump(conn, 1));
        let finished = conn.halves.iter().all(|h| h.shut);
        if ok.is_err() || finished {
            self.close_conn(id);
        } else {
            self.set_interest(id);
        }
    }

    fn set_interest(&mut self, id: u64) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        for side in 0..2 {
            let mut want = EpollFlags::empty();
            if conn.connecting {
                if side == 1 {
                    want |= EpollFlags::EPOLLOUT;
                }
            } else {
                if conn.halves[side].wants_read() {
                    want |= EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP;
                }
                if conn.halves[1 - side].held > 0 {
                    want |= EpollFlags::EPOLLOUT;
                }
            }
            if want != conn.interest[side] {
                conn.interest[side] = want;
                let mut ev = EpollEvent::new(want, encode(Token::Conn(id, side)));
                let _ = self.epoll.modify(&conn.fds[side], &mut ev);
            }
        }
    }

    fn close_conn(&mut self, id: u64) {
        if let Some(conn) = self.conns.remove(&id) {
            for fd in &conn.fds {
                let _ = self.epoll.delete(fd);
            }
            for h in conn.halves {
                if h.held == 0 && self.pipes.len() < POOL {
                    self.pipes.push((h.pipe_r, h.pipe_w));
                }
            }
        }
    }

    // UDP: a flow per client address.

    fn on_udp_host(&mut self, i: usize) {
        let mut buf = vec![0u8; 65536];
        loop {
            let HostSock::Udp(host) = &self.bound[i].sock else {
                return;
            };
            let (n, client) = match host.recv_from(&mut buf) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            let port = self.bound[i].spec.container_port;
            let id = match self.flow_of.get(&(i, client)) {
                Some(id) => *id,
                None => match self.open_flow(i, client, port) {
                    Ok(id) => id,
                    Err(_) => continue,
                },
            };
            if let Some(flow) = self.flows.get_mut(&id) {
                flow.last = Instant::now();
                let _ = flow.sock.send(&buf[..n]);
            }
        }
    }

    fn open_flow(&mut self, host: usize, client: SocketAddr, port: u16) -> io::Result<u64> {
        let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        sock.connect((Ipv4Addr::LOCALHOST, port))?;
        sock.set_nonblocking(true)?;
        let id = self.next;
        self.next += 1;
        self.epoll
            .add(
                &sock,
                EpollEvent::new(EpollFlags::EPOLLIN, encode(Token::Flow(id))),
            )
            .map_err(io::Error::from)?;
        self.flows.insert(
            id,
            UdpFlow {
                sock,
                host,
                client,
                last: Instant::now(),
            },
        );
        self.flow_of.insert((host, client), id);
        Ok(id)
    }

    fn on_flow(&mut self, id: u64) {
        let Some(flow) = self.flows.get_mut(&id) else {
            return;
        };
        let HostSock::Udp(host) = &self.bound[flow.host].sock else {
            return;
        };
        let mut buf = vec![0u8; 65536];
        loop {
            match flow.sock.recv(&mut buf) {
                Ok(n) => {
                    flow.last = Instant::now();
                    let _ = host.send_to(&buf[..n], flow.client);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // WouldBlock, or ECONNREFUSED for nothing listening: both wait for more
                Err(_) => return,
            }
        }
    }

    fn sweep_flows(&mut self) {
        let idle: Vec<u64> = self
            .flows
            .iter()
            .filter(|(_, f)| f.last.elapsed() > UDP_IDLE)
            .map(|(id, _)| *id)
            .collect();
        for id in idle {
            if let Some(f) = self.flows.remove(&id) {
                let _ = self.epoll.delete(&f.sock);
                self.flow_of.remove(&(f.host, f.client));
            }
        }
    }
}

/// Moves bytes from `conn.fds[from]` to the other side until neither reading nor writing
/// progresses; keeps reading while earlier bytes wait for the other side (so both sockets
/// stay busy) and passes an end of stream on as a write shutdown.
fn pump(conn: &mut Conn, from: usize) -> Result<(), Errno> {
    let to = 1 - from;
    let half = &mut conn.halves[from];
    let flags = SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE;
    loop {
        let mut progressed = false;
        if !half.eof && !half.stalled {
            match splice(
                conn.fds[from].as_fd(),
                None,
                half.pipe_w.as_fd(),
                None,
                CHUNK,
                flags,
            ) {
                Ok(0) => half.eof = true,
                Ok(n) => {
                    half.held += n;
                    progressed = true;
                }
                Err(e) if would_block(e) => half.stalled = half.held > 0,
                Err(Errno::EINTR) => progressed = true,
                Err(e) => return Err(e),
            }
        }
        if half.held > 0 {
            match splice(
                half.pipe_r.as_fd(),
                None,
                conn.fds[to].as_fd(),
                None,
                half.held,
                flags,
            ) {
                Ok(n) => {
                    half.held -= n;
                    half.stalled = false;
                    progressed = true;
                }
                Err(e) if would_block(e) => {}
                Err(Errno::EINTR) => progressed = true,
                Err(e) => return Err(e),
            }
        }
        if half.eof && half.held == 0 {
            if !half.shut {
                half.shut = true;
                let _ = shutdown(conn.fds[to].as_raw_fd(), Shutdown::Write);
            }
            return Ok(());
        }
        if !progressed {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PortSpec {
        s.parse().unwrap()
    }

    #[test]
    fn parses_dockers_forms() {
        assert_eq!(
            p("80"),
            PortSpec {
                host_ip: None,
                host_port: 0,
                container_port: 80,
                proto: Proto::Tcp
            }
        );
        assert_eq!(p("18081:80").host_port, 18081);
        assert_eq!(p("18081:80").container_port, 80);
        let s = p("127.0.0.1:18081:80/udp");
        assert_eq!(s.host_ip, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert_eq!(s.proto, Proto::Udp);
        let s = p("127.0.0.1::80");
        assert_eq!((s.host_port, s.container_port), (0, 80));
        let s = p("[::1]:8080:80");
        assert_eq!(s.host_ip, Some("::1".parse().unwrap()));
        assert_eq!(s.host_port, 8080);
        assert_eq!(p(":80").host_port, 0);
    }

    #[test]
    fn refuses_what_is_not_a_port() {
        for bad in ["", "x", "80/sctp", "70000:80", "80:0", "a.b:1:2", "1:2:3:x"] {
            assert!(bad.parse::<PortSpec>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn displays_canonically_and_round_trips() {
        for s in [
            "18081:80/tcp",
            "127.0.0.1:53:53/udp",
            ":80/tcp",
            "[::1]:8080:80/tcp",
        ] {
            assert_eq!(p(s).to_string(), s);
            assert_eq!(p(&p(s).to_string()), p(s));
        }
    }

    #[test]
    fn published_reads_back_what_was_bound() {
        let dir = std::env::temp_dir().join(format!("camada-ports-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bound = bind(&[p("127.0.0.1::80"), p("127.0.0.1::53/udp")]).unwrap();
        write_published(&dir, &bound).unwrap();
        let read = read_published(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(read.len(), 2);
        // sorted by container port
        assert_eq!(read[1].proto, Proto::Tcp);
        assert_eq!(read[1].host, bound[0].addr);
        assert_ne!(read[1].host.port(), 0);
        assert_eq!(read[0].to_string(), format!("{}->53/udp", bound[1].addr));
    }

    #[test]
    fn a_busy_port_is_named() {
        let first = bind(&[p("127.0.0.1::80")]).unwrap();
        let port = first[0].addr.port();
        let spec = p(&format!("127.0.0.1:{port}:80"));
        let err = bind(&[spec]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("host port {port} is already in use")),
            "{err}"
        );
    }

    /// The forwarder in this process's own namespace: a client of the host port reaches a
    /// server on 127.0.0.1, both ways, with the end of stream passed on.
    #[test]
    fn forwards_tcp_both_ways_with_eof() {
        use std::io::{Read, Write};
        let server = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let ctr = server.local_addr().unwrap().port();
        let bound = bind(&[p(&format!("127.0.0.1::{ctr}"))]).unwrap();
        let host = bound[0].addr;
        let fw = spawn(bound).unwrap();
        let echo = std::thread::spawn(move || {
            let (mut s, _) = server.accept().unwrap();
            let mut all = Vec::new();
            s.read_to_end(&mut all).unwrap();
            s.write_all(&all).unwrap();
            all.len()
        });
        let mut c = std::net::TcpStream::connect(host).unwrap();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let writer = {
            let mut c = c.try_clone().unwrap();
            let data = data.clone();
            std::thread::spawn(move || {
                c.write_all(&data).unwrap();
                c.shutdown(std::net::Shutdown::Write).unwrap();
            })
        };
        let mut back = Vec::new();
        c.read_to_end(&mut back).unwrap();
        writer.join().unwrap();
        assert_eq!(echo.join().unwrap(), data.len());
        assert!(back == data, "the echoed bytes differ");
        fw.stop();
        assert!(
            std::net::TcpStream::connect(host).is_err(),
            "port still open"
        );
    }

    #[test]
    fn forwards_udp_per_client() {
        let server = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let ctr = server.local_addr().unwrap().port();
        let bound = bind(&[p(&format!("127.0.0.1::{ctr}/udp"))]).unwrap();
        let host = bound[0].addr;
        let fw = spawn(bound).unwrap();
        let a = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let b = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        a.send_to(b"from a", host).unwrap();
        b.send_to(b"from b", host).unwrap();
        let mut buf = [0u8; 64];
        let mut peers = Vec::new();
        for _ in 0..2 {
            let (n, from) = server.recv_from(&mut buf).unwrap();
            server
                .send_to(&[b"re: ", &buf[..n]].concat(), from)
                .unwrap();
            peers.push(from);
        }
        assert_ne!(peers[0], peers[1], "two clients share one flow");
        let n = a.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"re: from a");
        let n = b.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"re: from b");
        fw.stop();
    }
}

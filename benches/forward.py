#!/usr/bin/env python3
"""Published-port forwarding: throughput and latency of camada's forwarder (`-p`, the
monitor's splice loop) against pasta's own port forwarding (`pasta -t`), a direct
loopback connection, and the same container server on the host's network (what the
container itself costs, no forwarder), in one interleaved run of wrk against busybox httpd serving a 1 MiB
file and a small one.

    sudo benches/forward.py            (RUNS=3 DURATION=5 CONNS=8 THREADS=1)

Every variant serves the same directory with the same busybox httpd: on the host's
127.0.0.1 (direct), in a camada container published with -p (camada), in a namespace of
pasta's own with -t (pasta). Rounds rotate the variants' order. Needs wrk, busybox,
pasta (passt), fixtures/mkbase and a release build (made here). Runs as root (pasta's and
camada's forwarding are the same code rootless; /dev/net/tun is 0600 on the bench
machine). Not part of CI. Prints a markdown table; the goal is camada >= 80% of pasta's
throughput.
"""
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
W = "/tmp/camada-bench-forward"
RUNS = int(os.environ.get("RUNS", "3"))
DURATION = int(os.environ.get("DURATION", "5"))
CONNS = int(os.environ.get("CONNS", "8"))
THREADS = int(os.environ.get("THREADS", "1"))
PORTS = {"direct": 18180, "camada -p": 18181, "pasta -t": 18182,
         "camada --network host (no forwarder)": 18183}

UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}
SIZES = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}


def sh(*args, **kw):
    return subprocess.run(args, check=True, **kw)


def camada(*args, **kw):
    env = dict(os.environ, CAMADA_ROOT=f"{W}/root", CAMADA_RUNROOT=f"{W}/run", HOME=W)
    return subprocess.run([f"{W}/camada", *args], check=True, env=env,
                          stdout=subprocess.PIPE, text=True, **kw).stdout


def wait_http(port, path):
    for _ in range(200):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/{path}", timeout=2) as r:
                if len(r.read()) > 0:
                    return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing answers on port {port}")


def duration(text):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    return float(m.group(1)) * UNITS[m.group(2)] if m else float("nan")


def wrk(port, path):
    out = subprocess.run(
        ["wrk", f"-t{THREADS}", f"-c{CONNS}", f"-d{DURATION}s", "--latency",
         f"http://127.0.0.1:{port}/{path}"],
        check=True, stdout=subprocess.PIPE, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"Transfer/sec:\s+([\d.]+)(B|KB|MB|GB)", out)
    bps = float(m.group(1)) * SIZES[m.group(2)]
    avg = duration(re.search(r"Latency\s+(\S+)", out).group(1))
    p99 = duration(re.search(r"99%\s+(\S+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    if errors:
        print(f"  warning: port {port} {path}: {errors.group(0)}", file=sys.stderr)
    return {"rps": rps, "bps": bps, "avg": avg, "p99": p99}


def main():
    if os.geteuid() != 0:
        sys.exit("run as root (see the docstring)")
    for tool in ("wrk", "busybox", "pasta"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: apt-get install wrk busybox-static passt")
    shutil.rmtree(W, ignore_errors=True)
    os.makedirs(f"{W}/www")
    sh("cargo", "build", "--release", "-q", cwd=ROOT)
    shutil.copy(f"{ROOT}/target/release/camada", f"{W}/camada")
    sh(f"{ROOT}/fixtures/mkbase", f"{W}/base", stdout=subprocess.DEVNULL)
    camada("load", "-i", f"{W}/base/base.tar")
    with open(f"{W}/www/big", "wb") as f:
        f.write(os.urandom(1 << 20))
    with open(f"{W}/www/small", "w") as f:
        f.write("hello from the bench\n")

    procs = []
    try:
        procs.append(subprocess.Popen(
            ["busybox", "httpd", "-f", "-p", f"127.0.0.1:{PORTS['direct']}", "-h", f"{W}/www"]))
        camada("run", "-d", "--name", "fwd", "-p", f"127.0.0.1:{PORTS['camada -p']}:80",
               "-v", f"{W}/www:/www:ro", "base", "httpd", "-f", "-p", "80", "-h", "/www")
        # the same container server without any forwarder: what the container costs
        camada("run", "-d", "--name", "hostnet", "--network", "host",
               "-v", f"{W}/www:/www:ro", "base", "httpd", "-f",
               "-p", f"127.0.0.1:{PORTS['camada --network host (no forwarder)']}", "-h", "/www")
        procs.append(subprocess.Popen(
            ["pasta", "--config-net", "-f", "-q", "--runas", "0",
             "-t", f"{PORTS['pasta -t']}:8080", "-u", "none", "-T", "none", "-U", "none",
             # port 8080 inside: pasta's own namespace may lack the mapping that would
             # let its root bind port 80 (a container host, here)
             "--", "busybox", "httpd", "-f", "-p", "8080", "-h", f"{W}/www"],
            stderr=subprocess.DEVNULL, start_new_session=True))
        for port in PORTS.values():
            wait_http(port, "small")
            wait_http(port, "big")

        names = list(PORTS)
        results = {n: {"big": [], "small": []} for n in names}
        for r in range(RUNS):
            order = names[r % len(names):] + names[:r % len(names)]
            for n in order:
                for path in ("big", "small"):
                    results[n][path].append(wrk(PORTS[n], path))
            print(f"round {r + 1}/{RUNS} done", file=sys.stderr)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        # pasta's command stays behind pasta (pid 1 of its namespace ignores SIGTERM)
        if len(procs) > 1:
            try:
                os.killpg(procs[1].pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        subprocess.run([f"{W}/camada", "rm", "-f", "fwd", "hostnet"], env=dict(
            os.environ, CAMADA_ROOT=f"{W}/root", CAMADA_RUNROOT=f"{W}/run", HOME=W),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def med(n, path, key):
        return statistics.median(x[key] for x in results[n][path])

    print(f"\n**wrk -t{THREADS} -c{CONNS} -d{DURATION}s, {RUNS} interleaved rounds, medians** "
          f"({time.strftime('%Y-%m-%dT%H:%M')})\n")
    print("| variant | 1 MiB file: MiB/s | vs pasta | 1 MiB req/s | small file: req/s | "
          "vs pasta | small latency avg | small p99 |")
    print("|---|---|---|---|---|---|---|---|")
    pb, ps_ = med("pasta -t", "big", "bps"), med("pasta -t", "small", "rps")
    for n in names:
        b, s = med(n, "big", "bps"), med(n, "small", "rps")
        print(f"| {n} | {b / (1 << 20):.0f} | {b / pb:.2f}x | {med(n, 'big', 'rps'):.0f} | "
              f"{s:.0f} | {s / ps_:.2f}x | {med(n, 'small', 'avg') * 1e3:.3f} ms | "
              f"{med(n, 'small', 'p99') * 1e3:.3f} ms |")


if __name__ == "__main__":
    main()

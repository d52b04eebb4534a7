#!/usr/bin/env python3
"""Pull/push benchmark of camada against a local registry, interleaved with its peers.

  benches/registry.py [RUNS]        (default 3 rounds; needs root for the setup only)

Images (built once, cached under /var/tmp/camada-bench/registry):
  busybox  one layer: the host's static busybox with its applet symlinks
  multi    4 layers: a debootstrap minbase rootfs (/var/tmp/camada-bench/debian-rootfs,
           made by the layer helper's bench set-up; falls back to /var/tmp/peers/debian-rootfs)
           + 10,000 small files + one 100 MiB random file + a layer changing 200 files
Layouts are packed by the peers' deterministic packer (/work/shared/peers/mkbase.py).

Each round, for each image, in a rotated order: `camada pull` into a fresh store (layers
downloaded, decompressed, digested and indexed: ready to run), `skopeo copy docker://
oci:` into a fresh dir (copy only), and `podman pull` into fresh storage when podman is
installed (unpacks). Then re-push of an unchanged image: `camada push` (HEADs only)
vs `skopeo copy oci: docker://`. Only the command is timed (monotonic clock around
fork..wait). Medians and min..max are printed; the ratio is the median of per-round
ratios. Not part of CI (it needs the big rootfs and minutes of I/O).
"""
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BIN = os.environ.get("CAMADA", os.path.join(REPO, "target/release/camada"))
B = "/var/tmp/camada-bench/registry"
PEERS = "/work/shared/peers"
sys.path.insert(0, PEERS)
import mkbase  # noqa: E402  (the peers' deterministic OCI packer)

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 3


def rootfs_dir():
    for d in ("/var/tmp/camada-bench/debian-rootfs", "/var/tmp/peers/debian-rootfs"):
        if os.path.isdir(os.path.join(d, "usr")):
            return d
    sys.exit("no debootstrap rootfs found: run /work/shared/peers/debootstrap.sh")


def build_images():
    os.makedirs(B, exist_ok=True)
    if not os.path.exists(f"{B}/oci/busybox/index.json"):
        root = f"{B}/src/busybox"
        shutil.rmtree(root, ignore_errors=True)
        mkbase.make_busybox_rootfs(root)
        mkbase.pack(f"{B}/oci/busybox", "latest", [root])
    if not os.path.exists(f"{B}/oci/multi/index.json"):
        rnd = random.Random(42)
        small = f"{B}/src/small"
        for i in range(10000):
            d = f"{small}/data/d{i // 100:03d}"
            os.makedirs(d, exist_ok=True)
            with open(f"{d}/f{i:05d}", "wb") as f:
                f.write(rnd.randbytes(rnd.choice([100, 1000, 3000, 8000])))
        big = f"{B}/src/big"
        os.makedirs(f"{big}/opt", exist_ok=True)
        with open(f"{big}/opt/blob.bin", "wb") as f:
            for _ in range(100):
                f.write(rnd.randbytes(1 << 20))
        change = f"{B}/src/change"
        for i in range(200):
            d = f"{change}/data/d{i % 100:03d}"
            os.makedirs(d, exist_ok=True)
            with open(f"{d}/f{i:05d}", "wb") as f:
                f.write(b"changed\n")
        mkbase.pack(f"{B}/oci/multi", "latest", [rootfs_dir(), small, big, change])


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start_registry():
    d = tempfile.mkdtemp(prefix="camada-bench-reg-", dir="/var/tmp")
    port = free_port()
    cfg = f"""version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {d}/storage
http:
  addr: 127.0.0.1:{port}
"""
    with open(f"{d}/config.yml", "w") as f:
        f.write(cfg)
    proc = subprocess.Popen(["/usr/bin/docker-registry", "serve", f"{d}/config.yml"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, d, f"127.0.0.1:{port}"


def run(cmd, env=None):
    t = time.monotonic()
    r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = time.monotonic() - t
    if r.returncode != 0:
        sys.exit(f"{cmd}: {r.stderr.decode()}")
    return dt


def camada_env(d):
    return dict(PATH="/usr/bin:/bin", HOME=d, CAMADA_ROOT=f"{d}/root",
                CAMADA_RUNROOT=f"{d}/run", CAMADA_CONFIG=f"{d}/config")


def main():
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} missing: cargo build --release")
    build_images()
    proc, regdir, reg = start_registry()
    results = []
    try:
        for img in ("busybox", "multi"):
            run(["skopeo", "copy", "--dest-tls-verify=false", f"oci:{B}/oci/{img}:latest",
                 f"docker://{reg}/bench/{img}:latest"])
        podman = shutil.which("podman")
        variants = ["camada", "skopeo"] + (["podman"] if podman else [])
        times = {}
        for rnd in range(RUNS):
            for img in ("busybox", "multi"):
                order = variants[rnd % len(variants):] + variants[:rnd % len(variants)]
                for v in order:
                    d = tempfile.mkdtemp(prefix="camada-bench-", dir="/var/tmp")
                    ref = f"{reg}/bench/{img}:latest"
                    subprocess.run(["sync"])
                    if v == "camada":
                        dt = run([BIN, "pull", "-q", ref], camada_env(d))
                    elif v == "skopeo":
                        dt = run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{ref}",
                                  f"oci:{d}/oci:latest"])
                    else:
                        dt = run([podman, "--root", f"{d}/storage", "--runroot", f"{d}/run",
                                  "pull", "-q", "--tls-verify=false", ref])
                    times.setdefault((img, v), []).append(dt)
                    results.append({"what": "pull", "image": img, "variant": v, "round": rnd, "s": dt})
                    shutil.rmtree(d, ignore_errors=True)
        # re-push, nothing changed
        d = tempfile.mkdtemp(prefix="camada-bench-", dir="/var/tmp")
        env = camada_env(d)
        for img in ("busybox", "multi"):
            run([BIN, "pull", "-q", f"{reg}/bench/{img}:latest"], env)
        for rnd in range(max(RUNS, 10)):
            for img in ("busybox", "multi"):
                for v in ("camada", "skopeo"):
                    ref = f"{reg}/bench/{img}:latest"
                    if v == "camada":
                        dt = run([BIN, "push", "-q", ref], env)
                    else:
                        dt = run(["skopeo", "copy", "--dest-tls-verify=false",
                                  f"oci:{B}/oci/{img}:latest", f"docker://{ref}"])
                    times.setdefault((img, "repush-" + v), []).append(dt)
                    results.append({"what": "repush", "image": img, "variant": v, "round": rnd, "s": dt})
        shutil.rmtree(d, ignore_errors=True)
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(regdir, ignore_errors=True)
    with open(f"{B}/results.jsonl", "a") as f:
        for r in results:
            f.write(json.dumps(r) + "\n")
    print(f"| what | image | median s | min..max | n |")
    print(f"|---|---|---|---|---|")
    for (img, v), ts in sorted(times.items()):
        print(f"| {v} | {img} | {statistics.median(ts):.3f} | {min(ts):.3f}..{max(ts):.3f} | {len(ts)} |")
    for img in ("busybox", "multi"):
        for base in ("skopeo", "podman"):
            a, b = times.get((img, "camada")), times.get((img, base))
            if a and b:
                print(f"{img}: camada/{base} pull ratio (median of per-round ratios): "
                      f"{statistics.median(x / y for x, y in zip(a, b)):.2f}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""camada's FUSE overlay against the kernel's overlayfs and fuse-overlayfs, same layers.

Run as root from the repository root after
`cargo build --release --example overlay_bench` (source: benches/drivers/overlay_bench.rs):

    python3 benches/overlay.py [OPS...]        (RUNS=n, B=/var/tmp/camada-ovl-bench)

Layers: l0 = a Debian-like tree taken from this host (/usr/sbin, /etc, zoneinfo,
perl-base, python3, i18n, doc: ~12k entries, ~200 MB), l1 = 10,000 small files,
l2 = one 512 MiB file. The kernel and fuse-overlayfs get them extracted as lower dirs,
camada gets the tars and their merged index. Every op runs interleaved (round robin, the
first variant rotated each round); the op alone is timed; medians and the median of the
per-round ratio to the kernel are printed. Warm = the op ran once on that mount before;
`-cold` ops run on a fresh mount after `sync; echo 3 > /proc/sys/vm/drop_caches` (page,
dentry and inode caches of the whole machine: lower dirs, tars and index alike). `mount`
is the time until the mount point answers. Server memory of camada and fuse-overlayfs is
read after ls -lR and tar of /usr: RssAnon (its own memory) and VmRSS (which for camada
also counts the page cache of the mmapped tars it touched, shared and reclaimable).
"""
import os
import shutil
import statistics
import subprocess
import sys
import time

B = os.environ.get("B", "/var/tmp/camada-ovl-bench")
RUNS = int(os.environ.get("RUNS", "5"))
EXE = os.path.abspath(os.environ.get("EXE", "target/release/examples/overlay_bench"))
TARS = [f"{B}/l0.tar", f"{B}/l1.tar", f"{B}/l2.tar"]
VARIANTS = os.environ.get("VARIANTS", "kernel,fuse-overlayfs,camada").split(",")
L0_DIRS = ["usr/sbin", "usr/share/zoneinfo", "usr/lib/x86_64-linux-gnu/perl-base", "etc",
           "usr/share/i18n", "usr/lib/python3", "usr/share/doc"]


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, **kw)


def prepare(index=True):
    """Makes what is missing of the layers, their lower dirs and the merged index."""
    os.makedirs(B, exist_ok=True)
    if not os.path.exists(f"{B}/l0.tar"):
        sh(f"tar -C / -cf {B}/l0.tar.tmp {' '.join(L0_DIRS)} 2>/dev/null || true")
        os.rename(f"{B}/l0.tar.tmp", f"{B}/l0.tar")
    if not os.path.exists(f"{B}/l1.tar"):
        src = f"{B}/src1/small"
        for d in range(100):
            os.makedirs(f"{src}/d{d}", exist_ok=True)
            for f in range(100):
                with open(f"{src}/d{d}/f{f}", "wb") as fh:
                    fh.write(os.urandom(3800))
        sh(f"tar -C {B}/src1 -cf {B}/l1.tar.tmp small && mv {B}/l1.tar.tmp {B}/l1.tar")
        shutil.rmtree(f"{B}/src1")
    if not os.path.exists(f"{B}/l2.tar"):
        os.makedirs(f"{B}/src2", exist_ok=True)
        sh(f"head -c 512M /dev/urandom > {B}/src2/big && tar -C {B}/src2 -cf {B}/l2.tar.tmp big"
           f" && mv {B}/l2.tar.tmp {B}/l2.tar")
        shutil.rmtree(f"{B}/src2")
    if not os.path.exists(f"{B}/payload.tar"):
        # the untar payload: ~100 MB of small files
        for d in range(250):
            os.makedirs(f"{B}/src3/payload/d{d}", exist_ok=True)
            for f in range(100):
                with open(f"{B}/src3/payload/d{d}/f{f}", "wb") as fh:
                    fh.write(os.urandom(4000))
        sh(f"tar -C {B}/src3 -cf {B}/payload.tar.tmp payload && mv {B}/payload.tar.tmp {B}/payload.tar")
        shutil.rmtree(f"{B}/src3")
    for i in range(3):
        if not os.path.exists(f"{B}/lower{i}.done"):
            shutil.rmtree(f"{B}/lower{i}", ignore_errors=True)
            os.makedirs(f"{B}/lower{i}")
            sh(f"tar -C {B}/lower{i} -xf {B}/l{i}.tar && touch {B}/lower{i}.done")
    if index and not os.path.exists(f"{B}/merged.idx"):
        sh(f"{EXE} index {B} {' '.join(TARS)}")


class Mount:
    def __init__(self, variant):
        self.v = variant
        self.dir = f"{B}/run-{variant}"
        self.mnt = f"{self.dir}/mnt"
        self.proc = None

    def up(self):
        self.down()
        shutil.rmtree(self.dir, ignore_errors=True)
        for d in ["upper", "work", "mnt"]:
            os.makedirs(f"{self.dir}/{d}")
        lowers = f"{B}/lower2:{B}/lower1:{B}/lower0"
        t0 = time.monotonic()
        if self.v == "kernel":
            sh(f"mount -t overlay overlay -o lowerdir={lowers},upperdir={self.dir}/upper,"
               f"workdir={self.dir}/work {self.mnt}")
        elif self.v == "fuse-overlayfs":
            sh(f"fuse-overlayfs -o lowerdir={lowers},upperdir={self.dir}/upper,"
               f"workdir={self.dir}/work {self.mnt}")
        else:
            self.proc = subprocess.Popen([EXE, "mount", f"{B}/merged.idx", self.dir, self.mnt]
                                         + TARS)
            while True:
                with open("/proc/self/mountinfo") as f:
                    if any(l.split()[4] == self.mnt for l in f):
                        break
                if self.proc.poll() is not None:
                    raise SystemExit(f"camada server exited {self.proc.returncode}")
                time.sleep(0.0005)
        return time.monotonic() - t0

    def down(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait()
            self.proc = None
        else:
            subprocess.run(["umount", self.mnt], stderr=subprocess.DEVNULL)

    def server_pid(self):
        """The serving process: ours, or fuse-overlayfs (which daemonizes) by its mount."""
        if self.proc:
            return self.proc.pid
        if self.v != "fuse-overlayfs":
            return None
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"fuse-overlayfs") and self.mnt.encode() in argv:
                return int(pid)
        return None

    def mem_kb(self):
        """(VmRSS, RssAnon) of the server in KiB, or None."""
        pid = self.server_pid()
        if pid is None:
            return None
        got = {}
        with open(f"/proc/{pid}/status") as f:
            for l in f:
                k = l.split(":")[0]
                if k in ("VmRSS", "RssAnon"):
                    got[k] = int(l.split()[1])
        return got.get("VmRSS"), got.get("RssAnon")


OPS = {
    # name: (command, needs a fresh mount, warm-up run first)
    "find": ("find {m} -type f | wc -l > /dev/null", False, True),
    "ls-lR": ("ls -lR {m} > /dev/null", False, True),
    "tar-usr": ("tar cf - -C {m} usr | cat > /dev/null", False, True),
    "dd": ("dd if={m}/big of=/dev/null bs=1M 2>/dev/null", False, True),
    "untar": ("tar -C {m} -xf " + B + "/payload.tar && sync -f {m}", True, False),
    "copyup": ("echo x >> {m}/big", True, False),
    "rm-rf": ("rm -rf {m}/usr/share/doc", True, False),
}
COLD = ["find", "ls-lR", "tar-usr", "dd"]
for _op in COLD:
    OPS[_op + "-cold"] = (OPS[_op][0], True, False)


def drop_caches():
    sh("sync")
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def main():
    if sys.argv[1:] == ["prepare"]:
        return prepare(index=False)
    prepare()
    ops = sys.argv[1:] or list(OPS) + ["mount"]
    res = {(v, o): [] for v in VARIANTS for o in ops}
    mem = {}
    mounts = {v: Mount(v) for v in VARIANTS}
    for r in range(RUNS):
        order = VARIANTS[r % len(VARIANTS):] + VARIANTS[:r % len(VARIANTS)]
        for op in ops:
            for v in order:
                m = mounts[v]
                if op == "mount":
                    res[(v, op)].append(m.up())
                    m.down()
                    continue
                print(f"round {r} {op} {v}", file=sys.stderr, flush=True)
                cmd, fresh, warm = OPS[op]
                cmd = cmd.format(m=m.mnt)
                m.up()
                if warm:
                    sh(cmd)
                if op.endswith("-cold"):
                    drop_caches()
                else:
                    sh("sync")
                t0 = time.monotonic()
                sh(cmd)
                res[(v, op)].append(time.monotonic() - t0)
                if op in ("ls-lR", "tar-usr") and m.mem_kb():
                    mem.setdefault((v, op), []).append(m.mem_kb())
                m.down()
    print(f"| op (median of {RUNS}, warm unless noted) | " + " | ".join(VARIANTS) + " |")
    print("|---" * (len(VARIANTS) + 1) + "|")
    for op in ops:
        row = [op]
        k = res.get(("kernel", op))
        for v in VARIANTS:
            xs = res[(v, op)]
            med = statistics.median(xs)
            cell = f"{med * 1000:.1f} ms" if med < 1 else f"{med:.2f} s"
            if k and v != "kernel":
                ratio = statistics.median([a / b for a, b in zip(xs, k) if b > 0])
                cell += f" [{ratio:.2f}]"
            row.append(cell)
        print("| " + " | ".join(row) + " |")
    for (v, op), xs in sorted(mem.items()):
        rss = statistics.median(x[0] for x in xs) / 1024
        anon = statistics.median(x[1] for x in xs) / 1024
        print(f"\n{v} server after {op}: RssAnon {anon:.1f} MiB, VmRSS {rss:.1f} MiB", end="")
    print()


if __name__ == "__main__":
    main()

#!/bin/bash
# `camada build` against `buildah bud` on the same Dockerfile and context (issue 7), as root,
# in one hyperfine run: FROM a debootstrap (minbase) image, a RUN that writes 200 files,
# COPY of a 50 MiB context (200 files of 256 KiB), ENV, WORKDIR, CMD.
#   1. cold build (fresh store holding only the base image, no cache),
#   2. rebuild with everything cached,
#   3. rebuild after one copied file changed (RUN cached; COPY and later redone).
# Goals (issue 7): 1.5 s, 0.1 s, 0.5 s; buildah measured 3.0 s, 0.9 s, 2.3 s here.
# Measured 2026-11-23 04:10 (5 runs each, a busy 2-core machine: other builds running):
#   cold       camada 1.96 s ± 0.49   buildah 5.18 s ± 1.25   (2.65x)
#   cached     camada 0.204 s ± 0.014 buildah 1.52 s ± 0.41   (7.4x)
#   one file   camada 0.425 s ± 0.20  buildah 3.38 s ± 0.72   (8.0x)
# Since then COPY keys use the context's content memo: a fully cached rebuild of the same
# 50 MiB context (FROM the busybox base) took 8 ms ± 2, one file changed 0.31 s ± 0.06.
#
#   sudo benches/build.sh
#
# Needs: hyperfine, buildah, runc, debootstrap (apt-get install hyperfine buildah runc
# debootstrap), a release build (cargo build --release). The Debian rootfs is made once
# with debootstrap --variant=minbase (cached in /var/tmp/camada-bench/debian-rootfs, the
# peers' cache). buildah runs as the peers ran it (--runtime runc and --ulimit: see
# /work/shared/peers/RESULTS.md). Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
W=/tmp/camada-bench-build
RUNS=${RUNS:-5}
DEB=/var/tmp/camada-bench/debian-rootfs
rm -rf "$W"; mkdir -p "$W"
cargo build --release -q
mkdir -p "$W/bin"; install -m 755 target/release/camada "$W/bin/camada"
if ! [ -x "$DEB/bin/bash" ]; then
    mkdir -p "$(dirname "$DEB")"
    debootstrap --variant=minbase bookworm "$DEB" >/dev/null
fi

# the context: the peers' Dockerfile, 50 MiB of incompressible data in 200 files
CTX=$W/ctx
mkdir -p "$CTX/data"
for i in $(seq -w 0 199); do head -c 262144 /dev/urandom > "$CTX/data/blob$i.bin"; done
cat > "$CTX/Dockerfile" <<'EOF'
FROM debian:bench
RUN mkdir -p /app/gen && for i in $(seq 1 200); do echo "file $i" > /app/gen/f$i; done && echo done > /app/gen/marker
COPY data/ /app/data/
ENV APP_MODE=bench LANG=C.UTF-8
WORKDIR /app
CMD ["/bin/bash", "-c", "ls /app"]
EOF

# the base image in both stores (the template stores are copied before each cold build)
export CAMADA_ROOT=$W/camada-template CAMADA_RUNROOT=$W/run
tar -C "$DEB" -cf "$W/debian.tar" .
"$W/bin/camada" import "$W/debian.tar" debian:bench >/dev/null
"$W/bin/camada" save --format oci-archive -o "$W/debian-oci.tar" debian:bench
B="buildah --root $W/buildah/root --runroot $W/buildah/runroot"
BT="buildah --root $W/buildah-template/root --runroot $W/buildah-template/runroot"
$BT pull -q "oci-archive:$W/debian-oci.tar" >/dev/null
$BT tag "$($BT images -q | head -1)" debian:bench
UL="--ulimit nofile=1024:1024 --ulimit nproc=4096:4096"
CAM="env CAMADA_ROOT=$W/camada CAMADA_RUNROOT=$W/run $W/bin/camada build -q -t bench/app $CTX"
BUD="$B bud --layers --runtime runc $UL -q -t bench/app $CTX"
reset_camada="rm -rf $W/camada && cp -a $W/camada-template $W/camada && sync"
reset_buildah="$B rm -a >/dev/null 2>&1; rm -rf $W/buildah && cp -a $W/buildah-template $W/buildah && sync"

hyperfine -N -w 1 -r "$RUNS" --export-markdown "$W/cold.md" \
  -n "camada build (cold)" --prepare "sh -c '$reset_camada'" "$CAM" \
  -n "buildah bud (cold)" --prepare "sh -c '$reset_buildah'" "$BUD"
hyperfine -N -w 1 -r "$RUNS" --export-markdown "$W/cached.md" \
  -n "camada build (all cached)" "$CAM" \
  -n "buildah bud (all cached)" "$BUD"
touch_one="sh -c 'date +%s%N >> $CTX/data/blob000.bin'"
hyperfine -N -w 1 -r "$RUNS" --export-markdown "$W/changed.md" \
  -n "camada build (one file changed)" --prepare "$touch_one" "$CAM" \
  -n "buildah bud (one file changed)" --prepare "$touch_one" "$BUD"
cat "$W/cold.md" "$W/cached.md" "$W/changed.md"
$B rm -a >/dev/null 2>&1 || true

#!/bin/bash
# Start latency of `camada run --rm IMAGE true` against the peers of issue 5, rootless, in
# one interleaved hyperfine run: podman (native overlay, runc, --network none), runc of a
# prepared rootless bundle, bwrap, and unshare; plus `camada exec` into a running container.
#
#   sudo benches/start_latency.sh [USER]      (default USER: camadatest, made by the tests)
#
# Needs: hyperfine, podman, runc, bwrap (apt-get install hyperfine podman runc bubblewrap),
# a release build (cargo build --release) and fixtures/mkbase. Everything runs as USER
# through runuser; stores live under /tmp/camada-bench-start. Not part of CI.
# With a debootstrap minbase tree at $DEBIAN (default /var/tmp/camada-bench/debian-rootfs)
# the same peers also start the debian image (imported); then a burst of 20 parallel
# `run --rm base true` (camada and podman).
set -euo pipefail
cd "$(dirname "$0")/.."
U=${1:-camadatest}
W=/tmp/camada-bench-start
rm -rf "$W"; mkdir -p "$W"
cargo build --release -q
install -m 755 target/release/camada "$W/camada"
fixtures/mkbase "$W/base" >/dev/null
chmod -R a+rX "$W/base"
DEBIAN=${DEBIAN:-/var/tmp/camada-bench/debian-rootfs}
if [ -d "$DEBIAN" ]; then tar -C "$DEBIAN" --exclude=./dev -cf "$W/debian.tar" .; chmod a+r "$W/debian.tar"; fi
chown "$U" "$W"
runuser -u "$U" -- env -i W="$W" RUNS="${RUNS:-20}" bash -euc '
export HOME=$W PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin XDG_RUNTIME_DIR=$W/xdg
export CAMADA_ROOT=$W/root CAMADA_RUNROOT=$W/run
mkdir -p $XDG_RUNTIME_DIR; chmod 700 $XDG_RUNTIME_DIR; cd $W
$W/camada load -i $W/base/base.tar >/dev/null
P="podman --root $W/podman --runroot $XDG_RUNTIME_DIR/podman --storage-driver overlay"
$P load -i $W/base/base.tar >/dev/null 2>&1
mkdir -p bundle/rootfs; tar -C bundle/rootfs -xf $W/base/rootfs.tar 2>/dev/null || true
(cd bundle && runc spec --rootless && sed -i "s/\"sh\"/\"true\"/; s/\"terminal\": true/\"terminal\": false/" config.json)
touch in out   # rootless runc fchowns its stdio: give it files the user owns
hyperfine -N -w 3 -r ${RUNS:-20} --export-markdown $W/start.md \
  -n "camada run --rm base true" "$W/camada run --rm base true" \
  -n "podman run --rm --runtime runc --network none base true" "$P run --rm --runtime runc --network none base true" \
  -n "runc run (rootless bundle)" "sh -c '\''runc --root $W/runc run -b $W/bundle c\$\$ <$W/in >$W/out 2>&1'\''" \
  -n "bwrap --unshare-all --ro-bind ROOTFS / true" "bwrap --unshare-all --ro-bind $W/bundle/rootfs / /bin/true" \
  -n "unshare -Urmpf --mount-proc true" "unshare -Urmpf --mount-proc true"
$W/camada run -d --name bench-exec base sleep 600 >/dev/null
hyperfine -N -w 3 -r ${RUNS:-20} -n "camada exec bench-exec true" "$W/camada exec bench-exec true"
$W/camada rm -f bench-exec >/dev/null
if [ -f $W/debian.tar ]; then
  $W/camada import $W/debian.tar debian >/dev/null
  $P import $W/debian.tar debian >/dev/null 2>&1
  mkdir -p dbundle/rootfs; tar -C dbundle/rootfs -xf $W/debian.tar 2>/dev/null || true
  cp bundle/config.json dbundle/
  hyperfine -N -w 3 -r ${RUNS:-20} --export-markdown $W/start-debian.md \
    -n "camada run --rm debian true" "$W/camada run --rm debian true" \
    -n "podman run --rm --runtime runc --network none debian true" "$P run --rm --runtime runc --network none debian true" \
    -n "runc run (rootless debian bundle)" "sh -c '\''runc --root $W/runc run -b $W/dbundle d\$\$ <$W/in >$W/out 2>&1'\''" \
    -n "bwrap --unshare-all --ro-bind DEBIAN / true" "bwrap --unshare-all --ro-bind $W/dbundle/rootfs / /bin/true" \
    -n "unshare -Urmpf --mount-proc true" "unshare -Urmpf --mount-proc true"
  cat $W/start-debian.md
fi
hyperfine -w 1 -r 5 --export-markdown $W/burst.md \
  -n "20 x camada run --rm base true, in parallel" "for i in \$(seq 20); do $W/camada run --rm base true & done; wait" \
  -n "20 x podman run --rm base true, in parallel" "for i in \$(seq 20); do $P run --rm --runtime runc --network none base true & done; wait"
cat $W/start.md $W/burst.md
# rootless podman leaves its pause process (holding its user namespace) behind
kill "$(cat $XDG_RUNTIME_DIR/libpod/tmp/pause.pid 2>/dev/null)" 2>/dev/null || true
'

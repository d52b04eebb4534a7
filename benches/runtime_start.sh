#!/bin/sh
# Start latency of the runtime alone (`runtime_run ROOTFS true`: user namespace with the
# subuid maps, mount/pid/uts/ipc/net namespaces, /proc, /dev, /sys, pivot_root, exec, exit,
# cleanup) against bwrap and unshare, rootless (as user camadatest through setpriv, like
# ../shared/peers/bench_start.py) and as root. Not part of CI. Needs root (to switch user),
# hyperfine, bwrap (apt-get install bubblewrap). PROFILE=release for an optimised build.
#   benches/runtime_start.sh [RUNS]
set -eu
cd "$(dirname "$0")/.."
RUNS=${1:-30}
PROFILE=${PROFILE:-debug}
if [ "$PROFILE" = release ]; then cargo build -q --release --example runtime_run
else cargo build -q --example runtime_run; fi
BIN=$(pwd)/target/$PROFILE/examples/runtime_run
USER_NAME=${USER_NAME:-camadatest}
D=$(mktemp -d /tmp/camada-bench-XXXXXX)
trap 'rm -rf "$D"' EXIT
chmod 755 "$D"
R=$D/rootfs
mkdir -p "$R/bin" "$R/etc" "$R/proc" "$R/dev" "$R/sys" "$R/tmp"
cp /bin/busybox "$R/bin/busybox"
for a in sh true; do ln -s busybox "$R/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$R/etc/passwd"
echo 'root:x:0:' > "$R/etc/group"
chown -R "$USER_NAME:" "$D"
U=$(id -u "$USER_NAME"); G=$(id -g "$USER_NAME")
AS="setpriv --reuid=$U --regid=$G --init-groups --reset-env env TMPDIR=$D"
hyperfine -N -w 3 -r "$RUNS" \
  -n "camada runtime, rootless" "$AS $BIN $R true" \
  -n "camada runtime --network host, rootless" "$AS $BIN --network host $R true" \
  -n "bwrap --unshare-all, rootless" "$AS bwrap --unshare-all --ro-bind $R / /bin/true" \
  -n "unshare -Urmpf --mount-proc, rootless" "$AS unshare -Urmpf --mount-proc true" \
  -n "setpriv wrapper only" "$AS true" \
  -n "camada runtime, root" "$BIN $R true" \
  -n "bwrap --unshare-all, root" "bwrap --unshare-all --ro-bind $R / /bin/true"

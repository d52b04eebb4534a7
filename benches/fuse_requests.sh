#!/bin/bash
# The FUSE requests a command makes the kernel send, counted by opcode (the kernel's
# fuse:fuse_request_send tracepoint). Run as root; counts every FUSE mount of the machine.
#
#   sudo benches/fuse_requests.sh 'ls -lR /path/to/mount > /dev/null'
#
# How the overlay's round trips were found and removed (issue 4): each request the kernel
# sends is a round trip to the server, which the kernel's own overlayfs never pays.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 'COMMAND'" >&2; exit 2; }
T=/sys/kernel/tracing
[ -d $T/events ] || mount -t tracefs nodev $T
[ -d $T/events/fuse ] || { echo "this kernel has no fuse tracepoints (Linux 6.13+ has them)" >&2; exit 1; }
echo 0 > $T/tracing_on
echo > $T/trace
echo 65536 > $T/buffer_size_kb
echo 1 > $T/events/fuse/fuse_request_send/enable
echo 1 > $T/tracing_on
rc=0
bash -c "$1" || rc=$?
echo 0 > $T/tracing_on
echo 0 > $T/events/fuse/fuse_request_send/enable
grep -o '(FUSE_[A-Z_0-9]*)' $T/trace | sort | uniq -c | sort -rn
exit $rc

#!/bin/sh
# Runs the controller under heaptrack (Debian's `heaptrack`) for `watch-cluster-bench --controller`: the
# same pid (the bench reads its /proc), the raw trace written to /tmp/heaptrack/ht-<pid>.raw. The bench
# clears the controller's environment, so the binary is the dev build next to this script's workspace
# (the release profile strips symbols); copy the script to point it elsewhere.
#
#   cargo build -p watch-cluster && cargo build --release -p watch-cluster-bench
#   target/release/watch-cluster-bench --baseline-windows 0 --controller bench/heaptrack-controller.sh
#   /usr/lib/heaptrack/libexec/heaptrack_interpret < /tmp/heaptrack/ht-PID.raw | zstd > ht.zst
#   heaptrack_print -f ht.zst -l 1        # live at the end ("leaked"); -p: at the peak
#
# A copy of the raw file taken mid-run (after sync, say) gives the live heap at that moment.
set -eu
mkdir -p /tmp/heaptrack
DUMP_HEAPTRACK_OUTPUT="/tmp/heaptrack/ht-$$.raw" LD_PRELOAD=/usr/lib/heaptrack/libheaptrack_preload.so \
    exec "$(dirname "$0")/../target/debug/watch-cluster" "$@"

#!/usr/bin/env bash
# Stops the cluster infra/ceph/start.sh started in $CEPH_DIR: its ceph-fuse mounts first (with the
# MDS gone an unmount hangs), then every daemon, by the pids it recorded. Touches nothing else.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

if [ -f "$CEPH_RUN/mounts" ]; then
  while read -r m; do [ -n "$m" ] && ceph_unmount "$m" && ceph_say "unmounted $m"; done <"$CEPH_RUN/mounts"
  : >"$CEPH_RUN/mounts"
fi
for name in rgw mgr.x mds.a osd.0 mon.a; do ceph_stop_pid "$name"; done
rm -f "$CEPH_ENV_FILE"

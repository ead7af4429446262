#!/usr/bin/env bash
# One part of the running cluster at a time, for fault tests and by hand:
#   ctl.sh stop|start|restart mon|osd|mds|rgw|mgr
#   ctl.sh kill-mount MOUNTPOINT     SIGKILL the ceph-fuse client of one mount (the mount dies)
#   ctl.sh mount MOUNTPOINT          (re)mount: clears a dead mount first
#   ctl.sh unmount MOUNTPOINT
#   ctl.sh status
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

daemon_name() {
  case $1 in
    mon) echo mon.a ;; osd) echo osd.0 ;; mds) echo mds.a ;; rgw) echo rgw ;; mgr) echo mgr.x ;;
    *) echo "unknown daemon $1 (mon, osd, mds, rgw, mgr)" >&2; exit 2 ;;
  esac
}

start_daemon() {
  case $1 in
    mon) ceph_start_mon ;; osd) ceph_start_osd ;; mds) ceph_start_mds ;; rgw) ceph_start_rgw ;; mgr) ceph_start_mgr ;;
  esac
}

[ -f "$CEPH_CONF_FILE" ] || { echo "no cluster in $CEPH_DIR (run infra/ceph/start.sh)" >&2; exit 1; }
command=${1:-status}
case $command in
  stop) ceph_stop_pid "$(daemon_name "$2")" ;;
  start) daemon_name "$2" >/dev/null; ceph_pid_alive "$(daemon_name "$2")" || start_daemon "$2"; ceph_say "$2 running" ;;
  restart) ceph_stop_pid "$(daemon_name "$2")"; start_daemon "$2"; ceph_say "$2 restarted" ;;
  kill-mount)
    name=fuse-$(ceph_mount_name "$2")
    ceph_pid_alive "$name" || { echo "no ceph-fuse runs for $2" >&2; exit 1; }
    kill -9 "$(cat "$CEPH_RUN/$name.pid")"; rm -f "$CEPH_RUN/$name.pid"; ceph_say "killed the ceph-fuse of $2" ;;
  mount) ceph_unmount "$2"; ceph_mount "$2"; ceph_say "mounted $2" ;;
  unmount) ceph_unmount "$2"; ceph_say "unmounted $2" ;;
  status)
    for name in mon.a osd.0 mds.a rgw mgr.x; do
      if ceph_pid_alive "$name"; then echo "$name: running ($(cat "$CEPH_RUN/$name.pid"))"; else echo "$name: stopped"; fi
    done
    while read -r m; do
      if ceph_mounted "$m" && stat -t "$m" >/dev/null 2>&1; then echo "mount $m: ok"; else echo "mount $m: down"; fi
    done <"$CEPH_RUN/mounts" ;;
  *) echo "usage: ctl.sh stop|start|restart DAEMON | kill-mount|mount|unmount MOUNTPOINT | status" >&2; exit 2 ;;
esac

# Shared by start.sh, stop.sh and ctl.sh (sourced, not run): where the one-host Ceph cluster lives,
# and how each of its daemons and ceph-fuse mounts is started and stopped. See docs/DEPLOY-CEPHFS.md.
#
# Settings (environment, all optional):
#   CEPH_DIR       run folder: config, daemon data, logs, pids, the env file    (/tmp/litebase-ceph)
#   CEPH_NODES     how many ceph-fuse mounts start.sh makes, one per node      (3)
#   CEPH_MOUNTS    the mount points themselves, space-separated (overrides CEPH_NODES; default
#                  $CEPH_DIR/mnt/n1 ... nN)
#   CEPH_MON_PORT  the monitor's msgr2 port; msgr1 listens one above it         (40310)
#   CEPH_RGW_PORT  RGW (S3) on 127.0.0.1                                         (17490)
#   CEPH_STORE     memstore (fast, in memory) or bluestore (a sparse file)       (memstore)
#   CEPH_S3_BUCKET the bucket start.sh creates                                    (litebase)

CEPH_DIR=${CEPH_DIR:-/tmp/litebase-ceph}
CEPH_RUN=$CEPH_DIR/run
CEPH_CONF_FILE=$CEPH_RUN/ceph.conf
CEPH_ENV_FILE=$CEPH_DIR/env
CEPH_MON_PORT=${CEPH_MON_PORT:-40310}
CEPH_RGW_PORT=${CEPH_RGW_PORT:-17490}
CEPH_STORE=${CEPH_STORE:-memstore}
CEPH_S3_BUCKET=${CEPH_S3_BUCKET:-litebase}
CEPH_S3_ACCESS_KEY=LITEBASETESTKEY
CEPH_S3_SECRET_KEY=LITEBASETESTSECRET
CEPH_RGW_ENDPOINT=http://127.0.0.1:$CEPH_RGW_PORT
export CEPH_CONF=$CEPH_CONF_FILE

# Debian bookworm's Ceph 16 packages; ceph-mgr only runs while a pool quota is tested (ctl.sh).
CEPH_PACKAGES=(ceph-mon ceph-osd ceph-mds ceph-mgr radosgw ceph-fuse ceph-common fuse uuid-runtime curl)

ceph_installed() {
  command -v ceph-mon >/dev/null 2>&1 && command -v ceph-osd >/dev/null 2>&1 && command -v ceph-mds >/dev/null 2>&1 &&
    command -v radosgw >/dev/null 2>&1 && command -v ceph-fuse >/dev/null 2>&1 && command -v uuidgen >/dev/null 2>&1
}

ceph_t0=$(date +%s%N)
ceph_say() { echo "[ceph $(( ($(date +%s%N) - ceph_t0) / 1000000 )) ms] $*"; }

# Runs a command quietly (Ceph's tools report success on stderr); shows its output if it fails.
ceph_quiet() {
  local out
  out=$("$@" 2>&1) || { echo "$*: $out" >&2; return 1; }
}

# wait_for SECONDS WHAT COMMAND...: run COMMAND every 0.1 s until it succeeds.
ceph_wait_for() {
  local secs=$1 what=$2; shift 2
  local end=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$end" ]; then echo "timed out after ${secs}s waiting for $what" >&2; return 1; fi
    sleep 0.1
  done
}

ceph_mount_points() {
  if [ -n "${CEPH_MOUNTS:-}" ]; then echo "$CEPH_MOUNTS"; return; fi
  local out="" i
  for i in $(seq 1 "${CEPH_NODES:-3}"); do out="$out $CEPH_DIR/mnt/n$i"; done
  echo "${out# }"
}

# A daemon started in the background, in its own session (so a test's signals never reach it),
# its pid in $CEPH_RUN/NAME.pid.
ceph_spawn() {
  local name=$1; shift
  setsid "$@" >"$CEPH_RUN/log/$name.out" 2>&1 &
  echo $! >"$CEPH_RUN/$name.pid"
}

ceph_pid_alive() { [ -f "$CEPH_RUN/$1.pid" ] && kill -0 "$(cat "$CEPH_RUN/$1.pid")" 2>/dev/null; }

# SIGTERM, then SIGKILL after 5 s; by pid file only.
ceph_stop_pid() {
  local name=$1 pid i
  [ -f "$CEPH_RUN/$name.pid" ] || return 0
  pid=$(cat "$CEPH_RUN/$name.pid")
  if kill "$pid" 2>/dev/null; then
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
    ceph_say "stopped $name ($pid)"
  fi
  rm -f "$CEPH_RUN/$name.pid"
}

ceph_start_mon() {
  ceph_spawn mon.a ceph-mon -i a -f
  ceph_wait_for 30 "the monitor" ceph -s --connect-timeout 1
}

ceph_start_osd() {
  ceph_spawn osd.0 ceph-osd -i 0 -f
  ceph_wait_for 60 "the OSD to be up" sh -c "ceph osd stat -f json | grep -q '\"num_up_osds\":1'"
}

ceph_start_mds() {
  ceph_spawn mds.a ceph-mds -i a -f
  ceph_wait_for 60 "an active MDS" sh -c "ceph mds stat | grep -q 'up:active'"
}

ceph_start_rgw() {
  ceph_spawn rgw radosgw -n client.rgw.a -f
  ceph_wait_for 60 "RGW on $CEPH_RGW_ENDPOINT" curl -s -o /dev/null "$CEPH_RGW_ENDPOINT/"
}

# The manager reports pool usage to the monitor, which is what makes a pool quota bite. It is
# not needed otherwise, and its Python modules cost CPU, so it runs only while asked for.
ceph_start_mgr() {
  ceph_spawn mgr.x ceph-mgr -i x -f
  ceph_wait_for 60 "an active manager" sh -c "ceph mgr stat -f json | grep -q '\"available\": *true'"
}

ceph_mounted() { awk -v m="$1" '$2 == m && $3 == "fuse.ceph-fuse" {found=1} END {exit !found}' /proc/mounts; }

# One ceph-fuse client per mount point: its own cache and capabilities, as a separate machine's
# would have. Its pid goes to fuse-NAME.pid so that a test can kill exactly this client.
ceph_mount() {
  local mountpoint=$1 name
  name=$(ceph_mount_name "$mountpoint")
  mkdir -p "$mountpoint"
  # -f: stay in the foreground, so that the pid we record is the client itself.
  ceph_spawn "fuse-$name" ceph-fuse -f -n client.admin --admin-socket="$CEPH_RUN/fuse-$name.asok" "$mountpoint"
  ceph_wait_for 30 "ceph-fuse on $mountpoint" ceph_mounted "$mountpoint"
  grep -qxF "$mountpoint" "$CEPH_RUN/mounts" 2>/dev/null || echo "$mountpoint" >>"$CEPH_RUN/mounts"
}

# A dead client leaves its mount point answering ENOTCONN: a lazy unmount clears it.
ceph_unmount() {
  local mountpoint=$1 name
  name=$(ceph_mount_name "$mountpoint")
  if awk -v m="$mountpoint" '$2 == m {found=1} END {exit !found}' /proc/mounts; then
    timeout 10 umount "$mountpoint" 2>/dev/null || umount -l "$mountpoint"
  fi
  ceph_stop_pid "fuse-$name"
}

ceph_mount_name() { echo "$1" | tr -c 'a-zA-Z0-9\n' '_'; }

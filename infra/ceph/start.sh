#!/usr/bin/env bash
# A one-host Ceph cluster for Litebase's tests and for trying Litebase on a real distributed file
# system: 1 monitor, 1 OSD (memstore by default), 1 MDS (CephFS), RGW as S3 on 127.0.0.1, and one
# ceph-fuse mount per node. No systemd, no cephadm: plain daemons whose pids are in $CEPH_DIR/run.
#
#   bash infra/ceph/start.sh      # installs the Debian packages first when missing (as root)
#   . /tmp/litebase-ceph/env      # what tests and nodes need: mounts, S3 endpoint, keys, bucket
#   bash infra/ceph/stop.sh
#
# Settings are read from the environment: see infra/ceph/lib.sh. Any cluster already running in
# $CEPH_DIR is stopped first. Takes about 3-5 s once the packages are there (docs/DEPLOY-CEPHFS.md).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

if ! ceph_installed; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    ceph_say "installing ${CEPH_PACKAGES[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${CEPH_PACKAGES[@]}" >/dev/null
    ceph_say "packages installed"
  else
    echo "Ceph is not installed; as root: apt-get install --no-install-recommends ${CEPH_PACKAGES[*]}" >&2
    exit 1
  fi
fi
[ -e /dev/fuse ] || { echo "no /dev/fuse: ceph-fuse cannot mount here" >&2; exit 1; }

bash "$here/stop.sh" >/dev/null 2>&1 || true
rm -rf "$CEPH_RUN" "$CEPH_ENV_FILE"
mkdir -p "$CEPH_RUN"/{mon.a,osd.0,mds.a,mgr.x,rgw,log}
: >"$CEPH_RUN/mounts"

FSID=$(uuidgen)
MON_ADDR="[v2:127.0.0.1:$CEPH_MON_PORT,v1:127.0.0.1:$((CEPH_MON_PORT + 1))]"
cat >"$CEPH_CONF_FILE" <<EOF
[global]
fsid = $FSID
mon host = $MON_ADDR
public addr = 127.0.0.1
ms bind ipv6 = false
# Without it RGW never authenticates to the monitor.
ms mon client mode = crc secure
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 1
osd pool default pgp num = 1
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
# A shared test machine's disk may be well used; the monitor must not stop for it.
mon data avail warn = 2
mon data avail crit = 1
osd crush chooseleaf type = 0
run dir = $CEPH_RUN
log file = $CEPH_RUN/log/\$name.log
admin socket = $CEPH_RUN/\$name.asok
keyring = $CEPH_RUN/keyring
erasure code dir = /usr/lib/x86_64-linux-gnu/ceph/erasure-code
plugin dir = /usr/lib/x86_64-linux-gnu/ceph
osd class dir = /usr/lib/x86_64-linux-gnu/rados-classes
[mon]
# Start in ~3 s instead of ~8 s.
paxos propose interval = 0.1
paxos min wait = 0.01
[mon.a]
mon data = $CEPH_RUN/mon.a
mon cluster log file = $CEPH_RUN/log/cluster.log
[mgr]
mgr data = $CEPH_RUN/mgr.\$id
# Pool usage reaches the monitor (and a pool quota bites) within about a second.
mgr stats period = 1
mon mgr beacon grace = 10
[osd]
osd data = $CEPH_RUN/\$name
osd objectstore = $CEPH_STORE
memstore device bytes = 2147483648
bluestore block path = $CEPH_RUN/\$name.block
bluestore block create = true
bluestore block size = 4294967296
bluestore fsck on mount = false
osd max object name len = 460
osd max object namespace len = 64
[mds]
# A contended rename takes ~0.15 s instead of ~1.2 s.
mds tick interval = 0.5
# A client that holds capabilities and does not answer a revoke within 2 s (its ceph-fuse was
# killed, its machine is gone or cut off) is evicted. Without it the files it had open (the lease,
# the log folder) stay blocked for everyone else until its session times out (session_timeout,
# 60 s by default, 30 s at least): measured here, another client's read of such a file waited
# 28.4 s with session_timeout 30 and 2.6 s with this setting.
mds cap revoke eviction timeout = 2
[mds.a]
mds data = $CEPH_RUN/mds.a
[client]
# No client object cache, and a fast tick: another client sees a write after ~11 ms, not ~0.5 s.
client oc = false
client tick interval = 0.1
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$CEPH_RGW_PORT
rgw data = $CEPH_RUN/rgw
rgw dns name = localhost
log file = $CEPH_RUN/log/rgw.log
EOF

ceph-authtool --create-keyring "$CEPH_RUN/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool "$CEPH_RUN/keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
monmaptool --create --fsid "$FSID" --addv a "$MON_ADDR" "$CEPH_RUN/monmap" >/dev/null
ceph-mon --mkfs -i a --monmap "$CEPH_RUN/monmap" --keyring "$CEPH_RUN/keyring"
ceph_start_mon
ceph_say "monitor answers"

OSD_UUID=$(uuidgen)
OSD_ID=$(ceph osd new "$OSD_UUID")
[ "$OSD_ID" = 0 ] || { echo "expected osd.0, got osd.$OSD_ID" >&2; exit 1; }
ceph-osd -i 0 --mkfs --osd-uuid "$OSD_UUID" >"$CEPH_RUN/log/osd.mkfs.out" 2>&1
ceph_start_osd
ceph_say "osd.0 up ($CEPH_STORE)"

ceph_quiet ceph osd pool create cephfs_meta 1
ceph_quiet ceph osd pool create cephfs_data 1
ceph_quiet ceph fs new cephfs cephfs_meta cephfs_data
# A client that stops talking to the MDS is stale after session_timeout (60 s by default, 30 s at
# least) and closed after session_autoclose (300 s): the shortest the file system allows. (A dead
# client that holds capabilities others want is evicted sooner: mds cap revoke eviction timeout.)
ceph_quiet ceph fs set cephfs session_timeout 30
ceph_quiet ceph fs set cephfs session_autoclose 30
ceph_spawn mds.a ceph-mds -i a -f

ceph_start_rgw
ceph_say "RGW answers on $CEPH_RGW_ENDPOINT"
ceph_quiet radosgw-admin user create --uid=litebase --display-name=litebase \
  --access-key="$CEPH_S3_ACCESS_KEY" --secret-key="$CEPH_S3_SECRET_KEY"
# curl signs S3 requests itself; RGW wants the payload hash header (here: of the empty body).
curl -sSf --aws-sigv4 "aws:amz:us-east-1:s3" --user "$CEPH_S3_ACCESS_KEY:$CEPH_S3_SECRET_KEY" \
  -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
  -X PUT "$CEPH_RGW_ENDPOINT/$CEPH_S3_BUCKET" >/dev/null
ceph_say "S3 user and bucket $CEPH_S3_BUCKET ready"

ceph_wait_for 60 "an active MDS" sh -c "ceph mds stat | grep -q 'up:active'"
ceph_say "MDS active"

MOUNT_POINTS=$(ceph_mount_points)
for m in $MOUNT_POINTS; do ceph_mount "$m"; done
ceph_say "ceph-fuse mounted: $MOUNT_POINTS"

cat >"$CEPH_ENV_FILE" <<EOF
export LITEBASE_CEPH_DIR=$CEPH_DIR
export LITEBASE_CEPH_CONF=$CEPH_CONF_FILE
export LITEBASE_CEPH_MOUNTS="$MOUNT_POINTS"
export LITEBASE_CEPH_S3_ENDPOINT=$CEPH_RGW_ENDPOINT
export LITEBASE_CEPH_S3_REGION=us-east-1
export LITEBASE_CEPH_S3_ACCESS_KEY_ID=$CEPH_S3_ACCESS_KEY
export LITEBASE_CEPH_S3_SECRET_ACCESS_KEY=$CEPH_S3_SECRET_KEY
export LITEBASE_CEPH_S3_BUCKET=$CEPH_S3_BUCKET
EOF
ceph_say "cluster ready; its settings are in $CEPH_ENV_FILE:"
cat "$CEPH_ENV_FILE"

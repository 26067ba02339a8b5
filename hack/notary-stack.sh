#!/usr/bin/env bash
# Local Notary v1 trust stack for tests, the demo and benchmarks, built from the Debian
# packages: notary-signer + notary-server (memory storage) + docker-registry, 127.0.0.1 only.
#
#   hack/notary-stack.sh up DIR     PKI, configs, start everything, wait until healthy
#   hack/notary-stack.sh down DIR   stop every process recorded in DIR/run/*.pid
#
# Ports (env): TG_NOTARY_PORT=4443 TG_SIGNER_PORT=7899 TG_REGISTRY_PORT=5000
# Optional variants (env, off unless set):
#   TG_NOTARY_ED25519_PORT                notary-server signing locally => ed25519 timestamp keys
#   TG_NOTARY_TOKEN_PORT + TG_TOKEN_PORT  notary-server with docker/distribution token auth and
#                                         the token service dist/test/support/token-server.js
#                                         (override with TG_TOKEN_SERVER_JS; needs `npx tsc -p .`)
# TG_STACK_WAIT: seconds to wait for health (default 30).
set -euo pipefail

usage() { echo "usage: $0 up|down DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
case $cmd in
  up) mkdir -p "$2" ;;
  down) [ -d "$2" ] || exit 0 ;;
  *) usage ;;
esac
DIR=$(cd "$2" && pwd -P)
RUN=$DIR/run
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(dirname "$HERE")

NOTARY_PORT=${TG_NOTARY_PORT:-4443}
SIGNER_PORT=${TG_SIGNER_PORT:-7899}
REGISTRY_PORT=${TG_REGISTRY_PORT:-5000}
ED_PORT=${TG_NOTARY_ED25519_PORT:-}
TOKEN_NOTARY_PORT=${TG_NOTARY_TOKEN_PORT:-}
TOKEN_PORT=${TG_TOKEN_PORT:-}
WAIT=${TG_STACK_WAIT:-30}

log() { echo "notary-stack: $*" >&2; }

# A PID file may outlive its process and the PID may be reused; only signal a process whose
# command line still names this stack's directory (every process we start gets a DIR path arg).
ours() {
  local pid=$1
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$DIR/"
}

down() {
  [ -d "$RUN" ] || return 0
  local pids=() f pid
  for f in "$RUN"/*.pid; do
    [ -e "$f" ] || continue
    pid=$(tr -dc '0-9' <"$f")
    if [ -n "$pid" ] && ours "$pid"; then
      pids+=("$pid")
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  local i alive
  for ((i = 0; i < 100; i++)); do
    alive=()
    for pid in "${pids[@]+"${pids[@]}"}"; do ours "$pid" && alive+=("$pid"); done
    [ ${#alive[@]} -eq 0 ] && break
    sleep 0.1
  done
  for pid in "${alive[@]+"${alive[@]}"}"; do
    log "pid $pid ignored SIGTERM for 10 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  done
  # A killed process is gone once it is reaped; wait briefly so callers can rely on it.
  for ((i = 0; i < 20; i++)); do
    alive=()
    for pid in "${pids[@]+"${pids[@]}"}"; do
      [ -e "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] && alive+=("$pid")
    done
    [ ${#alive[@]} -eq 0 ] && break
    sleep 0.1
  done
  rm -f "$RUN"/*.pid
}

need_packages() {
  local missing=() b
  for b in notary notary-server notary-signer docker-registry openssl curl; do
    command -v "$b" >/dev/null 2>&1 || missing+=("$b")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "missing: ${missing[*]}; installing notary docker-registry openssl curl"
  [ "$(id -u)" = 0 ] || { log "not root: install them with apt-get install notary docker-registry openssl curl"; exit 1; }
  export DEBIAN_FRONTEND=noninteractive
  # Another process may hold the dpkg/apt locks: apt waits on its own (Lock::Timeout), and
  # a failed attempt is retried in case the lock holder was still running when that ran out.
  local try
  for try in 1 2 3; do
    if apt-get -o DPkg::Lock::Timeout=300 update -qq >&2 &&
      apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
        notary docker-registry openssl curl ca-certificates >&2; then
      return 0
    fi
    log "apt-get failed (attempt $try of 3); retrying in 10 s"
    sleep 10
  done
  log "could not install the packages"; exit 1
}

make_pki() {
  local p=$DIR/pki
  [ -s "$p/ca.crt" ] && return 0
  mkdir -p "$p"
  (
    cd "$p"
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key
    openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=trustgate test CA" \
      -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.crt
    leaf() { # name cn san eku
      openssl ecparam -name prime256v1 -genkey -noout -out "$1.key"
      openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
      printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=%s\nsubjectAltName=%s\n' \
        "$4" "$3" >"$1.ext"
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 825 \
        -extfile "$1.ext" -out "$1.crt" 2>/dev/null
      rm -f "$1.csr" "$1.ext"
    }
    # The server cert doubles as the client cert notary-server shows the signer (mutual TLS).
    leaf notary-server notary-server "DNS:localhost,IP:127.0.0.1" "serverAuth,clientAuth"
    leaf notary-signer notary-signer "DNS:localhost,IP:127.0.0.1" "serverAuth"
    leaf token-service token-service "DNS:localhost,IP:127.0.0.1" "serverAuth"
    # Token signing key: self-signed, it is the whole rootcertbundle of the token-auth server.
    openssl ecparam -name prime256v1 -genkey -noout -out token-signer.key
    openssl req -x509 -new -key token-signer.key -sha256 -days 3650 -subj "/CN=trustgate token signer" \
      -out token-signer.crt
    chmod 600 ./*.key
  ) >/dev/null
}

write_configs() {
  local c=$DIR/config p=$DIR/pki
  mkdir -p "$c" "$DIR/data/registry" "$DIR/trust"
  cat >"$c/signer.json" <<EOF
{
  "server": {
    "grpc_addr": "127.0.0.1:$SIGNER_PORT",
    "tls_cert_file": "$p/notary-signer.crt",
    "tls_key_file": "$p/notary-signer.key",
    "client_ca_file": "$p/ca.crt"
  },
  "logging": { "level": "info" },
  "storage": { "backend": "memory" }
}
EOF
  local remote_trust
  remote_trust=$(cat <<EOF
  "trust_service": {
    "type": "remote",
    "hostname": "127.0.0.1",
    "port": "$SIGNER_PORT",
    "key_algorithm": "ecdsa",
    "tls_ca_file": "$p/ca.crt",
    "tls_client_cert": "$p/notary-server.crt",
    "tls_client_key": "$p/notary-server.key"
  },
EOF
)
  cat >"$c/server.json" <<EOF
{
  "server": {
    "http_addr": "127.0.0.1:$NOTARY_PORT",
    "tls_cert_file": "$p/notary-server.crt",
    "tls_key_file": "$p/notary-server.key"
  },
$remote_trust
  "logging": { "level": "info" },
  "storage": { "backend": "memory" }
}
EOF
  if [ -n "$ED_PORT" ]; then
    cat >"$c/server-ed25519.json" <<EOF
{
  "server": {
    "http_addr": "127.0.0.1:$ED_PORT",
    "tls_cert_file": "$p/notary-server.crt",
    "tls_key_file": "$p/notary-server.key"
  },
  "trust_service": { "type": "local" },
  "logging": { "level": "info" },
  "storage": { "backend": "memory" }
}
EOF
  fi
  if [ -n "$TOKEN_NOTARY_PORT" ]; then
    cat >"$c/server-token.json" <<EOF
{
  "server": {
    "http_addr": "127.0.0.1:$TOKEN_NOTARY_PORT",
    "tls_cert_file": "$p/notary-server.crt",
    "tls_key_file": "$p/notary-server.key"
  },
$remote_trust
  "auth": {
    "type": "token",
    "options": {
      "realm": "https://127.0.0.1:$TOKEN_PORT/token",
      "service": "notary-server",
      "issuer": "trustgate-test-issuer",
      "rootcertbundle": "$p/token-signer.crt"
    }
  },
  "logging": { "level": "info" },
  "storage": { "backend": "memory" }
}
EOF
  fi
  cat >"$c/registry.yml" <<EOF
version: 0.1
log:
  level: info
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: $DIR/data/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$REGISTRY_PORT
  headers:
    X-Content-Type-Options: [nosniff]
EOF
  # trust_dir must be absolute: notary 0.7.0 resolves a relative one against the CWD.
  cat >"$DIR/notary-client.json" <<EOF
{
  "trust_dir": "$DIR/trust",
  "remote_server": {
    "url": "https://127.0.0.1:$NOTARY_PORT",
    "root_ca": "$p/ca.crt"
  }
}
EOF
}

# start NAME CMD...: own session (so a test runner's signals do not reach it), PID written by
# the process itself right before exec, so the file holds the service's own PID.
start() {
  local name=$1; shift
  local pidf=$RUN/$name.pid
  if [ -s "$pidf" ] && ours "$(tr -dc '0-9' <"$pidf")"; then
    log "$name already running (pid $(cat "$pidf"))"
    return 0
  fi
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidf" "$@" >"$RUN/$name.log" 2>&1 </dev/null &
  local i
  for ((i = 0; i < 50; i++)); do [ -s "$pidf" ] && return 0; sleep 0.02; done
  fail "$name did not start"
}

fail() {
  log "ERROR: $*"
  local f
  for f in "$RUN"/*.log; do
    [ -e "$f" ] || continue
    echo "----- tail of $f -----" >&2
    tail -n 20 "$f" >&2
  done
  down
  exit 1
}

deadline=0
wait_for() { # name check-command...
  local name=$1; shift
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then fail "$name not healthy after ${WAIT}s"; fi
    local f
    for f in "$RUN"/*.pid; do
      local pid; pid=$(tr -dc '0-9' <"$f")
      ours "$pid" || fail "$(basename "$f" .pid) exited during start-up"
    done
    sleep 0.1
  done
}

tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
https_ok() { curl -fsS --max-time 2 --cacert "$DIR/pki/ca.crt" "$1"; }
http_ok() { curl -fsS --max-time 2 "$1"; }
# Health of the token-auth server: an anonymous request must be refused with a challenge.
token_challenge() {
  local code
  code=$(curl -sS --max-time 2 -o /dev/null -w '%{http_code}' --cacert "$DIR/pki/ca.crt" \
    "https://127.0.0.1:$TOKEN_NOTARY_PORT/v2/health/probe/_trust/tuf/root.json")
  [ "$code" = 401 ]
}

up() {
  if { [ -n "$TOKEN_NOTARY_PORT" ] && [ -z "$TOKEN_PORT" ]; } || { [ -z "$TOKEN_NOTARY_PORT" ] && [ -n "$TOKEN_PORT" ]; }; then
    log "TG_NOTARY_TOKEN_PORT and TG_TOKEN_PORT go together"; exit 2
  fi
  need_packages
  local token_js=""
  if [ -n "$TOKEN_PORT" ]; then
    token_js=${TG_TOKEN_SERVER_JS:-$REPO/dist/test/support/token-server.js}
    [ -f "$token_js" ] || { log "token server $token_js not found (run npx tsc -p . first)"; exit 1; }
    command -v node >/dev/null || { log "node not found (needed for the token server)"; exit 1; }
  fi
  mkdir -p "$RUN"
  make_pki
  write_configs
  deadline=$(( $(date +%s) + WAIT ))
  local c=$DIR/config
  start notary-signer notary-signer -config "$c/signer.json" -logf logfmt
  wait_for notary-signer tcp_open "$SIGNER_PORT"
  start notary-server notary-server -config "$c/server.json" -logf logfmt
  start docker-registry docker-registry serve "$c/registry.yml"
  if [ -n "$ED_PORT" ]; then
    start notary-server-ed25519 notary-server -config "$c/server-ed25519.json" -logf logfmt
  fi
  if [ -n "$TOKEN_PORT" ]; then
    start token-server node "$token_js" \
      --port "$TOKEN_PORT" \
      --tls-cert "$DIR/pki/token-service.crt" --tls-key "$DIR/pki/token-service.key" \
      --sign-cert "$DIR/pki/token-signer.crt" --sign-key "$DIR/pki/token-signer.key" \
      --issuer trustgate-test-issuer --service notary-server --users "user:secret"
    start notary-server-token notary-server -config "$c/server-token.json" -logf logfmt
  fi
  wait_for notary-server https_ok "https://127.0.0.1:$NOTARY_PORT/_notary_server/health"
  wait_for docker-registry http_ok "http://127.0.0.1:$REGISTRY_PORT/v2/"
  [ -z "$ED_PORT" ] || wait_for notary-server-ed25519 https_ok "https://127.0.0.1:$ED_PORT/_notary_server/health"
  if [ -n "$TOKEN_PORT" ]; then
    wait_for token-server https_ok "https://127.0.0.1:$TOKEN_PORT/health"
    wait_for notary-server-token token_challenge
  fi
  log "up in $DIR: notary https://127.0.0.1:$NOTARY_PORT registry http://127.0.0.1:$REGISTRY_PORT" \
    "${ED_PORT:+ed25519 https://127.0.0.1:$ED_PORT}" \
    "${TOKEN_PORT:+token-notary https://127.0.0.1:$TOKEN_NOTARY_PORT realm https://127.0.0.1:$TOKEN_PORT/token}"
}

case $cmd in
  up) up ;;
  down) down ;;
  *) usage ;;
esac

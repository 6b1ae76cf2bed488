#!/usr/bin/env bash
# Two throwaway OCI registries (Debian's docker-registry, distribution 2.8) for
# the `pull docker://…` tests:
#   - plain HTTP, no auth:          127.0.0.1:5000
#   - HTTPS (own CA) + htpasswd:    127.0.0.1:5443, user vessel / vessel-secret
#
#   .ci/registry.sh start|stop|status STATE_DIR
#
# Run as root (the registries run as the docker-registry user). Needs the Debian
# packages docker-registry apache2-utils openssl curl.
# PID 1 on CI machines is not systemd, so the daemons are started by hand and
# stopped by the PIDs recorded in STATE_DIR (never by name).
#
# STATE_DIR keeps, across stop/start (so pushed images survive a restart and
# clients keep trusting the same CA):
#   ca.crt            the CA certificate clients must trust for 127.0.0.1:5443
#   certs/ca.crt      the same, alone in a directory: skopeo --cert-dir / --dest-cert-dir
#   env               sourceable: REGISTRY_HTTP REGISTRY_TLS REGISTRY_USER
#                     REGISTRY_PASSWORD REGISTRY_CA REGISTRY_CERT_DIR
#   http/ tls/        per-registry config.yml, data/ (the blobs), registry.log
#   pki/              CA key, server key and certificate, htpasswd
set -euo pipefail

cmd=${1:-} state=${2:-}
if [ -z "$cmd" ] || [ -z "$state" ]; then
  echo "usage: $0 start|stop|status STATE_DIR" >&2
  exit 2
fi
# Absolute: the path goes into config files and the env file.
mkdir -p "$state"
state=$(cd "$state" && pwd)

readonly HTTP_ADDR=127.0.0.1:5000 TLS_ADDR=127.0.0.1:5443
readonly USER_NAME=vessel USER_PASSWORD=vessel-secret
readonly instances=(http tls)
# /proc/PID/comm of the registry (setpriv execs it, so $! is the registry).
readonly comm=docker-registry

# True while PID runs as the daemon we started. A zombie counts as gone
# (killed daemons may stay <defunct> for minutes when PID 1 does not reap),
# and a recycled PID running something else is not ours.
alive() {
  local pid=$1 st
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
  st=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ "$st" != Z ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ]
}

pid_of() { cat "$state/$1/registry.pid" 2>/dev/null || true; }

# Waits up to $2 tenths of a second for PID $1 to exit.
wait_gone() {
  local i
  for ((i = 0; i < $2; i++)); do alive "$1" || return 0; sleep 0.1; done
  return 1
}

stop() {
  local i pid
  for i in "${instances[@]}"; do
    pid=$(pid_of "$i")
    if alive "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      if ! wait_gone "$pid" 100; then
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" 50 || { echo "registry.sh: $i registry (pid $pid) will not die" >&2; return 1; }
      fi
    fi
    rm -f "$state/$i/registry.pid"
  done
}

# HTTP status of GET /v2/ on instance $1 ("000" when nothing answers). The TLS
# one is checked against our CA, so a 401 there also proves the certificate.
v2_code() {
  case $1 in
    http) curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$HTTP_ADDR/v2/" || true ;;
    tls) curl -s -o /dev/null -w '%{http_code}' --max-time 2 --cacert "$state/ca.crt" "https://$TLS_ADDR/v2/" || true ;;
  esac
}
# 401: anonymous requests must be refused by the auth registry.
expected_code() { if [ "$1" = tls ]; then echo 401; else echo 200; fi; }

up() {
  local i
  for i in "${instances[@]}"; do
    alive "$(pid_of "$i")" && [ "$(v2_code "$i")" = "$(expected_code "$i")" ] || return 1
  done
}

status() {
  local i pid rc=0
  for i in "${instances[@]}"; do
    pid=$(pid_of "$i")
    if alive "$pid"; then echo "$i registry: running (pid $pid), GET /v2/ -> $(v2_code "$i")"
    else echo "$i registry: stopped"; rc=1; fi
  done
  return $rc
}

fail() {
  local i
  echo "registry.sh: $*" >&2
  for i in "${instances[@]}"; do
    [ -s "$state/$i/registry.log" ] && { echo "--- $state/$i/registry.log (tail)" >&2; tail -n 20 "$state/$i/registry.log" >&2; }
  done
  stop || true
  exit 1
}

# The CA and server certificate are kept across restarts (clients may have
# copied ca.crt); they are remade when missing or expiring within a day.
make_pki() {
  local pki=$state/pki
  mkdir -p "$pki"
  if [ -s "$pki/ca.key" ] && [ -s "$state/ca.crt" ] && [ -s "$pki/server.crt" ] && [ -s "$pki/server.key" ] &&
    openssl x509 -in "$state/ca.crt" -noout -checkend 86400 >/dev/null 2>&1 &&
    openssl x509 -in "$pki/server.crt" -noout -checkend 86400 >/dev/null 2>&1 &&
    openssl verify -CAfile "$state/ca.crt" "$pki/server.crt" >/dev/null 2>&1; then
    :
  else
    # A real CA plus a separate leaf, not one self-signed server certificate:
    # webpki (rustls) refuses a CA certificate used as an end entity, and
    # wants the names in subjectAltName (the CN is ignored).
    openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 3650 \
      -keyout "$pki/ca.key" -out "$state/ca.crt" -subj "/CN=Vessel CI test CA" \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    openssl req -new -newkey rsa:2048 -nodes -sha256 \
      -keyout "$pki/server.key" -out "$pki/server.csr" -subj "/CN=127.0.0.1" 2>/dev/null
    printf '%s\n' "basicConstraints=critical,CA:FALSE" \
      "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth" \
      "subjectAltName=IP:127.0.0.1,DNS:localhost" >"$pki/server.ext"
    openssl x509 -req -in "$pki/server.csr" -CA "$state/ca.crt" -CAkey "$pki/ca.key" \
      -CAcreateserial -CAserial "$pki/ca.srl" -days 3650 -sha256 -extfile "$pki/server.ext" -out "$pki/server.crt" 2>/dev/null
    rm -f "$pki/server.csr"
  fi
  mkdir -p "$state/certs"
  cp "$state/ca.crt" "$state/certs/ca.crt"
  # bcrypt (-B): the only htpasswd hash distribution accepts.
  htpasswd -Bbn "$USER_NAME" "$USER_PASSWORD" >"$pki/htpasswd" 2>/dev/null
  # The registry user reads the server key and htpasswd; nobody else does.
  chown root:docker-registry "$pki/server.key" "$pki/htpasswd"
  chmod 0640 "$pki/server.key" "$pki/htpasswd"
  chmod 0600 "$pki/ca.key"
  chmod 0755 "$pki"
  chmod 0644 "$state/ca.crt" "$state/certs/ca.crt" "$pki/server.crt"
}

# Our own small config: the packaged one listens on all interfaces.
write_config() {
  local i=$1 dir=$state/$1
  mkdir -p "$dir/data"
  chown docker-registry: "$dir/data"
  chmod 0755 "$dir"
  {
    printf 'version: 0.1\n'
    printf 'log:\n  level: info\n  accesslog:\n    disabled: false\n'
    printf 'storage:\n  filesystem:\n    rootdirectory: %s/data\n  delete:\n    enabled: true\n' "$dir"
    # A fixed secret silences the "No HTTP secret provided" warning.
    printf 'http:\n  secret: vessel-ci-%s\n' "$i"
    if [ "$i" = tls ]; then
      printf '  addr: %s\n' "$TLS_ADDR"
      printf '  tls:\n    certificate: %s/pki/server.crt\n    key: %s/pki/server.key\n' "$state" "$state"
      printf 'auth:\n  htpasswd:\n    realm: vessel-ci\n    path: %s/pki/htpasswd\n' "$state"
    else
      printf '  addr: %s\n' "$HTTP_ADDR"
    fi
  } >"$dir/config.yml"
  chmod 0644 "$dir/config.yml"
}

start() {
  local p i missing=()
  for p in docker-registry apache2-utils openssl curl; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "registry.sh: missing packages: ${missing[*]} (apt-get install -y ${missing[*]})" >&2
    exit 1
  fi
  [ "$(id -u)" -eq 0 ] || { echo "registry.sh: start must run as root" >&2; exit 1; }

  # Idempotent: registries from an earlier start with this STATE_DIR that
  # still answer are kept (and their data with them).
  if up; then
    echo "registry: already running: http://$HTTP_ADDR, https://$TLS_ADDR (auth), env in $state/env"
    return 0
  fi
  stop # half-dead leftovers of an earlier start with this STATE_DIR

  # Someone else (another STATE_DIR, a packaged service) holding a port would
  # make our registry exit with "address already in use"; say so up front.
  for p in "$HTTP_ADDR" "$TLS_ADDR"; do
    if (exec 3<>"/dev/tcp/${p%:*}/${p#*:}") 2>/dev/null; then
      echo "registry.sh: $p is already in use (not by a registry started with $state); stop it first" >&2
      exit 1
    fi
  done

  chmod 0755 "$state"
  make_pki
  for i in "${instances[@]}"; do write_config "$i"; done
  # The registry user must be able to reach the files under STATE_DIR: a
  # parent directory with mode 0700 (mktemp -d) would stop it.
  if ! setpriv --reuid=docker-registry --regid=docker-registry --init-groups \
    test -r "$state/tls/config.yml" -a -r "$state/pki/server.key" -a -w "$state/http/data"; then
    echo "registry.sh: user docker-registry cannot reach $state (a parent directory not world-searchable?)" >&2
    exit 1
  fi

  # setsid + redirections: the daemons must not hold the caller's terminal or
  # stdout pipe open (a `$(registry.sh start)` would never return). env -i:
  # distribution reads REGISTRY_<SECTION>_… variables as config overrides, and
  # a caller that sourced STATE_DIR/env has REGISTRY_HTTP set, which makes the
  # registry refuse its config. setsid, env and setpriv all exec, so $! is the
  # registry itself.
  for i in "${instances[@]}"; do
    setsid env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
      setpriv --reuid=docker-registry --regid=docker-registry --init-groups \
      /usr/bin/docker-registry serve "$state/$i/config.yml" \
      </dev/null >"$state/$i/registry.log" 2>&1 &
    echo $! >"$state/$i/registry.pid"
  done

  cat >"$state/env" <<EOF
# Written by .ci/registry.sh: the local test registries.
REGISTRY_HTTP=$HTTP_ADDR
REGISTRY_TLS=$TLS_ADDR
REGISTRY_USER=$USER_NAME
REGISTRY_PASSWORD=$USER_PASSWORD
REGISTRY_CA=$state/ca.crt
REGISTRY_CERT_DIR=$state/certs
EOF

  # Bounded by the clock: startup is well under a second when healthy.
  SECONDS=0
  while [ $SECONDS -lt 15 ]; do
    if up; then
      echo "registry: up after ${SECONDS}s: http://$HTTP_ADDR (pid $(pid_of http)), https://$TLS_ADDR auth $USER_NAME (pid $(pid_of tls)), env in $state/env"
      return 0
    fi
    for i in "${instances[@]}"; do alive "$(pid_of "$i")" || fail "$i registry exited"; done
    sleep 0.1
  done
  fail "registries not answering after 15 s (http: $(v2_code http), tls: $(v2_code tls))"
}

case $cmd in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status STATE_DIR" >&2; exit 2 ;;
esac

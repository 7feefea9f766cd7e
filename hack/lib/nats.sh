# shellcheck shell=bash
# hack/lib/nats.sh — NATS server with JetStream.
#
#   binary      Debian's `nats-server` package (2.9.10 on bookworm; JetStream
#               needs >= 2.2, so it is fine). Only if the packaged one is
#               missing/older than 2.2 — or SENTINEL_NATS_FROM=go — it is built
#               with `go install github.com/nats-io/nats-server/v2@v$SENTINEL_NATS_GO_VERSION`
#               into $SENTINEL_CACHE_DIR/nats-server-<version>/bin (cached).
#   listen      client 127.0.0.1:$SENTINEL_NATS_PORT (14222),
#               monitor http://127.0.0.1:$SENTINEL_NATS_MONITOR_PORT (18222)
#   jetstream   store in $SENTINEL_STATE_DIR/nats/jetstream
#   ready when  GET /healthz on the monitor port answers {"status":"ok"}
#   files       $SENTINEL_STATE_DIR/nats/{nats.conf,nats.pid,nats.log,jetstream/}

: "${SENTINEL_NATS_FROM:=debian}"          # debian | go
: "${SENTINEL_NATS_GO_VERSION:=2.14.9}"    # only used for the go fallback
SENTINEL_NATS_MIN_VERSION=2.2.0

_nats_dir() { svc_state_dir nats; }
_nats_pidfile() { printf '%s/nats.pid' "$(_nats_dir)"; }
_nats_log() { printf '%s/nats.log' "$(_nats_dir)"; }
_nats_running_pid() { pidfile_pid "$(_nats_pidfile)" nats-server; }
_nats_go_bin() { printf '%s/nats-server-%s/bin/nats-server' "$SENTINEL_CACHE_DIR" "$SENTINEL_NATS_GO_VERSION"; }

# _nats_version BIN — "2.9.10"
_nats_version() {
  "$1" --version 2>/dev/null | sed -n 's/.*v\([0-9][0-9.]*\).*/\1/p' | head -n1
}

# _nats_debian_bin — the packaged binary (Debian puts it in /usr/sbin).
_nats_debian_bin() {
  local b
  for b in /usr/sbin/nats-server /usr/bin/nats-server; do
    if [[ -x "$b" ]]; then
      printf '%s' "$b"
      return 0
    fi
  done
  return 0
}

# _nats_debian_ok — the packaged binary exists and supports JetStream.
_nats_debian_ok() {
  local b v
  b="$(_nats_debian_bin)"
  [[ -n "$b" ]] || return 1
  v="$(_nats_version "$b")"
  [[ -n "$v" ]] && version_ge "$v" "$SENTINEL_NATS_MIN_VERSION"
}

# Which binary we run (prints a path, possibly not yet existing).
_nats_bin() {
  if [[ "$SENTINEL_NATS_FROM" != go ]] && _nats_debian_ok; then
    _nats_debian_bin
  else
    _nats_go_bin
  fi
}

_nats_go_install() {
  local bin gobin tmp
  bin="$(_nats_go_bin)"
  [[ -x "$bin" ]] && return 0
  have go || die "nats: need nats-server >= $SENTINEL_NATS_MIN_VERSION; Debian's is missing/too old and 'go' is not installed"
  gobin="$(dirname "$bin")"
  # Installed under a temporary name, renamed when complete: an interrupted
  # go install must not leave a truncated binary that the next run trusts.
  tmp="$gobin.tmp.$$"
  svc_log nats "building nats-server v$SENTINEL_NATS_GO_VERSION with go install (first run only)…"
  rm -rf -- "$tmp"
  mkdir -p -- "$gobin" "$tmp"
  if ! GOBIN="$tmp" GOFLAGS=-mod=mod CGO_ENABLED=0 \
    go install "github.com/nats-io/nats-server/v2@v$SENTINEL_NATS_GO_VERSION" \
    >>"$SENTINEL_CACHE_DIR/nats-go-install.log" 2>&1 || [[ ! -x "$tmp/nats-server" ]]; then
    rm -rf -- "$tmp"
    log_tail "$SENTINEL_CACHE_DIR/nats-go-install.log"
    die "nats: go install of nats-server v$SENTINEL_NATS_GO_VERSION failed"
  fi
  mv -f -- "$tmp/nats-server" "$bin"
  rm -rf -- "$tmp"
}

svc_nats_install() {
  if [[ "$SENTINEL_NATS_FROM" == go ]]; then
    _nats_go_install
    return 0
  fi
  if ! _nats_debian_ok; then
    [[ -n "$(_nats_debian_bin)" ]] || apt_install nats nats-server
    if ! _nats_debian_ok; then
      local b
      b="$(_nats_debian_bin)"
      svc_log nats "Debian's nats-server (${b:-not installed}${b:+ $(_nats_version "$b")}) is older than $SENTINEL_NATS_MIN_VERSION (no JetStream); falling back to go install"
      _nats_go_install
    fi
  fi
}

_nats_write_conf() {
  local dir
  dir="$(_nats_dir)"
  cat >"$dir/nats.conf" <<EOF
# Written by hack/lib/nats.sh at every start — edit there, not here.
server_name: "sentinel-local"
host: "127.0.0.1"
port: $SENTINEL_NATS_PORT
http: "127.0.0.1:$SENTINEL_NATS_MONITOR_PORT"
max_payload: 8MB
jetstream {
  # nats-server appends "jetstream/" itself -> $dir/jetstream
  store_dir: "$dir"
  max_memory_store: 256MB
  max_file_store: 4GB
}
EOF
}

_nats_healthy() {
  local body
  body="$(http_get "http://127.0.0.1:$SENTINEL_NATS_MONITOR_PORT/healthz")" || return 1
  [[ "$body" == *'"ok"'* ]]
}

svc_nats_start() {
  local pid dir bin timeout
  timeout="$(start_timeout nats 30)"
  dir="$(_nats_dir)"
  pid="$(_nats_running_pid)"
  if [[ -n "$pid" ]]; then
    svc_log nats "already running (pid $pid) on 127.0.0.1:$SENTINEL_NATS_PORT"
    return 0
  fi
  require_free_port "$SENTINEL_NATS_PORT" nats SENTINEL_NATS_PORT || return 1
  require_free_port "$SENTINEL_NATS_MONITOR_PORT" nats SENTINEL_NATS_MONITOR_PORT || return 1
  bin="$(_nats_bin)"
  [[ -x "$bin" ]] || { svc_fail nats "" "nats-server is not installed (run: hack/infra.sh up nats)"; return 1; }
  ensure_dir "$dir"
  _nats_write_conf
  svc_log nats "starting on 127.0.0.1:$SENTINEL_NATS_PORT (monitor :$SENTINEL_NATS_MONITOR_PORT, JetStream)…"
  printf -- '--- %s starting %s\n' "$(date -u +%FT%TZ)" "$bin" >>"$(_nats_log)"
  if ! spawn_detached "$(_nats_pidfile)" "$(_nats_log)" "$bin" -c "$dir/nats.conf"; then
    svc_fail nats "$(_nats_log)" "could not launch $bin"
    return 1
  fi
  pid="$(read_pidfile "$(_nats_pidfile)")"
  if ! wait_until "$timeout" "$pid" _nats_healthy; then
    pid_alive "$pid" && stop_pid nats "$pid" 10
    svc_fail nats "$(_nats_log)" "/healthz on :$SENTINEL_NATS_MONITOR_PORT not ok within ${timeout}s"
    return 1
  fi
  svc_log nats "ready (pid $pid)"
}

svc_nats_stop() {
  local pid
  pid="$(_nats_running_pid)"
  if [[ -z "$pid" ]]; then
    rm -f -- "$(_nats_pidfile)"
    svc_log nats "not running"
    return 0
  fi
  svc_log nats "stopping (pid $pid)…"
  stop_pid nats "$pid" 30 TERM || return 1
  rm -f -- "$(_nats_pidfile)"
  svc_log nats "stopped"
}

svc_nats_status_json() {
  local pid up=false bin version=""
  pid="$(_nats_running_pid)"
  if [[ -n "$pid" ]] && port_in_use "$SENTINEL_NATS_PORT"; then up=true; fi
  bin="$(_nats_bin)"
  [[ -x "$bin" ]] && version="$(_nats_version "$bin")"
  svc_json nats "$up" "127.0.0.1:$SENTINEL_NATS_PORT" "$version" "$pid" "$(_nats_log)"
}

svc_nats_env() {
  env_line NATS_URL "nats://127.0.0.1:$SENTINEL_NATS_PORT"
}

# shellcheck shell=bash
# hack/lib/redis.sh — Redis from Debian's `redis-server` package, run by us
# (never the distribution's redis-server.service), on 127.0.0.1 only.
#
#   listen      127.0.0.1:$SENTINEL_REDIS_PORT (default 16379), no password
#   durability  appendonly yes, appendfsync $SENTINEL_REDIS_APPENDFSYNC
#               (default everysec; a clean stop/restart loses nothing, a
#               SIGKILL may lose the last second; set `always` to lose nothing
#               even then); no RDB snapshots (the AOF is the durability, and
#               a snapshot's fork of a large dataset competes with the load)
#   files       $SENTINEL_STATE_DIR/redis/{redis.conf,redis.pid,redis.log,data/}

: "${SENTINEL_REDIS_APPENDFSYNC:=everysec}"

_redis_dir() { svc_state_dir redis; }
_redis_pidfile() { printf '%s/redis.pid' "$(_redis_dir)"; }
_redis_log() { printf '%s/redis.log' "$(_redis_dir)"; }
_redis_running_pid() { pidfile_pid "$(_redis_pidfile)" redis-server; }

svc_redis_install() {
  if ! have redis-server || ! have redis-cli; then
    apt_install redis redis-server redis-tools
    # The package enables its own instance on 6379 — not ours, turn it off.
    disable_system_service redis redis-server
  fi
}

# _redis_ping — true when the server answers PONG (not LOADING, not an error).
_redis_ping() {
  if have redis-cli; then
    [[ "$(timeout 3 redis-cli -h 127.0.0.1 -p "$SENTINEL_REDIS_PORT" ping 2>/dev/null)" == PONG ]]
  else
    # shellcheck disable=SC2016
    timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0" && printf "PING\r\n" >&3 &&
      IFS= read -r l <&3 && [[ "$l" == "+PONG"* ]]' "$SENTINEL_REDIS_PORT"
  fi
}

_redis_write_conf() {
  local dir
  dir="$(_redis_dir)"
  cat >"$dir/redis.conf" <<EOF
# Written by hack/lib/redis.sh at every start — edit there, not here.
bind 127.0.0.1
port $SENTINEL_REDIS_PORT
protected-mode yes
daemonize yes
supervised no
pidfile $dir/redis.pid
logfile $dir/redis.log
loglevel notice
dir $dir/data
appendonly yes
appendfilename "appendonly.aof"
appenddirname "appendonlydir"
appendfsync $SENTINEL_REDIS_APPENDFSYNC
aof-use-rdb-preamble yes
save ""
tcp-keepalive 60
databases 16
EOF
}

svc_redis_start() {
  local pid dir timeout
  timeout="$(start_timeout redis 30)"
  dir="$(_redis_dir)"
  pid="$(_redis_running_pid)"
  if [[ -n "$pid" ]]; then
    svc_log redis "already running (pid $pid) on 127.0.0.1:$SENTINEL_REDIS_PORT"
    return 0
  fi
  require_free_port "$SENTINEL_REDIS_PORT" redis SENTINEL_REDIS_PORT || return 1
  have redis-server || { svc_fail redis "" "redis-server is not installed (run: hack/infra.sh up redis)"; return 1; }
  ensure_dir "$dir/data"
  rm -f -- "$(_redis_pidfile)"
  _redis_write_conf
  svc_log redis "starting on 127.0.0.1:$SENTINEL_REDIS_PORT…"
  # daemonize yes: redis-server forks, writes the pid file and returns.
  if ! redis-server "$dir/redis.conf" >>"$(_redis_log)" 2>&1; then
    svc_fail redis "$(_redis_log)" "redis-server refused to start"
    return 1
  fi
  if ! wait_until "$timeout" "" test -s "$(_redis_pidfile)"; then
    svc_fail redis "$(_redis_log)" "no pid file after ${timeout}s"
    return 1
  fi
  pid="$(read_pidfile "$(_redis_pidfile)")"
  if ! wait_until "$timeout" "$pid" _redis_ping; then
    svc_fail redis "$(_redis_log)" "no PONG on 127.0.0.1:$SENTINEL_REDIS_PORT within ${timeout}s"
    return 1
  fi
  svc_log redis "ready (pid $pid)"
}

svc_redis_stop() {
  local pid
  pid="$(_redis_running_pid)"
  if [[ -z "$pid" ]]; then
    rm -f -- "$(_redis_pidfile)"
    svc_log redis "not running"
    return 0
  fi
  svc_log redis "stopping (pid $pid)…"
  # SIGTERM: redis flushes + fsyncs the AOF and writes an RDB, then exits.
  stop_pid redis "$pid" 60 TERM || return 1
  rm -f -- "$(_redis_pidfile)"
  svc_log redis "stopped"
}

svc_redis_status_json() {
  local pid up=false version=""
  pid="$(_redis_running_pid)"
  if [[ -n "$pid" ]] && port_in_use "$SENTINEL_REDIS_PORT"; then up=true; fi
  if have redis-server; then
    version="$(redis-server --version 2>/dev/null | sed -n 's/.* v=\([^ ]*\).*/\1/p')"
  fi
  svc_json redis "$up" "127.0.0.1:$SENTINEL_REDIS_PORT" "$version" "$pid" "$(_redis_log)"
}

svc_redis_env() {
  env_line REDIS_URL "redis://127.0.0.1:$SENTINEL_REDIS_PORT"
}

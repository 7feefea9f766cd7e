# shellcheck shell=bash
# hack/lib/postgres.sh — PostgreSQL (Debian's `postgresql` package, 15 on
# bookworm) with its OWN cluster, never the distribution's one.
#
#   listen      127.0.0.1:$SENTINEL_PG_PORT (default 15432), TCP auth scram
#   socket      <cluster>/run (trust, owner only) — used for admin tasks
#   app role    sentinel / password sentinel, owns database `sentinel`,
#               CREATEDB (so tests can create scratch databases)
#   superuser   postgres (socket only, no password, no TCP login)
#   tuning      fsync/synchronous_commit/full_page_writes ON (durability
#               matters), max_connections=200, shared_buffers=256MB
#
# Where the cluster lives ("<cluster>", reachable as
# $SENTINEL_STATE_DIR/postgres/cluster, a directory or a symlink):
#   * non-root: $SENTINEL_STATE_DIR/postgres/cluster itself; postgres runs as you.
#   * root: PostgreSQL refuses to run as root, so it runs as the unprivileged
#     system user $SENTINEL_SERVICE_USER (default `sentinel`, created once with
#     useradd --system). That user cannot enter /root (mode 700), so when it
#     cannot reach $SENTINEL_STATE_DIR the cluster goes to
#       /var/lib/sentinel/pg-<cksum of $SENTINEL_STATE_DIR>/
#     (persistent, unlike /var/tmp which tmpfiles may clean after 30 days) and
#     $SENTINEL_STATE_DIR/postgres/cluster is a symlink to it. Override with
#     SENTINEL_PG_DIR. The choice is made once, at first init, and kept.
#   Layout: <cluster>/data (PGDATA), <cluster>/run (socket), <cluster>/postgres.log
#   Our pid file: $SENTINEL_STATE_DIR/postgres/postgres.pid (mirror of
#   data/postmaster.pid's first line, which stays the source of truth).

: "${SENTINEL_SERVICE_USER:=sentinel}"
: "${SENTINEL_PG_USER:=sentinel}"
: "${SENTINEL_PG_PASSWORD:=sentinel}"
: "${SENTINEL_PG_DB:=sentinel}"

_pg_state() { svc_state_dir postgres; }
_pg_cluster() { printf '%s/cluster' "$(_pg_state)"; }
_pg_data() { printf '%s/data' "$(_pg_cluster)"; }
_pg_sock() { printf '%s/run' "$(_pg_cluster)"; }
_pg_log() { printf '%s/postgres.log' "$(_pg_cluster)"; }
_pg_pidfile() { printf '%s/postgres.pid' "$(_pg_state)"; }

# Bin dir: matching an existing cluster's PG_VERSION, else the newest installed.
_pg_bindir() {
  local ver="" d
  if [[ -r "$(_pg_data)/PG_VERSION" ]]; then
    ver="$(<"$(_pg_data)/PG_VERSION")"
    if [[ -x "/usr/lib/postgresql/$ver/bin/postgres" ]]; then
      printf '/usr/lib/postgresql/%s/bin' "$ver"
      return 0
    fi
  fi
  d="$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/postgres' -type f 2>/dev/null | sort -V | tail -n1)"
  [[ -n "$d" ]] && dirname "$d"
  return 0
}

# Run a command as the user that owns the cluster.
_pg_as() {
  if [[ $EUID -eq 0 ]]; then
    (cd / && runuser -u "$SENTINEL_SERVICE_USER" -- "$@")
  else
    "$@"
  fi
}

_pg_ensure_service_user() {
  [[ $EUID -eq 0 ]] || return 0
  getent passwd "$SENTINEL_SERVICE_USER" >/dev/null && return 0
  svc_log postgres "creating unprivileged system user '$SENTINEL_SERVICE_USER' (PostgreSQL refuses to run as root)"
  getent group "$SENTINEL_SERVICE_USER" >/dev/null || groupadd --system "$SENTINEL_SERVICE_USER"
  useradd --system --gid "$SENTINEL_SERVICE_USER" --no-create-home \
    --home-dir /nonexistent --shell /usr/sbin/nologin \
    --comment "Sentinel local infra (hack/infra.sh)" "$SENTINEL_SERVICE_USER"
}

svc_postgres_install() {
  if [[ -z "$(_pg_bindir)" ]]; then
    apt_install postgres postgresql
    # Debian creates and (where it can) starts a "main" cluster on 5432.
    # We never use it; make sure it is not left running because of us.
    disable_system_service postgres postgresql
  fi
  [[ -n "$(_pg_bindir)" ]] || die "postgres: no server binaries under /usr/lib/postgresql/*/bin after install"
  _pg_ensure_service_user
}

# Decide (once) where the cluster lives; create it with the right owner.
_pg_prepare_dirs() {
  local state cluster target
  state="$(_pg_state)"
  cluster="$(_pg_cluster)"
  ensure_dir "$state"
  if [[ ! -e "$cluster" ]]; then
    if [[ -n "${SENTINEL_PG_DIR:-}" ]]; then
      target="$SENTINEL_PG_DIR"
    elif [[ $EUID -eq 0 ]] && ! (cd / && runuser -u "$SENTINEL_SERVICE_USER" -- test -x "$state"); then
      target="/var/lib/sentinel/pg-$(printf '%s' "$SENTINEL_STATE_DIR" | cksum | cut -d' ' -f1)"
      svc_log postgres "user '$SENTINEL_SERVICE_USER' cannot reach $state; cluster goes to $target (symlinked as $cluster)"
    else
      target="$cluster"
    fi
    if [[ "$target" != "$cluster" ]]; then
      mkdir -p -- "$(dirname "$target")"
      if [[ $EUID -eq 0 ]]; then chmod 755 -- "$(dirname "$target")"; fi
      mkdir -p -- "$target"
      ln -sfn -- "$target" "$cluster"
    else
      mkdir -p -- "$cluster"
    fi
  fi
  target="$(readlink -f -- "$cluster")"
  mkdir -p -- "$target/run"
  if [[ $EUID -eq 0 ]]; then
    chown "$SENTINEL_SERVICE_USER:$SENTINEL_SERVICE_USER" -- "$target" "$target/run"
  fi
  chmod 700 -- "$target" "$target/run"
  touch -- "$target/postgres.log"
  if [[ $EUID -eq 0 ]]; then
    chown "$SENTINEL_SERVICE_USER:$SENTINEL_SERVICE_USER" -- "$target/postgres.log"
  fi
}

_pg_write_conf() {
  local data sock
  data="$(readlink -f -- "$(_pg_data)")"
  sock="$(readlink -f -- "$(_pg_sock)")"
  # Rewritten at every start so port changes (SENTINEL_PG_PORT) take effect.
  _pg_as tee "$data/sentinel.conf" >/dev/null <<EOF
# Written by hack/lib/postgres.sh at every start — edit there, not here.
listen_addresses = '127.0.0.1'
port = $SENTINEL_PG_PORT
unix_socket_directories = '$sock'
unix_socket_permissions = 0700
max_connections = 200
shared_buffers = 256MB
work_mem = 8MB
maintenance_work_mem = 64MB
# Durability stays ON: this project cares that committed data survives.
fsync = on
synchronous_commit = on
full_page_writes = on
wal_level = replica
max_wal_size = 1GB
password_encryption = scram-sha-256
log_line_prefix = '%m [%p] %q%u@%d '
log_timezone = 'UTC'
timezone = 'UTC'
EOF
  _pg_as tee "$data/pg_hba.conf" >/dev/null <<'EOF'
# Written by hack/lib/postgres.sh — socket: trust (dir is mode 0700);
# TCP (loopback only): password (scram-sha-256).
local   all  all                 trust
host    all  all  127.0.0.1/32   scram-sha-256
host    all  all  ::1/128        scram-sha-256
EOF
}

_pg_initdb() {
  local bin data
  bin="$(_pg_bindir)"
  data="$(readlink -f -- "$(_pg_cluster)")/data"
  svc_log postgres "initdb (first run) in $data…"
  if ! _pg_as "$bin/initdb" -D "$data" -U postgres -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 --no-instructions \
    >>"$(_pg_log)" 2>&1; then
    svc_fail postgres "$(_pg_log)" "initdb failed"
    return 1
  fi
  printf "\ninclude_if_exists = 'sentinel.conf'\n" | _pg_as tee -a "$data/postgresql.conf" >/dev/null
}

# pid of OUR running postmaster (from data/postmaster.pid), or nothing.
_pg_running_pid() {
  local data
  data="$(_pg_data)"
  [[ -r "$data/postmaster.pid" ]] || return 0
  pidfile_pid "$data/postmaster.pid" postgres
}

_pg_psql_admin() {
  local bin
  bin="$(_pg_bindir)"
  _pg_as "$bin/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$(readlink -f -- "$(_pg_sock)")" \
    -p "$SENTINEL_PG_PORT" -U postgres -d postgres "$@"
}

_pg_ensure_role_db() {
  local u="$SENTINEL_PG_USER" p="$SENTINEL_PG_PASSWORD" db="$SENTINEL_PG_DB"
  _pg_psql_admin -v u="$u" -v p="$p" -v db="$db" >>"$(_pg_log)" 2>&1 <<'EOF'
SELECT format('CREATE ROLE %I LOGIN CREATEDB PASSWORD %L', :'u', :'p')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'u') \gexec
SELECT format('ALTER ROLE %I LOGIN CREATEDB PASSWORD %L', :'u', :'p') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'u')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
EOF
}

# _pg_role_db_ok — the app role (LOGIN, CREATEDB) and its database exist.
# Read-only: a running server is checked at every `up`.
_pg_role_db_ok() {
  local out
  out="$(_pg_psql_admin -v u="$SENTINEL_PG_USER" -v db="$SENTINEL_PG_DB" 2>/dev/null <<'EOF'
SELECT (SELECT count(*) FROM pg_roles WHERE rolname = :'u' AND rolcanlogin AND rolcreatedb)
    || ' ' || (SELECT count(*) FROM pg_database WHERE datname = :'db');
EOF
  )" || return 1
  [[ "$out" == "1 1" ]]
}

# After a crash (kill -9 in a fault test) the old postmaster may linger for a
# moment as a zombie until init reaps it; PostgreSQL sees its pid as "alive"
# (kill -0) and refuses to start. Wait (bounded) for it to disappear. We never
# delete postmaster.pid ourselves: it guards the shared memory of orphans.
_pg_wait_stale_postmaster() {
  local data="$1" old i
  old="$(read_pidfile "$data/postmaster.pid")"
  [[ -n "$old" ]] || return 0
  pid_alive "$old" && return 0 # alive and not a zombie: postgres will judge
  for ((i = 0; i < 150; i++)); do
    kill -0 "$old" 2>/dev/null || return 0
    ((i == 5)) && svc_log postgres "previous postmaster (pid $old) has exited but is not reaped yet; waiting…"
    sleep 0.2
  done
  svc_fail postgres "" "previous postmaster pid $old (see $data/postmaster.pid) still exists after 30s"
}

svc_postgres_start() {
  local pid bin data timeout logf
  timeout="$(start_timeout postgres 60)"
  pid="$(_pg_running_pid)"
  if [[ -n "$pid" ]]; then
    printf '%s\n' "$pid" >"$(_pg_pidfile)"
    # A run stopped (Ctrl-C) after pg_ctl start left the server running, but
    # perhaps still starting, or without its role and database: finish that.
    bin="$(_pg_bindir)"
    if ! wait_until "$timeout" "$pid" "$bin/pg_isready" -q -h 127.0.0.1 -p "$SENTINEL_PG_PORT"; then
      svc_fail postgres "$(_pg_log)" "running (pid $pid), but port $SENTINEL_PG_PORT not accepting connections within ${timeout}s"
      return 1
    fi
    if ! _pg_role_db_ok; then
      svc_log postgres "creating role '$SENTINEL_PG_USER' / database '$SENTINEL_PG_DB' (an earlier start did not finish)…"
      if ! _pg_ensure_role_db; then
        svc_fail postgres "$(_pg_log)" "could not create role/database '$SENTINEL_PG_USER'/'$SENTINEL_PG_DB'"
        return 1
      fi
    fi
    svc_log postgres "already running (pid $pid) on 127.0.0.1:$SENTINEL_PG_PORT"
    return 0
  fi
  require_free_port "$SENTINEL_PG_PORT" postgres SENTINEL_PG_PORT || return 1
  bin="$(_pg_bindir)"
  [[ -n "$bin" ]] || { svc_fail postgres "" "PostgreSQL is not installed (run: hack/infra.sh up postgres)"; return 1; }
  _pg_prepare_dirs
  data="$(_pg_data)"
  if [[ ! -s "$data/PG_VERSION" ]]; then
    _pg_initdb || return 1
  fi
  _pg_write_conf
  _pg_wait_stale_postmaster "$data" || return 1
  svc_log postgres "starting on 127.0.0.1:$SENTINEL_PG_PORT…"
  logf="$(readlink -f -- "$(_pg_log)")"
  # shellcheck disable=SC2094  # pg_ctl -l and 2>> both only append
  if ! _pg_as "$bin/pg_ctl" start -D "$(readlink -f -- "$data")" -l "$logf" \
    -w -t "$timeout" -s >/dev/null 2>>"$logf"; then
    svc_fail postgres "$(_pg_log)" "pg_ctl start failed, or the server was not ready within ${timeout}s"
    return 1
  fi
  pid="$(_pg_running_pid)"
  if [[ -z "$pid" ]]; then
    svc_fail postgres "$(_pg_log)" "pg_ctl reported success but no postmaster is running"
    return 1
  fi
  printf '%s\n' "$pid" >"$(_pg_pidfile)"
  if ! wait_until "$timeout" "$pid" "$bin/pg_isready" -q -h 127.0.0.1 -p "$SENTINEL_PG_PORT"; then
    svc_fail postgres "$(_pg_log)" "port $SENTINEL_PG_PORT not accepting connections within ${timeout}s"
    return 1
  fi
  if ! _pg_ensure_role_db; then
    svc_fail postgres "$(_pg_log)" "could not create role/database '$SENTINEL_PG_USER'/'$SENTINEL_PG_DB'"
    return 1
  fi
  svc_log postgres "ready (pid $pid)"
}

svc_postgres_stop() {
  local pid bin
  pid="$(_pg_running_pid)"
  if [[ -z "$pid" ]]; then
    rm -f -- "$(_pg_pidfile)"
    svc_log postgres "not running"
    return 0
  fi
  bin="$(_pg_bindir)"
  svc_log postgres "stopping (pid $pid)…"
  if ! _pg_as "$bin/pg_ctl" stop -D "$(readlink -f -- "$(_pg_data)")" -m fast -w -t 60 -s >/dev/null 2>&1; then
    stop_pid postgres "$pid" 30 || return 1
  fi
  wait_pid_exit "$pid" 30 || { svc_log postgres "pid $pid still alive"; return 1; }
  rm -f -- "$(_pg_pidfile)"
  svc_log postgres "stopped"
}

_pg_version() {
  local bin
  bin="$(_pg_bindir)"
  [[ -n "$bin" ]] || return 0
  "$bin/postgres" --version 2>/dev/null | awk '{print $3}'
}

svc_postgres_status_json() {
  local pid up=false
  pid="$(_pg_running_pid)"
  if [[ -n "$pid" ]] && port_in_use "$SENTINEL_PG_PORT"; then up=true; fi
  svc_json postgres "$up" "127.0.0.1:$SENTINEL_PG_PORT" "$(_pg_version)" "$pid" "$(_pg_log)"
}

svc_postgres_env() {
  env_line DATABASE_URL "postgres://$SENTINEL_PG_USER:$SENTINEL_PG_PASSWORD@127.0.0.1:$SENTINEL_PG_PORT/$SENTINEL_PG_DB"
}

# shellcheck shell=bash
# hack/lib/common.sh — shared helpers for hack/infra.sh and the per-service
# files hack/lib/<service>.sh. Sourced, never executed.
#
# Service-file contract (every hack/lib/<name>.sh defines all five):
#   svc_<name>_install      install what is missing; idempotent, fast when done
#   svc_<name>_start        start unless running (pid file under
#                           $SENTINEL_STATE_DIR/<name>/), wait until ready with
#                           a bounded timeout; on failure: clear message + log tail
#   svc_<name>_stop         stop only what we started (pid file); bounded wait
#   svc_<name>_status_json  print ONE JSON object:
#                           {"name","up":bool,"address","version","pid","log"}
#   svc_<name>_env          print `export X=...` lines
#
# Everything binds to 127.0.0.1 only. All ports come from SENTINEL_*_PORT.

if [[ -n "${SENTINEL_COMMON_SOURCED:-}" ]]; then
  return 0
fi
SENTINEL_COMMON_SOURCED=1

# ---------------------------------------------------------------- locations --
SENTINEL_HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SENTINEL_ROOT="$(cd "$SENTINEL_HACK_DIR/.." && pwd)"
: "${SENTINEL_CACHE_DIR:=${XDG_CACHE_HOME:-$HOME/.cache}/sentinel}"
: "${SENTINEL_STATE_DIR:=${XDG_STATE_HOME:-$HOME/.local/state}/sentinel}"
: "${SENTINEL_HOST:=127.0.0.1}"
export SENTINEL_ROOT SENTINEL_HACK_DIR SENTINEL_CACHE_DIR SENTINEL_STATE_DIR SENTINEL_HOST

# -------------------------------------------------------------------- ports --
: "${SENTINEL_PG_PORT:=15432}"
: "${SENTINEL_REDIS_PORT:=16379}"
: "${SENTINEL_NATS_PORT:=14222}"
: "${SENTINEL_NATS_MONITOR_PORT:=18222}"
: "${SENTINEL_KAFKA_PORT:=19092}"
: "${SENTINEL_KAFKA_CONTROLLER_PORT:=19093}"
: "${SENTINEL_ETCD_PORT:=12379}"
: "${SENTINEL_ETCD_PEER_PORT:=12380}"
: "${SENTINEL_KUBE_PORT:=16443}"
export SENTINEL_PG_PORT SENTINEL_REDIS_PORT SENTINEL_NATS_PORT \
  SENTINEL_NATS_MONITOR_PORT SENTINEL_KAFKA_PORT SENTINEL_KAFKA_CONTROLLER_PORT \
  SENTINEL_ETCD_PORT SENTINEL_ETCD_PEER_PORT SENTINEL_KUBE_PORT

# ------------------------------------------------------------------ logging --
# Progress goes to stderr so that `infra.sh env` / `status --json` stay clean.
log() { printf '[infra] %s\n' "$*" >&2; }
# svc_log NAME MESSAGE...   ->  "[infra] NAME: MESSAGE"
svc_log() {
  local name="$1"
  shift
  printf '[infra] %s: %s\n' "$name" "$*" >&2
}
warn() { printf '[infra] warning: %s\n' "$*" >&2; }
die() {
  printf '[infra] error: %s\n' "$*" >&2
  exit 1
}

# log_tail FILE [LINES] — print the end of a log file, indented, to stderr.
log_tail() {
  local file="$1" lines="${2:-30}"
  if [[ -r "$file" ]]; then
    printf '[infra] ---- last %s lines of %s ----\n' "$lines" "$file" >&2
    tail -n "$lines" -- "$file" | sed 's/^/    | /' >&2
    printf '[infra] ----\n' >&2
  else
    printf '[infra] (no log at %s)\n' "$file" >&2
  fi
}

# svc_fail NAME LOGFILE MESSAGE... — message + log tail, then return 1.
# Used from svc_*_start so the dispatcher can report every failure.
svc_fail() {
  local name="$1" logfile="$2"
  shift 2
  printf '[infra] %s: FAILED: %s\n' "$name" "$*" >&2
  [[ -n "$logfile" ]] && log_tail "$logfile" 40
  return 1
}

have() { command -v "$1" >/dev/null 2>&1; }

# now_ms — milliseconds since the epoch (for timings).
now_ms() { date +%s%3N; }

# ----------------------------------------------------------------- processes --
# pid_alive PID [CMDLINE_SUBSTRING] — true if PID runs (and is not a zombie)
# and, when given, its command line contains the substring (guards against a
# stale pid file whose pid was reused by an unrelated process).
pid_alive() {
  local pid="${1:-}" want="${2:-}"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r "/proc/$pid/stat" ]]; then
    local stat
    stat="$(<"/proc/$pid/stat")" || return 1
    stat="${stat##*) }"
    [[ "${stat:0:1}" != "Z" ]] || return 1
  fi
  if [[ -n "$want" && -r "/proc/$pid/cmdline" ]]; then
    local cmd
    cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
    [[ "$cmd" == *"$want"* ]] || return 1
  fi
  return 0
}

# read_pidfile FILE — print the pid stored in FILE (first line), or nothing.
read_pidfile() {
  local file="$1" pid=""
  [[ -r "$file" ]] || return 0
  IFS= read -r pid <"$file" || true
  pid="${pid//[[:space:]]/}"
  [[ "$pid" =~ ^[0-9]+$ ]] && printf '%s\n' "$pid"
  return 0
}

# pidfile_pid FILE [CMDLINE_SUBSTRING] — print the pid recorded in FILE if
# that process is alive (else print nothing). Always succeeds, so it is safe
# in `pid="$(pidfile_pid f)"` under set -e.
pidfile_pid() {
  local pid
  pid="$(read_pidfile "$1")"
  if [[ -n "$pid" ]] && pid_alive "$pid" "${2:-}"; then
    printf '%s\n' "$pid"
  fi
  return 0
}

# wait_pid_exit PID TIMEOUT_SECONDS — true once PID is gone.
wait_pid_exit() {
  local pid="$1" timeout="$2" deadline
  deadline=$(($(now_ms) + timeout * 1000))
  while pid_alive "$pid"; do
    (($(now_ms) < deadline)) || return 1
    sleep 0.1
  done
  return 0
}

# stop_pid NAME PID [TIMEOUT=30] [SIGNAL=TERM] — signal, wait, SIGKILL on
# timeout (with a warning), wait again. Bounded.
stop_pid() {
  local name="$1" pid="$2" timeout="${3:-30}" sig="${4:-TERM}"
  pid_alive "$pid" || return 0
  kill "-$sig" "$pid" 2>/dev/null || true
  if ! wait_pid_exit "$pid" "$timeout"; then
    warn "$name (pid $pid) did not exit ${timeout}s after SIG$sig; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_pid_exit "$pid" 10 || {
      svc_log "$name" "pid $pid survived SIGKILL"
      return 1
    }
  fi
  return 0
}

# spawn_detached PIDFILE LOGFILE CMD... — run CMD in a new session (so a
# Ctrl-C on `infra.sh up` does not kill it), stdio to LOGFILE, and record the
# real pid (the exec'd command's) in PIDFILE. Returns immediately.
spawn_detached() {
  local pidfile="$1" logfile="$2"
  shift 2
  rm -f -- "$pidfile"
  # shellcheck disable=SC2016  # $$ / "$@" expand in the inner shell
  setsid bash -c 'echo "$$" >"$0.tmp" && mv -f "$0.tmp" "$0" && exec "$@"' \
    "$pidfile" "$@" </dev/null >>"$logfile" 2>&1 &
  # Wait (bounded) until the pid file exists so callers can rely on it.
  local i
  for ((i = 0; i < 50; i++)); do
    [[ -s "$pidfile" ]] && return 0
    sleep 0.05
  done
  [[ -s "$pidfile" ]]
}

# proc_scan — fill PROC_PPID, PROC_PGRP, PROC_SID (pid -> value) with every
# live process (zombies left out), read from /proc (procps may be missing).
declare -A PROC_PPID=() PROC_PGRP=() PROC_SID=()
# shellcheck disable=SC2034  # PROC_PGRP is read by hack/infra.sh
proc_scan() {
  PROC_PPID=() PROC_PGRP=() PROC_SID=()
  local f line pid state ppid pgrp sid
  for f in /proc/[0-9]*/stat; do
    { IFS= read -r line <"$f"; } 2>/dev/null || continue
    pid="${f#/proc/}"
    pid="${pid%/stat}"
    # fields after "(comm) ", which may itself hold spaces and parentheses
    IFS=' ' read -r state ppid pgrp sid _ <<<"${line##*) }"
    [[ "$state" != Z ]] || continue
    PROC_PPID[$pid]="$ppid"
    PROC_PGRP[$pid]="$pgrp"
    PROC_SID[$pid]="$sid"
  done
}

# proc_descendants PID... — after proc_scan: print the live descendants of
# the PIDs (not the PIDs themselves) that are in the same session as the
# first PID. A daemon started in a session of its own (setsid, daemonize) is
# left out, and with it whatever it started.
proc_descendants() {
  local sid="${PROC_SID[$1]:-}" p c
  local -A kids=()
  local -a queue=("$@")
  for p in "${!PROC_PPID[@]}"; do
    [[ "${PROC_SID[$p]}" == "$sid" ]] && kids[${PROC_PPID[$p]}]+=" $p"
  done
  while ((${#queue[@]} > 0)); do
    p="${queue[0]}"
    queue=("${queue[@]:1}")
    for c in ${kids[$p]:-}; do
      printf '%s\n' "$c"
      queue+=("$c")
    done
  done
}

# --------------------------------------------------------------------- ports --
# port_in_use PORT [HOST=127.0.0.1] — something accepts TCP connections there.
port_in_use() {
  local port="$1" host="${2:-$SENTINEL_HOST}"
  # shellcheck disable=SC2016  # $0/$1 expand in the inner bash
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null
}

# port_listener PORT — best effort "pid (command)" of the process listening
# on PORT, for error messages. Prints nothing when it cannot tell.
port_listener() {
  local port="$1" out=""
  if have ss; then
    out="$(ss -Hltnp "sport = :$port" 2>/dev/null | grep -o 'users:((.*))' | head -n1 || true)"
    if [[ "$out" =~ \"([^\"]+)\",pid=([0-9]+) ]]; then
      printf 'pid %s (%s)' "${BASH_REMATCH[2]}" "${BASH_REMATCH[1]}"
      return 0
    fi
  fi
  if have lsof; then
    out="$(lsof -nP -iTCP:"$port" -sTCP:LISTEN -Fpc 2>/dev/null | head -n2 | tr '\n' ' ' || true)"
    if [[ "$out" =~ p([0-9]+)\ c([^ ]+) ]]; then
      printf 'pid %s (%s)' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
      return 0
    fi
  fi
  return 0
}

# port_env_var PORT — name of the SENTINEL_*_PORT variable holding PORT.
port_env_var() {
  local port="$1" v
  for v in $(compgen -v SENTINEL_); do
    [[ "$v" == *_PORT ]] || continue
    if [[ "${!v}" == "$port" ]]; then
      printf '%s' "$v"
      return 0
    fi
  done
  printf 'SENTINEL_<SERVICE>_PORT'
}

# require_free_port PORT SERVICE [ENV_VAR] — fail fast (never hang) if PORT
# is taken. Call it only when our own process for SERVICE is NOT running,
# so whatever holds the port is by definition not ours.
require_free_port() {
  local port="$1" service="$2" var="${3:-}" who
  if port_in_use "$port"; then
    [[ -n "$var" ]] || var="$(port_env_var "$port")"
    who="$(port_listener "$port")"
    printf '[infra] %s: FAILED: port %s on %s is already in use%s, and not by a %s that this script started.\n' \
      "$service" "$port" "$SENTINEL_HOST" "${who:+ by $who}" "$service" >&2
    printf '[infra] %s: stop that process, or choose another port: export %s=<free port>\n' \
      "$service" "$var" >&2
    return 1
  fi
  return 0
}

# wait_for_port PORT TIMEOUT_SECONDS [PID] — poll until PORT accepts; gives up
# early if PID (the process expected to open it) dies.
wait_for_port() {
  local port="$1" timeout="$2" pid="${3:-}" deadline
  deadline=$(($(now_ms) + timeout * 1000))
  until port_in_use "$port"; do
    if [[ -n "$pid" ]] && ! pid_alive "$pid"; then return 1; fi
    (($(now_ms) < deadline)) || return 1
    sleep 0.1
  done
  return 0
}

# wait_until TIMEOUT_SECONDS PID CMD... — poll CMD every 200ms until it
# succeeds; fails on timeout or when PID (if non-empty) dies.
wait_until() {
  local timeout="$1" pid="$2" deadline
  shift 2
  deadline=$(($(now_ms) + timeout * 1000))
  until "$@" >/dev/null 2>&1; do
    if [[ -n "$pid" ]] && ! pid_alive "$pid"; then return 1; fi
    (($(now_ms) < deadline)) || return 1
    sleep 0.2
  done
  return 0
}

# http_get URL — body on stdout; curl when present, else bash /dev/tcp
# (plain http to 127.0.0.1 only, which is all we need).
http_get() {
  local url="$1"
  if have curl; then
    curl -fsS --max-time 3 "$url"
    return
  fi
  [[ "$url" =~ ^http://([^/:]+):([0-9]+)(/.*)?$ ]] || return 2
  local host="${BASH_REMATCH[1]}" port="${BASH_REMATCH[2]}" path="${BASH_REMATCH[3]:-/}" resp
  # shellcheck disable=SC2016  # expanded by the inner bash
  resp="$(timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1" || exit 1
    printf "GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n" "$2" "$0" >&3
    cat <&3' "$host" "$port" "$path")" || return 1
  [[ "$resp" =~ ^HTTP/1\.[01]\ 2 ]] || return 1
  printf '%s\n' "$resp" | sed '1,/^\r\{0,1\}$/d'
}

# ---------------------------------------------------------------------- json --
json_str() {
  local s="$1"
  s="${s//\\/\\\\}"
  s="${s//\"/\\\"}"
  s="${s//$'\n'/\\n}"
  s="${s//$'\r'/\\r}"
  s="${s//$'\t'/\\t}"
  printf '"%s"' "$s"
}

# svc_json NAME UP(true|false) ADDRESS VERSION PID LOG — the status object.
svc_json() {
  local name="$1" up="$2" address="$3" version="$4" pid="$5" logf="$6" pidj="null"
  [[ "$pid" =~ ^[0-9]+$ ]] && pidj="$pid"
  [[ "$up" == true ]] || up=false
  printf '{"name":%s,"up":%s,"address":%s,"version":%s,"pid":%s,"log":%s}\n' \
    "$(json_str "$name")" "$up" "$(json_str "$address")" "$(json_str "$version")" \
    "$pidj" "$(json_str "$logf")"
}

# json_field JSON KEY — value of KEY in a flat JSON object (strings unquoted).
json_field() {
  local json="$1" key="$2" re inner='(.*)(\{[^{}]*\})(.*)'
  # only look at top-level keys: drop nested objects first
  json="${json#*\{}"
  json="${json%\}*}"
  while [[ "$json" =~ $inner ]]; do
    json="${BASH_REMATCH[1]}null${BASH_REMATCH[3]}"
  done
  re="\"$key\"[[:space:]]*:[[:space:]]*(\"(([^\"\\\\]|\\\\.)*)\"|[^,}]*)"
  if [[ "$json" =~ $re ]]; then
    if [[ -n "${BASH_REMATCH[2]}" || "${BASH_REMATCH[1]}" == '""' ]]; then
      local v="${BASH_REMATCH[2]}"
      v="${v//\\\"/\"}"
      printf '%s' "${v//\\\\/\\}"
    else
      local v="${BASH_REMATCH[1]}"
      printf '%s' "${v//[[:space:]]/}"
    fi
  fi
}

# ---------------------------------------------------------------------- env ---
# env_line NAME VALUE — one `export NAME=VALUE` line, shell-quoted if needed.
env_line() { printf 'export %s=%q\n' "$1" "$2"; }

# -------------------------------------------------------------- directories ---
svc_state_dir() { printf '%s/%s' "$SENTINEL_STATE_DIR" "$1"; }
ensure_dir() { mkdir -p -- "$@"; }

# ---------------------------------------------------------------- packages ----
# as_root CMD... — run as root (directly, or via sudo -n when available).
as_root() {
  if [[ $EUID -eq 0 ]]; then
    "$@"
  elif have sudo && sudo -n true 2>/dev/null; then
    sudo -n "$@"
  else
    return 126
  fi
}

SENTINEL_APT_UPDATED="${SENTINEL_APT_UPDATED:-}"
# apt_install NAME PKG... — install Debian packages non-interactively.
# Runs `apt-get update` first when the package lists are empty, and retries
# once after an update if the install fails. Output goes to a log file.
apt_install() {
  local name="$1"
  shift
  have apt-get || die "$name: needs Debian packages ($*) but apt-get is not available; install them by hand"
  if [[ $EUID -ne 0 ]] && ! { have sudo && sudo -n true 2>/dev/null; }; then
    die "$name: missing packages: $* — run as root (or with password-less sudo), or: sudo apt-get install -y $*"
  fi
  local logf="$SENTINEL_STATE_DIR/apt.log"
  ensure_dir "$SENTINEL_STATE_DIR"
  local -a apt=(env DEBIAN_FRONTEND=noninteractive apt-get -y -q
    -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef
    -o Dpkg::Options::=--force-confold)
  if [[ -z "$SENTINEL_APT_UPDATED" ]] && ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
    svc_log "$name" "apt-get update…"
    as_root "${apt[@]}" update >>"$logf" 2>&1 || {
      log_tail "$logf"
      die "$name: apt-get update failed"
    }
    SENTINEL_APT_UPDATED=1
  fi
  # An install interrupted earlier (hack/infra.sh stops its jobs on a signal, dpkg included) leaves
  # dpkg asking for `dpkg --configure -a`; every apt-get install fails until that is run.
  if [[ -n "$(dpkg --audit 2>/dev/null)" ]]; then
    svc_log "$name" "finishing an interrupted dpkg run (dpkg --configure -a)…"
    as_root env DEBIAN_FRONTEND=noninteractive dpkg --configure -a --force-confdef --force-confold >>"$logf" 2>&1 || true
  fi
  svc_log "$name" "installing Debian packages: $* (log: $logf)…"
  if ! as_root "${apt[@]}" install --no-install-recommends "$@" >>"$logf" 2>&1; then
    if [[ -z "$SENTINEL_APT_UPDATED" ]]; then
      svc_log "$name" "install failed; running apt-get update and retrying…"
      as_root "${apt[@]}" update >>"$logf" 2>&1 || true
      SENTINEL_APT_UPDATED=1
      if as_root "${apt[@]}" install --no-install-recommends "$@" >>"$logf" 2>&1; then
        return 0
      fi
    fi
    log_tail "$logf"
    die "$name: apt-get install $* failed"
  fi
}

# disable_system_service NAME UNIT — after WE installed a Debian package that
# ships a daemon, make sure the distribution's own instance is not left
# running/enabled (we run our own copy on our own port and data dir).
disable_system_service() {
  local name="$1" unit="$2"
  if have systemctl && [[ -d /run/systemd/system ]]; then
    svc_log "$name" "disabling the distribution's $unit service (we run our own instance)"
    as_root systemctl disable --now "$unit" >/dev/null 2>&1 || true
  elif [[ -x "/etc/init.d/$unit" ]]; then
    as_root "/etc/init.d/$unit" stop >/dev/null 2>&1 || true
  fi
}

# version_ge A B — true if dotted version A >= B.
version_ge() {
  [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" == "$2" ]]
}

# ----------------------------------------------------------------- settings --
# A numeric setting that is not a number (SENTINEL_START_TIMEOUT=30s) would
# otherwise surface as a bash arithmetic error half-way through an `up`, after
# some services had started. hack/infra.sh calls check_settings before it does
# anything; each check dies naming the variable.

# check_number VAR MIN MAX WHAT — VAR, when set and not empty, is a whole
# number in MIN..MAX (no sign, no unit, no leading zero: bash reads 08 as
# octal); else die: "VAR must be WHAT, not '…'".
check_number() {
  local var="$1" min="$2" max="$3" what="$4" v
  v="${!var:-}"
  [[ -z "$v" ]] && return 0
  if [[ ! "$v" =~ ^(0|[1-9][0-9]{0,8})$ ]] || ((v < min || v > max)); then
    die "$var must be $what, not '$v'"
  fi
}

SENTINEL_PORT_VARS=(SENTINEL_PG_PORT SENTINEL_REDIS_PORT SENTINEL_NATS_PORT
  SENTINEL_NATS_MONITOR_PORT SENTINEL_KAFKA_PORT SENTINEL_KAFKA_CONTROLLER_PORT
  SENTINEL_ETCD_PORT SENTINEL_ETCD_PEER_PORT SENTINEL_KUBE_PORT)

# check_settings — the numeric settings hack/infra.sh --help and the service
# files document.
check_settings() {
  local v
  for v in "${SENTINEL_PORT_VARS[@]}"; do
    check_number "$v" 1 65535 "a TCP port number (1-65535)"
  done
  check_number SENTINEL_START_TIMEOUT 1 86400 "a whole number of seconds (1-86400)"
  check_number SENTINEL_KUBE_START_TIMEOUT 1 86400 "a whole number of seconds (1-86400)"
  check_number SENTINEL_KAFKA_PARTITIONS 1 10000 "a number of partitions (1-10000)"
}

# start_timeout SERVICE DEFAULT — SENTINEL_START_TIMEOUT overrides everything.
start_timeout() {
  check_number SENTINEL_START_TIMEOUT 1 86400 "a whole number of seconds (1-86400)"
  printf '%s' "${SENTINEL_START_TIMEOUT:-$2}"
}

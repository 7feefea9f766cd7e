#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# hack/infra.sh — local infrastructure for Sentinel, without Docker.
#
#   hack/infra.sh up [svc...]        install what is missing, start, wait ready
#   hack/infra.sh down [svc...]      stop what we started (data is kept)
#   hack/infra.sh start svc...       same as `up svc...`
#   hack/infra.sh stop svc...        same as `down svc...`
#   hack/infra.sh restart svc...     stop then start (data is kept)
#   hack/infra.sh status [--json] [svc...]   exit 0 if all up, 3 otherwise
#   hack/infra.sh env                `export X=...` lines: eval "$(hack/infra.sh env)"
#   hack/infra.sh kafka-run CLASS [args...]  run a Kafka tool class on the
#                                    cached classpath (ConsoleProducer, ...)
#
# Services: postgres redis nats kafka [kube] — kube only when hack/lib/kube.sh
# exists. Each lives in hack/lib/<svc>.sh and implements the contract
# documented at the top of hack/lib/common.sh (svc_<svc>_install|start|stop|
# status_json|env).
#
# Environment (all optional):
#   SENTINEL_STATE_DIR   logs, pid files, data  (default $XDG_STATE_HOME/sentinel
#                        or ~/.local/state/sentinel)
#   SENTINEL_CACHE_DIR   downloaded/built artefacts, keyed by version
#                        (default $XDG_CACHE_HOME/sentinel or ~/.cache/sentinel)
#   SENTINEL_PG_PORT=15432 SENTINEL_REDIS_PORT=16379 SENTINEL_NATS_PORT=14222
#   SENTINEL_NATS_MONITOR_PORT=18222 SENTINEL_KAFKA_PORT=19092
#   SENTINEL_KAFKA_CONTROLLER_PORT=19093 (kube: SENTINEL_ETCD_PORT=12379
#   SENTINEL_ETCD_PEER_PORT=12380 SENTINEL_KUBE_PORT=16443)
#   SENTINEL_START_TIMEOUT   seconds to wait for readiness (per-service defaults;
#                        kube: SENTINEL_KUBE_START_TIMEOUT first)
#   SENTINEL_INFRA_PARALLEL=0  start/stop services one by one (default: in parallel)
#   Ports and timeouts must be plain numbers: anything else is refused up front.
#
# Ctrl-C (SIGINT), SIGTERM and SIGHUP stop what is being installed or started
# (go build, maven, apt-get) within seconds, and the script exits 130, 143 or
# 129. Nothing half-built is kept; services already started keep running.
set -euo pipefail

HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/common.sh
source "$HACK_DIR/lib/common.sh"
# shellcheck source=lib/postgres.sh
source "$HACK_DIR/lib/postgres.sh"
# shellcheck source=lib/redis.sh
source "$HACK_DIR/lib/redis.sh"
# shellcheck source=lib/nats.sh
source "$HACK_DIR/lib/nats.sh"
# shellcheck source=lib/kafka.sh
source "$HACK_DIR/lib/kafka.sh"

ALL_SERVICES=(postgres redis nats kafka)
if [[ -f "$HACK_DIR/lib/kube.sh" ]]; then
  # shellcheck disable=SC1091  # written by another part of the project
  source "$HACK_DIR/lib/kube.sh"
  ALL_SERVICES+=(kube)
fi

CONTRACT=(install start stop status_json env)
for _svc in "${ALL_SERVICES[@]}"; do
  for _fn in "${CONTRACT[@]}"; do
    declare -F "svc_${_svc}_${_fn}" >/dev/null ||
      die "hack/lib/${_svc}.sh does not define svc_${_svc}_${_fn} (see the contract in hack/lib/common.sh)"
  done
done
unset _svc _fn

usage() {
  sed -n '3,/^set -euo pipefail/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"
}

# select_services NAME... — validate names; no names = all, in canonical order.
SELECTED=()
select_services() {
  SELECTED=()
  if (($# == 0)); then
    SELECTED=("${ALL_SERVICES[@]}")
    return 0
  fi
  local want s found
  for want in "$@"; do
    found=""
    for s in "${ALL_SERVICES[@]}"; do
      [[ "$s" == "$want" ]] && found=1
    done
    [[ -n "$found" ]] || die "unknown service '$want' (known: ${ALL_SERVICES[*]})"
  done
  # keep canonical order, drop duplicates
  for s in "${ALL_SERVICES[@]}"; do
    for want in "$@"; do
      if [[ "$s" == "$want" ]]; then
        SELECTED+=("$s")
        break
      fi
    done
  done
}

# One infra.sh at a time may change state (parallel `up`s from several test
# runners are safe: the later ones wait, then find everything running).
# fd 9 is closed in every child that may start a daemon, so no daemon keeps
# the lock.
take_lock() {
  ensure_dir "$SENTINEL_STATE_DIR"
  exec 9>"$SENTINEL_STATE_DIR/.infra.lock"
  if ! flock -n 9; then
    log "another hack/infra.sh is changing state; waiting for it (max 600s)…"
    # A job (see below), so that a signal need not wait for flock to give up.
    # It locks fd 9's open file description, which this shell shares.
    start_job flock -w 600 9
    job_wait "$JOB_PID" || die "timed out waiting for $SENTINEL_STATE_DIR/.infra.lock"
  fi
}

fmt_ms() {
  local ms="$1"
  printf '%d.%01ds' $((ms / 1000)) $(((ms % 1000) / 100))
}

# ------------------------------------------------------------------- jobs ---
# Service functions run as jobs: in background subshells, then waited for.
# They must be LAUNCHED outside any `if`/`||`/`&&` context: bash switches
# `set -e` off for everything started from such a context, subshells included.
# Hence run_action never appears in a condition: it always returns 0 and
# reports failures in FAILED.
#
# Signals. INT, TERM and HUP are trapped (on_signal); a trapped signal makes
# `wait` return at once. Without that, a SIGTERM (a CI cancel, kill, timeout)
# ended this script but not its jobs, which went on building and starting,
# watched by no one; and a Ctrl-C stopped a job only if all in it died of
# SIGINT: a background subshell ignores SIGINT (bash does that to background
# commands), as does a tool started by a caller that ignores it. on_signal
# SIGTERMs each job's whole process tree instead — every job is forked with
# job control on, so it leads a process group of its own, which holds
# `go build` and the compilers it runs, maven's JVM, apt-get — then dies of
# the same signal (status 130, 143, 129). Daemons are not in those trees:
# spawn_detached, kube_launch, redis and pg_ctl start them in sessions of
# their own, so what has started stays up (a later `up` finds it running).
# What an install writes goes to a temporary name (…partial.<pid>,
# …tmp.<pid>) renamed when complete; on_signal removes this run's leftovers.
JOB_PIDS=()      # jobs started and not yet waited for (each its process group)
JOB_PID=""       # the last one started
JOB_STOP_GRACE=5 # seconds between SIGTERM and SIGKILL

# start_job CMD [ARG...] — run CMD (a function or a command) as a job: in a
# background subshell leading its own process group, stdin from /dev/null;
# fd 9 (the lock) stays open only for flock. Sets JOB_PID. A background
# process group is stopped (SIGTTOU) when it writes to a terminal set to
# `stty tostop`: the job and what it runs ignore SIGTTOU (and SIGTTIN: a read
# from the terminal fails instead of stopping), as in the foreground.
start_job() {
  set -m
  if [[ "$1" == flock ]]; then
    ("$@") </dev/null &
  else
    (
      trap '' TTOU TTIN
      "$@"
    ) 9>&- </dev/null &
  fi
  JOB_PID=$!
  set +m
  JOB_PIDS+=("$JOB_PID")
}

# job_wait PID — wait for a job; returns its status.
job_wait() {
  local pid="$1" rc=0 p
  wait "$pid" || rc=$?
  local -a left=()
  for p in "${JOB_PIDS[@]}"; do
    [[ "$p" == "$pid" ]] || left+=("$p")
  done
  JOB_PIDS=(${left[@]+"${left[@]}"})
  return "$rc"
}

# _jobs_alive GROUPS... -- PIDS... — after proc_scan: true while a process of
# one of the process groups, or one of the pids, is alive.
_jobs_alive() {
  local p g
  local -A want=()
  while (($# > 0)) && [[ "$1" != -- ]]; do
    want[$1]=1
    shift
  done
  (($# > 0)) && shift
  for p in "$@"; do
    [[ -n "${PROC_PPID[$p]:-}" ]] && return 0
  done
  for p in "${!PROC_PGRP[@]}"; do
    g="${PROC_PGRP[$p]}"
    [[ -n "${want[$g]:-}" ]] && return 0
  done
  return 1
}

# stop_jobs — SIGTERM every running job's process group, and what its tree
# put in process groups of its own (`timeout` does) within this session;
# SIGKILL whatever is left after JOB_STOP_GRACE seconds; reap the jobs.
stop_jobs() {
  ((${#JOB_PIDS[@]} > 0)) || return 0
  local p c sig grace deadline
  local -a strays=()
  local -A groups=()
  for p in "${JOB_PIDS[@]}"; do groups[$p]=1; done
  proc_scan
  for p in "${JOB_PIDS[@]}"; do
    for c in $(proc_descendants "$p"); do
      [[ -n "${groups[${PROC_PGRP[$c]:-}]:-}" ]] || strays+=("$c")
    done
  done
  for sig in TERM KILL; do
    for p in "${JOB_PIDS[@]}"; do kill "-$sig" -- "-$p" 2>/dev/null || true; done
    ((${#strays[@]} == 0)) || kill "-$sig" "${strays[@]}" 2>/dev/null || true
    if [[ "$sig" == TERM ]]; then # a stopped process acts on SIGTERM once continued
      for p in "${JOB_PIDS[@]}"; do kill -CONT -- "-$p" 2>/dev/null || true; done
      ((${#strays[@]} == 0)) || kill -CONT "${strays[@]}" 2>/dev/null || true
    fi
    grace=2
    [[ "$sig" != TERM ]] || grace="$JOB_STOP_GRACE"
    deadline=$(($(now_ms) + grace * 1000))
    while :; do
      proc_scan
      _jobs_alive "${JOB_PIDS[@]}" -- ${strays[@]+"${strays[@]}"} || break 2
      (($(now_ms) < deadline)) || break
      sleep 0.1
    done
    [[ "$sig" == KILL ]] || warn "still running ${JOB_STOP_GRACE}s after SIGTERM; sending SIGKILL"
  done
  # Reap them (dead by now, so wait cannot block), quietly.
  for p in "${JOB_PIDS[@]}"; do
    pid_alive "$p" || wait "$p" 2>/dev/null || true
  done
  JOB_PIDS=()
}

# remove_partials — this run's temporary install files (see above). Those of
# other runs (another checkout sharing the cache) carry their own pid.
remove_partials() {
  [[ -d "$SENTINEL_CACHE_DIR" ]] || return 0
  find "$SENTINEL_CACHE_DIR" -maxdepth 3 \( -name "*.partial.$$" -o -name "*.tmp.$$" \) \
    -exec rm -rf -- {} + 2>/dev/null || true
}

# on_signal SIGNAL — the INT/TERM/HUP trap.
on_signal() {
  local sig="$1" n
  set +e
  trap '' INT TERM HUP # a second Ctrl-C must not cut the clean-up short (bounded)
  if ((${#JOB_PIDS[@]} > 0)); then
    log "interrupted (SIG$sig): stopping…"
    stop_jobs
    remove_partials
    log "stopped. Services that had started keep running (hack/infra.sh status; hack/infra.sh down stops them)."
  fi
  n="$(kill -l "$sig")"
  # Die of the signal, so that a calling shell stops too (130, 143, 129).
  trap - "$sig"
  kill "-$sig" "$$"
  exit $((128 + n))
}
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
trap 'on_signal HUP' HUP

# run_install SVC — run svc_<svc>_install; die if it fails.
run_install() {
  start_job "svc_${1}_install"
  job_wait "$JOB_PID" || die "$1: install failed"
}

# run_action ACTION SVC... — run svc_<svc>_<action> for each, in parallel
# (unless SENTINEL_INFRA_PARALLEL=0); FAILED lists the services that failed.
FAILED=()
run_action() {
  local action="$1" s i
  shift
  FAILED=()
  local -a svcs=("$@") pids=()
  if [[ "${SENTINEL_INFRA_PARALLEL:-1}" == 0 ]]; then
    for s in "${svcs[@]}"; do
      start_job "svc_${s}_${action}"
      job_wait "$JOB_PID" || FAILED+=("$s")
    done
  else
    for s in "${svcs[@]}"; do
      start_job "svc_${s}_${action}"
      pids+=("$JOB_PID")
    done
    for i in "${!svcs[@]}"; do
      job_wait "${pids[$i]}" || FAILED+=("${svcs[$i]}")
    done
  fi
  return 0
}

# ------------------------------------------------------------------ status ---
STATUS_LINES=()
collect_status() {
  STATUS_LINES=()
  local s line
  for s in "$@"; do
    line="$("svc_${s}_status_json" 2>/dev/null | tr -d '\n')" || line=""
    [[ -n "$line" ]] || line="$(svc_json "$s" false "" "" "" "")"
    STATUS_LINES+=("$line")
  done
}

all_up() {
  local l
  for l in "${STATUS_LINES[@]}"; do
    [[ "$(json_field "$l" up)" == true ]] || return 1
  done
  return 0
}

print_status_table() {
  local l up
  printf '%-9s %-5s %-24s %-10s %-8s %s\n' SERVICE STATE ADDRESS VERSION PID LOG
  for l in "${STATUS_LINES[@]}"; do
    up=down
    [[ "$(json_field "$l" up)" == true ]] && up=up
    printf '%-9s %-5s %-24s %-10s %-8s %s\n' \
      "$(json_field "$l" name)" "$up" "$(json_field "$l" address)" \
      "$(json_field "$l" version)" "$(json_field "$l" pid | sed 's/^null$/-/')" \
      "$(json_field "$l" log)"
  done
}

cmd_status() {
  local json="" a
  local -a names=()
  for a in "$@"; do
    case "$a" in
      --json) json=1 ;;
      -*) die "status: unknown option $a" ;;
      *) names+=("$a") ;;
    esac
  done
  select_services ${names[@]+"${names[@]}"}
  collect_status "${SELECTED[@]}"
  local allup=false
  all_up && allup=true
  if [[ -n "$json" ]]; then
    local first=1 l
    printf '{"services":['
    for l in "${STATUS_LINES[@]}"; do
      ((first)) || printf ','
      first=0
      printf '%s' "$l"
    done
    printf '],"stateDir":%s,"cacheDir":%s,"allUp":%s}\n' \
      "$(json_str "$SENTINEL_STATE_DIR")" "$(json_str "$SENTINEL_CACHE_DIR")" "$allup"
  else
    print_status_table
    printf '\nstate: %s   cache: %s\n' "$SENTINEL_STATE_DIR" "$SENTINEL_CACHE_DIR"
  fi
  [[ "$allup" == true ]] || return 3
}

# --------------------------------------------------------------------- up ----
cmd_up() {
  select_services "$@"
  take_lock
  local t0 t1 s
  t0="$(now_ms)"
  ensure_dir "$SENTINEL_STATE_DIR" "$SENTINEL_CACHE_DIR"
  log "up: ${SELECTED[*]} (state: $SENTINEL_STATE_DIR)"
  # installs run one by one (apt and maven do not like company)
  for s in "${SELECTED[@]}"; do
    run_install "$s"
  done
  t1="$(now_ms)"
  run_action start "${SELECTED[@]}"
  local t2
  t2="$(now_ms)"
  collect_status "${SELECTED[@]}"
  {
    echo
    print_status_table
    echo
    local hint="eval \"\$(${BASH_SOURCE[0]} env)\""
    printf 'install %s, start %s, total %s.  Use: %s\n' \
      "$(fmt_ms $((t1 - t0)))" "$(fmt_ms $((t2 - t1)))" "$(fmt_ms $((t2 - t0)))" "$hint"
  } >&2
  if ((${#FAILED[@]} > 0)); then
    die "up: failed: ${FAILED[*]} (see messages above)"
  fi
  log "up: all ready in $(fmt_ms $((t2 - t0)))"
}

cmd_down() {
  select_services "$@"
  take_lock
  local t0 i
  t0="$(now_ms)"
  # reverse order (matters only when SENTINEL_INFRA_PARALLEL=0)
  local -a rev=()
  for ((i = ${#SELECTED[@]} - 1; i >= 0; i--)); do rev+=("${SELECTED[$i]}"); done
  log "down: ${rev[*]}"
  run_action stop "${rev[@]}"
  ((${#FAILED[@]} == 0)) || die "down: failed to stop: ${FAILED[*]}"
  log "down: done in $(fmt_ms $(($(now_ms) - t0))) (data kept in $SENTINEL_STATE_DIR)"
}

cmd_restart() {
  (($# > 0)) || die "usage: hack/infra.sh restart <service...> (known: ${ALL_SERVICES[*]})"
  select_services "$@"
  local -a svcs=("${SELECTED[@]}")
  take_lock
  local t0 s
  t0="$(now_ms)"
  for s in "${svcs[@]}"; do
    run_install "$s"
  done
  run_action stop "${svcs[@]}"
  ((${#FAILED[@]} == 0)) || die "restart: failed to stop: ${FAILED[*]}"
  run_action start "${svcs[@]}"
  ((${#FAILED[@]} == 0)) || die "restart: failed to start: ${FAILED[*]}"
  log "restart: ${svcs[*]} done in $(fmt_ms $(($(now_ms) - t0)))"
}

cmd_env() {
  local s
  for s in "${ALL_SERVICES[@]}"; do
    "svc_${s}_env"
  done
  env_line SENTINEL_STATE_DIR "$SENTINEL_STATE_DIR"
}

main() {
  local cmd="${1:-help}"
  (($# > 0)) && shift
  case "$cmd" in
    help | -h | --help) ;;
    *) check_settings ;;
  esac
  case "$cmd" in
    up) cmd_up "$@" ;;
    start)
      (($# > 0)) || die "usage: hack/infra.sh start <service...> (or: up)"
      cmd_up "$@"
      ;;
    down) cmd_down "$@" ;;
    stop)
      (($# > 0)) || die "usage: hack/infra.sh stop <service...> (or: down)"
      cmd_down "$@"
      ;;
    restart) cmd_restart "$@" ;;
    status) cmd_status "$@" ;;
    env) cmd_env ;;
    kafka-run)
      (($# > 0)) || die "usage: hack/infra.sh kafka-run <main class> [args...]"
      kafka_run_class "$@"
      ;;
    help | -h | --help) usage ;;
    *)
      usage >&2
      die "unknown command '$cmd'"
      ;;
  esac
}

main "$@"

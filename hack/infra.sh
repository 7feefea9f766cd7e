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
#   SENTINEL_START_TIMEOUT   seconds to wait for readiness (per-service defaults)
#   SENTINEL_INFRA_PARALLEL=0  start/stop services one by one (default: in parallel)
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
    flock -w 600 9 || die "timed out waiting for $SENTINEL_STATE_DIR/.infra.lock"
  fi
}

fmt_ms() {
  local ms="$1"
  printf '%d.%01ds' $((ms / 1000)) $(((ms % 1000) / 100))
}

# Service functions run in subshells with fd 9 (the lock) closed, started with
# `&` and then waited for. They must be LAUNCHED outside any `if`/`||`/`&&`
# context: bash switches `set -e` off for everything started from such a
# context, subshells included. Hence run_action never appears in a condition:
# it always returns 0 and reports failures in FAILED.

# run_install SVC — run svc_<svc>_install; die if it fails.
run_install() {
  ("svc_${1}_install") 9>&- &
  wait "$!" || die "$1: install failed"
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
      ("svc_${s}_${action}") 9>&- &
      wait "$!" || FAILED+=("$s")
    done
  else
    for s in "${svcs[@]}"; do
      ("svc_${s}_${action}") 9>&- &
      pids+=("$!")
    done
    for i in "${!svcs[@]}"; do
      wait "${pids[$i]}" || FAILED+=("${svcs[$i]}")
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

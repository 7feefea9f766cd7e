#!/usr/bin/env bash
# shellcheck disable=SC2016  # the node -e snippets are JavaScript: their ${} are template literals
# hack/demo.sh — `npm run demo`: the whole system in one command, on this machine, without Docker.
#
#   bash hack/demo.sh            run the demo, then clean up its processes and its event
#   bash hack/demo.sh --keep     leave the operator, engines and ingress running (prints how to use them)
#   bash hack/demo.sh --stop     stop what a --keep run left running
#
# Steps: install (npm ci when needed) → hack/infra.sh up (Postgres, Redis, NATS, Kafka, the
# Kubernetes API server) → migrate → start the operator → apply k8s/samples/small.yaml through the
# API server (as a uniquely named copy whose sale opens now) → wait until the operator provisioned
# its inventory → start the engines and the ingress the way the event's Deployment describes (no
# kubelet runs here, so this script plays its part: the Deployment's replicas, env and ConfigMap)
# → a hot-seat rush and a flash sale with `sentinel stress` → `sentinel verify` → the report, with
# `kubectl get ticketevents`.
#
# Environment: SENTINEL_DEMO_BUYERS (flash-sale buyers, default 600), SENTINEL_DEMO_RUSH (hot-seat
# buyers, default 1000), and hack/infra.sh's variables.
set -euo pipefail
cd "$(dirname "$0")/.."

KEEP=0
STOP=0
for arg in "$@"; do
  case "$arg" in
    --keep) KEEP=1 ;;
    --stop) STOP=1 ;;
    -h | --help)
      sed -n '3,/^set -euo pipefail/{/^#/s/^# \{0,1\}//p}' "$0"
      exit 0
      ;;
    *)
      echo "demo: unknown option $arg (see --help)" >&2
      exit 2
      ;;
  esac
done

STATE_DIR="${SENTINEL_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/sentinel}/demo"
NAMESPACE=sentinel-demo
BUYERS="${SENTINEL_DEMO_BUYERS:-600}"
RUSH="${SENTINEL_DEMO_RUSH:-1000}"
SENTINEL=(node bin/sentinel.js)
started=$SECONDS

bold() { printf '\033[1m%s\033[0m\n' "$*"; }
step() { printf '\n\033[1;34m==> %s\033[0m \033[2m(%ss)\033[0m\n' "$*" "$((SECONDS - started))" >&2; }
note() { printf '    %s\n' "$*" >&2; }
die() {
  printf '\n\033[1;31mdemo: %s\033[0m\n' "$*" >&2
  exit 1
}

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

wait_http() { # URL SECONDS WHAT
  local deadline=$((SECONDS + $2))
  until curl -fsS -o /dev/null "$1" 2>/dev/null; do
    ((SECONDS < deadline)) || return 1
    sleep 0.3
  done
}

# --- processes this demo started: remembered so --stop and the cleanup end exactly them --------
PIDS_FILE="$STATE_DIR/pids"
ENV_FILE="$STATE_DIR/demo.env"
# A process's start time (clock ticks after boot, field 22 of /proc/PID/stat), nothing for a pid
# that is gone or a zombie. With the pid it names one process: never a later one given the same
# pid (after a reboot, say), which a --stop must not signal.
proc_start() {
  local stat fields
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 0
  stat=${stat##*) } # the fields after the command name, which may hold spaces: state is the first
  read -r -a fields <<<"$stat"
  [[ "${fields[0]}" != Z ]] && echo "${fields[19]}"
  return 0
}
remember() { echo "$1 $2 $(proc_start "$1")" >>"$PIDS_FILE"; } # PID ROLE START
# PID START: a record without a start time was written before they were kept: then only whether
# the pid runs can be told.
recorded_alive() {
  if [[ -z "${2:-}" ]]; then kill -0 "$1" 2>/dev/null; else [[ "$(proc_start "$1")" == "$2" ]]; fi
}

stop_recorded() {
  [[ -f "$PIDS_FILE" ]] || return 0
  local pid role start
  # Ingress first (no new work), then engines (they hand their shards off), the operator last.
  for wanted in ingress engine operator; do
    while read -r pid role start; do
      [[ "$role" == "$wanted" ]] && recorded_alive "$pid" "$start" || continue
      kill -TERM "$pid" 2>/dev/null || true
    done <"$PIDS_FILE"
    while read -r pid role start; do
      [[ "$role" == "$wanted" ]] || continue
      for _ in $(seq 1 100); do
        recorded_alive "$pid" "$start" || break
        sleep 0.2
      done
      if recorded_alive "$pid" "$start"; then kill -KILL "$pid" 2>/dev/null || true; fi
    done <"$PIDS_FILE"
    [[ "$wanted" != engine || -z "${DEMO_NAME:-}" ]] || delete_event
  done
  rm -f "$PIDS_FILE"
}

# Deleting the TicketEvent runs the operator's finalizer (close the sale, keep every sold
# reservation archived); no controller-manager runs here to garbage-collect its children, so they
# are deleted by label.
delete_event() {
  note "deleting TicketEvent $DEMO_NAME (its reservations stay, archived)"
  kubectl delete ticketevent -n "$NAMESPACE" "$DEMO_NAME" --wait=true --timeout=90s >/dev/null 2>&1 ||
    note "the TicketEvent was not deleted in time; see $STATE_DIR/operator.log"
  kubectl delete deployment,configmap,service,poddisruptionbudget -n "$NAMESPACE" -l "sentinel.dev/ticket-event=$DEMO_NAME" >/dev/null 2>&1 || true
  DEMO_NAME=
}

# Whether a process the pid file names still runs.
recorded_running() {
  local pid role start
  [[ -f "$PIDS_FILE" ]] || return 1
  while read -r pid role start; do
    if recorded_alive "$pid" "$start"; then return 0; fi
  done <"$PIDS_FILE"
  return 1
}

if ((STOP)); then
  [[ -f "$ENV_FILE" || -f "$PIDS_FILE" ]] || die "no kept demo to stop (neither $ENV_FILE nor $PIDS_FILE exists)"
  INFRA_ENV=$(bash hack/infra.sh env) # a failure stops the demo: eval "$(…)" would not
  eval "$INFRA_ENV"
  # shellcheck disable=SC1090
  [[ ! -f "$ENV_FILE" ]] || source "$ENV_FILE"
  stop_recorded
  rm -f "$ENV_FILE"
  bold "demo stopped (the infrastructure keeps running: bash hack/infra.sh down)"
  exit 0
fi

mkdir -p "$STATE_DIR"
if recorded_running; then
  die "a demo is still running (kept with --keep?): stop it first with bash hack/demo.sh --stop"
elif [[ -f "$PIDS_FILE" ]]; then
  # A demo killed before its cleanup could run (SIGKILL, a reboot): nothing of it runs any more.
  note "an earlier demo ended without cleaning up and none of its processes runs; starting afresh"
  if [[ -f "$ENV_FILE" ]] && grep -q '^DEMO_NAME=' "$ENV_FILE"; then
    note "its TicketEvent may remain: kubectl get ticketevents -n $NAMESPACE"
  fi
  rm -f "$PIDS_FILE" "$ENV_FILE"
fi
: >"$PIDS_FILE"
# Without --keep, the demo's processes stop by themselves if the demo itself dies uncleanly
# (src/cli/signals.ts); a kept demo's must outlive it.
if ((KEEP)); then OWNER=(); else OWNER=(env "SENTINEL_EXIT_WITH_PARENT=$$"); fi
INFRA_PID=""
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  local status=$?
  if [[ -n "$INFRA_PID" ]]; then
    # Interrupted during hack/infra.sh up: it stops what it was installing or starting.
    kill -TERM "$INFRA_PID" 2>/dev/null || true
    wait "$INFRA_PID" 2>/dev/null || true
  fi
  if ((KEEP)) && ((status == 0)); then return; fi
  step "cleaning up (processes and the demo's event; pass --keep to leave them running)"
  stop_recorded
  rm -f "$ENV_FILE"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# --- 1. install ------------------------------------------------------------------------------
step "dependencies"
if [[ ! -d node_modules || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund
else
  note "node_modules is up to date"
fi

# --- 2. infrastructure ------------------------------------------------------------------------
step "infrastructure: Postgres, Redis, NATS, Kafka and the Kubernetes API server (hack/infra.sh up)"
# In the background, waited for: bash runs a trap only once its foreground command has ended, so
# a signal sent to the demo alone would wait out a first run's builds (cleanup stops infra.sh).
bash hack/infra.sh up &
INFRA_PID=$!
infra_status=0
wait "$INFRA_PID" || infra_status=$?
INFRA_PID=""
((infra_status == 0)) || exit "$infra_status"
INFRA_ENV=$(bash hack/infra.sh env)
eval "$INFRA_ENV"
command -v kubectl >/dev/null || die "kubectl is not on PATH after hack/infra.sh env: the Kubernetes API server part of hack/infra.sh is missing"
kubectl version >/dev/null 2>&1 || die "the Kubernetes API server does not answer (bash hack/infra.sh status); the demo needs it for the operator"
"${SENTINEL[@]}" --help | grep -qE '^  operator ' || die "this checkout has no \`sentinel operator\` yet: the demo needs it to provision the event"
"${SENTINEL[@]}" --help | grep -qE '^  ingress ' || die "this checkout has no \`sentinel ingress\` yet: the demo drives the sale through it"
[[ -f crds/sentinel.dev_ticketevents.yaml && -f k8s/samples/small.yaml ]] || die "crds/ or k8s/samples/small.yaml is missing"

step "database schema (sentinel migrate)"
"${SENTINEL[@]}" migrate

# --- 3. the operator and the TicketEvent ------------------------------------------------------
step "TicketEvent CRD and the operator"
kubectl apply --server-side --force-conflicts -f crds/sentinel.dev_ticketevents.yaml >/dev/null
kubectl wait --for=condition=Established crd/ticketevents.sentinel.dev --timeout=60s >/dev/null
kubectl get namespace "$NAMESPACE" >/dev/null 2>&1 || kubectl create namespace "$NAMESPACE" >/dev/null
OPERATOR_PORT=$(free_port)
SENTINEL_HTTP_PORT=$OPERATOR_PORT LOG_LEVEL=info "${OWNER[@]}" "${SENTINEL[@]}" operator --namespace="$NAMESPACE" --lease-namespace="$NAMESPACE" \
  --http-host=127.0.0.1 --refresh-interval=2s --drain-timeout=30s >"$STATE_DIR/operator.log" 2>&1 &
remember $! operator
wait_http "http://127.0.0.1:$OPERATOR_PORT/healthz" 60 || die "the operator did not come up; see $STATE_DIR/operator.log"
note "operator running (pid $!, log $STATE_DIR/operator.log)"

DEMO_NAME="club-night-$(date +%H%M%S)"
step "applying k8s/samples/small.yaml as $NAMESPACE/$DEMO_NAME (sale window moved to now)"
OPENS=$(date -u -d '-1 minute' +%Y-%m-%dT%H:%M:%SZ)
CLOSES=$(date -u -d '+1 day' +%Y-%m-%dT%H:%M:%SZ)
sed -e "s/^  name: club-night\$/  name: $DEMO_NAME/" \
  -e "s/^    opensAt: .*/    opensAt: '$OPENS'/" \
  -e "s/^    closesAt: .*/    closesAt: '$CLOSES'/" k8s/samples/small.yaml >"$STATE_DIR/ticket-event.yaml"
kubectl apply -n "$NAMESPACE" -f "$STATE_DIR/ticket-event.yaml"
{
  echo "DEMO_NAME=$DEMO_NAME"
  echo "NAMESPACE=$NAMESPACE"
} >"$ENV_FILE"
kubectl wait -n "$NAMESPACE" --for=condition=InventoryProvisioned "ticketevent/$DEMO_NAME" --timeout=120s >/dev/null ||
  die "the operator did not provision the event; see kubectl describe ticketevent -n $NAMESPACE $DEMO_NAME and $STATE_DIR/operator.log"
kubectl get ticketevents -n "$NAMESPACE" "$DEMO_NAME"

# --- 4. engines and ingress, as the Deployment describes -------------------------------------
step "engines and ingress, the way deployment/$DEMO_NAME-engine describes them"
DEPLOYMENT="$DEMO_NAME-engine"
kubectl get deployment -n "$NAMESPACE" "$DEPLOYMENT" >/dev/null 2>&1 || die "the operator created no Deployment $DEPLOYMENT"
# The pod's environment: the container's env values, then its envFrom ConfigMaps (optional ones may be absent).
kubectl get deployment -n "$NAMESPACE" "$DEPLOYMENT" -o json >"$STATE_DIR/deployment.json"
REPLICAS=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).spec.replicas ?? 1)' "$STATE_DIR/deployment.json")
: >"$STATE_DIR/engine.env"
for cm in $(node -e 'const d=JSON.parse(require("fs").readFileSync(process.argv[1]));for(const f of d.spec.template.spec.containers[0].envFrom??[])if(f.configMapRef)console.log(f.configMapRef.name)' "$STATE_DIR/deployment.json"); do
  kubectl get configmap -n "$NAMESPACE" "$cm" -o json 2>/dev/null |
    node -e 'let s="";process.stdin.on("data",c=>s+=c).on("end",()=>{for(const[k,v]of Object.entries(JSON.parse(s).data??{}))console.log(`${k}=${v}`)})' >>"$STATE_DIR/engine.env" || true
done
node -e 'const d=JSON.parse(require("fs").readFileSync(process.argv[1]));for(const e of d.spec.template.spec.containers[0].env??[])if(e.value!==undefined)console.log(`${e.name}=${e.value}`)' \
  "$STATE_DIR/deployment.json" >>"$STATE_DIR/engine.env"
EVENT_ID=$(grep '^SENTINEL_EVENT=' "$STATE_DIR/engine.env" | tail -1 | cut -d= -f2-)
[[ -n "$EVENT_ID" ]] || die "the Deployment does not say which event its engines serve (SENTINEL_EVENT)"
note "replicas: $REPLICAS; environment: $(sort -u "$STATE_DIR/engine.env" | tr '\n' ' ')(each process gets its own SENTINEL_HTTP_PORT)"
echo "EVENT_ID=$EVENT_ID" >>"$ENV_FILE"
for i in $(seq 1 "$REPLICAS"); do
  port=$(free_port)
  # One host, so each "pod" gets its own metrics port; SENTINEL_ENGINE_ID is the pod name (a fieldRef in the Deployment).
  (
    set -a
    # shellcheck disable=SC1091
    source "$STATE_DIR/engine.env"
    set +a
    SENTINEL_ENGINE_ID="$DEPLOYMENT-$i" SENTINEL_HTTP_PORT=$port exec "${OWNER[@]}" "${SENTINEL[@]}" engine
  ) >"$STATE_DIR/engine-$i.log" 2>&1 &
  remember $! engine
  wait_http "http://127.0.0.1:$port/readyz" 60 || die "engine $i did not become ready; see $STATE_DIR/engine-$i.log"
  note "engine $DEPLOYMENT-$i ready (pid $!, metrics http://127.0.0.1:$port/metrics)"
done
INGRESS_PORT=$(free_port)
INGRESS="http://127.0.0.1:$INGRESS_PORT"
LOG_LEVEL=warn "${OWNER[@]}" "${SENTINEL[@]}" ingress --port "$INGRESS_PORT" --host 127.0.0.1 >"$STATE_DIR/ingress.log" 2>&1 &
remember $! ingress
wait_http "$INGRESS/readyz" 60 || die "the ingress did not become ready; see $STATE_DIR/ingress.log"
note "ingress ready at $INGRESS (pid $!)"
echo "INGRESS=$INGRESS" >>"$ENV_FILE"
kubectl wait -n "$NAMESPACE" --for=condition=ShardsAvailable "ticketevent/$DEMO_NAME" --timeout=60s >/dev/null ||
  note "the operator does not report every shard available yet; the load retries 503s"

# --- 5. the sale -----------------------------------------------------------------------------
# The response logs are appended to: this run's start empty, so that verify reads this run's
# answers only (and not a line an earlier demo, killed mid-write, cut short).
rm -f "$STATE_DIR/hot-seat.jsonl" "$STATE_DIR/flash-sale.jsonl"
step "hot-seat rush: $RUSH buyers click seat A-1-1 at once (admission control: ${RUSH} buyers against 200 admitted/s)"
"${SENTINEL[@]}" stress --event "$EVENT_ID" --target "$INGRESS" --scenario hot-seat --seat A-1-1 --buyers "$RUSH" \
  --concurrency "$RUSH" --retries 10 --log "$STATE_DIR/hot-seat.jsonl" | tee "$STATE_DIR/hot-seat.txt"

step "flash sale: $BUYERS buyers hold a seat, think, then confirm (80 %) or release"
"${SENTINEL[@]}" stress --event "$EVENT_ID" --target "$INGRESS" --scenario flash-sale --buyers "$BUYERS" --concurrency 200 \
  --think 100-500ms --retries 10 --log "$STATE_DIR/flash-sale.jsonl" | tee "$STATE_DIR/flash-sale.txt"

# --- 6. verify and report --------------------------------------------------------------------
step "verify: every invariant, over Postgres, the Kafka topic and both response logs"
verified=0
"${SENTINEL[@]}" verify --event "$EVENT_ID" --log "$STATE_DIR/hot-seat.jsonl" --log "$STATE_DIR/flash-sale.jsonl" | tee "$STATE_DIR/verify.txt" || verified=$?

step "report"
sleep 3 # one operator status refresh
kubectl get ticketevents -n "$NAMESPACE"
echo
bold "Sentinel demo — event $EVENT_ID ($NAMESPACE/$DEMO_NAME), $((SECONDS - started)) s"
grep -E '^  (buyers|requests|latency|by status)' "$STATE_DIR/hot-seat.txt" | sed 's/^/  hot seat  /'
grep -E '^  (buyers|requests|latency|by status|sold)' "$STATE_DIR/flash-sale.txt" | sed 's/^/  flash     /'
head -1 "$STATE_DIR/verify.txt" | sed 's/^/  /'
note "logs and response logs: $STATE_DIR"
note "the infrastructure keeps running for the next run (stop it with: bash hack/infra.sh down)"
if ((KEEP)); then
  echo
  bold "kept running (stop with: bash hack/demo.sh --stop)"
  note "ingress      $INGRESS   (token: node bin/sentinel.js token --sub alice)"
  note "event        $EVENT_ID"
  note "try          curl -s $INGRESS/v1/events/$EVENT_ID/availability -H \"authorization: Bearer \$(node bin/sentinel.js token --sub alice)\""
fi
exit "$verified"

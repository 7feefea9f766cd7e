#!/usr/bin/env bash
# `npm test`: installs what is missing, starts the real local infrastructure once, then runs
# lint, the type check, the unit suite and the integration suite against the real services.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }
started=$SECONDS

if [[ ! -d node_modules || package-lock.json -nt node_modules/.package-lock.json ]]; then
  step "npm ci"
  npm ci --no-audit --no-fund
fi

step "lint and format"
npx eslint .
npx prettier --check . >/dev/null || { npx prettier --check .; exit 1; }

step "type check"
npx tsc --noEmit

step "generated files are up to date"
bash hack/check-generated.sh

step "infrastructure (hack/infra.sh up)"
# In the background, waited for: bash runs a trap only once its foreground command has ended, so
# a signal sent to this script alone (a CI cancel, kill, timeout) would wait out a first run's
# builds. On INT, TERM or HUP infra.sh is told to stop (it stops what it was installing or
# starting within seconds), and this script dies of the same signal; when infra.sh is interrupted
# itself, its failure stops this script (set -e).
infra_pid=""
# shellcheck disable=SC2317  # invoked by the traps
stop_infra() {
  trap '' INT TERM HUP
  if [[ -n "$infra_pid" ]]; then
    kill -TERM "$infra_pid" 2>/dev/null || true
    wait "$infra_pid" 2>/dev/null || true
  fi
  trap - "$1"
  kill "-$1" "$$"
  exit $((128 + $(kill -l "$1")))
}
trap 'stop_infra INT' INT
trap 'stop_infra TERM' TERM
trap 'stop_infra HUP' HUP
bash hack/infra.sh up &
infra_pid=$!
infra_status=0
wait "$infra_pid" || infra_status=$?
infra_pid=""
trap - INT TERM HUP
((infra_status == 0)) || exit "$infra_status"
infra_env=$(bash hack/infra.sh env) # a failure stops the run: eval "$(…)" would not
eval "$infra_env"

step "a fresh test database (hack/fresh-database.ts)"
# The suite's own database, recreated each run: the development database keeps every event
# created in it, and a database grown over many runs changes what Postgres costs per command.
test_database=$(npx tsx hack/fresh-database.ts sentinel_test)
eval "$test_database"
[[ "${DATABASE_URL}" == */sentinel_test ]] || { echo "the test database was not set up: DATABASE_URL=${DATABASE_URL}" >&2; exit 1; }
echo "DATABASE_URL=${DATABASE_URL}"

step "unit and integration tests"
# One tap run, so the closing summary covers everything; integration tests run one file at a
# time (-j1) because several of them start and stop engine processes on the shared services.
set +e
npx tap --jobs=1 --reporter=terse 2>&1 | tee "${SENTINEL_STATE_DIR}/last-test-run.log"
status=${PIPESTATUS[0]}
set -e

summary=$(grep -Eo '^# \{ total: [0-9]+.*\}' "${SENTINEL_STATE_DIR}/last-test-run.log" | tail -1 || true)
pass=$(grep -Eo 'pass: [0-9]+' <<<"$summary" | grep -Eo '[0-9]+' || true)
fail=$(grep -Eo 'fail: [0-9]+' <<<"$summary" | grep -Eo '[0-9]+' || true)
echo "tests took $((SECONDS - started))s"
if [[ -n "$pass" ]]; then echo "${pass} passed, ${fail:-0} failed"; fi
# Never green on a failure tap reported but did not turn into its exit code, nor without a summary.
if [[ -z "$pass" || "${fail:-0}" != "0" ]] && [[ "$status" == "0" ]]; then
  echo "tap exited 0 but its summary says otherwise: ${summary:-no summary}" >&2
  status=1
fi
exit "$status"

# shellcheck shell=bash
# hack/lib/kafka.sh — Apache Kafka 4.x, single node KRaft (broker+controller in
# one JVM), from the org.apache.kafka:kafka_2.13 jars on Maven Central.
#
#   jars        hack/kafka/pom.xml, resolved once with
#               `mvn -q -B dependency:copy-dependencies` into
#               $SENTINEL_CACHE_DIR/kafka-<version>/libs (+ a stamp file keyed
#               by the pom's sha256: later runs never call maven)
#   listeners   PLAINTEXT 127.0.0.1:$SENTINEL_KAFKA_PORT (19092),
#               CONTROLLER 127.0.0.1:$SENTINEL_KAFKA_CONTROLLER_PORT (19093)
#   quorum      static: controller.quorum.voters=1@127.0.0.1:<controller port>,
#               storage formatted once with a fixed cluster id
#               ($SENTINEL_KAFKA_CLUSTER_ID) — so a port change keeps working
#   logging     log4j2 (hack/kafka/log4j2.properties) ->
#               $SENTINEL_STATE_DIR/kafka/logs/server.log; JVM stdout/stderr ->
#               $SENTINEL_STATE_DIR/kafka/kafka.out
#   data        $SENTINEL_STATE_DIR/kafka/data (kept across stop/start)
#   ready when  the broker port accepts AND TopicCommand --list succeeds
#
# Extra: kafka_run_class CLASS ARGS... runs any Kafka tool on the same
# classpath (hack/infra.sh kafka-run CLASS ARGS... exposes it).

: "${SENTINEL_KAFKA_VERSION:=4.1.1}"
: "${SENTINEL_KAFKA_CLUSTER_ID:=c2VudGluZWwtbG9jYWwtMQ}" # base64url("sentinel-local-1")
: "${SENTINEL_KAFKA_HEAP_OPTS:=-Xms256m -Xmx512m}"
: "${SENTINEL_KAFKA_PARTITIONS:=1}"

_kafka_dir() { svc_state_dir kafka; }
_kafka_home() { printf '%s/kafka-%s' "$SENTINEL_CACHE_DIR" "$SENTINEL_KAFKA_VERSION"; }
_kafka_libs() { printf '%s/libs' "$(_kafka_home)"; }
_kafka_pom() { printf '%s/kafka/pom.xml' "$SENTINEL_HACK_DIR"; }
_kafka_pidfile() { printf '%s/kafka.pid' "$(_kafka_dir)"; }
_kafka_log() { printf '%s/logs/server.log' "$(_kafka_dir)"; }
_kafka_out() { printf '%s/kafka.out' "$(_kafka_dir)"; }
_kafka_running_pid() { pidfile_pid "$(_kafka_pidfile)" kafka.Kafka; }

_kafka_stamp_value() {
  printf 'kafka=%s pom=%s\n' "$SENTINEL_KAFKA_VERSION" "$(sha256sum <"$(_kafka_pom)" | cut -d' ' -f1)"
}
_kafka_resolved() {
  local stamp
  stamp="$(_kafka_home)/.resolved"
  [[ -r "$stamp" && "$(<"$stamp")" == "$(_kafka_stamp_value)" ]] &&
    compgen -G "$(_kafka_libs)/kafka_2.13-*.jar" >/dev/null
}

# Java major version of `java` on PATH (17, 21, ...), or nothing.
_java_major() {
  have java || return 0
  java -version 2>&1 | sed -n 's/.*version "\([0-9]*\)[."].*/\1/p' | head -n1
}

svc_kafka_install() {
  local jv
  jv="$(_java_major)"
  if [[ -z "$jv" ]] || ((jv < 17)); then
    apt_install kafka default-jre-headless
    jv="$(_java_major)"
    if [[ -z "$jv" ]] || ((jv < 17)); then
      die "kafka: Kafka 4 needs Java >= 17; 'java' is ${jv:-missing}"
    fi
  fi
  _kafka_resolved && return 0
  have mvn || apt_install kafka maven
  local home tmp mlog
  home="$(_kafka_home)"
  mkdir -p -- "$home"
  tmp="$home/libs.tmp.$$"
  mlog="$home/maven.log"
  rm -rf -- "$tmp"
  svc_log kafka "resolving Kafka $SENTINEL_KAFKA_VERSION jars with maven (first run only; log: $mlog)…"
  if ! (cd "$SENTINEL_HACK_DIR/kafka" && mvn -q -B -f "$(_kafka_pom)" \
    -Dkafka.version="$SENTINEL_KAFKA_VERSION" -DincludeScope=runtime \
    -DoutputDirectory="$tmp" dependency:copy-dependencies) >"$mlog" 2>&1; then
    rm -rf -- "$tmp"
    log_tail "$mlog"
    die "kafka: maven could not resolve org.apache.kafka:kafka_2.13:$SENTINEL_KAFKA_VERSION (see $mlog)"
  fi
  compgen -G "$tmp/kafka_2.13-*.jar" >/dev/null || die "kafka: maven ran but no kafka_2.13 jar in $tmp"
  rm -rf -- "$(_kafka_libs)"
  mv -- "$tmp" "$(_kafka_libs)"
  _kafka_stamp_value >"$home/.resolved"
  svc_log kafka "$(find "$(_kafka_libs)" -name '*.jar' | wc -l) jars cached in $(_kafka_libs)"
}

# _kafka_tool_argv CLASS ARGS... — fill KAFKA_TOOL_ARGV with the java command
# line for a Kafka tool (small heap, quick start, quiet logs on stderr).
_kafka_tool_argv() {
  KAFKA_TOOL_ARGV=(java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1
    -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$SENTINEL_HACK_DIR/kafka/log4j2-tools.properties"
    -cp "$(_kafka_libs)/*" "$@")
}

# kafka_run_class CLASS ARGS... — run a Kafka tool on the cached classpath,
# e.g. kafka_run_class org.apache.kafka.tools.TopicCommand --bootstrap-server
# 127.0.0.1:19092 --list
kafka_run_class() {
  _kafka_resolved || die "kafka: jars not resolved yet (run: hack/infra.sh up kafka)"
  _kafka_tool_argv "$@"
  "${KAFKA_TOOL_ARGV[@]}"
}

_kafka_write_conf() {
  local dir
  dir="$(_kafka_dir)"
  cat >"$dir/server.properties" <<EOF
# Written by hack/lib/kafka.sh at every start — edit there, not here.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$SENTINEL_KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$SENTINEL_KAFKA_PORT,CONTROLLER://127.0.0.1:$SENTINEL_KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$SENTINEL_KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data

# single broker: every internal topic has exactly one replica
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1

auto.create.topics.enable=true
num.partitions=$SENTINEL_KAFKA_PARTITIONS
group.initial.rebalance.delay.ms=0
# After a kill -9 the new incarnation must wait for the old registration to
# expire; 5s instead of 9s keeps fault tests quick (heartbeats stay local).
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=5000
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=168
EOF
}

svc_kafka_start() {
  local pid dir timeout libs
  timeout="$(start_timeout kafka 120)"
  dir="$(_kafka_dir)"
  pid="$(_kafka_running_pid)"
  if [[ -n "$pid" ]]; then
    svc_log kafka "already running (pid $pid) on 127.0.0.1:$SENTINEL_KAFKA_PORT"
    return 0
  fi
  require_free_port "$SENTINEL_KAFKA_PORT" kafka SENTINEL_KAFKA_PORT || return 1
  require_free_port "$SENTINEL_KAFKA_CONTROLLER_PORT" kafka SENTINEL_KAFKA_CONTROLLER_PORT || return 1
  _kafka_resolved || { svc_fail kafka "" "Kafka jars are not resolved (run: hack/infra.sh up kafka)"; return 1; }
  have java || { svc_fail kafka "" "java is not installed"; return 1; }
  libs="$(_kafka_libs)"
  ensure_dir "$dir/data" "$dir/logs"
  _kafka_write_conf
  if [[ ! -s "$dir/data/meta.properties" ]]; then
    svc_log kafka "formatting KRaft storage (first run, cluster id $SENTINEL_KAFKA_CLUSTER_ID)…"
    if ! kafka_run_class kafka.tools.StorageTool format --ignore-formatted \
      -t "$SENTINEL_KAFKA_CLUSTER_ID" -c "$dir/server.properties" >>"$(_kafka_out)" 2>&1; then
      svc_fail kafka "$(_kafka_out)" "kafka-storage format failed"
      return 1
    fi
  fi
  svc_log kafka "starting $SENTINEL_KAFKA_VERSION on 127.0.0.1:$SENTINEL_KAFKA_PORT (controller :$SENTINEL_KAFKA_CONTROLLER_PORT)…"
  printf -- '--- %s starting kafka.Kafka\n' "$(date -u +%FT%TZ)" >>"$(_kafka_out)"
  local -a heap
  read -r -a heap <<<"$SENTINEL_KAFKA_HEAP_OPTS"
  if ! (cd "$dir" && spawn_detached "$(_kafka_pidfile)" "$(_kafka_out)" \
    java "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dkafka.logs.dir="$dir/logs" \
    -Dlog4j2.configurationFile="$SENTINEL_HACK_DIR/kafka/log4j2.properties" \
    -cp "$libs/*" kafka.Kafka "$dir/server.properties"); then
    svc_fail kafka "$(_kafka_out)" "could not launch java"
    return 1
  fi
  pid="$(read_pidfile "$(_kafka_pidfile)")"
  local deadline
  deadline=$(($(now_ms) + timeout * 1000))
  if ! wait_for_port "$SENTINEL_KAFKA_PORT" "$timeout" "$pid"; then
    pid_alive "$pid" && stop_pid kafka "$pid" 20
    svc_fail kafka "$(_kafka_log)" "broker port $SENTINEL_KAFKA_PORT not open within ${timeout}s (JVM output: $(_kafka_out))"
    tail -n 15 "$(_kafka_out)" | sed 's/^/    | /' >&2
    return 1
  fi
  svc_log kafka "port open; checking metadata (TopicCommand --list)…"
  _kafka_tool_argv org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "127.0.0.1:$SENTINEL_KAFKA_PORT" --list
  until timeout 40 "${KAFKA_TOOL_ARGV[@]}" >/dev/null 2>>"$(_kafka_out)"; do
    if ! pid_alive "$pid" || (($(now_ms) >= deadline)); then
      pid_alive "$pid" && stop_pid kafka "$pid" 20
      svc_fail kafka "$(_kafka_log)" "metadata request did not succeed within ${timeout}s"
      return 1
    fi
    sleep 1
  done
  svc_log kafka "ready (pid $pid)"
}

svc_kafka_stop() {
  local pid
  pid="$(_kafka_running_pid)"
  if [[ -z "$pid" ]]; then
    rm -f -- "$(_kafka_pidfile)"
    svc_log kafka "not running"
    return 0
  fi
  svc_log kafka "stopping (pid $pid; controlled shutdown)…"
  stop_pid kafka "$pid" 60 TERM || return 1
  rm -f -- "$(_kafka_pidfile)"
  svc_log kafka "stopped"
}

svc_kafka_status_json() {
  local pid up=false version=""
  pid="$(_kafka_running_pid)"
  if [[ -n "$pid" ]] && port_in_use "$SENTINEL_KAFKA_PORT"; then up=true; fi
  if _kafka_resolved; then version="$SENTINEL_KAFKA_VERSION"; fi
  svc_json kafka "$up" "127.0.0.1:$SENTINEL_KAFKA_PORT" "$version" "$pid" "$(_kafka_log)"
}

svc_kafka_env() {
  env_line KAFKA_BROKERS "127.0.0.1:$SENTINEL_KAFKA_PORT"
}

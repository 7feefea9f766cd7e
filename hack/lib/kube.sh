# shellcheck shell=bash
# hack/lib/kube.sh: the local Kubernetes API server service ("kube") for hack/infra.sh.
#
# A real etcd + kube-apiserver on loopback, the way controller-runtime's envtest
# runs them: no kubelet, no controller-manager, no scheduler. The binaries
# (etcd, kube-apiserver, kubectl, helm) are built from the Go modules in
# hack/tools/{etcd,kube,helm} and cached outside the checkout, keyed by version.
# See docs/adr/0002-local-kubernetes-api-server.md.
#
# Sourced after hack/lib/common.sh; this file sets no shell options itself and
# is safe under `set -euo pipefail`. Public contract:
#   svc_kube_install      build the binaries into the cache (fast when cached)
#   svc_kube_start        start etcd, then kube-apiserver; wait for /readyz
#   svc_kube_stop         stop kube-apiserver, then etcd (only our own pids)
#   svc_kube_status_json  one JSON object describing both processes
#   svc_kube_env          export lines: KUBECONFIG, SENTINEL_KUBECTL, SENTINEL_HELM, PATH
#
# Settings (environment):
#   SENTINEL_STATE_DIR            required (set by common.sh); we use $SENTINEL_STATE_DIR/kube
#   SENTINEL_CACHE_DIR            default ${XDG_CACHE_HOME:-$HOME/.cache}/sentinel
#   SENTINEL_KUBE_PORT            kube-apiserver secure port   (default 16443)
#   SENTINEL_ETCD_PORT            etcd client port             (default 12379)
#   SENTINEL_ETCD_PEER_PORT       etcd peer port               (default 12380)
#   SENTINEL_KUBE_START_TIMEOUT   seconds to wait for /readyz  (default
#                                 $SENTINEL_START_TIMEOUT, else 120)

KUBE_TOOLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../tools" && pwd)"

# Versions come from the tools modules' go.mod files, the single source of truth.
kube_mod_version() { # <go.mod> <module path>
  awk -v m="$2" '
    $1 == "require" && $2 == m { print $3; exit }
    $1 == m && $2 ~ /^v[0-9]/  { print $2; exit }
  ' "$1" 2>/dev/null
}
KUBE_K8S_VERSION="$(kube_mod_version "$KUBE_TOOLS_DIR/kube/go.mod" k8s.io/kubernetes || true)"
KUBE_ETCD_VERSION="$(kube_mod_version "$KUBE_TOOLS_DIR/etcd/go.mod" go.etcd.io/etcd/server/v3 || true)"
KUBE_HELM_VERSION="$(kube_mod_version "$KUBE_TOOLS_DIR/helm/go.mod" helm.sh/helm/v3 || true)"

# ---------------------------------------------------------------- helpers

# Same prefix as common.sh's svc_log, so `hack/infra.sh up` output reads alike.
kube_log() { printf '[infra] kube: %s\n' "$*" >&2; }
kube_err() { printf '[infra] kube: FAILED: %s\n' "$*" >&2; }

kube_cache_dir() { printf '%s' "${SENTINEL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sentinel}"; }
kube_state_dir() {
  if [[ -z ${SENTINEL_STATE_DIR:-} ]]; then
    kube_err "SENTINEL_STATE_DIR is not set (source hack/lib/common.sh first)"
    return 1
  fi
  printf '%s/kube' "$SENTINEL_STATE_DIR"
}
kube_port() { printf '%s' "${SENTINEL_KUBE_PORT:-16443}"; }
kube_etcd_port() { printf '%s' "${SENTINEL_ETCD_PORT:-12379}"; }
kube_etcd_peer_port() { printf '%s' "${SENTINEL_ETCD_PEER_PORT:-12380}"; }
kube_address() { printf 'https://127.0.0.1:%s' "$(kube_port)"; }
kube_etcd_address() { printf 'http://127.0.0.1:%s' "$(kube_etcd_port)"; }

kube_bin_dir() { printf '%s/kube-%s/bin' "$(kube_cache_dir)" "$KUBE_K8S_VERSION"; }
kube_etcd_bin() { printf '%s/etcd-%s/bin/etcd' "$(kube_cache_dir)" "$KUBE_ETCD_VERSION"; }
kube_helm_bin_dir() { printf '%s/helm-%s/bin' "$(kube_cache_dir)" "$KUBE_HELM_VERSION"; }
kube_apiserver_bin() { printf '%s/kube-apiserver' "$(kube_bin_dir)"; }
kube_kubectl_bin() { printf '%s/kubectl' "$(kube_bin_dir)"; }
kube_helm_bin() { printf '%s/helm' "$(kube_helm_bin_dir)"; }
kube_kubeconfig() {
  local dir
  dir="$(kube_state_dir)" || return 1
  printf '%s/admin.kubeconfig' "$dir"
}

kube_check_versions() {
  if [[ -z $KUBE_K8S_VERSION || -z $KUBE_ETCD_VERSION || -z $KUBE_HELM_VERSION ]]; then
    kube_err "cannot read tool versions from $KUBE_TOOLS_DIR/{kube,etcd,helm}/go.mod"
    return 1
  fi
  # Every k8s.io staging replace must sit at the release's v0.<minor>.<patch>.
  local want="v0.${KUBE_K8S_VERSION#v1.}" bad
  bad="$(awk -v want="$want" '$2 == "=>" && $3 ~ /^k8s\.io\// && $4 != want { print $1 " => " $4 }' \
    "$KUBE_TOOLS_DIR/kube/go.mod")" || bad="unreadable go.mod"
  if [[ -n $bad ]]; then
    kube_err "hack/tools/kube/go.mod: staging replaces must be at $want for k8s.io/kubernetes $KUBE_K8S_VERSION: ${bad//$'\n'/, }"
    return 1
  fi
}

# JSON string literal (escapes backslash, double quote and control characters).
kube_json_str() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\t'/\\t}
  s=${s//$'\r'/\\r}
  printf '"%s"' "$s"
}

# ---------------------------------------------------------------- install

# kube_go_build <label> <module dir> <output> <tags> <ldflags> <package>
kube_go_build() {
  local label=$1 moddir=$2 out=$3 tags=$4 ldflags=$5 pkg=$6
  if [[ -x $out ]]; then
    return 0
  fi
  if ! command -v go >/dev/null 2>&1; then
    kube_err "go is not installed; it is needed to build $label ($pkg)"
    return 1
  fi
  mkdir -p "${out%/*}"
  local tmp="$out.partial.$$" start=$SECONDS next=30 rc=0 pid
  kube_log "building $label $pkg (go build -p 2, module $moddir) ..."
  (
    cd "$moddir" &&
      GOWORK=off CGO_ENABLED=0 exec go build -p 2 -trimpath -buildvcs=false -mod=readonly \
        -tags "$tags" -ldflags "$ldflags" -o "$tmp" "$pkg"
  ) &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if ((SECONDS - start >= next)); then
      kube_log "  ... still building $label ($((SECONDS - start))s)"
      next=$((next + 30))
    fi
  done
  wait "$pid" || rc=$?
  if ((rc != 0)); then
    rm -f "$tmp"
    kube_err "building $label failed (exit $rc)"
    return "$rc"
  fi
  mv -f "$tmp" "$out"
  kube_log "built $label $pkg in $((SECONDS - start))s -> $out"
}

# Version stamping as in Kubernetes' hack/lib/version.sh (kube::version::ldflags),
# so `kubectl version` and the apiserver's /version report the real release.
kube_k8s_ldflags() {
  local v=$KUBE_K8S_VERSION major minor date pkg flags="-s -w"
  major=${v#v}
  major=${major%%.*}
  minor=${v#v*.}
  minor=${minor%%.*}
  # The release's publication time from the module proxy: reproducible.
  date="$(cd "$KUBE_TOOLS_DIR/kube" 2>/dev/null &&
    GOWORK=off go list -m -f '{{if .Time}}{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' \
      k8s.io/kubernetes 2>/dev/null)" || date=""
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    flags+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    # The release commit is unknown from module sources: clear the
    # "$Format:%H$" placeholder instead of reporting it.
    flags+=" -X $pkg.gitCommit= -X $pkg.gitTreeState=clean"
    [[ -n $date ]] && flags+=" -X $pkg.buildDate=$date"
  done
  printf '%s' "$flags"
}

svc_kube_install() {
  kube_check_versions || return 1
  # The start needs curl (readiness), and openssl to make the PKI when it does not exist yet;
  # slim images lack both.
  have curl || apt_install kube curl
  [[ -s "$(kube_state_dir)/pki/ca.crt" ]] || have openssl || apt_install kube openssl
  local bindir helmdir total=$SECONDS
  bindir="$(kube_bin_dir)"
  helmdir="$(kube_helm_bin_dir)"
  if [[ -x "$(kube_etcd_bin)" && -x $bindir/kube-apiserver && -x $bindir/kubectl && -x $helmdir/helm ]]; then
    return 0
  fi
  kube_go_build "etcd $KUBE_ETCD_VERSION" "$KUBE_TOOLS_DIR/etcd" "$(kube_etcd_bin)" "" \
    "-s -w" sentinel/hack/tools/etcd || return 1
  local kflags=""
  if [[ ! -x $bindir/kube-apiserver || ! -x $bindir/kubectl ]]; then
    kflags="$(kube_k8s_ldflags)"
  fi
  # Build tags as in Kubernetes' hack/lib/golang.sh for release builds.
  kube_go_build "kube-apiserver $KUBE_K8S_VERSION" "$KUBE_TOOLS_DIR/kube" "$bindir/kube-apiserver" \
    "selinux,notest,grpcnotrace" "$kflags" k8s.io/kubernetes/cmd/kube-apiserver || return 1
  kube_go_build "kubectl $KUBE_K8S_VERSION" "$KUBE_TOOLS_DIR/kube" "$bindir/kubectl" \
    "selinux,notest,grpcnotrace" "$kflags" k8s.io/kubernetes/cmd/kubectl || return 1
  # helm's own Makefile stamps its version and the Kubernetes minor it was built against.
  local hv=${KUBE_K8S_VERSION#v} hmajor hminor
  hmajor=${hv%%.*}
  hminor=${hv#*.}
  hminor=${hminor%%.*}
  kube_go_build "helm $KUBE_HELM_VERSION" "$KUBE_TOOLS_DIR/helm" "$helmdir/helm" "" \
    "-s -w -X helm.sh/helm/v3/internal/version.version=$KUBE_HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=$hmajor -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$hminor -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$hmajor -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$hminor" \
    helm.sh/helm/v3/cmd/helm || return 1
  kube_log "binaries ready in $((SECONDS - total))s"
}

# ---------------------------------------------------------------- processes

# kube_argv0 <pid>: argv[0] of a live process (fails for zombies and exited pids).
kube_argv0() {
  local argv0
  { IFS= read -r -d '' argv0 <"/proc/$1/cmdline"; } 2>/dev/null || return 1
  printf '%s' "$argv0"
}

# kube_bin <name>: this checkout's binary of <name>.
kube_bin() {
  case $1 in
    etcd) kube_etcd_bin ;;
    kube-apiserver) kube_apiserver_bin ;;
    *) return 1 ;;
  esac
}

# kube_pid <name>: prints the pid from <state>/<name>.pid if that process is
# alive and is an <name> binary (guards against stale pid files and pid reuse)
# — this checkout's, or one an earlier version or cache directory started,
# which `down` must stop all the same (kube_running_other_build).
kube_pid() {
  local name=$1 dir pidfile pid argv0
  dir="$(kube_state_dir)" || return 1
  pidfile="$dir/$name.pid"
  [[ -s $pidfile ]] || return 1
  pid="$(<"$pidfile")"
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kube_bin "$name" >/dev/null || return 1
  argv0="$(kube_argv0 "$pid")" || return 1
  [[ ${argv0##*/} == "$name" ]] || return 1
  printf '%s' "$pid"
}

# kube_running_other_build <name>: true when our <name> runs from another
# binary than this checkout's (its version was bumped since, or the cache
# directory moved).
kube_running_other_build() {
  local pid argv0
  pid="$(kube_pid "$1")" || return 1
  argv0="$(kube_argv0 "$pid")" || return 1
  [[ $argv0 != "$(kube_bin "$1")" ]]
}

# kube_port_owner <port>: prints who listens on 127.0.0.1:<port> (any
# address), or nothing when the port is free.
kube_port_owner() {
  local port=$1 out=""
  if command -v ss >/dev/null 2>&1; then
    out="$(ss -Hltnp "sport = :$port" 2>/dev/null | awk 'NR == 1')" || true
    [[ -n $out ]] || return 0
    if [[ $out =~ \"([^\"]+)\",pid=([0-9]+) ]]; then
      printf '%s (pid %s)' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
    else
      printf 'another process'
    fi
    return 0
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    printf 'another process'
  fi
  return 0
}

kube_require_free_port() { # <port> <what> <env var>
  local owner
  owner="$(kube_port_owner "$1")"
  if [[ -n $owner ]]; then
    kube_err "port $1 ($2) on 127.0.0.1 is already in use by $owner, not by a process this script started"
    kube_err "stop that process, or choose another port: export $3=<free port>"
    return 1
  fi
}

# kube_launch <name> <binary> <args...>: detached start, pid file written by the
# process itself just before exec, output appended to <state>/<name>.log.
kube_launch() {
  local name=$1 dir pidfile log i
  shift
  dir="$(kube_state_dir)" || return 1
  pidfile="$dir/$name.pid"
  log="$dir/$name.log"
  rm -f "$pidfile"
  printf '\n==== %s starting %s ====\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$name" >>"$log"
  local detach=()
  command -v setsid >/dev/null 2>&1 && detach=(setsid)
  # shellcheck disable=SC2016 # $$, $1 and $@ expand in the launched shell
  "${detach[@]}" bash -c 'echo "$$" >"$1.tmp" && mv -f "$1.tmp" "$1"; shift; exec "$@"' \
    "kube-launch-$name" "$pidfile" "$@" </dev/null >>"$log" 2>&1 &
  for ((i = 0; i < 50; i++)); do
    [[ -s $pidfile ]] && return 0
    sleep 0.1
  done
  kube_err "$name did not start (no pid file); see $log"
  return 1
}

kube_log_tail() { # <name>
  local log
  log="$(kube_state_dir)/$1.log"
  [[ -f $log ]] || return 0
  kube_err "last lines of $log:"
  tail -n 25 "$log" | sed 's/^/    /' >&2
}

kube_etcd_healthy() {
  local body
  body="$(curl -fsS --max-time 2 "$(kube_etcd_address)/health" 2>/dev/null)" || return 1
  [[ $body == *'"health":"true"'* ]]
}

kube_apiserver_ready() {
  local pki body
  pki="$(kube_state_dir)/pki" || return 1
  body="$(curl -fsS --max-time 3 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
    "$(kube_address)/readyz" 2>/dev/null)" || return 1
  [[ $body == ok ]]
}

# Prints the failing /readyz checks (if the apiserver answers at all).
kube_readyz_failures() {
  local pki out
  pki="$(kube_state_dir)/pki" || return 0
  out="$(curl -sS --max-time 3 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
    "$(kube_address)/readyz?verbose" 2>&1)" || true
  out="$(printf '%s\n' "$out" | grep -v '^\[+\]' || true)"
  [[ -n $out ]] && printf '%s\n' "$out" | sed 's/^/    readyz: /' >&2
  return 0
}

# kube_wait <name> <check function> <timeout s>
kube_wait() {
  local name=$1 check=$2 timeout=$3 start=$SECONDS
  while ((SECONDS - start < timeout)); do
    if "$check"; then
      return 0
    fi
    if ! kube_pid "$name" >/dev/null; then
      kube_err "$name exited during startup"
      kube_log_tail "$name"
      return 1
    fi
    sleep 0.5
  done
  kube_err "$name was not ready within ${timeout}s"
  kube_log_tail "$name"
  return 1
}

# kube_stop_pid <name>: SIGTERM our process, wait (bounded), SIGKILL if needed.
kube_stop_pid() {
  local name=$1 pid i pidfile
  pidfile="$(kube_state_dir)/$name.pid" || return 1
  if ! pid="$(kube_pid "$name")"; then
    rm -f "$pidfile"
    return 0
  fi
  kube_log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do # 30 s
    kube_pid "$name" >/dev/null || break
    sleep 0.1
  done
  if kube_pid "$name" >/dev/null; then
    kube_log "$name did not exit within 30s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      kube_pid "$name" >/dev/null || break
      sleep 0.1
    done
  fi
  rm -f "$pidfile"
}

# ---------------------------------------------------------------- certificates

# CA, apiserver serving cert, admin client cert (O=system:masters) and the
# service-account signing key pair. Generated once; regenerated (as a whole,
# so every cert chains to the same CA) only when a file is missing.
kube_ensure_pki() {
  local state dir f missing=0 tmp
  state="$(kube_state_dir)" || return 1
  dir="$state/pki"
  for f in ca.crt ca.key apiserver.crt apiserver.key admin.crt admin.key sa.key sa.pub; do
    [[ -s $dir/$f ]] || missing=1
  done
  ((missing)) || return 0
  if ! command -v openssl >/dev/null 2>&1; then
    kube_err "openssl is required to generate certificates (apt-get install openssl)"
    return 1
  fi
  kube_log "generating CA, serving, admin and service-account keys in $dir"
  mkdir -p "$state"
  tmp="$(mktemp -d "$state/pki.tmp.XXXXXX")"
  # Every command is checked explicitly: errexit does not apply inside a
  # subshell whose status is tested.
  if ! (
    cd "$tmp" || exit 1
    umask 077
    cat >openssl.cnf <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = sentinel
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
[v3_server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:::1,IP:10.0.0.1
[v3_client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
    openssl genrsa -out ca.key 2048 2>/dev/null || exit 1
    openssl req -x509 -new -config openssl.cnf -extensions v3_ca -key ca.key -sha256 -days 3650 \
      -subj "/CN=sentinel-local-ca" -out ca.crt || exit 1
    local leaf subj ext serial
    for leaf in apiserver admin; do
      if [[ $leaf == apiserver ]]; then
        subj="/CN=kube-apiserver" ext=v3_server
      else
        subj="/O=system:masters/CN=sentinel-admin" ext=v3_client
      fi
      serial="0x$(openssl rand -hex 16)" || exit 1
      openssl genrsa -out "$leaf.key" 2048 2>/dev/null || exit 1
      openssl req -new -config openssl.cnf -key "$leaf.key" -subj "$subj" -out "$leaf.csr" || exit 1
      openssl x509 -req -in "$leaf.csr" -CA ca.crt -CAkey ca.key -set_serial "$serial" \
        -sha256 -days 3650 -extfile openssl.cnf -extensions "$ext" -out "$leaf.crt" 2>/dev/null || exit 1
      rm -f "$leaf.csr"
    done
    openssl genrsa -out sa.key 2048 2>/dev/null || exit 1
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null || exit 1
  ); then
    rm -rf "$tmp"
    kube_err "certificate generation failed"
    return 1
  fi
  rm -rf "$dir"
  mv "$tmp" "$dir"
  chmod 700 "$dir"
}

# Written on every start (cheap, and follows SENTINEL_KUBE_PORT changes).
kube_write_kubeconfig() {
  local state pki kc
  state="$(kube_state_dir)" || return 1
  pki="$state/pki"
  kc="$(kube_kubeconfig)"
  (
    umask 077
    cat >"$kc.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: sentinel
  cluster:
    server: $(kube_address)
    certificate-authority-data: $(base64 -w0 <"$pki/ca.crt")
users:
- name: sentinel-admin
  user:
    client-certificate-data: $(base64 -w0 <"$pki/admin.crt")
    client-key-data: $(base64 -w0 <"$pki/admin.key")
contexts:
- name: sentinel
  context:
    cluster: sentinel
    user: sentinel-admin
current-context: sentinel
preferences: {}
EOF
  ) && mv -f "$kc.tmp" "$kc"
}

# ---------------------------------------------------------------- contract

svc_kube_start() {
  local state etcd_pid api_pid t0=$SECONDS timeout
  state="$(kube_state_dir)" || return 1
  timeout=${SENTINEL_KUBE_START_TIMEOUT:-${SENTINEL_START_TIMEOUT:-120}}
  svc_kube_install || return 1
  if ! command -v curl >/dev/null 2>&1; then
    kube_err "curl is required for health checks (apt-get install curl)"
    return 1
  fi
  mkdir -p "$state/etcd"
  chmod 700 "$state/etcd"
  kube_ensure_pki || return 1
  kube_write_kubeconfig || return 1

  # A build of another version still running would be taken for this one's.
  if kube_running_other_build etcd || kube_running_other_build kube-apiserver; then
    kube_log "etcd or kube-apiserver runs from another build than this checkout's ($KUBE_ETCD_VERSION, $KUBE_K8S_VERSION): restarting both"
    svc_kube_stop || return 1
  fi

  # Check every port we are about to bind before starting anything.
  etcd_pid="$(kube_pid etcd)" || etcd_pid=""
  api_pid="$(kube_pid kube-apiserver)" || api_pid=""
  if [[ -z $etcd_pid ]]; then
    kube_require_free_port "$(kube_etcd_port)" "etcd client" SENTINEL_ETCD_PORT || return 1
    kube_require_free_port "$(kube_etcd_peer_port)" "etcd peer" SENTINEL_ETCD_PEER_PORT || return 1
  fi
  if [[ -z $api_pid ]]; then
    kube_require_free_port "$(kube_port)" "kube-apiserver" SENTINEL_KUBE_PORT || return 1
  fi

  # etcd
  if [[ -n $etcd_pid ]]; then
    kube_log "etcd already running (pid $etcd_pid) at $(kube_etcd_address)"
  else
    local peer
    peer="http://127.0.0.1:$(kube_etcd_peer_port)"
    kube_log "starting etcd $KUBE_ETCD_VERSION at $(kube_etcd_address) (data $state/etcd)"
    kube_launch etcd "$(kube_etcd_bin)" \
      --name=sentinel \
      --data-dir="$state/etcd" \
      --listen-client-urls="$(kube_etcd_address)" \
      --advertise-client-urls="$(kube_etcd_address)" \
      --listen-peer-urls="$peer" \
      --initial-advertise-peer-urls="$peer" \
      --initial-cluster="sentinel=$peer" \
      --initial-cluster-state=new \
      --log-level=warn || return 1
  fi
  kube_wait etcd kube_etcd_healthy 30 || return 1

  # kube-apiserver
  if [[ -n $api_pid ]]; then
    kube_log "kube-apiserver already running (pid $api_pid) at $(kube_address)"
  else
    local pki="$state/pki"
    kube_log "starting kube-apiserver $KUBE_K8S_VERSION at $(kube_address)"
    # Flags follow controller-runtime envtest's defaults (RBAC, ServiceAccount
    # admission disabled since no token controller runs, 10.0.0.0/24 services),
    # plus real TLS and client-certificate authentication. No endpoint
    # reconciler: Endpoints may not hold a loopback address, so the default
    # "lease" reconciler would log a validation error every 10 s.
    kube_launch kube-apiserver "$(kube_apiserver_bin)" \
      --etcd-servers="$(kube_etcd_address)" \
      --bind-address=127.0.0.1 \
      --advertise-address=127.0.0.1 \
      --secure-port="$(kube_port)" \
      --tls-cert-file="$pki/apiserver.crt" \
      --tls-private-key-file="$pki/apiserver.key" \
      --client-ca-file="$pki/ca.crt" \
      --authorization-mode=RBAC \
      --service-account-issuer=https://kubernetes.default.svc.cluster.local \
      --service-account-key-file="$pki/sa.pub" \
      --service-account-signing-key-file="$pki/sa.key" \
      --service-cluster-ip-range=10.0.0.0/24 \
      --allow-privileged=true \
      --disable-admission-plugins=ServiceAccount \
      --endpoint-reconciler-type=none \
      --profiling=false || return 1
  fi
  if ! kube_wait kube-apiserver kube_apiserver_ready "$timeout"; then
    kube_readyz_failures
    return 1
  fi
  kube_log "ready in $((SECONDS - t0))s: $(kube_address) (KUBECONFIG=$(kube_kubeconfig))"
}

svc_kube_stop() {
  kube_stop_pid kube-apiserver || return 1
  kube_stop_pid etcd || return 1
}

svc_kube_status_json() {
  local state api_pid="" etcd_pid="" api_up=false etcd_up=false
  state="$(kube_state_dir)" || return 1
  if api_pid="$(kube_pid kube-apiserver)"; then
    kube_apiserver_ready && api_up=true
  else
    api_pid=""
  fi
  if etcd_pid="$(kube_pid etcd)"; then
    kube_etcd_healthy && etcd_up=true
  else
    etcd_pid=""
  fi
  printf '{"name":"kube","up":%s,"address":%s,"version":%s,"pid":%s,"log":%s,"kubeconfig":%s,' \
    "$api_up" "$(kube_json_str "$(kube_address)")" "$(kube_json_str "$KUBE_K8S_VERSION")" \
    "${api_pid:-null}" "$(kube_json_str "$state/kube-apiserver.log")" "$(kube_json_str "$(kube_kubeconfig)")"
  printf '"etcd":{"up":%s,"address":%s,"version":%s,"pid":%s,"log":%s,"data":%s}}\n' \
    "$etcd_up" "$(kube_json_str "$(kube_etcd_address)")" "$(kube_json_str "$KUBE_ETCD_VERSION")" \
    "${etcd_pid:-null}" "$(kube_json_str "$state/etcd.log")" "$(kube_json_str "$state/etcd")"
}

svc_kube_env() {
  local kc
  kc="$(kube_kubeconfig)" || return 1
  printf 'export KUBECONFIG=%q\n' "$kc"
  printf 'export SENTINEL_KUBECTL=%q\n' "$(kube_kubectl_bin)"
  printf 'export SENTINEL_HELM=%q\n' "$(kube_helm_bin)"
  # shellcheck disable=SC2016 # $PATH is expanded by whoever evals these lines
  printf 'export PATH=%q:%q:"$PATH"\n' "$(kube_bin_dir)" "$(kube_helm_bin_dir)"
}

#!/usr/bin/env bash
# hack/kind-up.sh — Sentinel on a local kind cluster, for machines WITH Docker.
#
# Creates the cluster (hack/kind-config.yaml), builds the image (Dockerfile) and loads it into the
# nodes, installs development infrastructure (k8s/infra: Postgres, Redis, NATS, Kafka), installs
# the chart (charts/sentinel), applies the small sample TicketEvent with its sale opened now, and
# waits until the operator reports it provisioned.
#
# It cannot run without Docker (kind runs its nodes as Docker containers). On a machine without
# Docker, use `hack/infra.sh up` and `npm test`: they run the same operator against a real
# kube-apiserver built from source (see docs/adr/0002-local-kubernetes-api-server.md).
#
# Usage: hack/kind-up.sh [--recreate] [--no-build]
# Environment:
#   KIND_CLUSTER     cluster name (default sentinel)
#   KIND_NODE_IMAGE  node image (default kindest/node:v1.34.0)
#   SENTINEL_IMAGE   image to build and load (default sentinel:dev)
#   NAMESPACE        namespace of the release and the sample (default sentinel)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

CLUSTER="${KIND_CLUSTER:-sentinel}"
NODE_IMAGE="${KIND_NODE_IMAGE:-kindest/node:v1.34.0}"
IMAGE="${SENTINEL_IMAGE:-sentinel:dev}"
NAMESPACE="${NAMESPACE:-sentinel}"
RECREATE=0
BUILD=1
for arg in "$@"; do
  case "$arg" in
    --recreate) RECREATE=1 ;;
    --no-build) BUILD=0 ;;
    -h | --help)
      sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "kind-up: unknown argument $arg (try --help)" >&2
      exit 2
      ;;
  esac
done

step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }
die() {
  echo "kind-up: $*" >&2
  exit 1
}
need() { command -v "$1" >/dev/null 2>&1 || die "$1 is required: $2"; }

need docker "kind runs Kubernetes nodes as Docker containers; without Docker use hack/infra.sh and npm test"
docker info >/dev/null 2>&1 || die "the Docker daemon is not reachable (is it running, and may this user use it?)"
need kind "install it from https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
need kubectl "install it from https://kubernetes.io/docs/tasks/tools/"
need helm "install it from https://helm.sh/docs/intro/install/"

repository="${IMAGE%:*}"
tag="${IMAGE##*:}"
[[ "$repository" != "$IMAGE" ]] || die "SENTINEL_IMAGE must be repository:tag, got $IMAGE"
context="kind-${CLUSTER}"
kc() { kubectl --context "$context" "$@"; }

step "cluster ${CLUSTER} (${NODE_IMAGE})"
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  if ((RECREATE)); then
    kind delete cluster --name "$CLUSTER"
  else
    echo "exists; reusing it (--recreate to start afresh)"
  fi
fi
if ! kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --image "$NODE_IMAGE" --config hack/kind-config.yaml --wait 120s
fi

if ((BUILD)); then
  step "image ${IMAGE}"
  docker build -t "$IMAGE" .
fi
step "load ${IMAGE} into the nodes"
kind load docker-image "$IMAGE" --name "$CLUSTER"

step "namespace ${NAMESPACE} and development infrastructure"
kc create namespace "$NAMESPACE" --dry-run=client -o yaml | kc apply -f -
kc label namespace "$NAMESPACE" pod-security.kubernetes.io/enforce=restricted --overwrite
sed "s/namespace: sentinel$/namespace: ${NAMESPACE}/" k8s/infra/infra.yaml | kc apply -f -
for workload in statefulset/sentinel-postgres deployment/sentinel-redis deployment/sentinel-nats statefulset/sentinel-kafka; do
  kc -n "$NAMESPACE" rollout status "$workload" --timeout=300s
done

step "chart charts/sentinel"
helm --kube-context "$context" upgrade --install sentinel charts/sentinel \
  --namespace "$NAMESPACE" \
  --set image.repository="$repository" \
  --set image.tag="$tag" \
  --set image.pullPolicy=Never \
  --set ingress.service.type=NodePort \
  --wait --timeout 5m
# Pin the ingress NodePort to the port kind maps to the host.
kc -n "$NAMESPACE" patch service sentinel-ingress --type=json \
  -p '[{"op":"replace","path":"/spec/ports/0/nodePort","value":30080}]'

step "sample TicketEvent (k8s/samples/small.yaml), on sale from now"
opens="$(date -u -d '-1 minute' +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || date -u -v-1M +%Y-%m-%dT%H:%M:%SZ)"
sed "s/opensAt: '2030-06-01T18:00:00Z'/opensAt: '${opens}'/" k8s/samples/small.yaml | kc -n "$NAMESPACE" apply -f -
kc -n "$NAMESPACE" wait ticketevent/club-night --for=condition=InventoryProvisioned --timeout=120s
kc -n "$NAMESPACE" wait ticketevent/club-night --for=condition=Ready --timeout=180s ||
  echo "not Ready yet: kubectl --context ${context} -n ${NAMESPACE} describe te club-night" >&2

step "done"
kc -n "$NAMESPACE" get ticketevents -o wide
cat <<EOT

  kubectl --context ${context} -n ${NAMESPACE} get te,deploy,pods
  kubectl --context ${context} -n ${NAMESPACE} describe te club-night
  curl http://127.0.0.1:30080/openapi.json      # the API's description; needs no token
  # /v1 needs a bearer token: mint one (\`sentinel token\`, see README.md) with the chart's JWT secret
  token=\$(SENTINEL_JWT_SECRET="\$(kubectl --context ${context} -n ${NAMESPACE} get secret sentinel-credentials \\
    -o jsonpath='{.data.SENTINEL_JWT_SECRET}' | base64 -d)" node bin/sentinel.js token --sub alice)
  curl -H "Authorization: Bearer \$token" http://127.0.0.1:30080/v1/events/${NAMESPACE}--club-night/availability
  kind delete cluster --name ${CLUSTER}      # when finished
EOT

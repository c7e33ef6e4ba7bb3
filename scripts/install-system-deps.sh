#!/usr/bin/env bash
# Installs the system programs the tests run for real: rclone (Debian's package) and FUSE.
# Quick and silent when they are already there.
set -euo pipefail
missing=()
command -v rclone >/dev/null 2>&1 || missing+=(rclone)
command -v fusermount3 >/dev/null 2>&1 || missing+=(fuse3)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-system-deps: need root to install: ${missing[*]} (or install them yourself)" >&2
  exit 1
fi
echo "install-system-deps: installing ${missing[*]} with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null

#!/usr/bin/env bash
# Builds the seml image with buildah on a Debian base made here, since no container registry is
# reachable from these machines:
#
#   1. debootstrap a minimal Debian (bookworm, with python3 and python3-venv) into a folder;
#   2. import it as the local image localhost/seml-base:bookworm (kept: later builds reuse it);
#   3. buildah bud --isolation chroot --build-arg BASE=localhost/seml-base:bookworm.
#
#   scripts/build-image.sh [CONTEXT]     # CONTEXT: the build context (default: the repository)
#
# Environment: SEML_IMAGE (default localhost/seml:VERSION), DEBIAN_MIRROR, SEML_BASE_IMAGE.
# Storage driver vfs and chroot isolation: no overlay mounts, cgroups or user namespaces are
# needed, which is what these sandboxes allow. Prints the build time and the image size.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
context="$(realpath "${1:-$repo}")"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/pyproject.toml" | head -1)"
image="${SEML_IMAGE:-localhost/seml:$version}"
base="${SEML_BASE_IMAGE:-localhost/seml-base:bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
export STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot
say() { printf 'build-image: %s\n' "$*" >&2; }

bash "$repo/scripts/install-system-deps.sh" image

if ! buildah inspect --type image "$base" >/dev/null 2>&1; then
  work="$(mktemp -d -t seml-rootfs-XXXXXX)"
  trap 'rm -rf "$work"' EXIT
  say "debootstrap bookworm (minbase + python3, python3-venv) from $mirror"
  start=$SECONDS
  debootstrap --variant=minbase --include=python3,python3-venv bookworm "$work/rootfs" \
    "$mirror" >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  # The package caches and lists are not part of a base image.
  rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/* \
    "$work"/rootfs/var/log/* "$work"/rootfs/tmp/*
  tar -C "$work/rootfs" --numeric-owner -cf "$work/rootfs.tar" .
  ctr="$(buildah from scratch)"
  buildah add --quiet "$ctr" "$work/rootfs.tar" / >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd /bin/bash --label org.opencontainers.image.description="Debian bookworm minbase \
with python3, made by scripts/build-image.sh" "$ctr"
  buildah commit --quiet --rm "$ctr" "$base" >/dev/null
  rm -rf "$work"
  say "base image $base made in $((SECONDS - start)) s"
fi

# pip inside the build trusts what this machine trusts (a TLS-inspecting proxy's CA, say): the
# bundle is mounted read-only into the build steps, never copied into a layer.
ca="${SEML_BUILD_CA:-${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}}"
ca_args=()
if [ -f "$ca" ]; then
  ca_args=(--volume "$(realpath "$ca"):/run/seml-build-ca.crt:ro" --build-arg PIP_CERT=/run/seml-build-ca.crt)
fi

say "building $image from $context on $base"
previous="$(buildah images --noheading --format '{{.ID}}' "$image" 2>/dev/null | head -1 || true)"
start=$SECONDS
buildah bud --isolation chroot --layers=false --build-arg "BASE=$base" \
  --build-arg "VERSION=$version" "${ca_args[@]}" -f "$repo/deploy/image/Containerfile" \
  -t "$image" "$context" >&2
elapsed=$((SECONDS - start))
# The image this tag named before is left untagged by the rebuild: drop it (vfs copies are big).
if [ -n "$previous" ] && [ "$previous" != "$(buildah images --noheading --format '{{.ID}}' "$image" | head -1)" ]; then
  buildah rmi "$previous" >/dev/null 2>&1 || true
fi
size="$(buildah images --format '{{.Size}}' "$image" | head -1)"
say "built $image in $elapsed s, size $size"
echo "$image"

#!/usr/bin/env bash
# Builds the polysecret image with podman (no Docker engine, no image registry here).
#
#   scripts/build-image.sh [TAG]                 # CI / local: a Debian base made by debootstrap
#   BASE_IMAGE=python:3.11.14-slim-trixie@sha256:... scripts/build-image.sh TAG   # release
#
# Steps, each cached under $POLYSECRET_CACHE/image so a repeat build takes seconds:
#   1. the base image: BASE_IMAGE if set (a release, pulled from its registry), else a
#      minimal Debian bookworm (python3, python3-venv, ca-certificates) made with
#      debootstrap, kept as a tarball keyed by month and package list (a new month
#      picks up Debian's security updates) and imported into podman;
#   2. the Python wheels, made on the host: polysecret's own wheel from this tree, and
#      every dependency downloaded from PyPI as a binary wheel for CPython 3.11 on
#      manylinux x86_64/aarch64 (cached by pyproject.toml's hash). The build container
#      gets no network: this machine reaches PyPI only through a TLS-intercepting egress
#      proxy whose CA the container does not trust, and an offline build is reproducible;
#   3. `podman build` of the Dockerfile with BASE as a build argument.
# podman runs with runc and cgroupfs (crun fails on these VMs); see install-image-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

TAG=${1:-${IMAGE:-localhost/polysecret:dev}}
PYTHON=${PYTHON:-python3}
export POLYSECRET_CACHE="${POLYSECRET_CACHE:-$HOME/.cache/polysecret}"
CACHE="$POLYSECRET_CACHE/image"
mkdir -p "$CACHE"
PODMAN=(podman --runtime /usr/sbin/runc --cgroup-manager cgroupfs)

bash scripts/install-image-deps.sh >/dev/null

# -- 1. base ---------------------------------------------------------------------
SUITE=bookworm
PACKAGES=python3,python3-venv,ca-certificates
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
if [[ -n ${BASE_IMAGE:-} ]]; then
  base=$BASE_IMAGE
else
  key="debian-$SUITE-minbase-$(date -u +%Y%m)-$(printf '%s' "$PACKAGES" | sha256sum | cut -c1-8)"
  base="localhost/polysecret-base:$key"
  tarball="$CACHE/$key.tar.gz"
  if [[ ! -s $tarball ]]; then
    echo "== debootstrap $SUITE ($PACKAGES) -> $tarball"
    root=$(mktemp -d /tmp/polysecret-rootfs.XXXXXX)
    trap 'rm -rf "$root"' EXIT
    debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 || {
      tail -30 "$CACHE/debootstrap.log"; exit 1; }
    # What a container never uses: apt's downloaded lists and archives, docs, man pages.
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* \
           "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/*
    tar -C "$root" --numeric-owner -czf "$tarball.part" .
    mv "$tarball.part" "$tarball"
    rm -rf "$root"
    trap - EXIT
    # Older months' bases are never used again.
    find "$CACHE" -maxdepth 1 -name "debian-$SUITE-minbase-*.tar.gz" ! -name "$key.tar.gz" -delete
  fi
  if ! "${PODMAN[@]}" image exists "$base"; then
    echo "== podman import $tarball"
    "${PODMAN[@]}" import --change 'CMD ["/bin/bash"]' "$tarball" "$base" >/dev/null
  fi
fi
echo "base image: $base"

# -- 2. wheels -------------------------------------------------------------------
arch=$(uname -m)
deps_key="py311-$arch-$(cat pyproject.toml | sha256sum | cut -c1-12)"
deps="$CACHE/wheels-$deps_key"
# setuptools builds in build/: a stale build/lib would leak deleted modules into the wheel.
rm -rf build/wheels build/lib build/bdist.*
mkdir -p build/wheels
"$PYTHON" -m pip wheel -q --no-deps --no-build-isolation -w build/wheels . 2>/dev/null \
  || "$PYTHON" -m pip wheel -q --no-deps -w build/wheels .
wheel=$(ls build/wheels/polysecret-*.whl)
if [[ ! -d $deps ]]; then
  echo "== pip download (CPython 3.11, manylinux $arch) -> $deps"
  # Every manylinux tag glibc 2.36 (bookworm; trixie has 2.41) runs: pip does not
  # widen an explicit --platform to the older tags by itself.
  platforms=(--platform "manylinux2014_$arch")
  for minor in $(seq 17 36); do platforms+=(--platform "manylinux_2_${minor}_$arch"); done
  rm -rf "$deps.part"
  "$PYTHON" -m pip download -q --dest "$deps.part" --only-binary=:all: \
    --python-version 3.11 --implementation cp "${platforms[@]}" "$wheel[all]"
  rm -f "$deps.part"/polysecret-*.whl
  mv "$deps.part" "$deps"
  find "$CACHE" -maxdepth 1 -name 'wheels-py311-*' ! -name "wheels-$deps_key" -exec rm -rf {} +
fi
cp "$deps"/*.whl build/wheels/

# -- 3. image --------------------------------------------------------------------
echo "== podman build $TAG (BASE=$base)"
pull=(--pull=never)  # the local base exists only in podman's store
[[ -n ${BASE_IMAGE:-} ]] && pull=(--pull=missing)
"${PODMAN[@]}" build --network none "${pull[@]}" --build-arg "BASE=$base" \
  --build-arg "VERSION=$(basename "$wheel" | cut -d- -f2)" -t "$TAG" .
# The builder stage and the previous build of this tag are left untagged: drop them,
# or every CI run on a long-lived machine keeps another ~240 MiB.
"${PODMAN[@]}" image prune --force >/dev/null
size=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$TAG")
echo "image $TAG: $((size / 1024 / 1024)) MiB"

#!/usr/bin/env bash
# Installs and builds what the end-to-end suite (tests/e2e) runs: etcd,
# containerd, runc and busybox from Debian; kube-apiserver, kubelet, kubectl,
# a plugin registrar and the Secrets Store CSI Driver built from their Go
# modules; a static pause binary for the sandbox image. The Go binaries are
# cached under $POLYSECRET_CACHE/e2e/<versions>/ (a cold build takes 8-12 min
# on 2 cores; a warm run only checks they are there). The Go build caches are
# not kept: only the binaries are.
#
#   bash scripts/install-e2e.sh        # prints the binary directory last
set -euo pipefail

K8S_VERSION=v1.34.4
DRIVER_VERSION=v1.6.0
here="$(cd "$(dirname "$0")/.." && pwd)"
cache="${POLYSECRET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/polysecret}"

export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || { echo "install-e2e.sh: no Go toolchain" >&2; exit 1; }
go_version="$(go env GOVERSION)"
# The registrar and the mlog stand-in are ours: a change to them is a new key.
src_hash="$(cd "$here/tests/e2e/go" && find . -type f \( -name '*.go' -o -name go.mod \) -print0 \
  | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12)"
key="k8s-${K8S_VERSION}_driver-${DRIVER_VERSION}_${go_version}_${src_hash}"
out="$cache/e2e/$key"

# Debian packages: etcd, the container runtime, the app image's busybox, gcc
# for the pause binary. No systemd here: their services are not started.
need=()
for pkg in etcd-server containerd runc busybox-static gcc libc6-dev; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "install-e2e.sh: needs root to install ${need[*]}" >&2; exit 1; }
  echo "install-e2e.sh: apt-get install ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ -x "$out/kubelet" ] && [ -x "$out/secrets-store-csi-driver" ] && [ -f "$out/pause" ]; then
  echo "$out"
  exit 0
fi

echo "install-e2e.sh: building Kubernetes ${K8S_VERSION} and the driver ${DRIVER_VERSION} (${go_version}) into $out" >&2
mkdir -p "$cache/e2e"
work="$(mktemp -d "$cache/e2e/.build.XXXXXX")"
# Go's build cache for this build only: the binaries are what we keep.
export GOCACHE="$work/gocache" GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false -trimpath"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cp -r "$here/tests/e2e/go/k8s" "$here/tests/e2e/go/driver" "$work/"
mkdir -p "$work/bin"

v=k8s.io/component-base/version
ldflags="-s -w -X $v.gitVersion=${K8S_VERSION} -X $v.gitMajor=1 -X $v.gitMinor=34 -X $v.gitTreeState=clean"
ldflags="$ldflags -X $v.buildDate=1970-01-01T00:00:00Z"
(cd "$work/k8s" && go build -ldflags "$ldflags" -o "$work/bin/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubelet \
  k8s.io/kubernetes/cmd/kubectl ./registrar)
(cd "$work/driver" && go build -ldflags "-s -w -X sigs.k8s.io/secrets-store-csi-driver/pkg/version.BuildVersion=${DRIVER_VERSION}" \
  -o "$work/bin/secrets-store-csi-driver" sigs.k8s.io/secrets-store-csi-driver/cmd/secrets-store-csi-driver)

# The pause container's program, from the same Kubernetes module.
k8s_dir="$(cd "$work/k8s" && go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
gcc -Os -static -DVERSION="${K8S_VERSION}" -o "$work/bin/pause" "$k8s_dir/build/pause/linux/pause.c"
# The driver's CRDs and RBAC, as its chart installs them.
drv_dir="$(cd "$work/driver" && go mod download -json "sigs.k8s.io/secrets-store-csi-driver@${DRIVER_VERSION}" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
mkdir -p "$work/bin/deploy"
cp "$drv_dir"/manifest_staging/deploy/*.yaml "$work/bin/deploy/"
chmod u+w "$work/bin/deploy"/*.yaml

rm -rf "$out"
mv "$work/bin" "$out"
# Binaries of other versions are never used again (317 MB each).
find "$cache/e2e" -mindepth 1 -maxdepth 1 -name 'k8s-*' ! -name "$key" -exec rm -rf {} +
echo "$out"

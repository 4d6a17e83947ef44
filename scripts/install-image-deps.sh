#!/usr/bin/env bash
# Installs what `make image` needs on a Debian machine with no Docker engine and
# no reachable image registry, idempotently (a second run changes nothing):
#   - podman with runc: podman's default runtime crun fails on these VMs
#     ("cgroups in hybrid mode not supported"), so scripts/build-image.sh runs
#     podman with --runtime /usr/sbin/runc --cgroup-manager cgroupfs;
#   - debootstrap, which makes the local Debian base image CI builds on;
#   - containers.conf with `default_ulimits = []`: podman's default rlimits are
#     refused inside this VM, so no container starts without it.
# Needs root (apt-get); does nothing on a machine that already has everything.
set -euo pipefail

need=()
for pkg in podman runc debootstrap uidmap fuse-overlayfs; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if (( ${#need[@]} )); then
  echo "== apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

conf=/etc/containers/containers.conf
mkdir -p "$(dirname "$conf")"
touch "$conf"
if ! grep -Eq '^[[:space:]]*default_ulimits[[:space:]]*=[[:space:]]*\[[[:space:]]*\]' "$conf"; then
  echo "== $conf: default_ulimits = []"
  python3 - "$conf" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path, encoding="utf-8").read()
# Drop any earlier default_ulimits (single- or multi-line list), then set it under [containers].
text = re.sub(r"(?ms)^[ \t]*default_ulimits[ \t]*=[ \t]*\[.*?\][ \t]*\n?", "", text)
if re.search(r"(?m)^\[containers\][ \t]*$", text):
    text = re.sub(r"(?m)^\[containers\][ \t]*$", "[containers]\ndefault_ulimits = []", text, count=1)
else:
    text = text.rstrip("\n") + ("\n\n" if text.strip() else "") + "[containers]\ndefault_ulimits = []\n"
open(path, "w", encoding="utf-8").write(text)
PY
fi
podman --version
/usr/sbin/runc --version | head -1
debootstrap --version 2>/dev/null || dpkg-query -W debootstrap

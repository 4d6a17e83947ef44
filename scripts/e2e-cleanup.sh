#!/usr/bin/env bash
# Removes everything an e2e cluster (tests/e2e) left on this host: its processes
# (by recorded PID), mounts, kubepods cgroups, KUBE-* iptables/ip6tables chains,
# /run/containerd entries and /var/log/containers links. The suite does this
# itself on exit and on SIGTERM/SIGHUP; run this after a run was killed hard.
#
#   bash scripts/e2e-cleanup.sh           # clean, then fail if anything is left
#   bash scripts/e2e-cleanup.sh --check   # only report (exit 1 if anything is left)
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" -m tests.e2e.hostclean "$@"

# syntax=docker/dockerfile:1
# polysecret: the Secrets Store CSI Driver provider image. Build it with
# `make image` (scripts/build-image.sh), which first puts the wheels in build/wheels.
#
# BASE is a build argument: a release uses the pinned upstream Python image
# (pin the digest too, e.g. python:3.11.14-slim-trixie@sha256:<digest>); CI, with
# no image registry reachable, passes a minimal Debian bookworm made by
# debootstrap (python3, python3-venv, ca-certificates). Either way `python3`
# is on PATH and the same wheels (CPython 3.11, manylinux) install.
#
# Two stages: the builder installs the wheels into a virtualenv offline
# (--no-index: nothing is fetched during the build); the runtime stage copies
# only that venv onto the same base (no pip, no wheels, no source tree).
ARG BASE=python:3.11.14-slim-trixie

FROM ${BASE} AS builder
ARG VERSION=0.1.0
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY build/wheels /wheels
# Byte-code is compiled here, at build time: the runtime root filesystem is read-only.
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /wheels "polysecret[all]==${VERSION}" \
 && /opt/venv/bin/python -m compileall -q /opt/venv/lib \
 && /opt/venv/bin/pip uninstall -y pip setuptools

FROM ${BASE}
LABEL org.opencontainers.image.title="polysecret" \
      org.opencontainers.image.description="Secrets Store CSI Driver provider for AWS, Azure Key Vault and Vault/OpenBao" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=builder /opt/venv /opt/venv
# Non-root by default. The chart runs it as uid 0 with every capability dropped
# because the host's socket directory (/var/run/secrets-store-csi-providers,
# created root:root 0755 by the driver) is writable only by root; where the
# node lets uid 65532 write there, keep this user (chart: securityContext).
USER 65532:65532
ENTRYPOINT ["python", "-m", "provider", "serve"]

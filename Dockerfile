# syntax=docker/dockerfile:1
# polysecret: the Secrets Store CSI Driver provider image.
#
# Two stages: the builder installs the package with every backend's SDK into a
# virtualenv; the runtime stage copies only that venv onto the same slim base
# (no pip cache, no build tools, no source tree).
#
# Base image pinned by tag; pin the digest too when releasing, e.g.
#   FROM python:3.11.14-slim-trixie@sha256:<digest from `docker buildx imagetools inspect`>
# (no registry is reachable from CI here, so the digest is not filled in).

FROM python:3.11.14-slim-trixie AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY provider ./provider
# Byte-code is compiled here, at build time: the runtime root filesystem is read-only.
RUN /opt/venv/bin/pip install --no-cache-dir ".[all]" \
 && /opt/venv/bin/python -m compileall -q /opt/venv/lib \
 && /opt/venv/bin/pip uninstall -y pip setuptools

FROM python:3.11.14-slim-trixie
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

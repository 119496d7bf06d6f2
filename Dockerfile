# syntax=docker/dockerfile:1
#
# certctl-operator image: the operator and its runtime dependencies in a
# virtual environment on a slim Python base, run as an unprivileged user.
#
#   docker build -t certctl-operator:0.1.0 .
#
# The Helm chart runs it with a read-only root filesystem, no capabilities and
# the RuntimeDefault seccomp profile; nothing here needs more than that.

ARG PYTHON_IMAGE=python:3.13.9-slim-trixie

# --------------------------------------------------------------------------- build
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/certctl

WORKDIR /src
# Only what the package needs to build: no tests, tools or development files
# (.dockerignore keeps everything else out of the build context).
COPY pyproject.toml README.md ./
COPY operator ./operator

# A regular (non-editable) install of the project and its runtime
# dependencies only: the [test] extra is not installed.
RUN /opt/certctl/bin/pip install --no-compile /src \
 && /opt/certctl/bin/python -m compileall -q /opt/certctl/lib \
 && /opt/certctl/bin/certctl-operator --version

# --------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime

# A fixed, unprivileged UID/GID (the chart's podSecurityContext uses the same).
RUN groupadd --system --gid 65532 certctl \
 && useradd --system --uid 65532 --gid certctl --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin certctl

COPY --from=build /opt/certctl /opt/certctl

ENV PATH=/opt/certctl/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

LABEL org.opencontainers.image.title="certctl-operator" \
      org.opencontainers.image.description="TLS certificates issued, renewed, revoked and announced inside Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0"

# Health, readiness, metrics, CRLs and OCSP share this port.
EXPOSE 8080
USER 65532:65532
ENTRYPOINT ["certctl-operator"]
CMD ["run"]

# syntax=docker/dockerfile:1
# crmflow: one image with every service; the command picks one (the Helm chart does this):
#   crmflow serve editor-api | enrollment | datasource-resolver | executor [--role custom-code]
#   crmflow migrate            crmflow temporal register-search-attributes
#
# Build (from the repository root):
#   docker build -t registry.example.com/platform/crmflow:0.1.0 .
#   docker buildx build --platform linux/amd64,linux/arm64 -t <repo>:<tag> --push .
#
# Runs as uid/gid 10001 with a read-only root filesystem: byte code is compiled at build time,
# and the only writable place it needs is /tmp (an emptyDir in Kubernetes; CRMFLOW_DATA_DIR).

# Base: the official Python image (same tag in both stages: the venv's interpreter is the base
# image's). Pin it by digest in your registry mirror for reproducible builds.
# ---- build: install the project and its dependencies into a virtual environment -------------
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# gcc compiles the enrollment trigger index with mypyc (setup.py); the runtime stage needs no
# compiler. Without it the install still succeeds, with the slower pure-Python index.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Only what the package needs (see .dockerignore): metadata, shared core, services.
COPY pyproject.toml setup.py README.md ./
COPY src ./src
COPY services ./services
# A regular (non-editable) install; pip compiles the byte code, which a read-only root
# filesystem could not write later. The build tree is left behind in this stage.
RUN pip install . \
 && python -m compileall -q /opt/venv/lib \
 && crmflow --help > /dev/null \
 && python -c "from crmflow.criteria import index; assert index.compiled() and index.NATIVE, index.__file__"

# ---- runtime: the venv on a clean slim base, no compilers, no build tree ----------------------
FROM python:3.11-slim-bookworm AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="crmflow" \
      org.opencontainers.image.description="Workflow automation for CRM records: gRPC services and Temporal workers" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/crmflow/crmflow"
RUN groupadd --system --gid 10001 crmflow \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin crmflow
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    CRMFLOW_BIND_HOST=0.0.0.0 \
    CRMFLOW_DATA_DIR=/tmp/crmflow \
    CRMFLOW_LOG_FORMAT=json
WORKDIR /tmp
# Numeric user so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
# editor-api, enrollment, executor, datasource-resolver (gRPC; health on the same port).
EXPOSE 50051 50052 50053 50054
# Kubernetes probes use grpc.health.v1 natively; a Docker HEALTHCHECK would need a client in
# the image and would duplicate them.
HEALTHCHECK NONE
ENTRYPOINT ["crmflow"]
CMD ["--help"]

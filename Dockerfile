# syntax=docker/dockerfile:1
# memplace: the operator (`memplace run`) and the NVML agent (`memplace agent`) in one image.
#
#   docker build -t memplace:dev .
#
# Two stages: the builder turns the source tree into a wheel; the final stage installs that
# wheel and its runtime dependencies only. No compiler, no build tool, no source tree ships.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
# VERSION is the package's (operator/memplace/__init__.py); the release workflow passes it from
# the tag, and tests/test_version.py keeps this default equal to it.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="memplace" \
      org.opencontainers.image.description="Kubernetes operator that places ML models by GPU memory" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/memplace/memplace" \
      org.opencontainers.image.url="https://github.com/memplace/memplace" \
      org.opencontainers.image.vendor="memplace" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.14-slim-bookworm"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp \
    TMPDIR=/tmp

# Only the wheel built above; its dependencies come from the index as wheels (all pure Python
# or manylinux wheels for 3.11, so nothing compiles). The user exists for `ls -l` and logs;
# the pod's securityContext pins UID/GID 65532 either way.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir /wheels/memplace-*.whl \
    && groupadd --system --gid 65532 memplace \
    && useradd --system --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin memplace

USER 65532:65532
WORKDIR /tmp
# Operator metrics, operator health, agent metrics.
EXPOSE 8080 8081 9401
ENTRYPOINT ["memplace"]
CMD ["--help"]

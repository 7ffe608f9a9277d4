# syntax=docker/dockerfile:1
# imgserver: one image for every role, chosen by the command (README, "Deploy"):
#   web (the default)    python -m imgserver serve
#   urgent worker        python -m workers urgent
#   background worker    python -m workers background
# libvips comes from the pyvips-binary wheel (installed with the package): no system libvips.
# tests/unit/test_deploy.py runs this file's `pip install` steps in a fresh venv.

ARG PYTHON_VERSION=3.11

# -- build: a venv with imgserver and its dependencies --------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VENV=/opt/venv
RUN python -m venv "$VENV"
WORKDIR /src
COPY pyproject.toml setup.cfg README.md ./
COPY imgserver ./imgserver
COPY workers ./workers
RUN --mount=type=cache,target=/root/.cache/pip \
    "$VENV/bin/pip" install --upgrade pip && \
    "$VENV/bin/pip" install .

# -- runtime: the venv, the graphs, a user without privileges ---------------------------------------
# The root filesystem may be read-only (compose and the Kubernetes manifests make it so): the
# service writes only to /data (embedded mode), /tmp and /dev/shm; caches (fontconfig's) go to /tmp.
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin imgserver && \
    mkdir -p /app /data && chown imgserver:imgserver /data
COPY --from=build /opt/venv /opt/venv
COPY graphs /app/graphs
COPY deploy/docker/healthcheck.py /app/healthcheck.py
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    IMGSERVER_GRAPHS_DIR=/app/graphs \
    IMGSERVER_DATA_DIR=/data \
    XDG_CACHE_HOME=/tmp/.cache
WORKDIR /app
# numeric, so that Kubernetes can check runAsNonRoot (deploy/k8s runs it as 10001 too)
USER 10001:10001
VOLUME ["/data"]
# 8080: the web role (IMGSERVER_PORT); 9100: a worker role's /metrics, /healthz and /readyz
# when IMGSERVER_WORKER_METRICS_PORT=9100 (without it a worker has no probe to answer)
EXPOSE 8080 9100
# /healthz of whichever role runs: the worker's metrics port when it is set, else IMGSERVER_PORT
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/app/healthcheck.py"]
# run it with an init (docker run --init, compose's init: true) so that exited image
# processes are reaped and SIGTERM reaches python: both roles stop gracefully on it
CMD ["python", "-m", "imgserver", "serve"]

# syntax=docker/dockerfile:1
# wasync: the server (default) or any `wasync` command, e.g. the one-shot job:
#   docker build -t wasync .
#   docker run -d -p 8420:8420 -v wasync-data:/data -e WASYNC_API_KEY=… wasync
#   docker run --rm -v wasync-data:/data -e WASYNC_PHONES=… -e WASYNC_DISCORD_WEBHOOK_URL=… wasync avatar-job
ARG PYTHON_VERSION=3.11

# --- build: a virtualenv with wasync and its dependencies --------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/wasync && /opt/wasync/bin/pip install --upgrade pip wheel
WORKDIR /src
# The dependencies first, from the metadata alone (an empty package stands in for the
# code), so that editing the code does not download them again.
COPY pyproject.toml README.md ./
RUN mkdir -p src/wasync && touch src/wasync/__init__.py \
    && /opt/wasync/bin/pip install . && /opt/wasync/bin/pip uninstall -y wasync \
    && rm -rf src
COPY src ./src
RUN /opt/wasync/bin/pip install --no-deps .

# --- runtime: the virtualenv on a slim Python, no compilers, no pip cache -------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
# libmagic: the WhatsApp engine (neonize) identifies media types with it.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmagic1 ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 wasync \
    && useradd --system --uid 10001 --gid wasync --home-dir /data --shell /usr/sbin/nologin wasync \
    && mkdir -p /data \
    && chown wasync:wasync /data \
    && chmod 0700 /data
COPY --from=build /opt/wasync /opt/wasync
ENV PATH=/opt/wasync/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    WASYNC_DATA_DIR=/data \
    WASYNC_HOST=0.0.0.0 \
    WASYNC_PORT=8420
# The SQLite mirror, session keys, API key file and media: keep them across containers.
VOLUME ["/data"]
WORKDIR /data
USER wasync:wasync
EXPOSE 8420
# /health needs no API key. Short-lived commands (avatar-job) exit before the first check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('WASYNC_PORT', '8420'), timeout=4)"]
# SIGTERM (docker stop) drains: sessions commit what they received, deliveries finish.
STOPSIGNAL SIGTERM
ENTRYPOINT ["wasync"]
CMD ["serve"]

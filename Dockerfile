# qcc as a service: the proxy for a team, listening on 0.0.0.0:7860 in the container.
#
# Build:  docker build -t qcc .
# Run:    docker run -d -p 7860:7860 -v "$PWD/deploy/config:/config" qcc
#
# The config (config.toml, mode 0600) is mounted at /config (QCC_CONFIG_DIR); runtime state
# (proxy record, logs, usage.sqlite3) lives in /state (QCC_STATE_DIR): one state dir per
# instance. Listening beyond loopback needs proxy.access_key or member keys ('qcc key add'):
# without either, the proxy refuses to start. The build fetches only from the package registry.

FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY qcc ./qcc
RUN pip wheel --no-cache-dir --disable-pip-version-check --wheel-dir /wheels .

FROM python:3.12-slim
RUN groupadd --system --gid 10001 qcc \
    && useradd --system --uid 10001 --gid qcc --home-dir /home/qcc --create-home qcc \
    && mkdir -p /config /state \
    && chown qcc:qcc /config /state \
    && chmod 0700 /config /state
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --disable-pip-version-check --no-index /wheels/*.whl \
    && rm -rf /wheels
ENV QCC_CONFIG_DIR=/config \
    QCC_STATE_DIR=/state \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER qcc
WORKDIR /home/qcc
EXPOSE 7860
# No curl in the slim image: Python's urllib asks /health (200 while an account can serve).
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request as u; sys.exit(0 if u.urlopen('http://127.0.0.1:7860/health', timeout=4).status == 200 else 1)"]
# SIGTERM (docker stop) drains in-flight requests within proxy.drain_timeout, then exits 0.
STOPSIGNAL SIGTERM
CMD ["qcc", "proxy", "start", "--host", "0.0.0.0", "--port", "7860"]

# livetx: on-demand HLS transcoding origin.
#
#   docker build -t livetx .
#   docker run --rm -p 8080:8080 -v "$PWD/media:/data/media" \
#     -e LIVETX_SIGNING_KEYS="k1:$(openssl rand -hex 32)" \
#     -e LIVETX_API_KEYS="ops:$(openssl rand -hex 24)" \
#     -e LIVETX_ENCRYPTION_KEYS="m1:$(openssl rand -hex 32)" \
#     -e LIVETX_SERVER_BASE_URL=http://localhost:8080 livetx
#
# With S3: add -e LIVETX_STORAGE_URI=s3://bucket/prefix -e AWS_ACCESS_KEY_ID=... \
#   -e AWS_SECRET_ACCESS_KEY=... [-e LIVETX_S3_ENDPOINT_URL=...]. Every setting of
#   conf/livetx.toml has a LIVETX_<SECTION>_<KEY> variable. Signed URLs: `docker exec` into the
#   container and run `livetx url KEY`, or call POST /api/v1/sign with an API key.
# The PyAV wheel bundles FFmpeg (with libx264/libx265), so no system ffmpeg is needed.
FROM python:3.11-slim

# the *_KEY_FILE variables hold paths to mounted secrets, not secrets
# hadolint ignore=DL3064
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LIVETX_CONFIG=/app/conf/livetx.toml \
    LIVETX_SERVER_HOST=0.0.0.0 \
    LIVETX_SERVER_PORT=8080 \
    LIVETX_STORAGE_URI=/data/media \
    LIVETX_CACHE_LOCAL_DIR=/data/cache \
    LIVETX_CLUSTER_LOCK_DIR=/data/locks \
    LIVETX_SIGNING_KEY_FILE=/run/secrets/livetx_signing_key \
    LIVETX_API_KEY_FILE=/run/secrets/livetx_api_key \
    LIVETX_ENCRYPTION_KEY_FILE=/run/secrets/livetx_encryption_key

WORKDIR /app
COPY pyproject.toml README.md ./
COPY livetx ./livetx
COPY conf ./conf
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --home-dir /app livetx \
    && mkdir -p /data/media /data/cache /data/locks \
    && chown livetx /data/media /data/cache /data/locks

USER 10001
EXPOSE 8080
VOLUME ["/data"]
# /readyz also checks storage and the transcode workers; the health check asks only that the
# process answers, so a storage outage does not get the container restarted
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
# SIGTERM drains: in-flight responses and write-backs finish (up to 30 s), then the process exits
STOPSIGNAL SIGTERM
ENTRYPOINT ["livetx"]
CMD ["serve"]

# livetx: on-demand HLS transcoding origin.
#   docker build -t livetx .
#   docker run --rm -p 8080:8080 -v "$PWD/media:/data/media" \
#     -e LIVETX_SIGNING_KEYS="k1:$(openssl rand -hex 32)" livetx
# The PyAV wheel bundles FFmpeg (with libx264/libx265), so no system ffmpeg is needed.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    LIVETX_SERVER_HOST=0.0.0.0 \
    LIVETX_SERVER_PORT=8080 \
    LIVETX_STORAGE_URI=/data/media \
    LIVETX_SIGNING_KEY_FILE=/run/secrets/livetx_signing_key

WORKDIR /app
COPY pyproject.toml README.md ./
COPY livetx ./livetx
COPY conf ./conf
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /app livetx \
    && mkdir -p /data/media \
    && chown livetx /data/media

USER livetx
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["livetx"]
CMD ["serve"]

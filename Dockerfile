# The backend image. The gateway runs next to the locks (BlueZ host), the simulator only in tests.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /srv/healthlock
COPY pyproject.toml README.md ./
COPY app ./app
COPY models ./models
COPY alerts ./alerts
COPY lock_gateway ./lock_gateway
COPY simulator ./simulator
RUN pip install --no-cache-dir . && useradd --system --home /srv/healthlock healthlock \
    && mkdir -p /srv/healthlock/var && chown healthlock /srv/healthlock/var
USER healthlock
EXPOSE 8000
CMD ["healthlock", "serve", "--migrate", "--host", "0.0.0.0", "--port", "8000"]

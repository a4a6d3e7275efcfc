# taskexec: the API with its embedded worker, on SQLite in the /data volume by default.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 taskexec \
    && useradd --system --uid 10001 --gid taskexec --no-create-home --home-dir /app taskexec

# Install the package from its pyproject; the sources are not kept in the image.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
RUN pip install . && rm -rf /src

# A new named volume copies this directory's ownership, so the non-root user can write to it.
RUN mkdir -p /app /data && chown taskexec:taskexec /data
WORKDIR /app
VOLUME ["/data"]

# /app is importable: mount task modules there and name them in TASKEXEC_TASK_MODULES.
ENV PYTHONPATH=/app \
    TASKEXEC_DATABASE_URL=sqlite+aiosqlite:////data/taskexec.db \
    TASKEXEC_HOST=0.0.0.0 \
    TASKEXEC_PORT=8000

USER taskexec
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('TASKEXEC_PORT', '8000'), timeout=4)"

# `serve` migrates the database to head, then serves the API and runs the worker.
CMD ["taskexec", "serve"]

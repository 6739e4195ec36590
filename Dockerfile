# One image per Keel app, from the repository root:
#   docker build --build-arg APP=customer_service --build-arg CLI=customer-service \
#                --build-arg PORT=8101 -t keel-customer-service .
# (docker-compose.yml passes these for the three apps.) Only the app, the engine and the
# shared service layer are installed; the models are prepared into the image.
FROM python:3.11-slim
ARG APP=customer_service
ARG CLI=customer-service
ARG PORT=8101
ENV PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 UV_LINK_MODE=copy \
    KEEL_CLI=${CLI} KEEL_PORT=${PORT}
RUN pip install --no-cache-dir uv
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
COPY packages packages
COPY apps apps
RUN uv sync --frozen --no-dev --package keel-${CLI}
ENV PATH=/src/.venv/bin:$PATH
# State (models, databases) lives in /var/lib/keel/var/<app>: mount a volume on /var/lib/keel/var.
WORKDIR /var/lib/keel
RUN ${CLI} prepare --budget fast
EXPOSE ${PORT}
HEALTHCHECK --interval=10s --timeout=5s --retries=12 --start-period=60s \
  CMD python -c "import os,sys,urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ['KEEL_PORT']).status == 200 else 1)"
CMD exec ${KEEL_CLI} serve --host 0.0.0.0 --port ${KEEL_PORT}

# The omnivoice gateway as a container image: slim, non-root, the core plus the plugins
# named in PLUGINS (directories under plugins/), built from this repository.
#
#   docker build -t omnivoice .
#   docker build -t omnivoice --build-arg PLUGINS="twilio openai_realtime" --build-arg EXTRAS=otel .
#   docker run -p 8080:8080 -p 9100:9100 -e OPENAI_API_KEY=... omnivoice \
#       omnivoice serve --host 0.0.0.0 --port 8080 --metrics-port 9100 --provider openai
#
# See docs/deploy.md.

ARG PYTHON=3.11

FROM python:${PYTHON}-slim AS build
ARG PLUGINS="twilio telnyx openai_realtime"
ARG EXTRAS=""
WORKDIR /src
COPY core core
COPY plugins plugins
# Wheels of the core, the chosen plugins and all they need; then an install from those
# wheels only, so that nothing of this project comes from anywhere else.
RUN set -eu; \
    extras="${EXTRAS:+[${EXTRAS}]}"; \
    sources="./core${extras}"; names="omnivoice-core${extras}"; \
    for plugin in ${PLUGINS}; do \
        sources="${sources} ./plugins/${plugin}"; names="${names} omnivoice-${plugin}"; \
    done; \
    pip wheel --no-cache-dir -w /wheels ${sources}; \
    pip install --no-cache-dir --no-index --find-links /wheels --prefix /install ${names}

FROM python:${PYTHON}-slim
COPY --from=build /install /usr/local
RUN useradd --system --uid 10001 --home-dir /home/omnivoice --create-home omnivoice
USER 10001:10001
WORKDIR /home/omnivoice
ENV PYTHONUNBUFFERED=1
EXPOSE 8080 9100
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
# One process per container here; run several containers (or --workers N) to scale.
CMD ["omnivoice", "serve", "--host", "0.0.0.0", "--port", "8080", "--metrics-port", "9100", "--log-format", "json"]

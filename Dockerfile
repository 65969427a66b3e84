# One image for every Stanch process: `stanch worker` (the default), `stanch intake`, `stanch migrate`,
# `stanch codec-server`, `stanch sandbox`. docker-compose.yml picks the command per service.
FROM python:3.12.7-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # The package is installed, not run from a checkout, so the routing/policy file is named explicitly.
    STANCH_CONFIG=/app/config/stanch.toml \
    STANCH_HOME=/var/lib/stanch

WORKDIR /app
# Metadata first, sources after: the layer with the dependencies is rebuilt only when they change.
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY workflows ./workflows
COPY activities ./activities
COPY workers ./workers
COPY stanch ./stanch
COPY config ./config
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /var/lib/stanch --create-home stanch

# Never root: the worker runs operators' runbooks and holds their tokens.
USER stanch
ENTRYPOINT ["stanch"]
CMD ["worker"]

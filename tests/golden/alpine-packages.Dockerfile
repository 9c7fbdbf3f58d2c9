FROM python:3.11-alpine AS base-container

ENV LANG=C.UTF-8 \
    LC_ALL=C.UTF-8 \
    PYTHONIOENCODING=UTF-8 \
    PYTHONUNBUFFERED=1

RUN apk add --no-cache curl libgomp1

FROM base-container AS buildstage
ENV APP_MODE="production" \
GREETING="say \"hi\" to \$USER"

RUN --mount=type=cache,target=/root/.cache/pip \
    python3 -m venv /tmp/uv && /tmp/uv/bin/pip install -q uv==0.13.9

COPY ./env/python /tmp/bento/env/python/

RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=cache,target=/root/.cache/uv \
    cd /tmp/bento && python3 -m venv --without-pip /app/.venv && export UV_COMPILE_BYTECODE=1 && if ! /tmp/uv/bin/uv pip install --python /app/.venv/bin/python --no-build -r /tmp/bento/env/python/requirements.txt; then echo 'bento-pipeline: a requirement has no wheel for this platform; installing build-base to build it' >&2 && headers=$(test -e "$(python3 -c 'import sysconfig; print(sysconfig.get_path("include"))')/Python.h" || echo python3-dev) && apk add --no-cache build-base $headers && /tmp/uv/bin/uv pip install --python /app/.venv/bin/python -r /tmp/bento/env/python/requirements.txt; fi

FROM base-container AS runtime

RUN addgroup -S -g 1034 bentoml && adduser -S -D -u 1034 -G bentoml -h /home/bentoml -s /bin/sh bentoml

ENV BENTO_PATH=/home/bentoml/bento \
    BENTOML_HOME=/home/bentoml/ \
    BENTOML_CONTAINERIZED=true \
    VIRTUAL_ENV=/app/.venv \
    PATH=/app/.venv/bin:$PATH

ENV APP_MODE="production" \
GREETING="say \"hi\" to \$USER"

LABEL owner="bento-pipeline"

WORKDIR /home/bentoml/bento

COPY --from=buildstage /app/.venv /app/.venv

COPY --chown=1034:1034 . ./

EXPOSE 3000

RUN chmod +x /home/bentoml/bento/env/docker/entrypoint.sh

USER bentoml

ENTRYPOINT [ "/home/bentoml/bento/env/docker/entrypoint.sh" ]

CMD ["bentoml", "serve", "/home/bentoml/bento", "--production"]

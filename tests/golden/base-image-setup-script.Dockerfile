FROM python:3.11-slim AS base-container

ENV LANG=C.UTF-8 \
    LC_ALL=C.UTF-8 \
    PYTHONIOENCODING=UTF-8 \
    PYTHONUNBUFFERED=1

FROM base-container AS buildstage

RUN --mount=type=cache,target=/root/.cache/pip \
    python3 -m venv /tmp/uv && /tmp/uv/bin/pip install -q uv==0.13.9

COPY ./env/python /tmp/bento/env/python/

RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=cache,target=/root/.cache/uv \
    cd /tmp/bento && python3 -m venv --without-pip /app/.venv && export UV_COMPILE_BYTECODE=1 && /tmp/uv/bin/uv pip install --python /app/.venv/bin/python -r /tmp/bento/env/python/requirements.txt

FROM base-container AS runtime

RUN if command -v useradd >/dev/null 2>&1; then groupadd -g 1034 -o bentoml && useradd -m -d /home/bentoml -u 1034 -g 1034 -o -r bentoml; else addgroup -S -g 1034 bentoml && adduser -S -D -u 1034 -G bentoml -h /home/bentoml -s /bin/sh bentoml; fi

ENV BENTO_PATH=/home/bentoml/bento \
    BENTOML_HOME=/home/bentoml/ \
    BENTOML_CONTAINERIZED=true \
    VIRTUAL_ENV=/app/.venv \
    PATH=/app/.venv/bin:$PATH

LABEL owner="bento-pipeline"

WORKDIR /home/bentoml/bento

COPY --from=buildstage /app/.venv /app/.venv

COPY --chown=1034:1034 . ./

RUN chmod +x ./env/docker/setup_script && ./env/docker/setup_script

EXPOSE 3000

RUN chmod +x /home/bentoml/bento/env/docker/entrypoint.sh

USER bentoml

ENTRYPOINT [ "/home/bentoml/bento/env/docker/entrypoint.sh" ]

CMD ["bentoml", "serve", "/home/bentoml/bento", "--production"]

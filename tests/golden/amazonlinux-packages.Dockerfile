FROM amazonlinux:2 AS base-container

ENV LANG=C.UTF-8 \
    LC_ALL=C.UTF-8 \
    PYTHONIOENCODING=UTF-8 \
    PYTHONUNBUFFERED=1

RUN amazon-linux-extras enable python3.8 && yum install -y python38 shadow-utils && yum clean all

RUN yum install -y curl libgomp1 && yum clean all

FROM base-container AS buildstage
ENV APP_MODE="production" \
GREETING="say \"hi\" to \$USER"

RUN --mount=type=cache,target=/root/.cache/pip \
    python3.8 -m venv /tmp/uv && /tmp/uv/bin/pip install -q uv==0.13.9

COPY ./env/python /tmp/bento/env/python/

RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=cache,target=/root/.cache/uv \
    cd /tmp/bento && python3.8 -m venv --without-pip /app/.venv && export UV_COMPILE_BYTECODE=1 && if ! /tmp/uv/bin/uv pip install --python /app/.venv/bin/python --no-build -r /tmp/bento/env/python/requirements.txt; then echo 'bento-pipeline: a requirement has no wheel for this platform; installing gcc gcc-c++ make to build it' >&2 && headers=$(test -e "$(python3.8 -c 'import sysconfig; print(sysconfig.get_path("include"))')/Python.h" || echo python38-devel) && yum install -y gcc gcc-c++ make $headers && yum clean all && /tmp/uv/bin/uv pip install --python /app/.venv/bin/python -r /tmp/bento/env/python/requirements.txt; fi

FROM base-container AS runtime

RUN groupadd -g 1034 -o bentoml && useradd -m -d /home/bentoml -u 1034 -g 1034 -o -r bentoml

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

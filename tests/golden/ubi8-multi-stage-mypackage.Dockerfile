FROM --platform=$BUILDPLATFORM python:3.7-slim as buildstage
RUN mkdir /tmp/mypackage

WORKDIR /tmp/mypackage/
COPY mypackage .
RUN python setup.py sdist && mv dist/mypackage-0.0.1.tar.gz mypackage.tar.gz

FROM registry.access.redhat.com/ubi8/python-311:1 AS base-container

USER root

ENV LANG=C.UTF-8 \
    LC_ALL=C.UTF-8 \
    PYTHONIOENCODING=UTF-8 \
    PYTHONUNBUFFERED=1

FROM base-container AS buildstage

RUN python3 -m venv --without-pip /app/.venv

FROM base-container AS runtime

RUN groupadd -g 1034 -o bentoml && useradd -m -d /home/bentoml -u 1034 -g 1034 -o -r bentoml

ENV BENTO_PATH=/home/bentoml/bento \
    BENTOML_HOME=/home/bentoml/ \
    BENTOML_CONTAINERIZED=true \
    VIRTUAL_ENV=/app/.venv \
    PATH=/app/.venv/bin:$PATH

LABEL owner="bento-pipeline"

WORKDIR /home/bentoml/bento

COPY --from=buildstage /app/.venv /app/.venv

COPY --chown=1034:1034 . ./

COPY --from=buildstage mypackage.tar.gz /tmp/wheels/
RUN --network=none pip install --find-links /tmp/wheels mypackage

EXPOSE 3000

RUN chmod +x /home/bentoml/bento/env/docker/entrypoint.sh

USER bentoml

ENTRYPOINT [ "/home/bentoml/bento/env/docker/entrypoint.sh" ]

CMD ["bentoml", "serve", "/home/bentoml/bento", "--production"]

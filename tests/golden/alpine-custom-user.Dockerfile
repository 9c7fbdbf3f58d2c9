FROM python:3.11-alpine AS base-container

ENV LANG=C.UTF-8 \
    LC_ALL=C.UTF-8 \
    PYTHONIOENCODING=UTF-8 \
    PYTHONUNBUFFERED=1

FROM base-container AS buildstage

RUN python3 -m venv --without-pip /app/.venv

FROM base-container AS runtime

RUN addgroup -S -g 4321 app && adduser -S -D -u 4321 -G app -h /srv/app -s /bin/sh app

ENV BENTO_PATH=/srv/app/bento \
    BENTOML_HOME=/srv/app/ \
    BENTOML_CONTAINERIZED=true \
    VIRTUAL_ENV=/app/.venv \
    PATH=/app/.venv/bin:$PATH

LABEL owner="bento-pipeline"

WORKDIR /srv/app/bento

COPY --from=buildstage /app/.venv /app/.venv

COPY --chown=4321:4321 . ./

RUN test -d /srv/app && test "$(stat -c %u /srv/app/bento/src)" = "4321"

EXPOSE 3000

RUN chmod +x /srv/app/bento/env/docker/entrypoint.sh

USER app

ENTRYPOINT [ "/srv/app/bento/env/docker/entrypoint.sh" ]

CMD ["bentoml", "serve", "/srv/app/bento", "--production"]

#!/bin/sh
# A wrapper-script "engine": what a site-specific build command looks like (auditing, a fixed
# builder, extra flags). It receives the argv built by custom_backend.construct_build_args and
# hands it to a real engine: docker by default, or $CUSTOM_BACKEND_ENGINE (e.g. podman).
set -eu
engine=${CUSTOM_BACKEND_ENGINE:-docker}
echo "custom-backend: $engine build $*" >&2
exec "$engine" build "$@"

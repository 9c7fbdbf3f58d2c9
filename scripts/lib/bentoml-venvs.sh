# shellcheck shell=bash
# Sourced by scripts/test (after scripts/lib/venv.sh): BentoML itself, one release line per venv
# (.venv-bentoml-1.4/, .venv-bentoml-1.2/), for the real-bento tests in tests/realbento — the
# reference our images are compared with. Never a dependency of the product, never imported by
# it: the tests run these venvs' `bentoml` CLI as a subprocess.
#
# Each venv is re-installed only when its line below changes (a stamp file in the venv), with
# `uv pip install` (uv from the project venv) and uv's shared cache: seconds when warm, and a few
# seconds cold on a fast network (docs/testbed.md, "BentoML venvs").
# PIPELINE_SKIP_BENTOML_VENVS=1 skips this; PIPELINE_BENTOML_VENVS=DIR puts the venvs in DIR.
#
# One line per venv: name, "resolve as of" date (- = today), requirements.
# - BentoML 1.2's dependency ranges are open-ended; today's pydantic (no _std_types_schema) and
#   setuptools (no pkg_resources) break its import, so it is resolved as of its own time.
# - inflection: what the fixtures' service imports (tests/fixtures/bentoml/*/service.py);
#   `bentoml build` imports the service, so its requirements are installed where BentoML runs,
#   as a user's are.
# - uv (1.4 only): BentoML 1.4 locks requirements with uv from its own environment, and
#   pip-installs it when missing, which a uv-made venv (no pip) cannot. UV_VERSION is the
#   project venv's uv, already in uv's cache.
bentoml_venv_lines=(
  ".venv-bentoml-1.4 - bentoml==1.4.40 inflection==0.5.1 uv==UV_VERSION"
  ".venv-bentoml-1.2 2024-08-01 bentoml==1.2.20 inflection==0.5.1"
)

bentoml_venvs_install() {
  local project_python=${venv:-$PWD/.venv}/bin/python
  local dir=${PIPELINE_BENTOML_VENVS:-$PWD} uv=${venv:-$PWD/.venv}/bin/uv
  local entry name asof reqs target stamp started uv_version
  local -a extra
  [ -x "$uv" ] || uv=$(command -v uv) || {
    echo "bentoml venvs: no uv (the project venv installs it)" >&2
    return 1
  }
  uv_version=$("$uv" --version | cut -d' ' -f2)
  for entry in "${bentoml_venv_lines[@]}"; do
    entry=${entry//UV_VERSION/$uv_version}
    read -r name asof reqs <<<"$entry"
    target=$dir/$name
    # On the project venv's Python (3.11 on the test bed, whose base image is
    # python:3.11-slim; bentos default to the building interpreter's version).
    stamp=$target/.installed-$(echo "$entry $("$project_python" -V)" | sha256sum | cut -c1-16)
    [ -f "$stamp" ] && continue
    started=$SECONDS
    extra=()
    [ "$asof" != - ] && extra=(--exclude-newer "$asof")
    rm -rf "$target"
    "$uv" venv --quiet --python "$project_python" "$target" || return 1
    # shellcheck disable=SC2086  # reqs is a list of requirement words
    "$uv" pip install --quiet --python "$target/bin/python" "${extra[@]}" $reqs || return 1
    "$target/bin/bentoml" --version >/dev/null || return 1
    touch "$stamp"
    echo "bentoml venvs: $target ($reqs) installed in $((SECONDS - started))s" >&2
  done
}

if [ "${PIPELINE_SKIP_BENTOML_VENVS:-0}" != 1 ]; then
  bentoml_venvs_install
fi

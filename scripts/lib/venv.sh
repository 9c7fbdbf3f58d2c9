# shellcheck shell=bash
# Sourced by scripts/test and scripts/demo: a project virtualenv with the package and test tools,
# re-installed only when pyproject.toml changes (seconds on a warm checkout).
venv=${PIPELINE_VENV:-$PWD/.venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
stamp="$venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -e ".[test]"
  rm -f "$venv"/.installed-* && touch "$stamp"
fi
export PATH="$venv/bin:$PATH"

# Engines, registry mirror and base images (as root on Debian; see docs/testbed.md).
if [ -x scripts/testbed ] && [ "${PIPELINE_SKIP_TESTBED:-0}" != 1 ]; then
  scripts/testbed up
  testbed_env=${PIPELINE_TESTBED_ENV:-/run/pipeline-testbed/env}
  # shellcheck disable=SC1090
  [ -f "$testbed_env" ] && . "$testbed_env"
fi

#!/bin/sh
# Install a Python (with venv) into a base image that has none.
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -q -y --no-install-recommends python3 python3-venv ca-certificates
rm -rf /var/lib/apt/lists/*

#!/bin/sh
# Runs once during the image build, as root, before the bento's Python environment is created.
# A real script would install system packages or a Python here; this one leaves a marker that
# tests check: /etc/bento-setup-script.done holds the uid it ran as and the distro's name.
set -eu
. /etc/os-release
printf 'uid=%s os=%s\n' "$(id -u)" "$ID" > /etc/bento-setup-script.done

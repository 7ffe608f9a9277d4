#!/usr/bin/env bash
# Install the Debian packages the tests and `make stack` use, when they are missing.
#   deploy/system-deps.sh            (the default set)
#   deploy/system-deps.sh pkg ...    (just these)
set -euo pipefail
packages=("$@")
[ ${#packages[@]} -gt 0 ] || packages=(redis-server rabbitmq-server nginx chromium gegl docker-compose prometheus)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
# Debian packages start their daemons on install (prometheus too); we run private instances
# instead. docker-compose and prometheus give the suite `docker-compose config` and promtool.
policy=/usr/sbin/policy-rc.d
created_policy=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod +x "$policy"
    created_policy=1
fi
trap '[ -z "$created_policy" ] || $sudo rm -f "$policy"' EXIT
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"

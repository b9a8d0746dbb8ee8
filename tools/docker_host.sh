#!/usr/bin/env bash
# Inside `docker build` only: run a command with this host's package settings, which
# tools/docker.sh passes in as the BuildKit secret `host-settings` (a tar.gz, see there). It unpacks
# into the tmpfs mounted at /run/host for that RUN and points apt (APT_CONFIG) and pip
# (PIP_CONFIG_FILE, PIP_* variables) at it; nothing of it is written into a layer. Without the
# secret (a plain `docker build`), the command runs with the base image's own settings.
#   tools/docker_host.sh COMMAND [ARGS...]
set -euo pipefail
secret=/run/secrets/host-settings
dir=/run/host
if [ -s "$secret" ]; then
  tar -xzf "$secret" -C "$dir"
  a=$dir/apt
  {
    echo "Dir::Etc::SourceList \"$a/sources.list\";"
    echo "Dir::Etc::SourceParts \"$a/sources.list.d\";"
    echo "Dir::Etc::Parts \"$a/apt.conf.d\";"
    echo "Dir::Etc::netrc \"$a/auth.conf\";"
    echo "Dir::Etc::netrcparts \"$a/auth.conf.d\";"
    [ -d "$a/trusted.gpg.d" ] && echo "Dir::Etc::TrustedParts \"$a/trusted.gpg.d\";"
    [ -f "$dir/ca-certificates.crt" ] && echo "Acquire::https::CAInfo \"$dir/ca-certificates.crt\";"
  } > "$dir/apt.conf"
  export APT_CONFIG=$dir/apt.conf
  [ -f "$dir/pip/pip.conf" ] && export PIP_CONFIG_FILE=$dir/pip/pip.conf
  # shellcheck disable=SC1091
  [ -f "$dir/pip/env" ] && . "$dir/pip/env"
fi
exec "$@"

#!/usr/bin/env bash
# `make docker-base`: bootstrap a local Debian 12 (bookworm) base image with mmdebstrap, for sites
# that cannot pull the Dockerfile's default base (python:3.11-slim-bookworm) from a registry.
#
#   tools/docker_base.sh [TAG]        TAG defaults to pycount-base:bookworm
#   then: make docker BASE=pycount-base:bookworm
#
# The packages come from this host's own apt sources and apt settings (copied into the chroot for
# the bootstrap only and removed before it is packed); the image keeps mmdebstrap's default
# sources for bookworm (Debian's own archive, updates and security, as the official images do),
# written the way the official images write them (deb822, /etc/apt/sources.list.d/debian.sources).
# Like Debian's -slim images, documentation, man pages and locales are left out. Nothing else is
# added: the Dockerfile installs Python, make and the build tools itself on either base.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tools/docker_engine.sh
. "$here/docker_engine.sh"
tag=${1:-pycount-base:bookworm}
suite=bookworm

need_pkg mmdebstrap mmdebstrap
command -v mmdebstrap >/dev/null || die "mmdebstrap is missing: apt-get install mmdebstrap (Debian/Ubuntu)"
[ "$(id -u)" = 0 ] || die "mmdebstrap builds the base as root here (run with sudo)"
engine_up

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; engine_down' EXIT
# the host's package sources and apt settings, for the bootstrap only
mkdir -p "$tmp/apt"
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] && cp "$f" "$tmp/apt/"
done
compgen -G "$tmp/apt/*" >/dev/null || die "found no apt sources on this host (/etc/apt/sources.list(.d))"

# the hooks run in mmdebstrap's shell, with the chroot as $1
# shellcheck disable=SC2016
setup='mv "$1/etc/apt/sources.list" "'$tmp'/default.list"
  mkdir -p "$1/etc/apt/sources.list.d" "$1/etc/apt/apt.conf.d"
  for f in "'$tmp'"/apt/*; do case $f in
    */sources.list) cp "$f" "$1/etc/apt/sources.list" ;;
    *) cp "$f" "$1/etc/apt/sources.list.d/host-$(basename "$f")" ;; esac; done
  for f in /etc/apt/apt.conf.d/*; do [ -f "$f" ] && cp "$f" "$1/etc/apt/apt.conf.d/host-$(basename "$f")"; done
  true'
# back to the default sources, as deb822 (one stanza per archive), and none of the host settings
# shellcheck disable=SC2016
customize='rm -f "$1/etc/apt/sources.list" "$1"/etc/apt/sources.list.d/host-* "$1"/etc/apt/apt.conf.d/host-*
  awk '\''$1 == "deb" { s[$2] = s[$2] ? s[$2] " " $3 : $3; c[$2] = ""; for (i = 4; i <= NF; i++) c[$2] = c[$2] (i > 4 ? " " : "") $i; o[++n] = $2 }
    END { for (i = 1; i <= n; i++) { u = o[i]; if (u in done) continue; done[u] = 1
      printf "%sTypes: deb\nURIs: %s\nSuites: %s\nComponents: %s\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n", (i > 1 ? "\n" : ""), u, s[u], c[u] } }'\'' \
    "'$tmp'/default.list" > "$1/etc/apt/sources.list.d/debian.sources"
  rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin'

say "bootstrapping Debian $suite (minbase) with mmdebstrap"
start=$(date +%s)
mmdebstrap --variant=minbase --mode=root --format=tar \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
  --setup-hook="$setup" --customize-hook="$customize" \
  "$suite" "$tmp/rootfs.tar" </dev/null
say "importing it as $tag"
"${docker[@]}" import --change 'ENV LANG=C.UTF-8' --change 'CMD ["bash"]' \
  --message "mmdebstrap --variant=minbase $suite (tools/docker_base.sh)" "$tmp/rootfs.tar" "$tag" >/dev/null
say "$tag ready in $(( $(date +%s) - start )) s, $("${docker[@]}" image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1 / 1e6}')"
say "build the image on it: make docker BASE=$tag"

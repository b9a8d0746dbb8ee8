# shellcheck shell=bash
# Sourced by tools/docker.sh and tools/docker_base.sh: find a Docker CLI that can drive BuildKit,
# and a running engine, or start dockerd for the duration of the command and stop it afterwards.
#   engine_up    sets the array docker=(...) to the CLI; starts dockerd when nothing is running
#   engine_down  stops dockerd again if engine_up started it (idempotent; call it from an EXIT trap)
# DOCKER=/path/to/docker picks the CLI; DOCKERD_FLAGS adds flags to a dockerd we start.

say() { printf '\033[1m[docker]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[docker] error:\033[0m %s\n' "$*" >&2; exit 1; }

started_dockerd=
docker=()

# A CLI that can run `RUN --mount` builds: one with the buildx plugin, or a client older than
# Docker 23 (these build with the engine's built-in BuildKit when DOCKER_BUILDKIT=1). Debian 12's
# docker.io (20.10) is the latter; a newer static CLI without buildx (found first on PATH on some
# machines) is skipped, since it falls back to the legacy builder, which has no secret mounts.
pick_cli() {
  local c v
  if [ -n "${DOCKER:-}" ]; then docker=("$DOCKER"); return 0; fi
  while read -r c; do
    [ -x "$c" ] || continue
    if "$c" buildx version >/dev/null 2>&1; then docker=("$c"); return 0; fi
    v=$("$c" --version 2>/dev/null | sed -n 's/^Docker version \([0-9]*\)\..*/\1/p')
    if [ -n "$v" ] && [ "$v" -lt 23 ]; then docker=("$c"); return 0; fi
  done < <(type -a -p docker 2>/dev/null; echo /usr/bin/docker)
  die "no Docker CLI that can build with BuildKit: install Debian's docker.io (apt-get install docker.io),
    or the buildx plugin for your docker (docker-buildx-plugin), or set DOCKER=/path/to/docker"
}

# as root on Debian/Ubuntu, a missing package is installed, as build_caffe.sh does for its own
need_pkg() {
  local cmd=$1 pkg=$2
  command -v "$cmd" >/dev/null && return 0
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 0
  say "installing $pkg (for $cmd)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null; } \
    || die "could not install $pkg"
}

engine_up() {
  [ -n "${DOCKER:-}" ] || "${DOCKER:-docker}" info >/dev/null 2>&1 || need_pkg dockerd docker.io
  pick_cli
  export DOCKER_BUILDKIT=1
  if "${docker[@]}" info >/dev/null 2>&1; then return 0; fi
  # another container engine's socket without a Docker API at the default place: do not start a
  # second engine beside it
  local s
  for s in /run/podman/podman.sock "${XDG_RUNTIME_DIR:-/nonexistent}/docker.sock" \
           "${XDG_RUNTIME_DIR:-/nonexistent}/podman/podman.sock"; do
    [ -S "$s" ] && die "no Docker engine answers, but $s exists: point DOCKER_HOST at the engine you use (e.g. DOCKER_HOST=unix://$s)"
  done
  [ -z "${DOCKER_HOST:-}" ] || die "DOCKER_HOST=$DOCKER_HOST does not answer (docker info failed)"
  pgrep -x dockerd >/dev/null && die "a dockerd is running but does not answer on the default socket"
  command -v dockerd >/dev/null || die "no Docker engine running and no dockerd to start: apt-get install docker.io"
  [ "$(id -u)" = 0 ] || die "no Docker engine running; starting dockerd needs root (or start it: sudo systemctl start docker)"
  local log
  log=$(mktemp /tmp/pycount-dockerd.XXXXXX.log)
  say "no Docker engine running: starting dockerd for this command (log: $log)"
  # no iptables or bridge: containers and builds use the host's network (--network=host), which is
  # also how they reach the package sources
  # shellcheck disable=SC2086
  dockerd --iptables=false --bridge=none ${DOCKERD_FLAGS:-} > "$log" 2>&1 &
  started_dockerd=$!
  local _
  for _ in $(seq 60); do
    "${docker[@]}" info >/dev/null 2>&1 && { say "dockerd up ($("${docker[@]}" info -f '{{.Driver}}') storage)"; return 0; }
    kill -0 "$started_dockerd" 2>/dev/null || { tail -5 "$log" >&2; started_dockerd=; die "dockerd exited; see $log"; }
    sleep 1
  done
  tail -5 "$log" >&2
  die "dockerd did not answer within 60 s; see $log"
}

engine_down() {
  [ -n "$started_dockerd" ] || return 0
  say "stopping the dockerd this command started"
  kill "$started_dockerd" 2>/dev/null || true
  local _
  for _ in $(seq 30); do kill -0 "$started_dockerd" 2>/dev/null || break; sleep 1; done
  started_dockerd=
}

#!/usr/bin/env bash
# The replication image (Dockerfile): build it, test it.
#
#   tools/docker.sh build     `make docker`: build the image IMAGE (default pycount)
#   tools/docker.sh test      `make docker-test`: `make test` in the image as its user, on the CPU,
#                             then `make audit` with this tree's runs/ and weights/ mounted, and a
#                             check that what it wrote belongs to the caller outside
#   tools/docker.sh inputs    print the hash of everything the Caffe layer is built from
#   tools/docker.sh ci        CI (.ci/run): build and test the image when its inputs changed (below)
#
#   IMAGE=name  BASE=image (default: the Dockerfile's, python:3.11-slim-bookworm; after
#   `make docker-base`: pycount-base:bookworm)  JOBS=n (compile jobs in the build)
#
# A running Docker engine is used; with none (and no other engine's socket) dockerd is started
# for this command and stopped afterwards (tools/docker_engine.sh). Builds and containers use
# the host's network. Package sources reach the build as they reach this host: its apt sources
# and apt.conf.d, its pip configuration and PIP_* variables, and its CA bundle go in as the
# BuildKit secret host-settings, mounted only while a RUN downloads (tools/docker_host.sh);
# proxy variables go in as Docker's predefined proxy build arguments, which stay out of the
# image's history. Nothing of them is written into a layer or into this repository.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=tools/docker_engine.sh
. "$here/docker_engine.sh"
image=${IMAGE:-pycount}
tmp=                        # the build's temporary folder (global: the EXIT trap removes it)
inside=/run/host            # where tools/docker_host.sh unpacks the settings in a RUN

# what the image's expensive part (venv + Caffe) and its test are made from
INPUT_FILES=(Dockerfile .dockerignore requirements.txt tools/docker.sh tools/docker_base.sh
  tools/docker_engine.sh tools/docker_host.sh tools/setup_venv.sh tools/build_caffe.sh
  tools/cuda_toolchain.sh tools/caffe-patches)
inputs() {
  (cd "$root" && find "${INPUT_FILES[@]}" -type f | LC_ALL=C sort | xargs sha256sum) | sha256sum | cut -c1-16
}

# the tree's commit as pycount.util.provenance writes it ("<sha>", "<sha>+changes"), for the image
commit() {
  local sha
  sha=$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null) || { echo unknown; return 0; }
  [ -z "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ] || sha="$sha+changes"
  echo "$sha"
}

# this host's package settings, as a tar for the host-settings secret
pack_settings() {
  local out=$1 d f
  d=$(mktemp -d) && chmod 755 "$d"
  mkdir -p "$d/apt/sources.list.d" "$d/apt/apt.conf.d" "$d/apt/auth.conf.d" "$d/pip/files"
  [ -f /etc/apt/sources.list ] && cp /etc/apt/sources.list "$d/apt/" || : > "$d/apt/sources.list"
  for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && cp "$f" "$d/apt/sources.list.d/"; done
  for f in /etc/apt/apt.conf.d/*; do [ -f "$f" ] && cp "$f" "$d/apt/apt.conf.d/"; done
  [ -f /etc/apt/auth.conf ] && cp -p /etc/apt/auth.conf "$d/apt/" || : > "$d/apt/auth.conf"
  for f in /etc/apt/auth.conf.d/*; do [ -f "$f" ] && cp -p "$f" "$d/apt/auth.conf.d/"; done
  if compgen -G '/etc/apt/trusted.gpg.d/*' >/dev/null; then
    mkdir -p "$d/apt/trusted.gpg.d" && cp /etc/apt/trusted.gpg.d/* "$d/apt/trusted.gpg.d/"; fi
  [ -f /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$d/"
  # pip: the configuration files pip reads here, merged in pip's order, and the PIP_* variables;
  # files they name (cert, constraint, ...) travel along, local folders and file:// indexes
  # (not visible in the build) are left out, with a note
  python3 - "$d/pip" "$inside/pip/files" <<'PY'
import configparser, os, shlex, shutil, sys
out, inside = sys.argv[1], sys.argv[2]
home = os.path.expanduser("~")
paths = [os.path.join(x, "pip", "pip.conf") for x in os.environ.get("XDG_CONFIG_DIRS", "/etc/xdg").split(":")]
paths += ["/etc/pip.conf", os.path.join(home, ".pip", "pip.conf"),
          os.path.join(os.environ.get("XDG_CONFIG_HOME", os.path.join(home, ".config")), "pip", "pip.conf")]
if os.environ.get("VIRTUAL_ENV"):
    paths.append(os.path.join(os.environ["VIRTUAL_ENV"], "pip.conf"))
if os.environ.get("PIP_CONFIG_FILE", os.devnull) != os.devnull:
    paths.append(os.environ["PIP_CONFIG_FILE"])
copied = {}

def fix(key, value):
    kept = []
    for item in value.split():
        path = item[len("file://"):] if item.startswith("file://") else os.path.expanduser(item)
        if not (item.startswith(("/", "~", "file:"))):
            kept.append(item)
        elif os.path.isfile(path):
            if path not in copied:
                copied[path] = f"{len(copied)}-{os.path.basename(path)}"
                shutil.copy(path, os.path.join(out, "files", copied[path]))
            kept.append(f"{inside}/{copied[path]}")
        else:
            print(f"[docker] note: pip's {key} {item} is a local folder of this host; the build does not see it",
                  file=sys.stderr)
    return " ".join(kept)

cp = configparser.RawConfigParser()
cp.read([p for p in paths if os.path.isfile(p)])
for section in cp.sections():
    for key, value in cp.items(section):
        value = fix(key, value)
        if value:
            cp.set(section, key, value)
        else:
            cp.remove_option(section, key)
with open(os.path.join(out, "pip.conf"), "w") as f:
    cp.write(f)
with open(os.path.join(out, "env"), "w") as f:
    for k, v in sorted(os.environ.items()):
        if (k.startswith("PIP_") and k != "PIP_CONFIG_FILE") or k in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
            v = fix(k, v)
            if v:
                f.write(f"export {k}={shlex.quote(v)}\n")
PY
  tar -czf "$out" -C "$d" .
  [ "$(stat -c %s "$out")" -lt 512000 ] || die "the host settings come to more than BuildKit's 500 KiB for a secret: $(tar -tzvf "$out" | sort -k3 -n | tail -3)"
  rm -rf "$d"
}

# the host's Debian mirror, as build_caffe.sh looks it up, for Caffe's source package
debian_sources() {
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then cat /etc/apt/sources.list.d/debian.sources
  else awk '$1 == "deb" {print "URIs: " $2; exit}' /etc/apt/sources.list 2>/dev/null || true; fi
}

build() {
  engine_up
  local args=() v start
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"; engine_down' EXIT
  pack_settings "$tmp/host-settings.tar"
  debian_sources > "$tmp/debian.sources"
  [ -z "${BASE:-}" ] || args+=(--build-arg "BASE=$BASE")
  [ -z "${JOBS:-}" ] || args+=(--build-arg "JOBS=$JOBS")
  args+=(--build-arg "PYCOUNT_COMMIT=$(commit)")
  for v in http_proxy https_proxy no_proxy ftp_proxy all_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY FTP_PROXY ALL_PROXY; do
    [ -z "${!v:-}" ] || args+=(--build-arg "$v")   # value from the environment, kept out of the history
  done
  say "building $image from ${BASE:-the base the Dockerfile names} (inputs $(inputs))"
  start=$(date +%s)
  "${docker[@]}" build --network=host --progress=plain \
    --secret "id=host-settings,src=$tmp/host-settings.tar" --secret "id=debian-sources,src=$tmp/debian.sources" \
    --label "org.pycount.inputs=$(inputs)" "${args[@]}" -t "$image" "$root" \
    || die "the build failed (where the base image cannot be pulled: make docker-base, then make docker BASE=pycount-base:bookworm)"
  say "built $image in $(( $(date +%s) - start )) s: $("${docker[@]}" image inspect -f '{{.Size}}' "$image" | awk '{printf "%.2f GB", $1 / 1e9}')"
}

test_image() {
  engine_up
  trap 'engine_down' EXIT
  "${docker[@]}" image inspect "$image" >/dev/null 2>&1 || die "no image $image: make docker first"
  local start uid gid mark bad
  start=$(date +%s)
  # 1. the test suite, as the image's own user, on the CPU (GPU=-1), without network
  say "make test in $image (user $("${docker[@]}" image inspect -f '{{.Config.User}}' "$image"), no network, no GPU)"
  # (PYCOUNT_CUDA_BUILD also runs tests/test_cuda_build.py against the image's CUDA build)
  local tests=0
  # shellcheck disable=SC2016
  "${docker[@]}" run --rm --network=none "$image" \
    bash -c 'PYCOUNT_CUDA_BUILD=$(echo "$PYCOUNT_CACHE"/caffe-cuda-*) make test' || tests=$?
  [ "$tests" = 0 ] || say "make test failed in $image (status $tests); the audit check runs all the same"
  # 2. the audit on this tree's runs/ and weights/, as the caller (SUDO_UID when run by sudo), so
  #    that what it writes belongs to the caller outside; as root, also as an unprivileged uid
  #    without an account in the image
  mkdir -p "$root/runs" "$root/weights"
  uid=${SUDO_UID:-$(id -u)}
  gid=${SUDO_GID:-$(id -g)}
  audit "$uid" "$gid" "$root/runs"
  if [ "$uid" = 0 ]; then
    mark=$(mktemp -d)
    cp -a "$root/runs/." "$mark/" 2>/dev/null || true
    chown -R 4242:4242 "$mark"
    audit 4242 4242 "$mark"
    rm -rf "$mark"
  fi
  [ "$tests" = 0 ] || die "docker-test: make test failed in the image (above); the audit part passed"
  say "docker-test passed in $(( $(date +%s) - start )) s"
  write_record "$("${docker[@]}" image inspect -f '{{.Id}}' "$image" | cut -c8-19)" "$(( $(date +%s) - start ))"
}

# make audit as UID:GID with RUNS and weights/ mounted; everything it wrote must be UID's
audit() {
  local uid=$1 gid=$2 runs=$3 mark bad
  mark=$(mktemp)
  sleep 1
  say "make audit in $image as $uid:$gid, runs/ = $runs, weights/ = $root/weights"
  "${docker[@]}" run --rm --network=none --user "$uid:$gid" -e HOME=/tmp \
    -v "$runs:/opt/pycount/runs" -v "$root/weights:/opt/pycount/weights" "$image" make audit
  # -H: runs/ or weights/ may be a link to the folder (find would not descend into it)
  [ -n "$(find -H "$runs" -newer "$mark" -type f -print -quit)" ] || { rm -f "$mark"; die "make audit wrote nothing under $runs"; }
  bad=$(find -H "$runs" "$root/weights" -newer "$mark" \( ! -user "$uid" -o ! -group "$gid" \) -print)
  rm -f "$mark"
  [ -z "$bad" ] || die "files written in the container are not owned by $uid:$gid outside:
$bad"
  say "files the audit wrote belong to $uid:$gid: $(find "$runs/audit" -type f | wc -l) under ${runs#"$root"/}/audit"
}

# CI: a cold build of the image takes longer than the rest of .ci/run together (docs/docker.md),
# so the image is built and tested only when what it is built from differs from what the last
# passing `make docker-test` was built from. That one writes the record below (commit it with the
# change); a change of the inputs in any commit, or uncommitted, makes the hashes differ.
# PYCOUNT_CI_DOCKER=1 forces it, =0 skips it, =dry only says what CI would do. Without a BASE, CI
# builds on the local mmdebstrap base (made first if missing), so that no registry is needed.
record=$root/tools/docker-tested.txt
write_record() {
  local size built
  built=$("${docker[@]}" image inspect -f '{{index .Config.Labels "org.pycount.inputs"}}' "$image")
  if [ "$built" != "$(inputs)" ]; then
    say "not recorded as tested: $image was built from other inputs ($built) than this tree's ($(inputs)); make docker, then make docker-test"
    return 0
  fi
  size=$("${docker[@]}" image inspect -f '{{.Size}}' "$image" | awk '{printf "%.2f GB", $1 / 1e9}')
  { echo "# written by make docker-test when it passed (tools/docker.sh); CI rebuilds the image when"
    echo "# tools/docker.sh inputs differs from the inputs line"
    echo "inputs $built"
    echo "tested $(date -u +%Y-%m-%dT%H:%MZ) on $(hostname), $2 s"
    echo "image $1, $size"; } > "$record"
  say "recorded in ${record#"$root"/}: commit it with the change, so that CI does not rebuild the image"
}

ci_reason() {   # prints why the image must be built; prints nothing when it need not be
  local now tested
  if [ "${PYCOUNT_CI_DOCKER:-}" = 1 ]; then echo "PYCOUNT_CI_DOCKER=1"; return 0; fi
  now=$(inputs)
  if [ ! -f "$record" ]; then echo "no image was recorded as tested (${record#"$root"/} is missing)"; return 0; fi
  tested=$(awk '$1 == "inputs" { print $2 }' "$record")
  if [ "$tested" = "$now" ]; then
    say "image inputs $now were built and tested: $(awk '$1 == "tested" { $1 = ""; print substr($0, 2) }' "$record") (${record#"$root"/})"
    return 0
  fi
  echo "its inputs ($now) differ from the last tested image's (${tested:-none}, ${record#"$root"/})"
}

ci() {
  local why
  [ "${PYCOUNT_CI_DOCKER:-}" != 0 ] || { say "image: skipped (PYCOUNT_CI_DOCKER=0)"; return 0; }
  why=$(ci_reason)
  if [ -z "$why" ]; then
    say "image: not built (PYCOUNT_CI_DOCKER=1 builds it)"; return 0
  fi
  say "image: built and tested, since $why"
  [ "${PYCOUNT_CI_DOCKER:-}" != dry ] || return 0
  export BASE=${BASE:-pycount-base:bookworm}
  if [ "$BASE" = pycount-base:bookworm ]; then
    engine_up
    "${docker[@]}" image inspect "$BASE" >/dev/null 2>&1 || "$here/docker_base.sh" "$BASE"
    engine_down
  fi
  "$0" build
  "$0" test
}

case ${1:-} in
  build) build ;;
  test) test_image ;;
  inputs) inputs ;;
  ci) ci ;;
  *) die "usage: tools/docker.sh build|test|inputs|ci" ;;
esac

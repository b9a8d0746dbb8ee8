#!/usr/bin/env bash
# Build Caffe (libcaffe, pycaffe, the `caffe` tool) from Debian's bullseye source package and make
# it importable from the project venv.
#
#   tools/build_caffe.sh [VENV]            VENV defaults to .venv
#   WITH_CUDA=1 tools/build_caffe.sh       CUDA build (cuDNN off), arch list in CUDA_ARCH_BIN
#   WITH_CUDA=1 WITH_NCCL=1 ...            ... plus Caffe's multi-GPU support (NCCL 2 from PyPI)
#   LINK_VENV=0 tools/build_caffe.sh       build (or find) it, but leave the venv's caffe alone;
#                                          prints the build folder on stdout (CI's compile check)
#
# The build lives outside the clone, in $PYCOUNT_CACHE (default ~/.cache/pycount), under a folder
# named by a hash of everything that changes the binary: the source's sha256, our patches, the
# CMake flags, the Python and numpy versions. A finished build has a `.complete` stamp; anything
# without it is an interrupted build and is rebuilt from scratch. A second clone, or CI, reuses it.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
venv=$(cd "${1:-$root/.venv}" 2>/dev/null && pwd) || { echo "[caffe] error: no venv at ${1:-$root/.venv}: run make setup" >&2; exit 1; }
py=$venv/bin/python
cache=${PYCOUNT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pycount}
with_cuda=${WITH_CUDA:-0}
with_nccl=${WITH_NCCL:-0}
link=${LINK_VENV:-1}
cuda_arch_bin=${CUDA_ARCH_BIN:-90}
jobs=${JOBS:-$(( $(nproc) + 1 ))}

pkg=caffe
version=1.0.0+git20180821.99bd997-8
orig=caffe_1.0.0+git20180821.99bd997.orig.tar.gz
orig_sha=e0eb3f06794f7402c77b7dec8e8480273ee1a1bb192e9122b621a69d4147ad0c
deb=caffe_1.0.0+git20180821.99bd997-8.debian.tar.xz
deb_sha=07cf073227494a6b07234e40cb5df91db566616593eef9baafdc4d06ad159f21

say() { printf '\033[1m[caffe]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[caffe] error:\033[0m %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- build dependencies (Debian 12)
apt_pkgs=(cmake dpkg-dev g++ make libboost-system-dev libboost-thread-dev libboost-filesystem-dev
  libboost-python-dev libprotobuf-dev protobuf-compiler libgoogle-glog-dev libgflags-dev
  libhdf5-dev liblmdb-dev libsnappy-dev libopenblas-dev libopencv-dev libdnnl-dev)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  cmd="apt-get install -y --no-install-recommends ${missing[*]}"
  if [ "$(id -u)" = 0 ]; then
    say "installing build dependencies: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && $cmd -qq >/dev/null
  elif sudo -n true 2>/dev/null; then
    say "installing build dependencies with sudo: ${missing[*]}"
    sudo DEBIAN_FRONTEND=noninteractive apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive $cmd -qq >/dev/null
  else
    die "missing Debian packages, and this user cannot install them. Run as root, then retry:
    sudo apt-get update && sudo $cmd"
  fi
fi

[ -x "$py" ] || die "no Python at $py: create the venv first (make setup does)"
py_ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
np_ver=$("$py" -c 'import numpy; print(numpy.__version__)') || die "numpy is not installed in $venv"

# ---------------------------------------------------------------- CMake flags and the cache key
flags=(-DBLAS=Open -Dpython_version=3 -DUSE_LEVELDB=OFF -DBUILD_docs=OFF -DCMAKE_BUILD_TYPE=Release)
patches=("$here"/caffe-patches/01-*.patch)
if [ "$with_cuda" = 1 ]; then
  cuda_root=$(PYTHON="$py" "$here/cuda_toolchain.sh")
  export PATH="$cuda_root/bin:$PATH"
  flags+=(-DCPU_ONLY=OFF -DUSE_CUDNN=OFF -DCUDA_ARCH_NAME=Manual "-DCUDA_ARCH_BIN=$cuda_arch_bin"
    -DCUDA_ARCH_PTX= "-DCUDA_TOOLKIT_ROOT_DIR=$cuda_root")
  patches+=("$here"/caffe-patches/02-*.patch "$here"/caffe-patches/03-*.patch)
  variant=cuda
  if [ "$with_nccl" = 1 ]; then
    # Caffe's FindNCCL reads $NCCL_DIR; the library path goes into the flags, so the cache key too
    NCCL_DIR=$(PYTHON="$py" "$here/cuda_toolchain.sh" nccl)
    export NCCL_DIR
    flags+=(-DUSE_NCCL=ON "-DNCCL_LIBRARIES=$NCCL_DIR/lib/libnccl.so" "-DNCCL_INCLUDE_DIR=$NCCL_DIR/include")
    variant=cuda-nccl
  else
    flags+=(-DUSE_NCCL=OFF)
  fi
else
  flags+=(-DCPU_ONLY=ON)
  variant=cpu
fi
# 04: the CPU convolution over chunks of the batch (both variants; CAFFE_CONV_CHUNK_MB=0 at run
# time selects Caffe's per-image path; see the patch header and docs/caffe-speed.md)
patches+=("$here"/caffe-patches/04-*.patch)
# 05: the CPU Convolution/Deconvolution through oneDNN (Debian's libdnnl-dev, linked into
# libcaffe; both variants, CPU path only); CAFFE_CONV_ENGINE=gemm at run time selects 04's path
patches+=("$here"/caffe-patches/05-*.patch)
# 06: BatchNorm and Scale CPU passes as direct per-channel loops, and -fno-trapping-math so that
# elementwise selects (ReLU's backward) vectorize (both variants, CPU code only)
patches+=("$here"/caffe-patches/06-*.patch)
# 07: the CPU pooling loops with their running maximum in a register, planes shared among
# OpenMP threads; the same results to the bit (both variants, CPU code only)
patches+=("$here"/caffe-patches/07-*.patch)
key=$( { echo "$orig_sha $deb_sha py$py_ver numpy$np_ver ${flags[*]}"; cat "${patches[@]}"; } \
  | sha256sum | cut -c1-16)
dest=$cache/caffe-$variant-$key
pth=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/pycount-caffe.pth

link_venv() {
  if [ "$link" = 0 ]; then echo "$dest"; return 0; fi
  [ "$(cat "$pth" 2>/dev/null)" = "$dest/src/python" ] || echo "$dest/src/python" > "$pth"
  "$py" -c 'import caffe' 2>/dev/null || die "caffe was built in $dest but does not import in $venv;
    delete $dest and run make caffe again"
}

if [ -f "$dest/.complete" ]; then
  say "reusing the $variant build in $dest"
  link_venv
  exit 0
fi

# ---------------------------------------------------------------- one build at a time
mkdir -p "$cache"
exec 9>"$cache/.lock-$variant-$key"
flock 9
if [ -f "$dest/.complete" ]; then link_venv; exit 0; fi
rm -rf "$dest"
mkdir -p "$dest"

# ---------------------------------------------------------------- source (Debian's source package)
src_dl=$cache/source
mkdir -p "$src_dl"
if ! (cd "$src_dl" && echo "$orig_sha  $orig" | sha256sum -c --quiet >/dev/null 2>&1 \
      && echo "$deb_sha  $deb" | sha256sum -c --quiet >/dev/null 2>&1); then
  say "fetching Debian's $pkg $version source package (suite bullseye)"
  uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$uri" ] || uri=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$uri" ] || die "found no Debian mirror in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list;
    put $orig and $deb (from any Debian mirror, pool/main/c/caffe/) into $src_dl and rerun"
  aptdir=$(mktemp -d)
  trap 'rm -rf "$aptdir"' EXIT
  mkdir -p "$aptdir/parts" "$aptdir/lists/partial"
  cat > "$aptdir/parts/caffe-src.sources" <<EOF
Types: deb-src
URIs: $uri
Suites: bullseye
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  aptopt=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$aptdir/parts"
    -o "Dir::State::Lists=$aptdir/lists" -o APT::Sandbox::User=root -qq)
  apt-get "${aptopt[@]}" update
  (cd "$src_dl" && apt-get "${aptopt[@]}" source --download-only "$pkg=$version")
fi
say "verifying sha256 of the source files"
(cd "$src_dl" && echo "$orig_sha  $orig" | sha256sum -c --quiet && echo "$deb_sha  $deb" | sha256sum -c --quiet) \
  || die "sha256 mismatch in $src_dl: delete that folder and rerun"

say "unpacking and applying Debian's patches"
(cd "$dest" && dpkg-source --no-check -x "$src_dl/caffe_$version.dsc" src >/dev/null)
for p in "${patches[@]}"; do
  say "applying $(basename "$p")"
  patch -s -p1 -d "$dest/src" < "$p"
done

# ---------------------------------------------------------------- configure and build
say "configuring ($variant): ${flags[*]}"
mkdir -p "$dest/src/build"
(cd "$dest/src/build" && cmake .. "${flags[@]}" "-DPYTHON_EXECUTABLE=$py" > "$dest/cmake.log" 2>&1) \
  || die "cmake failed; see $dest/cmake.log"
say "compiling with $jobs jobs (about 2 minutes on 2 cores for the CPU build); log: $dest/build.log"
start=$(date +%s)
(cd "$dest/src/build" && make -j"$jobs" caffe pycaffe caffe.bin > "$dest/build.log" 2>&1) \
  || { tail -30 "$dest/build.log" >&2; die "compilation failed; full log in $dest/build.log"; }
say "built in $(( $(date +%s) - start )) s"
ln -sf build/tools/caffe "$dest/src/caffe-tool"
date -u +%FT%TZ > "$dest/.complete"
link_venv
[ "$link" = 0 ] || say "caffe ready: $("$py" -c 'import caffe, os; print(os.path.dirname(caffe.__file__))')"

#!/usr/bin/env bash
# Print the path of a CUDA 13.0 toolkit root (nvcc, headers incl. CCCL/thrust, cudart, cuBLAS,
# cuRAND) assembled from NVIDIA's PyPI wheels: the same on any Debian/Ubuntu x86-64 machine, no
# NVIDIA apt repository needed. Cached in $PYCOUNT_CACHE/cuda-13.0; all messages go to stderr.
#   tools/cuda_toolchain.sh          prints the CUDA root
#   tools/cuda_toolchain.sh nccl     prints the root of NCCL 2 for CUDA 13 (include/, lib/), for
#                                    Caffe's multi-GPU training (WITH_NCCL=1 in build_caffe.sh)
set -euo pipefail
cache=${PYCOUNT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pycount}
py=${PYTHON:-python3}
wheels=(nvidia-cuda-nvcc==13.0.88 nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85
  nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 nvidia-cublas==13.0.2.14 nvidia-curand==10.4.5.25)
nccl_wheel=nvidia-nccl-cu13==2.28.3

# install WHEELS... into DEST unless DEST/.complete exists; FIXUP (a function) then runs on
# DEST.partial, and the folder moves into place only when complete
install() {
  local dest=$1 what=$2 fixup=$3
  shift 3
  [ -f "$dest/.complete" ] && return 0
  echo "[cuda] installing $what from PyPI wheels into $dest" >&2
  rm -rf "$dest.partial"
  "$py" -m pip install -q --disable-pip-version-check --no-deps --target "$dest.partial" "$@" >&2
  "$fixup" "$dest.partial"
  rm -rf "$dest"
  mv "$dest.partial" "$dest"
  date -u +%FT%TZ > "$dest/.complete"
}

fix_nccl() {
  local n=$1/nvidia/nccl
  [ -f "$n/include/nccl.h" ] || { echo "[cuda] error: no nccl.h in $n/include" >&2; exit 1; }
  ln -sfn libnccl.so.2 "$n/lib/libnccl.so"
}

fix_cuda() {
  local cu=$1/nvidia/cu13
  [ -x "$cu/bin/nvcc" ] || { echo "[cuda] error: no nvcc in $cu/bin after installing the wheels" >&2; exit 1; }
  ln -sfn lib "$cu/lib64"              # CMake's FindCUDA looks in lib64
  for so in "$cu"/lib/lib*.so.*; do    # the wheels ship only versioned names; the linker wants plain ones
    plain=${so%%.so.*}.so
    [ -e "$plain" ] || ln -s "$(basename "$so")" "$plain"
  done
}

if [ "${1:-}" = nccl ]; then
  install "$cache/nccl-2.28.3" "NCCL ($nccl_wheel)" fix_nccl "$nccl_wheel"
  echo "$cache/nccl-2.28.3/nvidia/nccl"
else
  install "$cache/cuda-13.0" "the CUDA 13.0 toolchain (about 600 MB)" fix_cuda "${wheels[@]}"
  echo "$cache/cuda-13.0/nvidia/cu13"
fi

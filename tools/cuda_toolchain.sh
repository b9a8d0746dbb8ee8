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
if [ "${1:-}" = nccl ]; then
  nroot=$cache/nccl-2.28.3
  if [ ! -f "$nroot/.complete" ]; then
    echo "[cuda] installing NCCL ($nccl_wheel) from PyPI into $nroot" >&2
    rm -rf "$nroot.partial"
    "$py" -m pip install -q --disable-pip-version-check --no-deps --target "$nroot.partial" \
      "$nccl_wheel" >&2
    n=$nroot.partial/nvidia/nccl
    [ -f "$n/include/nccl.h" ] || { echo "[cuda] error: no nccl.h in $n/include" >&2; exit 1; }
    ln -sfn libnccl.so.2 "$n/lib/libnccl.so"
    rm -rf "$nroot"
    mv "$nroot.partial" "$nroot"
    date -u +%FT%TZ > "$nroot/.complete"
  fi
  echo "$nroot/nvidia/nccl"
  exit 0
fi
root=$cache/cuda-13.0
if [ ! -f "$root/.complete" ]; then
  echo "[cuda] installing the CUDA 13.0 toolchain from PyPI wheels into $root (about 600 MB)" >&2
  rm -rf "$root.partial"
  "$py" -m pip install -q --disable-pip-version-check --no-deps --target "$root.partial" \
    "${wheels[@]}" >&2
  cu=$root.partial/nvidia/cu13
  [ -x "$cu/bin/nvcc" ] || { echo "[cuda] error: no nvcc in $cu/bin after installing the wheels" >&2; exit 1; }
  ln -sfn lib "$cu/lib64"              # CMake's FindCUDA looks in lib64
  for so in "$cu"/lib/lib*.so.*; do    # the wheels ship only versioned names; the linker wants plain ones
    plain=${so%%.so.*}.so
    [ -e "$plain" ] || ln -s "$(basename "$so")" "$plain"
  done
  rm -rf "$root"
  mv "$root.partial" "$root"
  date -u +%FT%TZ > "$root/.complete"
fi
echo "$root/nvidia/cu13"

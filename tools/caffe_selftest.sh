#!/usr/bin/env bash
# Caffe's own gtest cases for the layers that tools/caffe-patches/04-batched-conv.patch and
# 05-dnnl-conv.patch change, run against the patched CPU build: test_convolution_layer.cpp and
# test_deconvolution_layer.cpp (forward values, gradient checks, groups, dilation, 1x1, N-D) plus
# tools/caffe-selftest/test_batched_conv_layer.cpp (5 images in uneven chunks and through oneDNN
# against the per-image path, and gradient checks). Each runs four times: CAFFE_CONV_ENGINE=dnnl
# (oneDNN, the default; float only: the double tests fall back to gemm, oneDNN has no f64
# convolution), CAFFE_CONV_ENGINE=gemm with 04's defaults (whole batch of Caffe's 2-image tests
# in one chunk), gemm with CAFFE_CONV_CHUNK_IMAGES=1 (the chunked code, one image per chunk) and
# gemm with CAFFE_CONV_CHUNK_MB=0 (Caffe's original per-image path), so one build tests all paths.
# oneDNN's OpenMP threads wait passively, as under pycount (docs/caffe-speed.md, patch 05).
# Then, once, the gtests of the layers 06-cpu-layers.patch and 07-pooling.patch change
# (test_batch_norm_layer.cpp, test_scale_layer.cpp, test_neuron_layer.cpp, test_pooling_layer.cpp:
# forward values and gradient checks; ReLU's backward among the neuron layers), which do not
# depend on the convolution engine.
#
#   tools/caffe_selftest.sh [VENV]        (make caffe-selftest); JOBS=2 by default
#
# Builds (or reuses) the CPU variant with tools/build_caffe.sh, then only these seven test
# sources and gtest (Caffe's BUILD_only_tests), not Caffe's whole test suite.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
venv=${1:-$root/.venv}
jobs=${JOBS:-2}
say() { printf '\033[1m[caffe-selftest]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[caffe-selftest] error:\033[0m %s\n' "$*" >&2; exit 1; }

start=$(date +%s)
build=$(WITH_CUDA=0 LINK_VENV=0 JOBS=$jobs "$here/build_caffe.sh" "$venv")
[ -f "$build/.complete" ] || die "no finished build in $build"
src=$build/src
exec 9>"$build/.lock-selftest"
flock 9
cp "$here/caffe-selftest/test_batched_conv_layer.cpp" "$src/src/caffe/test/"
say "building the layer tests in $src/build (log: $build/selftest-build.log)"
# The cached build may have been configured from another clone whose venv is gone (CI clones
# afresh, worktrees get removed): re-point CMake at this venv's Python, or it drops pycaffe and
# the configure step fails on Caffe's pytest target.
[ -x "$venv/bin/python" ] || die "no Python in $venv; run make setup first"
py=$(cd "$venv" && pwd)/bin/python
tests=convolution_layer,deconvolution_layer,batched_conv_layer   # 04, 05
tests+=,batch_norm_layer,scale_layer,neuron_layer                # 06
tests+=,pooling_layer                                            # 07
(cd "$src/build" \
  && cmake . -DPYTHON_EXECUTABLE="$py" \
       -DBUILD_only_tests="$tests" \
  && make -j"$jobs" test.testbin) > "$build/selftest-build.log" 2>&1 \
  || { tail -30 "$build/selftest-build.log" >&2; die "building the tests failed"; }
built=$(date +%s)
say "tests built in $((built - start)) s"

# name:settings (comma-separated); gemm-default = 04's defaults (chunks of about 2048 GEMM columns)
fail=0 passed=0 runs_failed=0 runs=0
for run in dnnl:CAFFE_CONV_ENGINE=dnnl gemm-default:CAFFE_CONV_ENGINE=gemm \
    gemm-one-image-chunks:CAFFE_CONV_ENGINE=gemm,CAFFE_CONV_CHUNK_IMAGES=1 \
    gemm-per-image:CAFFE_CONV_ENGINE=gemm,CAFFE_CONV_CHUNK_MB=0 layers:; do
  name=${run%%:*} setting=${run#*:} runs=$((runs + 1))
  log=$build/selftest-$name.log
  t0=$(date +%s)
  rc=0
  # TestNDAgainst2D asserts bit-for-bit equality of the N-D im2col path (always gemm per image)
  # and the 2-D path, which the chunked GEMMs and oneDNN round differently; it runs in the
  # per-image run, and test_batched_conv_layer.cpp compares chunked and oneDNN against per-image
  # to 1e-4 instead.
  # the engine runs take the convolution tests only; the layers run the others (06)
  others='BatchNormLayerTest*:ScaleLayerTest*:NeuronLayerTest*:PoolingLayerTest*'
  filter="-*GPU*:$others"
  [ "$name" = gemm-per-image ] || filter="$filter:*TestNDAgainst2D*"
  [ "$name" != layers ] || filter="$others:-*GPU*"
  (cd "$src" && unset CAFFE_CONV_CHUNK_MB CAFFE_CONV_CHUNK_IMAGES CAFFE_CONV_CHUNK_COLS \
      CAFFE_CONV_ENGINE \
    && env ${setting//,/ } GLOG_minloglevel=2 OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}" \
       build/test/test.testbin --gtest_filter="$filter" \
       > "$log" 2>&1) || rc=$?
  n=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) tests\?\.$/\1/p' "$log")
  f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) tests\?, listed below:$/\1/p' "$log")
  passed=$((passed + ${n:-0}))
  if [ "$rc" = 0 ] && [ -n "$n" ]; then
    say "$name (${setting:-defaults}): $n tests passed in $(( $(date +%s) - t0 )) s"
  else
    fail=$((fail + ${f:-1})) runs_failed=$((runs_failed + 1))
    grep -E '^\[  FAILED  \]|Failure' "$log" | head -20 >&2 || tail -20 "$log" >&2
    say "$name (${setting:-defaults}): FAILED (exit $rc), log in $log"
  fi
done
say "done in $(( $(date +%s) - start )) s"
echo "caffe-selftest: $passed passed, $fail failed"
[ "$fail" = 0 ] || die "Caffe's layer tests failed in $runs_failed of the $runs runs"

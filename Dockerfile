# pycount replication image: `make docker`, then
#   docker run --gpus all -v $PWD/datasets:/data -v $PWD/weights:/opt/pycount/weights \
#     -v $PWD/runs:/opt/pycount/runs pycount make audit
#
# Base: Debian bookworm with Python 3.11, the platform CI tests on, rather than an NVIDIA CUDA
# image: the CUDA 13 toolchain and libraries come from NVIDIA's PyPI wheels through the same
# tools/build_caffe.sh (WITH_CUDA=1) that `make caffe` runs, so the image builds Caffe exactly
# as CI does, only with CUDA on. The GPU driver comes from the host (--gpus all).
# cuDNN: off. Caffe 1.0's cuDNN code targets the cuDNN 7 API, which cuDNN 8/9 removed; the
# cudnnFind/v7 port would be a large patch for a modest speed-up of the convolutions here.
FROM python:3.11-slim-bookworm

# WITH_CUDA and CUDA_ARCH_BIN stay set, so `make` inside the image finds this very build
# (sm_75 Turing to sm_90 Hopper: current data-centre and workstation GPUs)
ENV DEBIAN_FRONTEND=noninteractive \
    PYCOUNT_CACHE=/opt/pycount-cache \
    PIP_NO_CACHE_DIR=1 \
    WITH_CUDA=1 \
    CUDA_ARCH_BIN="75 80 86 89 90"

# make and the tools the build script needs; it installs Caffe's build dependencies itself
RUN apt-get update \
 && apt-get install -y --no-install-recommends make ca-certificates dpkg-dev patch \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/pycount
COPY requirements.txt ./
COPY tools/ ./tools/
RUN tools/setup_venv.sh /opt/pycount/.venv \
 && tools/build_caffe.sh /opt/pycount/.venv \
 && rm -rf /var/lib/apt/lists/* "$PYCOUNT_CACHE/source"

COPY . .
RUN .venv/bin/python -m pip install --no-deps . \
 && useradd --create-home --uid 1000 pycount \
 && mkdir -p runs data \
 && chown -R pycount:pycount /opt/pycount/runs /opt/pycount/data /opt/pycount/weights

USER 1000:1000
ENV PATH=/opt/pycount/.venv/bin:$PATH
# `make` targets work as on the host: setup finds the venv and the Caffe build already done
CMD ["make", "help"]

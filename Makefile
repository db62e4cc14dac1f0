# adtrd: the README's two commands are `make run` (set-up + demo) and `make test`
# (set-up + every test). Everything they need is installed here, pinned.
SHELL := /bin/bash
PYTHON ?= python3
VENV := training/.venv
VPY := $(VENV)/bin/python
TFLITE := third_party/tflite
ORT := third_party/onnxruntime
LITERT := third_party/litert
PIP_VERSION := 24.2

GO ?= go
GOARCH ?= $(shell $(GO) env GOARCH)

.PHONY: all deps sysdeps venv build run test test-go test-race test-fuzz test-python test-release dist bench demo-model clean

all: build

deps: $(TFLITE)/.stamp $(ORT)/.stamp $(LITERT)/.stamp
$(TFLITE)/.stamp: scripts/fetch-tflite.sh scripts/tflite.sha256
	scripts/fetch-tflite.sh
	touch $@
$(ORT)/.stamp: scripts/fetch-onnxruntime.sh scripts/onnxruntime.sha256
	scripts/fetch-onnxruntime.sh
	touch $@
$(LITERT)/.stamp: scripts/fetch-litert.sh scripts/litert.sha256
	scripts/fetch-litert.sh
	touch $@

# Debian packages for the release checks (arm64 cross compiler, qemu-user, systemd-analyze),
# installed only when missing.
sysdeps:
	scripts/install-debs.sh

venv: $(VENV)/.stamp
$(VENV)/.stamp: training/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --disable-pip-version-check pip==$(PIP_VERSION)
	$(VPY) -m pip install --quiet --disable-pip-version-check -r training/requirements.txt
	touch $@

# The binary finds libtensorflowlite_c.so, libLiteRt.so and libonnxruntime.so.1 beside itself (their default search).
build: deps
	mkdir -p build
	$(GO) build -ldflags "-X main.version=$$(scripts/version.sh)" -o build/adtrd ./cmd/adtrd
	cp $(TFLITE)/linux_$(GOARCH)/libtensorflowlite_c.so $(TFLITE)/linux_$(GOARCH)/libexternal_delegate_obj.so build/
	cp $(LITERT)/linux_$(GOARCH)/libLiteRt.so $(LITERT)/linux_$(GOARCH)/libLiteRtWebGpuAccelerator.so build/
	cp $(ORT)/linux_$(GOARCH)/libonnxruntime.so.1 build/

# The demo: models/demo's frames once through the demo model onto the simulated output.
run: build
	./build/adtrd run

test: test-go test-race test-fuzz test-python test-release

# ADTRD_REQUIRE_TFLITE and ADTRD_REQUIRE_TOOLS turn "library/tool missing" skips into failures.
# -timeout: go test's default of 10 minutes per package binary is what cmd/adtrd's
# end-to-end tests take on a 2-core machine with the other cores busy (it ran past it
# once with a training beside it); a hang still ends the run, later.
test-go: deps sysdeps venv
	ADTRD_REQUIRE_TFLITE=1 ADTRD_REQUIRE_TOOLS=1 $(GO) test -timeout 30m -count=1 ./...

# The race detector over every Go package (it needs cgo, which the build has anyway).
test-race: deps
	ADTRD_REQUIRE_TFLITE=1 $(GO) test -race -timeout 30m -count=1 ./...

# Each fuzzer for a few seconds beyond its committed seeds (go test runs the seeds
# alone as part of test-go): config parsing, model metadata, image decoding, GPIO line lookup.
FUZZ := ./config:FuzzParse ./model:FuzzParse ./capture:FuzzDecodeImage ./gpio/hostgpio:FuzzFind
# A count, not a duration: with a duration Go's fuzzing coordinator can fail a target
# with a bare "context deadline exceeded" when its workers are starved at the deadline
# (golang/go#75804; it failed FuzzDecodeImage here with both cores busy). A count has
# no deadline to race: a loaded machine only takes longer. About 5 s each when idle.
FUZZTIME ?= 10000x
test-fuzz: deps
	@set -e; for f in $(FUZZ); do \
		echo "fuzz $${f#*:} in $${f%%:*} for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$${f#*:}$$" -fuzztime $(FUZZTIME) $${f%%:*}; \
	done

# linux/amd64 + linux/arm64 binaries and .deb packages in dist/.
dist: deps sysdeps
	./cross-build.sh

# The packages unpack as they should, their unit verifies, and the arm64 binary runs the
# demo under qemu-user deciding as the amd64 one does.
test-release: dist
	ADTRD_DIST=$(CURDIR)/dist ADTRD_REQUIRE_TFLITE=1 ADTRD_REQUIRE_TOOLS=1 $(GO) test -count=1 ./internal/release

# BENCH_COMPARE=PATH also times another graph's bare Invoke loop in the same run.
BENCH_COMPARE ?=
bench: deps
	ADTRD_BENCH_COMPARE=$(BENCH_COMPARE) $(GO) test -run '^$$' -bench '^Benchmark(Invoke|Pipeline|PrePost|Score)' -benchtime 3s ./tflite ./engine/onnxruntime ./engine/litert ./daemon ./score
	$(GO) test -run '^$$' -bench RejectEdge -benchtime 10000x ./gpio
	$(GO) test -run '^$$' -bench Swap -benchtime 100x ./daemon
	$(GO) test -run '^$$' -bench Camera -benchtime 100x ./capture
	$(GO) test -run '^$$' -bench 'Overlay|EncodePNG' ./heatmap
	$(GO) test -run '^$$' -bench Record ./record
	$(GO) test -run '^$$' -bench Publish ./mqtt
	$(GO) test -run '^$$' -bench View -benchtime 600x ./app

test-python: deps venv build
	cd training && ../$(VPY) -m pytest -q -rP --durations=15 -p no:cacheprovider tests

# Rebuilds models/demo from a fixed seed (minutes on 2 cores): data, training, export,
# demo frames and the golden file the Go side tests against.
demo-model: deps venv
	rm -rf models/demo build/demo-work
	cd training && ../$(VPY) -m adtr -v demo --out ../models/demo --work ../build/demo-work

clean:
	rm -rf build dist

//go:build linux && cgo

package tflite_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/adtrd/adtrd/capture"
	"github.com/adtrd/adtrd/internal/testlib"
	"github.com/adtrd/adtrd/tflite"
)

// A stand-in for the GPU delegate and for an external delegate plugin, built from C
// here (this machine has no GPU). Its Prepare records what it was asked and leaves
// the graph to the CPU, or fails on purpose when ADTR_TEST_DELEGATE_FAIL is set.
const testDelegateC = `
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include "tensorflow/lite/c/common.h"

typedef struct {
	int32_t is_precision_loss_allowed, inference_preference, inference_priority1, inference_priority2, inference_priority3;
	int64_t experimental_flags;
	int32_t max_delegated_partitions;
	const char* serialization_dir;
	const char* model_token;
} gpu_options;

static void note(const char* kind, const char* what) {
	const char* path = getenv("ADTR_TEST_DELEGATE_LOG");
	if (!path) return;
	FILE* f = fopen(path, "a");
	if (!f) return;
	fprintf(f, "%s %s\n", kind, what);
	fclose(f);
}

static TfLiteStatus prepare(TfLiteContext* ctx, struct TfLiteDelegate* d) {
	TfLiteIntArray* plan;
	if (ctx->GetExecutionPlan(ctx, &plan) != kTfLiteOk) return kTfLiteError;
	char buf[64];
	snprintf(buf, sizeof buf, "nodes=%d", plan->size);
	note((const char*)d->data_, buf);
	if (getenv("ADTR_TEST_DELEGATE_FAIL")) {
		ctx->ReportError(ctx, "test delegate: refusing the graph on purpose");
		return kTfLiteError;
	}
	return kTfLiteOk;
}

static TfLiteDelegate* make(const char* kind) {
	TfLiteDelegate* d = calloc(1, sizeof *d);
	d->data_ = (void*)kind;
	d->Prepare = prepare;
	d->flags = kTfLiteDelegateFlagsNone;
	return d;
}

TfLiteDelegate* TfLiteGpuDelegateV2Create(const gpu_options* o) {
	char buf[128];
	snprintf(buf, sizeof buf, "precision_loss=%d quant=%d priority1=%d", o->is_precision_loss_allowed, (int)(o->experimental_flags & 1), o->inference_priority1);
	note("gpu-create", buf);
	return make("gpu-prepare");
}
void TfLiteGpuDelegateV2Delete(TfLiteDelegate* d) { note("gpu-delete", "-"); free(d); }

TfLiteDelegate* tflite_plugin_create_delegate(char** keys, char** values, size_t n, void (*report)(const char*)) {
	for (size_t i = 0; i < n; i++) {
		char buf[256];
		snprintf(buf, sizeof buf, "%s=%s", keys[i], values[i]);
		note("external-option", buf);
	}
	return make("external-prepare");
}
void tflite_plugin_destroy_delegate(TfLiteDelegate* d) { note("external-delete", "-"); free(d); }
`

func buildTestDelegate(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "testdelegate.c")
	lib := filepath.Join(dir, "libtestdelegate.so")
	os.WriteFile(src, []byte(testDelegateC), 0o644)
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	out, err := exec.Command(cc, "-shared", "-fPIC", "-O1", "-I", filepath.Join(testlib.Root(), "tflite", "include"), "-o", lib, src).CombinedOutput()
	if err != nil {
		t.Fatalf("building the test delegate: %v\n%s", err, out)
	}
	return lib
}

func delegateLog(t *testing.T) func() string {
	p := filepath.Join(t.TempDir(), "delegate.log")
	t.Setenv("ADTR_TEST_DELEGATE_LOG", p)
	return func() string { b, _ := os.ReadFile(p); return string(b) }
}

func TestGPUDelegateIsAskedToPrepareTheGraph(t *testing.T) {
	lib := openLib(t)
	dl := buildTestDelegate(t)
	read := delegateLog(t)
	it, err := lib.NewInterpreter(testlib.Demo("adtr.tflite"), tflite.Options{Threads: 1, GPU: &tflite.GPUOptions{
		Library: dl, AllowPrecisionLoss: true, AllowQuantizedModels: true, PriorityMinLatency: true,
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := it.Invoke(); err != nil { // the graph still runs (on the CPU kernels)
		t.Fatal(err)
	}
	if len(it.Warnings()) != 0 {
		t.Fatalf("warnings %v", it.Warnings())
	}
	it.Close()
	log := read()
	for _, want := range []string{"gpu-create precision_loss=1 quant=1 priority1=2", "gpu-prepare nodes=", "gpu-delete"} {
		if !strings.Contains(log, want) {
			t.Fatalf("delegate log lacks %q:\n%s", want, log)
		}
	}
}

func TestFailingGPUDelegateFallsBackOrRefuses(t *testing.T) {
	lib := openLib(t)
	dl := buildTestDelegate(t)
	delegateLog(t)
	t.Setenv("ADTR_TEST_DELEGATE_FAIL", "1")
	tests := []struct {
		name     string
		fallback bool
	}{
		{"fallback warns and runs on the CPU", true}, // on_failure: fallback
		{"refuse does not start", false},             // on_failure: refuse
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			it, err := lib.NewInterpreter(testlib.Demo("adtr.tflite"), tflite.Options{GPU: &tflite.GPUOptions{Library: dl, FallbackToCPU: tc.fallback}})
			if !tc.fallback {
				if !errors.Is(err, tflite.ErrDelegate) || !strings.Contains(err.Error(), "refusing the graph on purpose") {
					t.Fatalf("err = %v, want ErrDelegate with TFLite's message", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer it.Close()
			w := it.Warnings()
			if len(w) != 1 || !strings.Contains(string(w[0]), "running on the CPU") || !strings.Contains(string(w[0]), "refusing the graph on purpose") {
				t.Fatalf("warnings %v", w)
			}
			if err := it.Invoke(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestMissingGPUDelegateLibrary(t *testing.T) {
	lib := openLib(t)
	_, err := lib.NewInterpreter(testlib.Demo("adtr.tflite"), tflite.Options{GPU: &tflite.GPUOptions{Library: "/nonexistent/libtensorflowlite_gpu_delegate.so"}})
	if !errors.Is(err, tflite.ErrDelegate) || !strings.Contains(err.Error(), "/nonexistent/libtensorflowlite_gpu_delegate.so") {
		t.Fatalf("err = %v", err)
	}
}

func TestExternalDelegateGetsItsOptions(t *testing.T) {
	lib := openLib(t)
	dl := buildTestDelegate(t)
	read := delegateLog(t)
	it, err := lib.NewInterpreter(testlib.Demo("adtr.tflite"), tflite.Options{External: []tflite.ExternalDelegate{{
		Library: dl, Options: map[string]string{"cache_dir": "/var/cache/adtrd", "precision": "fp16"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := it.Invoke(); err != nil {
		t.Fatal(err)
	}
	it.Close()
	log := read()
	for _, want := range []string{"external-option cache_dir=/var/cache/adtrd", "external-option precision=fp16", "external-prepare nodes=", "external-delete"} {
		if !strings.Contains(log, want) {
			t.Fatalf("delegate log lacks %q:\n%s", want, log)
		}
	}
}

// XNNPACK is asked to take the int8 ops (its QS8 flag): the map then differs from the
// built-in kernels', which round FULLY_CONNECTED and CONV_2D in two steps where XNNPACK
// (and the arm64 library's own kernels) round in one. If the flag were lost, the two
// maps would be equal and amd64 would again disagree with arm64.
func TestXNNPACKTakesTheInt8Ops(t *testing.T) {
	lib := openLib(t)
	g := testlib.LoadGolden(t)
	px, err := capture.LoadRGB(testlib.Demo("frames", g.Frames[0].File), capture.Size{W: 224, H: 224}, capture.FitResize)
	if err != nil {
		t.Fatal(err)
	}
	maps := map[bool][]byte{}
	for _, xnn := range []bool{true, false} {
		it, err := lib.NewInterpreter(testlib.Demo("adtr.tflite"), tflite.Options{Threads: 2, XNNPACK: xnn})
		if err != nil {
			t.Fatal(err)
		}
		copy(it.Inputs()[0].Bytes(), px)
		if err := it.Invoke(); err != nil {
			t.Fatal(err)
		}
		maps[xnn] = append([]byte(nil), it.Outputs()[0].Bytes()...)
		it.Close()
	}
	if bytes.Equal(maps[true], maps[false]) {
		t.Fatal("XNNPACK and built-in kernels gave the same int8 map: the QS8 flag did not reach XNNPACK")
	}
}

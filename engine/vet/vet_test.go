package vet_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/engine"
	"github.com/adtrd/adtrd/engine/tflite"
	"github.com/adtrd/adtrd/engine/vet"
	"github.com/adtrd/adtrd/internal/testlib"
	"github.com/adtrd/adtrd/model"
)

// The test binary is its own vetting child (as the daemon's binary is): model.engine
// "fake" plays the runtime's failures by model.path; anything else is the real TFLite
// engine.
func TestMain(m *testing.M) {
	if os.Getenv("ADTRD_VET_CHILD") == "1" {
		log := slog.New(slog.NewTextHandler(os.Stderr, nil))
		os.Exit(vet.Serve(os.Args[2:], os.Stdin, os.Stdout, open, log))
	}
	os.Exit(m.Run())
}

func open(m config.Model, log *slog.Logger) (engine.Opened, error) {
	if m.Engine != "fake" {
		return tflite.Factories().Open(config.Config{Model: m}, log)
	}
	switch strings.TrimSuffix(filepath.Base(m.Path), ".tflite") {
	case "refuse":
		return engine.Opened{}, errors.New("model refuse: metadata says int8, the graph float32")
	case "hang":
		select {}
	case "panic":
		var p *engine.Opened
		return *p, nil // a nil dereference: Go's panic, exit 2
	case "exit":
		fmt.Println("about to go")
		os.Exit(3)
	case "grow":
		var keep [][]byte // past the memory limit: Go's "fatal error: out of memory"
		for {
			b := make([]byte, 64<<20)
			for i := range b {
				b[i] = 1
			}
			keep = append(keep, b)
		}
	}
	return engine.Opened{}, fmt.Errorf("no fake %q", m.Path)
}

// fake is the demo's model (a bundle that verifies) under name.tflite, which the fake
// engine in the child plays by name.
func fake(t *testing.T, name string) config.Model {
	t.Helper()
	dir := t.TempDir()
	for _, ext := range []string{"", ".json"} {
		b, err := os.ReadFile(testlib.Demo("adtr.tflite" + ext))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, name+".tflite"+ext), b, 0o644)
	}
	return config.Model{Engine: "fake", Path: filepath.Join(dir, name+".tflite")}
}

func vetter(limits vet.Limits) *vet.Vetter {
	return &vet.Vetter{Exe: os.Args[0], Env: append(os.Environ(), "ADTRD_VET_CHILD=1"), Limits: limits}
}

// What kills or fails the child is a refusal that says how, in one line; the demo
// graph passes. A real crash of the TFLite library is TestVetRefusesAGraphThatCrashesTFLite.
func TestVet(t *testing.T) {
	lib := testlib.TFLiteLibrary(t)
	limits := vet.Limits{Time: 20 * time.Second, Memory: 4 << 30}
	for _, tc := range []struct {
		name   string
		m      config.Model
		limits vet.Limits
		want   string // in the error; "" for none
	}{
		// the demo graph on the real engine: loaded, warm-up run
		{"demo", config.Model{Engine: "tflite", Path: testlib.Demo("adtr.tflite"), Library: lib, Threads: 1}, limits, ""},
		// the engine's own error comes back as it was said
		{"refused", fake(t, "refuse"), limits, "model refuse: metadata says int8, the graph float32"},
		// a hang is killed at the time limit
		{"hang", fake(t, "hang"), vet.Limits{Time: 500 * time.Millisecond}, "not loaded and warmed up within 500ms, the runtime hangs on it: refused in a vetting child, killed"},
		// Go's panic: its first line
		{"panic", fake(t, "panic"), limits, "crashed loading it or in its warm-up inference"},
		// an exit without a result: the status and the last line
		{"exit", fake(t, "exit"), limits, `exit status 3; its last line: "about to go"`},
		// an allocation past the memory limit dies in the child
		{"memory", fake(t, "grow"), vet.Limits{Time: 20 * time.Second, Memory: 2 << 30}, "out of memory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "memory" && raceEnabled {
				t.Skip("no address-space limit under the race detector (its shadow memory)")
			}
			err := vetter(tc.limits).Vet(context.Background(), tc.m)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Vet: %v", err)
			case tc.want == "":
				return
			case !errors.Is(err, vet.ErrRefused) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n"):
				t.Fatalf("Vet: %v; want one ErrRefused line with %q", err, tc.want)
			}
			if tc.name == "panic" && !strings.Contains(err.Error(), "panic: runtime error: invalid memory address") {
				t.Fatalf("Vet: %v; want the panic's line", err)
			}
		})
	}
}

// A vetting in progress is stopped (the child killed) when its context ends: the
// daemon stopping, the reloader closed.
func TestVetStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := vetter(vet.Limits{Time: time.Minute}).Vet(ctx, fake(t, "hang"))
	if !errors.Is(err, vet.ErrStopped) || errors.Is(err, vet.ErrRefused) || !strings.Contains(err.Error(), "vetting stopped") || time.Since(start) > 20*time.Second {
		t.Fatalf("Vet: %v after %v; want it stopped with its context", err, time.Since(start))
	}
}

// Graphs that the TFLite 2.9 library itself cannot survive (testdata, written by
// scripts/gen-vet-graphs.py, with the demo's metadata so they pass every check made
// before the runtime runs them): the crash is a refusal naming the signal, and the
// hang is killed at the time limit. In the daemon's own process either would have
// ended or frozen the line.
func TestVetRefusesAGraphThatCrashesTFLite(t *testing.T) {
	lib := testlib.TFLiteLibrary(t)
	for _, tc := range []struct {
		graph  string
		limits vet.Limits
		want   string
	}{
		// GATHER_ND reads 2 GiB past its input (CVE-2022-35937): SIGSEGV in the first Invoke
		{"crash.tflite", vet.Limits{Time: 20 * time.Second}, "the tflite engine crashed loading it or in its warm-up inference"},
		// WHILE whose condition is a constant true: the first Invoke never returns
		{"hang.tflite", vet.Limits{Time: 2 * time.Second}, "not loaded and warmed up within 2s, the runtime hangs on it"},
	} {
		t.Run(tc.graph, func(t *testing.T) {
			path := testlib.WithDemoMetadata(t, filepath.Join("testdata", tc.graph), t.TempDir())
			err := vetter(tc.limits).Vet(context.Background(), config.Model{Engine: "tflite", Path: path, Library: lib, Threads: 1})
			if !errors.Is(err, vet.ErrRefused) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Vet: %v; want one ErrRefused line with %q", err, tc.want)
			}
			t.Log(err)
			if tc.graph == "crash.tflite" && !strings.Contains(err.Error(), "SIGSEGV") {
				t.Fatalf("Vet: %v; want the signal named", err)
			}
		})
	}
}

// A model whose files are wrong (a graph its metadata does not describe) is said as it
// is, checked before any child: no "refused in a vetting child" on a plain file error.
func TestVetChecksTheFilesFirst(t *testing.T) {
	m := fake(t, "refuse")
	b, _ := os.ReadFile(m.Path)
	os.WriteFile(m.Path, b[:len(b)/2], 0o644)
	err := vetter(vet.Limits{Time: 20 * time.Second}).Vet(context.Background(), m)
	if !errors.Is(err, model.ErrMetadata) || errors.Is(err, vet.ErrRefused) || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("Vet: %v; want the metadata's sha256 mismatch, not a refusal", err)
	}
}

// A vetting child that cannot start (the binary replaced under the daemon, an emulator
// that cannot exec another binary) is the safety net missing, not the model's fault:
// one warning, and the model is loaded unvetted.
func TestVetWithoutAChild(t *testing.T) {
	var logs strings.Builder
	v := &vet.Vetter{Exe: filepath.Join(t.TempDir(), "gone"), Limits: vet.Limits{Time: 5 * time.Second}, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	if err := v.Vet(context.Background(), fake(t, "refuse")); err != nil || !strings.Contains(logs.String(), "model loaded without vetting: the vetting child cannot start") {
		t.Fatalf("Vet: %v\n%s", err, logs.String())
	}
}

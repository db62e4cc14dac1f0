// Package litert is the engine over LiteRT's C API (model.engine litert): the int8
// TFLite graph on XNNPACK or on LiteRT's GPU accelerator (Dawn over Vulkan).
package litert

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/adtrd/adtrd/internal/libpath"
)

// Name is this engine's model.engine.
const Name = "litert"

// LibraryName is LiteRT's C API library as the ai-edge-litert wheel ships it; its GPU
// accelerator, AcceleratorName, is looked for in the same folder.
const (
	LibraryName     = "libLiteRt.so"
	AcceleratorName = "libLiteRtWebGpuAccelerator.so"
)

// LibrarySearch lists where the engine looks when model.litert.library is empty:
// beside the binary, ../lib/adtrd from it (the .deb's layout), /usr/lib/adtrd, then
// the dynamic loader's own search (the bare name).
func LibrarySearch() []string { return libpath.Search(LibraryName) }

// library is the configured path, or the first of LibrarySearch that exists.
func library(configured string) string { return libpath.Find(configured, LibraryName) }

// Placement is where a compiled graph's ops run: LiteRT's GPU accelerator takes the
// ops it supports and leaves the rest (Unsupported says which kinds, and why) to the
// CPU. A CPU-only model has GPU 0.
type Placement struct {
	GPU, CPU    int
	Unsupported []string // "BATCH_MATMUL: Not supported batched mat mul case: non-constant tensor"
}

// String is the one line the log, check and the status page show.
func (p Placement) String() string {
	if p.GPU == 0 {
		return fmt.Sprintf("all %d ops on the CPU", p.CPU)
	}
	s := fmt.Sprintf("%d of %d ops on the GPU, %d on the CPU", p.GPU, p.GPU+p.CPU, p.CPU)
	if len(p.Unsupported) > 0 {
		s += " (not on the GPU: " + strings.Join(p.Unsupported, "; ") + ")"
	}
	return s
}

// The GPU accelerator (ml_drift's delegate, TFLite's GPU delegate before it) says
// where ops go only on stderr, as
//
//	Following operations are not supported by GPU delegate:
//	BATCH_MATMUL: Not supported batched mat mul case: non-constant tensor
//	L2_NORMALIZATION: Operation is not supported.
//	96 operations will run on the GPU, and the remaining 195 operations will run on the CPU.
//
// or "All N operations will run on the GPU" when it takes the whole graph.
var (
	splitRE = regexp.MustCompile(`^(\d+) operations will run on the GPU, and the remaining (\d+) operations? will run on the CPU`)
	allRE   = regexp.MustCompile(`^All (\d+) operations will run on the GPU`)
	opRE    = regexp.MustCompile(`^[A-Z][A-Z0-9_]+: `)
)

// parsePlacement reads the accelerator's lines; ok is false when they say nothing
// about placement (the GPU accelerator did not run).
func parsePlacement(lines []string) (p Placement, ok bool) {
	listing := false // between "Following operations are not supported" and the count
	for _, l := range lines {
		switch m, all := splitRE.FindStringSubmatch(l), allRE.FindStringSubmatch(l); {
		case m != nil:
			p.GPU, _ = strconv.Atoi(m[1])
			p.CPU, _ = strconv.Atoi(m[2])
			ok, listing = true, false
		case all != nil:
			p.GPU, _ = strconv.Atoi(all[1])
			p.CPU, ok, listing = 0, true, false
		case strings.Contains(l, "Following operations are not supported"):
			listing = true
		case listing && opRE.MatchString(l):
			p.Unsupported = append(p.Unsupported, l)
		}
	}
	if !ok {
		p.Unsupported = nil
	}
	return p, ok
}

func elements(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

// statusNames are LiteRtStatus's names (litert/c/litert_common.h); the library
// exports no function that names them.
var statusNames = map[int]string{
	0: "ok", 1: "invalid argument", 2: "memory allocation failure", 3: "runtime failure",
	4: "missing input tensor", 5: "unsupported", 6: "not found", 7: "timeout expired",
	8: "wrong version", 9: "unknown error", 10: "already exists", 100: "cancelled",
	500: "file i/o", 501: "invalid flatbuffer", 502: "dynamic loading", 503: "serialization",
	504: "compilation failed", 1000: "index out of bounds", 1001: "invalid IR type",
	1002: "invalid graph invariant", 1003: "graph modification",
}

func statusName(st int) string {
	if n, ok := statusNames[st]; ok {
		return n
	}
	return fmt.Sprintf("status %d", st)
}

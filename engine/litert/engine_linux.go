//go:build linux && cgo

package litert

/*
#cgo CFLAGS: -I${SRCDIR}/include -O2
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "litert/c/litert_common.h"
#include "litert/c/litert_compiled_model.h"
#include "litert/c/litert_environment.h"
#include "litert/c/litert_model.h"
#include "litert/c/litert_opaque_options.h"
#include "litert/c/litert_options.h"
#include "litert/c/litert_tensor_buffer.h"
#include "litert/c/litert_tensor_buffer_requirements.h"

// Function table filled by dlsym: the library is never linked, so the binary starts
// where no LiteRT library is installed. Each field has the header's own type, so a
// call that does not match the vendored declaration does not compile.
#define ADTR_FN(name) __typeof__(LiteRt##name)* name;
typedef struct {
	void* handle;
	ADTR_FN(CreateEnvironment) ADTR_FN(DestroyEnvironment)
	ADTR_FN(CreateModelFromBuffer) ADTR_FN(DestroyModel)
	ADTR_FN(GetModelSignature) ADTR_FN(GetNumSignatureInputs) ADTR_FN(GetNumSignatureOutputs)
	ADTR_FN(GetSignatureInputTensorByIndex) ADTR_FN(GetSignatureOutputTensorByIndex)
	ADTR_FN(GetSignatureSubgraph) ADTR_FN(GetNumSubgraphOps)
	ADTR_FN(GetRankedTensorType) ADTR_FN(GetQuantizationTypeId) ADTR_FN(GetPerTensorQuantization)
	ADTR_FN(CreateOptions) ADTR_FN(DestroyOptions) ADTR_FN(SetOptionsHardwareAccelerators)
	ADTR_FN(CreateOpaqueOptions) ADTR_FN(DestroyOpaqueOptions) ADTR_FN(AddOpaqueOptions)
	ADTR_FN(CreateCompiledModel) ADTR_FN(DestroyCompiledModel) ADTR_FN(CompiledModelIsFullyAccelerated)
	ADTR_FN(GetCompiledModelInputBufferRequirements) ADTR_FN(GetCompiledModelOutputBufferRequirements)
	ADTR_FN(CreateManagedTensorBufferFromRequirements) ADTR_FN(DestroyTensorBuffer)
	ADTR_FN(LockTensorBuffer) ADTR_FN(UnlockTensorBuffer)
	ADTR_FN(RunCompiledModel)
} adtr_lrt;

static int adtr_lrt_open(const char* path, adtr_lrt* t, char* err, size_t errlen) {
	memset(t, 0, sizeof *t);
	t->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!t->handle) { snprintf(err, errlen, "%s", dlerror()); return -1; }
#define ADTR_SYM(name) \
	if (!(t->name = dlsym(t->handle, "LiteRt" #name))) { snprintf(err, errlen, "symbol LiteRt%s missing", #name); dlclose(t->handle); t->handle = NULL; return -1; }
	ADTR_SYM(CreateEnvironment) ADTR_SYM(DestroyEnvironment)
	ADTR_SYM(CreateModelFromBuffer) ADTR_SYM(DestroyModel)
	ADTR_SYM(GetModelSignature) ADTR_SYM(GetNumSignatureInputs) ADTR_SYM(GetNumSignatureOutputs)
	ADTR_SYM(GetSignatureInputTensorByIndex) ADTR_SYM(GetSignatureOutputTensorByIndex)
	ADTR_SYM(GetSignatureSubgraph) ADTR_SYM(GetNumSubgraphOps)
	ADTR_SYM(GetRankedTensorType) ADTR_SYM(GetQuantizationTypeId) ADTR_SYM(GetPerTensorQuantization)
	ADTR_SYM(CreateOptions) ADTR_SYM(DestroyOptions) ADTR_SYM(SetOptionsHardwareAccelerators)
	ADTR_SYM(CreateOpaqueOptions) ADTR_SYM(DestroyOpaqueOptions) ADTR_SYM(AddOpaqueOptions)
	ADTR_SYM(CreateCompiledModel) ADTR_SYM(DestroyCompiledModel) ADTR_SYM(CompiledModelIsFullyAccelerated)
	ADTR_SYM(GetCompiledModelInputBufferRequirements) ADTR_SYM(GetCompiledModelOutputBufferRequirements)
	ADTR_SYM(CreateManagedTensorBufferFromRequirements) ADTR_SYM(DestroyTensorBuffer)
	ADTR_SYM(LockTensorBuffer) ADTR_SYM(UnlockTensorBuffer)
	ADTR_SYM(RunCompiledModel)
	return 0;
}

typedef struct { int type, rank, dims[8]; float scale; long long zero_point; } adtr_tensor;

// One model: everything here is C memory, freed by adtr_lrt_close. The graph bytes
// are copied in (LiteRT keeps the buffer for the model's life); in and out are the
// frame and map the Go side reads and writes, copied to and from LiteRT's managed
// tensor buffers around each run (GPU buffers are not host memory).
typedef struct {
	adtr_lrt* t;
	LiteRtEnvironment env;
	void* graph;
	LiteRtModel model;
	LiteRtOptions opts;
	LiteRtCompiledModel compiled;
	LiteRtTensorBuffer inb, outb;
	adtr_tensor intensor, outtensor;
	LiteRtRankedTensorType intype, outtype;
	void* in; size_t in_size;
	void* out; size_t out_size;
	int ops;
	bool fully;
	char where[96]; // the call that failed
} adtr_model;

static void adtr_lrt_close(adtr_model* m) {
	if (!m) return;
	adtr_lrt* t = m->t;
	if (m->inb) t->DestroyTensorBuffer(m->inb);
	if (m->outb) t->DestroyTensorBuffer(m->outb);
	if (m->compiled) t->DestroyCompiledModel(m->compiled);
	if (m->opts) t->DestroyOptions(m->opts);
	if (m->model) t->DestroyModel(m->model);
	if (m->env) t->DestroyEnvironment(m->env);
	free(m->graph); free(m->in); free(m->out);
	free(m);
}

#define ADTR_TRY(call) do { LiteRtStatus s_ = (call); if (s_ != kLiteRtStatusOk) { snprintf(m->where, sizeof m->where, "%s", #call); return s_; } } while (0)

static LiteRtStatus adtr_tensor_of(adtr_model* m, LiteRtTensor x, adtr_tensor* o, LiteRtRankedTensorType* rt) {
	adtr_lrt* t = m->t;
	ADTR_TRY(t->GetRankedTensorType(x, rt));
	o->type = rt->element_type;
	o->rank = rt->layout.rank;
	for (int i = 0; i < o->rank && i < 8; i++) o->dims[i] = rt->layout.dimensions[i];
	LiteRtQuantizationTypeId q;
	o->scale = 0; o->zero_point = 0;
	if (t->GetQuantizationTypeId(x, &q) == kLiteRtStatusOk && q == kLiteRtQuantizationPerTensor) {
		LiteRtQuantizationPerTensor pt;
		ADTR_TRY(t->GetPerTensorQuantization(x, &pt));
		o->scale = pt.scale; o->zero_point = pt.zero_point;
	}
	return kLiteRtStatusOk;
}

static void adtr_free_payload(void* p) { free(p); }

static LiteRtStatus adtr_opaque(adtr_model* m, const char* id, const char* toml) {
	adtr_lrt* t = m->t;
	LiteRtOpaqueOptions o;
	char* p = strdup(toml);
	LiteRtStatus s = t->CreateOpaqueOptions(id, p, adtr_free_payload, &o);
	if (s != kLiteRtStatusOk) { free(p); snprintf(m->where, sizeof m->where, "LiteRtCreateOpaqueOptions(%s)", id); return s; }
	s = t->AddOpaqueOptions(m->opts, o);
	if (s != kLiteRtStatusOk) { t->DestroyOpaqueOptions(o); snprintf(m->where, sizeof m->where, "LiteRtAddOpaqueOptions(%s)", id); }
	return s;
}

// adtr_lrt_load: environment and model (no compile yet). libdir may be NULL.
static LiteRtStatus adtr_lrt_load(adtr_model* m, const char* libdir, const void* graph, size_t n) {
	adtr_lrt* t = m->t;
	LiteRtEnvOption eo[1];
	int neo = 0;
	if (libdir) {
		eo[0].tag = kLiteRtEnvOptionTagRuntimeLibraryDir;
		eo[0].value.type = kLiteRtAnyTypeString;
		eo[0].value.str_value = libdir;
		neo = 1;
	}
	ADTR_TRY(t->CreateEnvironment(neo, eo, &m->env));
	if (!(m->graph = malloc(n))) return kLiteRtStatusErrorMemoryAllocationFailure;
	memcpy(m->graph, graph, n);
	ADTR_TRY(t->CreateModelFromBuffer(m->env, m->graph, n, &m->model));
	LiteRtSignature sig;
	ADTR_TRY(t->GetModelSignature(m->model, 0, &sig));
	LiteRtParamIndex nin, nout;
	ADTR_TRY(t->GetNumSignatureInputs(sig, &nin));
	ADTR_TRY(t->GetNumSignatureOutputs(sig, &nout));
	if (nin != 1 || nout != 1) { snprintf(m->where, sizeof m->where, "%zu inputs and %zu outputs, want 1 and 1", nin, nout); return kLiteRtStatusErrorUnsupported; }
	LiteRtTensor x;
	ADTR_TRY(t->GetSignatureInputTensorByIndex(sig, 0, &x));
	LiteRtStatus s = adtr_tensor_of(m, x, &m->intensor, &m->intype);
	if (s) return s;
	ADTR_TRY(t->GetSignatureOutputTensorByIndex(sig, 0, &x));
	if ((s = adtr_tensor_of(m, x, &m->outtensor, &m->outtype))) return s;
	LiteRtSubgraph sg;
	LiteRtParamIndex ops;
	ADTR_TRY(t->GetSignatureSubgraph(sig, &sg));
	ADTR_TRY(t->GetNumSubgraphOps(sg, &ops));
	m->ops = (int)ops;
	return kLiteRtStatusOk;
}

// adtr_lrt_compile: options for the accelerator set, then the compiled model and its
// buffers. gpu_toml is the GPU accelerator's options ("" for none); cpu_toml XNNPACK's.
static LiteRtStatus adtr_lrt_compile(adtr_model* m, int accel, const char* gpu_toml, const char* cpu_toml) {
	adtr_lrt* t = m->t;
	if (m->inb) { t->DestroyTensorBuffer(m->inb); m->inb = NULL; }
	if (m->outb) { t->DestroyTensorBuffer(m->outb); m->outb = NULL; }
	if (m->compiled) { t->DestroyCompiledModel(m->compiled); m->compiled = NULL; }
	if (m->opts) { t->DestroyOptions(m->opts); m->opts = NULL; }
	ADTR_TRY(t->CreateOptions(&m->opts));
	ADTR_TRY(t->SetOptionsHardwareAccelerators(m->opts, (LiteRtHwAcceleratorSet)accel));
	LiteRtStatus s;
	if (gpu_toml[0] && (s = adtr_opaque(m, "gpu_options", gpu_toml))) return s;
	if (cpu_toml[0] && (s = adtr_opaque(m, "xnnpack", cpu_toml))) return s;
	ADTR_TRY(t->CreateCompiledModel(m->env, m->model, m->opts, &m->compiled));
	m->fully = false;
	t->CompiledModelIsFullyAccelerated(m->compiled, &m->fully);
	LiteRtTensorBufferRequirements req;
	ADTR_TRY(t->GetCompiledModelInputBufferRequirements(m->compiled, 0, 0, &req));
	ADTR_TRY(t->CreateManagedTensorBufferFromRequirements(m->env, &m->intype, req, &m->inb));
	ADTR_TRY(t->GetCompiledModelOutputBufferRequirements(m->compiled, 0, 0, &req));
	ADTR_TRY(t->CreateManagedTensorBufferFromRequirements(m->env, &m->outtype, req, &m->outb));
	return kLiteRtStatusOk;
}

// adtr_lrt_run copies the frame in, runs the graph and copies the map out.
static LiteRtStatus adtr_lrt_run(adtr_model* m) {
	adtr_lrt* t = m->t;
	void* p;
	ADTR_TRY(t->LockTensorBuffer(m->inb, &p, kLiteRtTensorBufferLockModeWrite));
	memcpy(p, m->in, m->in_size);
	ADTR_TRY(t->UnlockTensorBuffer(m->inb));
	ADTR_TRY(t->RunCompiledModel(m->compiled, 0, 1, &m->inb, 1, &m->outb));
	ADTR_TRY(t->LockTensorBuffer(m->outb, &p, kLiteRtTensorBufferLockModeRead));
	memcpy(m->out, p, m->out_size);
	ADTR_TRY(t->UnlockTensorBuffer(m->outb));
	return kLiteRtStatusOk;
}

static adtr_model* adtr_model_new(adtr_lrt* t) {
	adtr_model* m = calloc(1, sizeof *m);
	if (m) m->t = t;
	return m;
}
static int adtr_alloc_io(adtr_model* m, size_t in, size_t out) {
	m->in = calloc(1, in); m->out = calloc(1, out);
	m->in_size = in; m->out_size = out;
	return m->in && m->out ? 0 : -1;
}
*/
import "C"

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"

	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/engine"
	"github.com/adtrd/adtrd/internal/cstderr"
	"github.com/adtrd/adtrd/model"
)

// ErrLibrary: the LiteRT library cannot be loaded, or is not the one this process
// loaded first.
var ErrLibrary = errors.New("litert library")

// ErrAccelerator: the GPU accelerator cannot compile the graph (no Vulkan device, its
// library missing, an op it fails on) and model.litert.on_failure is refuse.
var ErrAccelerator = errors.New("litert gpu accelerator")

// lib is LiteRT's C API: loaded from one library on first use and kept for the
// process's life (its GPU accelerator keeps threads and Vulkan state that unloading
// would pull from under them); a config that names another library is refused until
// a restart.
var lib struct {
	mu   sync.Mutex
	path string
	t    *C.adtr_lrt // C memory
}

func openLibrary(path string) (*C.adtr_lrt, error) {
	lib.mu.Lock()
	defer lib.mu.Unlock()
	switch {
	case lib.path == path:
		return lib.t, nil
	case lib.path != "":
		return nil, fmt.Errorf("%w: model.litert.library %s: this process loaded %s first; restart adtrd to change it", ErrLibrary, path, lib.path)
	}
	t := (*C.adtr_lrt)(C.calloc(1, C.sizeof_adtr_lrt))
	if t == nil {
		return nil, fmt.Errorf("%w: out of memory", ErrLibrary)
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var msg [256]C.char
	if C.adtr_lrt_open(cpath, t, &msg[0], C.size_t(len(msg))) != 0 {
		C.free(unsafe.Pointer(t))
		return nil, fmt.Errorf("%w: %s: %s (scripts/fetch-litert.sh installs it; or set model.litert.library)", ErrLibrary, path, C.GoString(&msg[0]))
	}
	lib.path, lib.t = path, t
	return t, nil
}

// Engine is an engine.Engine over a LiteRT compiled model.
type Engine struct {
	m               *C.adtr_model
	in              []byte // C memory: the frame
	out             []int8 // C memory: the map
	inInfo, outInfo model.TensorInfo
	placement       Placement
	accelerator     config.Accelerator // where it runs: gpu, or cpu after a fallback
	log             *slog.Logger
}

// Placement says where the compiled graph's ops run (engine.Placer).
func (e *Engine) Placement() string { return e.accelerator.String() + ": " + e.placement.String() }

// Opener compiles the bundle's graph with LiteRT on the configured accelerator (an
// engine.Opener). A GPU accelerator that cannot compile it falls back to the CPU with
// a warning, or refuses (ErrAccelerator), as model.litert.on_failure says.
func Opener(b *model.Bundle, c config.Model, log *slog.Logger) (_ engine.Engine, err error) {
	o := c.LiteRT
	path := library(o.Library)
	t, err := openLibrary(path)
	if err != nil {
		return nil, err
	}
	e := &Engine{m: C.adtr_model_new(t), accelerator: o.Accelerator, log: log}
	if e.m == nil {
		return nil, errors.New("litert: out of memory")
	}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	var libdir *C.char
	if strings.Contains(path, "/") {
		libdir = C.CString(filepath.Dir(path)) // where the GPU accelerator library is looked for
		defer C.free(unsafe.Pointer(libdir))
	}
	graph := C.CBytes(b.Graph)
	defer C.free(graph)
	var st C.LiteRtStatus
	printed := capture(func() { st = C.adtr_lrt_load(e.m, libdir, graph, C.size_t(len(b.Graph))) })
	if st != C.kLiteRtStatusOk {
		return nil, fmt.Errorf("%w: %s: LiteRT cannot read it: %s", model.ErrModel, c.Path, e.status(st, printed))
	}
	e.inInfo, e.outInfo = info(e.m.intensor), info(e.m.outtensor)
	if e.inInfo.Type != "uint8" || e.outInfo.Type != "int8" {
		return nil, fmt.Errorf("%w: %s: input %s, output %s: this engine runs the toolkit's int8 graph (uint8 frame, int8 map)", model.ErrMetadata, c.Path, e.inInfo.Type, e.outInfo.Type)
	}
	if C.adtr_alloc_io(e.m, C.size_t(elements(e.inInfo.Shape)), C.size_t(elements(e.outInfo.Shape))) != 0 {
		return nil, errors.New("litert: out of memory")
	}
	e.in = unsafe.Slice((*byte)(e.m.in), e.m.in_size)
	e.out = unsafe.Slice((*int8)(e.m.out), e.m.out_size)
	cpu := C.CString(fmt.Sprintf("num_threads = %d\n", c.Threads))
	defer C.free(unsafe.Pointer(cpu))
	none := C.CString("")
	defer C.free(unsafe.Pointer(none))
	cacheFile := "" // the GPU's program cache for this graph, when model.litert.cache is usable
	if o.Accelerator == config.AcceleratorGPU {
		opts := gpuOptions(o.Precision)
		if o.Cache != "" {
			if err := writableDir(o.Cache); err != nil {
				log.Warn("litert: model.litert.cache unusable: the GPU programs are compiled at every start", "err", err)
			} else {
				cacheFile = filepath.Join(o.Cache, b.SHA256[:16]+cacheSuffix)
				if why := checkCache(cacheFile); why != "" {
					log.Warn("litert: cached GPU programs discarded ("+why+"): compiling afresh", "file", cacheFile)
				}
				opts += fmt.Sprintf("serialization_dir = %q\nmodel_cache_key = %q\nserialize_program_cache = true\n", o.Cache, b.SHA256[:16])
			}
		}
		gpu := C.CString(opts)
		defer C.free(unsafe.Pointer(gpu))
		// LiteRT looks for its accelerator beside itself and, not finding it, compiles
		// for the CPU without a word: name the file instead of guessing at Vulkan.
		accLib := filepath.Join(filepath.Dir(path), AcceleratorName)
		if fi, statErr := os.Stat(accLib); libdir != nil && (statErr != nil || !fi.Mode().IsRegular()) {
			err = fmt.Errorf("its library %s is missing", accLib)
		} else {
			printed = capture(func() {
				st = C.adtr_lrt_compile(e.m, C.kLiteRtHwAcceleratorGpu|C.kLiteRtHwAcceleratorCpu, gpu, cpu)
			})
		}
		logPrinted(log, printed)
		p, ok := parsePlacement(printed)
		switch {
		case err != nil:
		case st == C.kLiteRtStatusOk && ok:
			e.placement = p
		case st == C.kLiteRtStatusOk && bool(e.m.fully):
			e.placement = Placement{GPU: int(e.m.ops)}
		case st == C.kLiteRtStatusOk:
			// Compiled, but the accelerator said nothing: it did not take the graph.
			err = fmt.Errorf("it took no ops (is %s a LiteRT GPU accelerator, and is there a Vulkan device?)", accLib)
		default:
			err = errors.New(e.status(st, printed))
		}
		if err != nil {
			if o.OnFailure == config.OnFailureRefuse {
				return nil, fmt.Errorf("%w: %s: %v, and model.litert.on_failure is refuse", ErrAccelerator, c.Path, err)
			}
			log.Warn(fmt.Sprintf("litert: the GPU accelerator cannot run %s (%v): it runs on the CPU (model.litert.on_failure: refuse stops instead)", c.Path, err))
			e.accelerator, err = config.AcceleratorCPU, nil
		}
	}
	if e.accelerator == config.AcceleratorCPU {
		printed = capture(func() { st = C.adtr_lrt_compile(e.m, C.kLiteRtHwAcceleratorCpu, none, cpu) })
		logPrinted(log, printed)
		if st != C.kLiteRtStatusOk {
			return nil, fmt.Errorf("%w: %s: LiteRT cannot compile it for the CPU: %s", model.ErrModel, c.Path, e.status(st, printed))
		}
		e.placement = Placement{CPU: int(e.m.ops)}
	}
	// The first run initialises what compiling left for later (the GPU accelerator
	// looks for OpenCL, uploads its weights) and says so on stderr: run it here,
	// captured, so those lines reach the logger and not the journal bare.
	printed = capture(func() { st = C.adtr_lrt_run(e.m) })
	logPrinted(log, printed)
	if st != C.kLiteRtStatusOk {
		return nil, fmt.Errorf("%w: %s: LiteRT cannot run it: %s", model.ErrModel, c.Path, e.status(st, printed))
	}
	if e.accelerator == config.AcceleratorGPU && cacheFile != "" {
		if err := sealCache(cacheFile); err != nil {
			log.Warn("litert: the GPU program cache's checksum not written: it will be compiled afresh next time", "file", cacheFile, "err", err)
		}
	}
	if e.accelerator == config.AcceleratorGPU && e.placement.CPU > 0 {
		// Said at Warn so that `adtrd check` shows it too: the GPU's speed is not the
		// graph's, and the maps are computed partly in float, partly in int8.
		log.Warn("litert: the GPU accelerator takes part of the graph: "+e.placement.String(), "model", c.Path)
	}
	log.Info("model loaded", "model", c.Path, "version", b.Meta.ModelVersion, "sha256", b.SHA256[:12], "engine", Name,
		"accelerator", e.accelerator.String(), "placement", e.placement.String(), "threads", c.Threads)
	return e, nil
}

// capture runs fn with what LiteRT prints caught (cstderr.Capture), C's stdio
// buffers flushed before the capture ends: stdout into a pipe is fully buffered.
func capture(fn func()) []string {
	return cstderr.Capture(func() {
		fn()
		C.fflush(nil)
	})
}

// cacheSuffix is how LiteRT's GPU accelerator names its program cache after the
// model_cache_key (observed: <key>_mldrift_program_cache.bin).
const cacheSuffix = "_mldrift_program_cache.bin"

// checkCache removes a program cache adtrd did not seal after a good load, or that
// changed since (a disk fault, a power cut mid-write, another writer): LiteRT reads a
// corrupted cache without complaint and the GPU then computes a constant map (seen:
// every frame scored 18.6049). It says why it removed one, or "".
func checkCache(file string) string {
	data, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		os.Remove(file + ".sha256")
		return ""
	}
	why := ""
	if err != nil {
		why = err.Error()
	} else if want, err := os.ReadFile(file + ".sha256"); err != nil {
		why = "no checksum recorded after a good load"
	} else if sum := sha256.Sum256(data); strings.TrimSpace(string(want)) != hex.EncodeToString(sum[:]) {
		why = "it changed since its last good load"
	}
	if why != "" {
		os.Remove(file)
		os.Remove(file + ".sha256")
	}
	return why
}

// sealCache records the program cache's checksum once a load from it (or one that
// wrote it) compiled and ran.
func sealCache(file string) error {
	data, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil // the accelerator wrote none
	} else if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	tmp := file + ".sha256.tmp"
	if err := os.WriteFile(tmp, []byte(hex.EncodeToString(sum[:])+"\n"), 0o640); err != nil {
		return err
	}
	return os.Rename(tmp, file+".sha256")
}

// writableDir makes dir if needed and checks that a file can be created in it: the
// accelerator would otherwise fail its compile on an unwritable cache, and a cache
// problem must not cost the GPU.
func writableDir(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".adtrd-probe-*")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

// gpuOptions is the GPU accelerator's options payload (LiteRT's
// litert/c/options/litert_gpu_options.cc writes "precision = N"; N is
// LiteRtDelegatePrecision: 1 fp16, 2 fp32).
func gpuOptions(p config.Precision) string {
	if p == config.PrecisionFP16 {
		return fmt.Sprintf("precision = %d\n", C.kLiteRtDelegatePrecisionFp16)
	}
	return fmt.Sprintf("precision = %d\n", C.kLiteRtDelegatePrecisionFp32)
}

func (e *Engine) Input() []byte         { return e.in }
func (e *Engine) Output() engine.Output { return engine.Output{Int8: e.out} }

// Tensors are the compiled model's, as checked against the metadata at open.
func (e *Engine) Tensors() (in, out model.TensorInfo) { return e.inInfo, e.outInfo }

// Invoke runs the graph on Input's frame: two copies of C memory around the run, no
// allocation.
func (e *Engine) Invoke() error {
	if st := C.adtr_lrt_run(e.m); st != C.kLiteRtStatusOk {
		return fmt.Errorf("litert: %s", e.status(st, nil))
	}
	return nil
}

// Close frees the compiled model, its buffers and environment; safe twice and after a
// half-done Opener. The process's library stays loaded.
func (e *Engine) Close() error {
	if e.m != nil {
		logPrinted(e.log, capture(func() { C.adtr_lrt_close(e.m) }))
		e.m = nil
	}
	e.in, e.out = nil, nil
	return nil
}

// status is a failed call's one line: the call, LiteRT's status name, and the last
// error line LiteRT printed.
func (e *Engine) status(st C.LiteRtStatus, printed []string) string {
	where := C.GoString(&e.m.where[0])
	if call, ok := strings.CutPrefix(where, "t->"); ok { // "t->RunCompiledModel(m->compiled, ...)"
		where, _, _ = strings.Cut(call, "(")
		where = "LiteRt" + where
	}
	s := fmt.Sprintf("%s: %s", where, statusName(int(st)))
	for i := len(printed) - 1; i >= 0; i-- {
		if l := printed[i]; strings.Contains(l, "ERROR") || strings.HasPrefix(l, "E0") {
			return s + " (" + l + ")"
		}
	}
	return s
}

func info(t C.adtr_tensor) model.TensorInfo {
	typ := "unsupported"
	switch t._type {
	case C.kLiteRtElementTypeUInt8:
		typ = "uint8"
	case C.kLiteRtElementTypeInt8:
		typ = "int8"
	case C.kLiteRtElementTypeFloat32:
		typ = "float32"
	}
	shape := make([]int, int(t.rank))
	for i := range shape {
		shape[i] = int(t.dims[i])
	}
	return model.TensorInfo{Type: typ, Shape: shape, Scale: float64(t.scale), ZeroPoint: int32(t.zero_point)}
}

// logPrinted logs LiteRT's own lines at debug level: it prints its progress (which
// accelerators it found, the Vulkan adapter it chose) as INFO; what matters of it
// reaches the caller as the placement or an error.
func logPrinted(log *slog.Logger, lines []string) {
	for _, l := range lines {
		log.Debug("litert: " + l)
	}
}

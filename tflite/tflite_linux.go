//go:build linux && cgo

package tflite

/*
#cgo CFLAGS: -I${SRCDIR}/include -O2
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tensorflow/lite/c/c_api.h"

// Function table filled by dlsym: the library is never linked, so the binary starts
// (and its tests that need no inference run) where no TFLite library is installed.
typedef struct {
	void* handle;
	const char* (*Version)(void);
	TfLiteModel* (*ModelCreateFromFile)(const char*);
	TfLiteModel* (*ModelCreate)(const void*, size_t);
	void (*ModelDelete)(TfLiteModel*);
	TfLiteInterpreterOptions* (*OptionsCreate)(void);
	void (*OptionsDelete)(TfLiteInterpreterOptions*);
	void (*OptionsSetNumThreads)(TfLiteInterpreterOptions*, int32_t);
	void (*OptionsAddDelegate)(TfLiteInterpreterOptions*, TfLiteDelegate*);
	void (*OptionsSetErrorReporter)(TfLiteInterpreterOptions*, void (*)(void*, const char*, va_list), void*);
	TfLiteInterpreter* (*InterpreterCreate)(const TfLiteModel*, const TfLiteInterpreterOptions*);
	void (*InterpreterDelete)(TfLiteInterpreter*);
	int32_t (*InputCount)(const TfLiteInterpreter*);
	TfLiteTensor* (*Input)(const TfLiteInterpreter*, int32_t);
	int32_t (*OutputCount)(const TfLiteInterpreter*);
	const TfLiteTensor* (*Output)(const TfLiteInterpreter*, int32_t);
	TfLiteStatus (*AllocateTensors)(TfLiteInterpreter*);
	TfLiteStatus (*Invoke)(TfLiteInterpreter*);
	TfLiteType (*TensorType)(const TfLiteTensor*);
	int32_t (*TensorNumDims)(const TfLiteTensor*);
	int32_t (*TensorDim)(const TfLiteTensor*, int32_t);
	size_t (*TensorByteSize)(const TfLiteTensor*);
	void* (*TensorData)(const TfLiteTensor*);
	const char* (*TensorName)(const TfLiteTensor*);
	TfLiteQuantizationParams (*TensorQuant)(const TfLiteTensor*);
	// Optional: XNNPACK lives in the same library in most builds.
	TfLiteDelegate* (*XNNPackCreate)(const void*);
	void (*XNNPackDelete)(TfLiteDelegate*);
} adtr_tfl;

#define ADTR_SYM(field, name, required) \
	t->field = dlsym(t->handle, name); \
	if (required && !t->field) { snprintf(err, errlen, "symbol %s missing", name); dlclose(t->handle); t->handle = NULL; return -1; }

static int adtr_tfl_open(const char* path, adtr_tfl* t, char* err, size_t errlen) {
	memset(t, 0, sizeof *t);
	t->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!t->handle) { snprintf(err, errlen, "%s", dlerror()); return -1; }
	ADTR_SYM(Version, "TfLiteVersion", 1)
	ADTR_SYM(ModelCreateFromFile, "TfLiteModelCreateFromFile", 1)
	ADTR_SYM(ModelCreate, "TfLiteModelCreate", 1)
	ADTR_SYM(ModelDelete, "TfLiteModelDelete", 1)
	ADTR_SYM(OptionsCreate, "TfLiteInterpreterOptionsCreate", 1)
	ADTR_SYM(OptionsDelete, "TfLiteInterpreterOptionsDelete", 1)
	ADTR_SYM(OptionsSetNumThreads, "TfLiteInterpreterOptionsSetNumThreads", 1)
	ADTR_SYM(OptionsAddDelegate, "TfLiteInterpreterOptionsAddDelegate", 1)
	ADTR_SYM(OptionsSetErrorReporter, "TfLiteInterpreterOptionsSetErrorReporter", 1)
	ADTR_SYM(InterpreterCreate, "TfLiteInterpreterCreate", 1)
	ADTR_SYM(InterpreterDelete, "TfLiteInterpreterDelete", 1)
	ADTR_SYM(InputCount, "TfLiteInterpreterGetInputTensorCount", 1)
	ADTR_SYM(Input, "TfLiteInterpreterGetInputTensor", 1)
	ADTR_SYM(OutputCount, "TfLiteInterpreterGetOutputTensorCount", 1)
	ADTR_SYM(Output, "TfLiteInterpreterGetOutputTensor", 1)
	ADTR_SYM(AllocateTensors, "TfLiteInterpreterAllocateTensors", 1)
	ADTR_SYM(Invoke, "TfLiteInterpreterInvoke", 1)
	ADTR_SYM(TensorType, "TfLiteTensorType", 1)
	ADTR_SYM(TensorNumDims, "TfLiteTensorNumDims", 1)
	ADTR_SYM(TensorDim, "TfLiteTensorDim", 1)
	ADTR_SYM(TensorByteSize, "TfLiteTensorByteSize", 1)
	ADTR_SYM(TensorData, "TfLiteTensorData", 1)
	ADTR_SYM(TensorName, "TfLiteTensorName", 1)
	ADTR_SYM(TensorQuant, "TfLiteTensorQuantizationParams", 1)
	ADTR_SYM(XNNPackCreate, "TfLiteXNNPackDelegateCreate", 0)
	ADTR_SYM(XNNPackDelete, "TfLiteXNNPackDelegateDelete", 0)
	return 0;
}

static void adtr_tfl_close(adtr_tfl* t) { if (t->handle) { dlclose(t->handle); t->handle = NULL; } }

// Error reporter: TFLite's messages are printf formats; they are formatted into a
// C buffer owned by the interpreter, and Go reads it after a failing call.
typedef struct { char buf[4096]; size_t len; } adtr_errbuf;

static void adtr_report(void* user, const char* fmt, va_list args) {
	adtr_errbuf* e = (adtr_errbuf*)user;
	size_t room = sizeof e->buf - e->len;
	if (room < 4) return;
	if (e->len) { e->buf[e->len++] = ';'; e->buf[e->len++] = ' '; room -= 2; }
	int n = vsnprintf(e->buf + e->len, room, fmt, args);
	if (n > 0) e->len += ((size_t)n < room) ? (size_t)n : room - 1;
	// One line per message: the Go error is a single line.
	for (size_t i = 0; i < e->len; i++) if (e->buf[i] == '\n') e->buf[i] = ' ';
}

static const char* adtr_version(adtr_tfl* t) { return t->Version(); }
static TfLiteModel* adtr_model(adtr_tfl* t, const char* p) { return t->ModelCreateFromFile(p); }
static TfLiteModel* adtr_model_buf(adtr_tfl* t, const void* b, size_t n) { return t->ModelCreate(b, n); }
static void adtr_model_delete(adtr_tfl* t, TfLiteModel* m) { t->ModelDelete(m); }
static TfLiteInterpreterOptions* adtr_options(adtr_tfl* t, int threads, adtr_errbuf* e) {
	TfLiteInterpreterOptions* o = t->OptionsCreate();
	if (!o) return NULL;
	t->OptionsSetNumThreads(o, threads);
	t->OptionsSetErrorReporter(o, adtr_report, e);
	return o;
}
static void adtr_options_delete(adtr_tfl* t, TfLiteInterpreterOptions* o) { t->OptionsDelete(o); }
static void adtr_add_delegate(adtr_tfl* t, TfLiteInterpreterOptions* o, TfLiteDelegate* d) { t->OptionsAddDelegate(o, d); }
static TfLiteInterpreter* adtr_interp(adtr_tfl* t, TfLiteModel* m, TfLiteInterpreterOptions* o) { return t->InterpreterCreate(m, o); }
static void adtr_interp_delete(adtr_tfl* t, TfLiteInterpreter* i) { t->InterpreterDelete(i); }
static int adtr_allocate(adtr_tfl* t, TfLiteInterpreter* i) { return t->AllocateTensors(i); }
static int adtr_invoke(adtr_tfl* t, TfLiteInterpreter* i) { return t->Invoke(i); }
static int adtr_input_count(adtr_tfl* t, TfLiteInterpreter* i) { return t->InputCount(i); }
static int adtr_output_count(adtr_tfl* t, TfLiteInterpreter* i) { return t->OutputCount(i); }
static const TfLiteTensor* adtr_input(adtr_tfl* t, TfLiteInterpreter* i, int k) { return t->Input(i, k); }
static const TfLiteTensor* adtr_output(adtr_tfl* t, TfLiteInterpreter* i, int k) { return t->Output(i, k); }
static int adtr_tensor_type(adtr_tfl* t, const TfLiteTensor* x) { return t->TensorType(x); }
static int adtr_tensor_ndims(adtr_tfl* t, const TfLiteTensor* x) { return t->TensorNumDims(x); }
static int adtr_tensor_dim(adtr_tfl* t, const TfLiteTensor* x, int k) { return t->TensorDim(x, k); }
static size_t adtr_tensor_bytes(adtr_tfl* t, const TfLiteTensor* x) { return t->TensorByteSize(x); }
static void* adtr_tensor_data(adtr_tfl* t, const TfLiteTensor* x) { return t->TensorData(x); }
static const char* adtr_tensor_name(adtr_tfl* t, const TfLiteTensor* x) { return t->TensorName(x); }
static TfLiteQuantizationParams adtr_tensor_quant(adtr_tfl* t, const TfLiteTensor* x) { return t->TensorQuant(x); }

// XNNPACK: options are passed by pointer in a zeroed buffer larger than any release's
// struct, so no layout is assumed beyond its first two fields (2.9 and later):
// int32 num_threads, uint32 flags. TFLITE_XNNPACK_DELEGATE_FLAG_QS8 (1) makes it take
// the int8 FULLY_CONNECTED and CONV_2D. On graphs the toolkit exports (power-of-two
// scales, no accumulator on a half: training/adtr/exact.py) its results then agree bit
// for bit between the amd64 and arm64 libraries; TFLite's own amd64 kernels do not.
static TfLiteDelegate* adtr_xnnpack(adtr_tfl* t, int threads) {
	if (!t->XNNPackCreate) return NULL;
	int32_t opts[32];
	memset(opts, 0, sizeof opts);
	opts[0] = threads > 1 ? threads : 0;
	opts[1] = 1;
	return t->XNNPackCreate(opts);
}
static void adtr_xnnpack_delete(adtr_tfl* t, TfLiteDelegate* d) { if (t->XNNPackDelete) t->XNNPackDelete(d); }

// GPU delegate V2 options as in TFLite 2.9's delegates/gpu/delegate.h.
typedef struct {
	int32_t is_precision_loss_allowed;
	int32_t inference_preference;
	int32_t inference_priority1;
	int32_t inference_priority2;
	int32_t inference_priority3;
	int64_t experimental_flags;
	int32_t max_delegated_partitions;
	const char* serialization_dir;
	const char* model_token;
} adtr_gpu_options;

typedef struct {
	void* handle;
	TfLiteDelegate* (*Create)(const adtr_gpu_options*);
	void (*Delete)(TfLiteDelegate*);
	TfLiteDelegate* delegate;
} adtr_gpu;

static int adtr_gpu_open(const char* path, adtr_gpu* g, const adtr_gpu_options* o, char* err, size_t errlen) {
	memset(g, 0, sizeof *g);
	g->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!g->handle) { snprintf(err, errlen, "%s", dlerror()); return -1; }
	g->Create = dlsym(g->handle, "TfLiteGpuDelegateV2Create");
	g->Delete = dlsym(g->handle, "TfLiteGpuDelegateV2Delete");
	if (!g->Create || !g->Delete) { snprintf(err, errlen, "%s: TfLiteGpuDelegateV2Create/Delete missing", path); dlclose(g->handle); g->handle = NULL; return -1; }
	g->delegate = g->Create(o);
	if (!g->delegate) { snprintf(err, errlen, "%s: TfLiteGpuDelegateV2Create returned NULL", path); dlclose(g->handle); g->handle = NULL; return -1; }
	return 0;
}
static void adtr_gpu_close(adtr_gpu* g) {
	if (g->delegate) { g->Delete(g->delegate); g->delegate = NULL; }
	if (g->handle) { dlclose(g->handle); g->handle = NULL; }
}

// External delegate: libexternal_delegate_obj.so loads the plugin and passes options.
// The options struct mirrors external_delegate.h, whose header only compiles as C++.
#define ADTR_EXT_MAX 256
typedef struct adtr_ext_options {
	const char* lib_path;
	int count;
	const char* keys[ADTR_EXT_MAX];
	const char* values[ADTR_EXT_MAX];
	TfLiteStatus (*insert)(struct adtr_ext_options*, const char*, const char*);
} adtr_ext_options;

typedef struct {
	void* handle;
	TfLiteDelegate* (*Create)(const adtr_ext_options*);
	void (*Delete)(TfLiteDelegate*);
	TfLiteDelegate* delegate;
} adtr_ext;

static int adtr_ext_open(const char* loader, const char* plugin, char** keys, char** values, int n, adtr_ext* x, char* err, size_t errlen) {
	memset(x, 0, sizeof *x);
	if (n > ADTR_EXT_MAX) { snprintf(err, errlen, "too many options (%d, at most %d)", n, ADTR_EXT_MAX); return -1; }
	x->handle = dlopen(loader, RTLD_NOW | RTLD_LOCAL);
	if (!x->handle) { snprintf(err, errlen, "%s", dlerror()); return -1; }
	x->Create = dlsym(x->handle, "TfLiteExternalDelegateCreate");
	x->Delete = dlsym(x->handle, "TfLiteExternalDelegateDelete");
	if (!x->Create || !x->Delete) { snprintf(err, errlen, "%s: external delegate symbols missing", loader); dlclose(x->handle); x->handle = NULL; return -1; }
	adtr_ext_options o;
	memset(&o, 0, sizeof o);
	o.lib_path = plugin;
	o.count = n;
	for (int i = 0; i < n; i++) { o.keys[i] = keys[i]; o.values[i] = values[i]; }
	x->delegate = x->Create(&o);
	if (!x->delegate) { snprintf(err, errlen, "%s: plugin did not create a delegate", plugin); dlclose(x->handle); x->handle = NULL; return -1; }
	return 0;
}
static void adtr_ext_close(adtr_ext* x) {
	if (x->delegate) { x->Delete(x->delegate); x->delegate = NULL; }
	if (x->handle) { dlclose(x->handle); x->handle = NULL; }
}
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"unsafe"

	"github.com/adtrd/adtrd/internal/cstderr"
)

// Library is an opened libtensorflowlite_c.so.
type Library struct {
	mu      sync.Mutex
	t       *C.adtr_tfl // C-allocated: interpreters keep using it
	path    string
	version string
}

// Open loads the TFLite C library from path, or searches LibrarySearch() when empty.
func Open(path string) (*Library, error) {
	candidates := []string{path}
	if path == "" {
		candidates = LibrarySearch()
	}
	var errs []string
	for _, p := range candidates {
		if strings.Contains(p, "/") {
			if _, err := os.Stat(p); err != nil {
				errs = append(errs, fmt.Sprintf("%s: not found", p))
				continue
			}
		}
		l, err := openOne(p)
		if err == nil {
			return l, nil
		}
		errs = append(errs, err.Error())
	}
	return nil, fmt.Errorf("%w: cannot load %s (%s)", ErrLibrary, LibraryName, strings.Join(errs, "; "))
}

func openOne(path string) (*Library, error) {
	t := (*C.adtr_tfl)(C.calloc(1, C.size_t(unsafe.Sizeof(C.adtr_tfl{}))))
	var errbuf [512]C.char
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	if C.adtr_tfl_open(cpath, t, &errbuf[0], C.size_t(len(errbuf))) != 0 {
		C.free(unsafe.Pointer(t))
		return nil, errors.New(C.GoString(&errbuf[0]))
	}
	return &Library{t: t, path: path, version: C.GoString(C.adtr_version(t))}, nil
}

// Version is TfLiteVersion(), e.g. "2.9.0".
func (l *Library) Version() string { return l.version }

// Path is where the library was loaded from.
func (l *Library) Path() string { return l.path }

// Close unloads the library; interpreters made from it must be closed first.
func (l *Library) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.t == nil {
		return nil
	}
	C.adtr_tfl_close(l.t)
	C.free(unsafe.Pointer(l.t))
	l.t = nil
	return nil
}

// Interpreter runs one model. It is not safe for concurrent Invoke.
type Interpreter struct {
	lib      *Library
	model    *C.TfLiteModel
	buf      unsafe.Pointer // C copy of the model's bytes (from-bytes models); outlives model
	options  *C.TfLiteInterpreterOptions
	interp   *C.TfLiteInterpreter
	errs     *C.adtr_errbuf
	xnnpack  *C.TfLiteDelegate
	gpu      *C.adtr_gpu
	ext      []*C.adtr_ext
	inputs   []Tensor
	outputs  []Tensor
	warnings []Warning
	printed  []string // TFLite's own stderr lines while starting, not yet in an error
}

// Tensor is a view of an interpreter's tensor. Data points into C-owned memory that
// stays valid until the interpreter is closed.
type Tensor struct {
	Name  string
	Type  TensorType
	Shape []int
	Quant Quant
	data  unsafe.Pointer
	size  int
}

// Bytes is the tensor's C-owned buffer; writing to an input before Invoke is how
// frames reach the model without a copy or a Go pointer handed to C.
func (t *Tensor) Bytes() []byte { return unsafe.Slice((*byte)(t.data), t.size) }

// NewInterpreter loads a model file and prepares an interpreter with opts.
func (l *Library) NewInterpreter(modelPath string, opts Options) (*Interpreter, error) {
	if _, err := os.Stat(modelPath); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrModel, modelPath, errors.Unwrap(err))
	}
	return l.newInterpreter(modelPath, nil, opts)
}

// NewInterpreterFromBytes prepares an interpreter for the model in data (named name
// in errors). The bytes are copied into C memory that the interpreter owns, so the
// model checked is the model run even if its file changes meanwhile.
func (l *Library) NewInterpreterFromBytes(name string, data []byte, opts Options) (*Interpreter, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: %s: empty", ErrModel, name)
	}
	return l.newInterpreter(name, data, opts)
}

func (l *Library) newInterpreter(modelPath string, data []byte, opts Options) (*Interpreter, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.t == nil {
		return nil, ErrClosed
	}
	it := &Interpreter{lib: l}
	it.errs = (*C.adtr_errbuf)(C.calloc(1, C.size_t(unsafe.Sizeof(C.adtr_errbuf{}))))
	err := it.build(modelPath, data, opts)
	if err != nil && opts.GPU != nil && opts.GPU.FallbackToCPU && errors.Is(err, ErrDelegate) {
		it.close()
		it = &Interpreter{lib: l, errs: (*C.adtr_errbuf)(C.calloc(1, C.size_t(unsafe.Sizeof(C.adtr_errbuf{}))))}
		cpu := opts
		cpu.GPU = nil
		cpu.XNNPACK = true // the CPU path whose int8 results match the toolkit's and arm64's
		if err2 := it.build(modelPath, data, cpu); err2 != nil {
			it.close()
			return nil, err2
		}
		it.warnings = append(it.warnings, Warning(fmt.Sprintf("GPU delegate failed, running on the CPU (XNNPACK): %v", err)))
		return it, nil
	}
	if err != nil {
		it.close()
		return nil, err
	}
	return it, nil
}

func (it *Interpreter) reported() string {
	s := strings.TrimSpace(C.GoStringN(&it.errs.buf[0], C.int(it.errs.len)))
	it.errs.len = 0
	return s
}

// call runs a C call that may print on stderr and keeps what it printed.
func (it *Interpreter) call(fn func()) { it.printed = append(it.printed, cstderr.Capture(fn)...) }

// said is everything TFLite said about a failure: its error reporter's messages and
// the lines it printed, which it then no longer holds.
func (it *Interpreter) said() string {
	parts := []string{}
	if s := it.reported(); s != "" {
		parts = append(parts, s)
	}
	for _, l := range it.printed {
		parts = append(parts, strings.TrimPrefix(strings.TrimPrefix(l, "ERROR: "), "WARNING: "))
	}
	it.printed = nil
	return orNone(strings.Join(parts, "; "))
}

func (it *Interpreter) build(modelPath string, data []byte, opts Options) error {
	t := it.lib.t
	if data != nil {
		it.buf = C.CBytes(data)
		it.call(func() { it.model = C.adtr_model_buf(t, it.buf, C.size_t(len(data))) })
	} else {
		cpath := C.CString(modelPath)
		defer C.free(unsafe.Pointer(cpath))
		it.call(func() { it.model = C.adtr_model(t, cpath) })
	}
	if it.model == nil {
		return fmt.Errorf("%w: %s: not a TFLite model the library can read (%s)", ErrModel, modelPath, it.said())
	}
	threads := opts.Threads
	if threads <= 0 {
		threads = 1
	}
	interpThreads := threads
	if opts.XNNPACK {
		// The threads go to XNNPACK's pool, which runs the heavy ops; a second pool for
		// TFLite's own kernels spins against it (measured, demo model, 2 cores: both
		// pools at 2 threads 12.7 ms per invoke, XNNPACK's alone 9.8 ms).
		interpThreads = 1
	}
	it.options = C.adtr_options(t, C.int(interpThreads), it.errs)
	if it.options == nil {
		return fmt.Errorf("%w: cannot create interpreter options", ErrModel)
	}
	if opts.XNNPACK {
		if it.call(func() { it.xnnpack = C.adtr_xnnpack(t, C.int(threads)) }); it.xnnpack == nil {
			return fmt.Errorf("%w: XNNPACK is not in %s", ErrDelegate, it.lib.path)
		}
		C.adtr_add_delegate(t, it.options, it.xnnpack)
	}
	var err error
	if g := opts.GPU; g != nil {
		if it.call(func() { err = it.addGPU(g) }); err != nil {
			return err
		}
	}
	for _, x := range opts.External {
		if it.call(func() { err = it.addExternal(x) }); err != nil {
			return err
		}
	}
	it.call(func() { it.interp = C.adtr_interp(t, it.model, it.options) })
	if it.interp == nil {
		msg := it.said()
		if it.gpu != nil || len(it.ext) > 0 {
			return fmt.Errorf("%w: %s: a delegate could not prepare the graph (%s)", ErrDelegate, modelPath, msg)
		}
		return fmt.Errorf("%w: %s: interpreter creation failed (%s)", ErrModel, modelPath, msg)
	}
	var status C.int
	if it.call(func() { status = C.adtr_allocate(t, it.interp) }); status != C.kTfLiteOk {
		return fmt.Errorf("%w: %s: allocating tensors failed (%s)", ErrModel, modelPath, it.said())
	}
	it.inputs = make([]Tensor, int(C.adtr_input_count(t, it.interp)))
	for i := range it.inputs {
		it.inputs[i] = it.tensor(C.adtr_input(t, it.interp, C.int(i)))
	}
	it.outputs = make([]Tensor, int(C.adtr_output_count(t, it.interp)))
	for i := range it.outputs {
		it.outputs[i] = it.tensor(C.adtr_output(t, it.interp, C.int(i)))
	}
	return nil
}

func (it *Interpreter) addGPU(g *GPUOptions) error {
	o := C.adtr_gpu_options{max_delegated_partitions: C.int32_t(g.MaxDelegatePartitions)}
	if g.AllowPrecisionLoss {
		o.is_precision_loss_allowed = 1
	}
	if g.SustainedSpeed {
		o.inference_preference = 1 // TFLITE_GPU_INFERENCE_PREFERENCE_SUSTAINED_SPEED
	}
	o.inference_priority1 = 1 // MAX_PRECISION
	if g.PriorityMinLatency {
		o.inference_priority1 = 2 // MIN_LATENCY
	}
	o.inference_priority2, o.inference_priority3 = 3, 3 // AUTO
	if g.AllowQuantizedModels {
		o.experimental_flags |= 1 // TFLITE_GPU_EXPERIMENTAL_FLAGS_ENABLE_QUANT
	}
	it.gpu = (*C.adtr_gpu)(C.calloc(1, C.size_t(unsafe.Sizeof(C.adtr_gpu{}))))
	var errbuf [512]C.char
	cpath := C.CString(g.Library)
	defer C.free(unsafe.Pointer(cpath))
	if C.adtr_gpu_open(cpath, it.gpu, &o, &errbuf[0], C.size_t(len(errbuf))) != 0 {
		return fmt.Errorf("%w: GPU: %s", ErrDelegate, C.GoString(&errbuf[0]))
	}
	C.adtr_add_delegate(it.lib.t, it.options, it.gpu.delegate)
	return nil
}

func (it *Interpreter) addExternal(x ExternalDelegate) error {
	loader := x.Loader
	if loader == "" {
		loader = filepath.Join(filepath.Dir(it.lib.path), "libexternal_delegate_obj.so")
	}
	keys := make([]string, 0, len(x.Options))
	for k := range x.Options {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	n := len(keys)
	ckeys := (*[1 << 20]*C.char)(C.calloc(C.size_t(n+1), C.size_t(unsafe.Sizeof((*C.char)(nil)))))
	cvals := (*[1 << 20]*C.char)(C.calloc(C.size_t(n+1), C.size_t(unsafe.Sizeof((*C.char)(nil)))))
	defer func() {
		for i := 0; i < n; i++ {
			C.free(unsafe.Pointer(ckeys[i]))
			C.free(unsafe.Pointer(cvals[i]))
		}
		C.free(unsafe.Pointer(ckeys))
		C.free(unsafe.Pointer(cvals))
	}()
	for i, k := range keys {
		ckeys[i] = C.CString(k)
		cvals[i] = C.CString(x.Options[k])
	}
	cl, cp := C.CString(loader), C.CString(x.Library)
	defer C.free(unsafe.Pointer(cl))
	defer C.free(unsafe.Pointer(cp))
	e := (*C.adtr_ext)(C.calloc(1, C.size_t(unsafe.Sizeof(C.adtr_ext{}))))
	it.ext = append(it.ext, e)
	var errbuf [512]C.char
	if C.adtr_ext_open(cl, cp, &ckeys[0], &cvals[0], C.int(n), e, &errbuf[0], C.size_t(len(errbuf))) != 0 {
		return fmt.Errorf("%w: external %s: %s", ErrDelegate, x.Library, C.GoString(&errbuf[0]))
	}
	C.adtr_add_delegate(it.lib.t, it.options, e.delegate)
	return nil
}

func (it *Interpreter) tensor(p *C.TfLiteTensor) Tensor {
	t := it.lib.t
	n := int(C.adtr_tensor_ndims(t, p))
	shape := make([]int, n)
	for i := range shape {
		shape[i] = int(C.adtr_tensor_dim(t, p, C.int(i)))
	}
	q := C.adtr_tensor_quant(t, p)
	return Tensor{
		Name:  C.GoString(C.adtr_tensor_name(t, p)),
		Type:  TensorType(C.adtr_tensor_type(t, p)),
		Shape: shape,
		Quant: Quant{Scale: float32(q.scale), ZeroPoint: int32(q.zero_point)},
		data:  C.adtr_tensor_data(t, p),
		size:  int(C.adtr_tensor_bytes(t, p)),
	}
}

// Inputs and Outputs describe the model's tensors; their Bytes are live buffers.
func (it *Interpreter) Inputs() []Tensor  { return it.inputs }
func (it *Interpreter) Outputs() []Tensor { return it.outputs }

// Warnings are the non-fatal problems met while starting (a delegate fallback).
func (it *Interpreter) Warnings() []Warning { return it.warnings }

// Printed is what TFLite printed on stderr while this interpreter started (e.g.
// "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."), for the caller's logger.
func (it *Interpreter) Printed() []string { return it.printed }

// Invoke runs the model on what the input buffers hold. No Go allocation.
func (it *Interpreter) Invoke() error {
	if it.interp == nil {
		return ErrClosed
	}
	if C.adtr_invoke(it.lib.t, it.interp) != C.kTfLiteOk {
		return fmt.Errorf("%w: %s", ErrInvoke, orNone(it.reported()))
	}
	return nil
}

// Close frees the interpreter, its options, model and delegates; safe twice.
func (it *Interpreter) Close() error {
	it.close()
	return nil
}

func (it *Interpreter) close() {
	t := it.lib.t
	if it.interp != nil {
		C.adtr_interp_delete(t, it.interp)
		it.interp = nil
	}
	// Delegates must outlive the interpreter that used them.
	if it.xnnpack != nil {
		C.adtr_xnnpack_delete(t, it.xnnpack)
		it.xnnpack = nil
	}
	if it.gpu != nil {
		C.adtr_gpu_close(it.gpu)
		C.free(unsafe.Pointer(it.gpu))
		it.gpu = nil
	}
	for _, e := range it.ext {
		C.adtr_ext_close(e)
		C.free(unsafe.Pointer(e))
	}
	it.ext = nil
	if it.options != nil {
		C.adtr_options_delete(t, it.options)
		it.options = nil
	}
	if it.model != nil {
		C.adtr_model_delete(t, it.model)
		it.model = nil
	}
	if it.buf != nil {
		C.free(it.buf)
		it.buf = nil
	}
	if it.errs != nil {
		C.free(unsafe.Pointer(it.errs))
		it.errs = nil
	}
	it.inputs, it.outputs = nil, nil
}

func orNone(s string) string {
	if s == "" {
		return "no message from TFLite"
	}
	return s
}

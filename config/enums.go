package config

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// enum is the shared YAML behaviour of the string-valued enums below: a closed set of
// names, decoded strictly, each with its own iota value.
func decodeEnum[T ~int](n *yaml.Node, names []string, out *T) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	for i, name := range names {
		if s == name {
			*out = T(i)
			return nil
		}
	}
	return fmt.Errorf("%q is not one of %s", s, strings.Join(names, ", "))
}

func enumString(names []string, i int) string {
	if i >= 0 && i < len(names) {
		return names[i]
	}
	return fmt.Sprintf("enum(%d)", i)
}

// Delegate selects where inference runs. The default is XNNPACK: TFLite's own int8
// kernels round differently on amd64 and arm64, XNNPACK's do not.
type Delegate int

const (
	DelegateXNNPACK Delegate = iota // the zero value: a Model built in code gets it too
	DelegateCPU
	DelegateGPU
	DelegateExternal
)

var delegateNames = []string{"xnnpack", "cpu", "gpu", "external"}

func (d Delegate) String() string                    { return enumString(delegateNames, int(d)) }
func (d *Delegate) UnmarshalYAML(n *yaml.Node) error { return decodeEnum(n, delegateNames, d) }

// OnFailure says what a failing GPU delegate does: fall back to the CPU, or refuse to start.
type OnFailure int

const (
	OnFailureFallback OnFailure = iota
	OnFailureRefuse
)

var onFailureNames = []string{"fallback", "refuse"}

func (o OnFailure) String() string                    { return enumString(onFailureNames, int(o)) }
func (o *OnFailure) UnmarshalYAML(n *yaml.Node) error { return decodeEnum(n, onFailureNames, o) }

// Provider is an ONNX Runtime execution provider (model.onnxruntime.providers).
type Provider int

const (
	ProviderTensorRT Provider = iota // NVIDIA TensorRT (JetPack's ONNX Runtime build)
	ProviderCUDA                     // NVIDIA CUDA
	ProviderCPU                      // ONNX Runtime's own CPU kernels
)

var providerNames = []string{"tensorrt", "cuda", "cpu"}

func (p Provider) String() string                    { return enumString(providerNames, int(p)) }
func (p *Provider) UnmarshalYAML(n *yaml.Node) error { return decodeEnum(n, providerNames, p) }

// Accelerator is where the LiteRT engine runs the graph (model.litert.accelerator).
type Accelerator int

const (
	AcceleratorCPU Accelerator = iota // XNNPACK on the CPU
	AcceleratorGPU                    // LiteRT's GPU accelerator (Dawn over Vulkan), the rest on the CPU
)

var acceleratorNames = []string{"cpu", "gpu"}

func (a Accelerator) String() string                    { return enumString(acceleratorNames, int(a)) }
func (a *Accelerator) UnmarshalYAML(n *yaml.Node) error { return decodeEnum(n, acceleratorNames, a) }

// Precision is the GPU's arithmetic (model.litert.precision).
type Precision int

const (
	PrecisionFP32 Precision = iota // closest to the CPU's maps
	PrecisionFP16                  // LiteRT's default on the GPU: faster, maps further off
)

var precisionNames = []string{"fp32", "fp16"}

func (p Precision) String() string                    { return enumString(precisionNames, int(p)) }
func (p *Precision) UnmarshalYAML(n *yaml.Node) error { return decodeEnum(n, precisionNames, p) }

// Source is the kind of frame source.
type Source int

const (
	SourceReplay Source = iota // image files (capture.replay)
	SourceCamera               // a GStreamer camera (capture.camera)
)

var sourceNames = []string{"replay", "camera"}

func (s Source) String() string                    { return enumString(sourceNames, int(s)) }
func (s *Source) UnmarshalYAML(n *yaml.Node) error { return decodeEnum(n, sourceNames, s) }

// Labels says where a replayed frame's label ("good" or a defect kind) comes from,
// for the end-of-run summary's escapes and false rejects.
type Labels int

const (
	LabelsNone Labels = iota // frames are unlabelled: the summary counts no escapes or false rejects
	LabelsName               // NNN_<label>.png: digits, "_", then "good" or a defect kind (a-z, _)
)

var labelNames = []string{"none", "name"}

func (l Labels) String() string                    { return enumString(labelNames, int(l)) }
func (l *Labels) UnmarshalYAML(n *yaml.Node) error { return decodeEnum(n, labelNames, l) }

// Backend is the GPIO backend.
type Backend int

const (
	BackendSim      Backend = iota // simulated outputs that record every edge; no inputs
	BackendGPIOChip                // the Linux GPIO character device (/dev/gpiochip*), via periph.io
)

var backendNames = []string{"sim", "gpiochip"}

func (b Backend) String() string                    { return enumString(backendNames, int(b)) }
func (b *Backend) UnmarshalYAML(n *yaml.Node) error { return decodeEnum(n, backendNames, b) }

// FailSafe is what happens to a part with no decision in time (frame dropped or
// unreadable, inference failed or late, camera lost).
type FailSafe int

const (
	FailSafeReject FailSafe = iota
	FailSafePass
	FailSafeAlarm
)

var failSafeNames = []string{"reject", "pass", "alarm"}

func (f FailSafe) String() string                    { return enumString(failSafeNames, int(f)) }
func (f *FailSafe) UnmarshalYAML(n *yaml.Node) error { return decodeEnum(n, failSafeNames, f) }

// Pull is an input's bias resistor.
type Pull int

const (
	PullNone Pull = iota // leave as the board configured it
	PullUp
	PullDown
	PullFloat // explicitly disable any bias
)

var pullNames = []string{"none", "up", "down", "float"}

func (p Pull) String() string                    { return enumString(pullNames, int(p)) }
func (p *Pull) UnmarshalYAML(n *yaml.Node) error { return decodeEnum(n, pullNames, p) }

// LogFormat is how decision records are written.
type LogFormat int

const (
	LogText LogFormat = iota
	LogJSON
)

var logFormatNames = []string{"text", "json"}

func (l LogFormat) String() string                    { return enumString(logFormatNames, int(l)) }
func (l *LogFormat) UnmarshalYAML(n *yaml.Node) error { return decodeEnum(n, logFormatNames, l) }

// Duration is a time.Duration written as "50ms", "1.5s".
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration like 50ms", s)
	}
	*d = Duration(v)
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%q is not one of debug, info, warn, error", s)
	}
	return l, nil
}

// Level is the configured slog level (validated by Load).
func (l Log) SlogLevel() slog.Level {
	v, _ := parseLevel(l.Level)
	return v
}

// Decisions says which decisions MQTT publishes.
type Decisions int

const (
	DecisionsRejects Decisions = iota // every decision but pass: rejects, and the fail-safe's alarms
	DecisionsAll                      // every decision
	DecisionsNone                     // none: faults and state changes only
)

var decisionsNames = []string{"rejects", "all", "none"}

func (d Decisions) String() string                    { return enumString(decisionsNames, int(d)) }
func (d *Decisions) UnmarshalYAML(n *yaml.Node) error { return decodeEnum(n, decisionsNames, d) }

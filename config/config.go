// Package config is adtrd's YAML configuration: schema, defaults and strict validation
// that reports every problem at once, each with its key path and line.
package config

import (
	"cmp"
	"encoding"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/adtrd/adtrd/capture/spec"
	"github.com/adtrd/adtrd/internal/safefile"
)

// ErrInvalid wraps every validation failure; *Errors lists them.
var ErrInvalid = errors.New("invalid config")

// Config is the whole file. Field comments are the documentation of each key; the
// annotated example is config/example.yaml.
type Config struct {
	Model     Model    `yaml:"model"`
	Threshold float64  `yaml:"threshold"` // 0: the model metadata's suggested threshold
	Capture   Capture  `yaml:"capture"`
	Output    Output   `yaml:"output"`
	Input     Input    `yaml:"input"`
	Tracking  Tracking `yaml:"tracking"`
	FailSafe  FailSafe `yaml:"fail_safe"`
	Log       Log      `yaml:"log"`
	// The operators' view (README "Operators' view"): read at start; a reload that
	// changes them is refused (ErrRestart).
	HTTP       HTTP       `yaml:"http"`
	Recordings Recordings `yaml:"recordings"`
	MQTT       MQTT       `yaml:"mqtt"`

	// lines: each key's line in the file it was read from, for problems found after
	// the config is read (a threshold the model cannot reach). Not compared by Diff.
	lines map[string]int
}

// Line is the line of key (e.g. "threshold") in the file the config was read from;
// 0 when the file does not set it.
func (c Config) Line(key string) int { return c.lines[key] }

// Where names key for a message: "line 3: threshold", or the key alone.
func (c Config) Where(key string) string {
	if n := c.Line(key); n > 0 {
		return fmt.Sprintf("line %d: %s", n, key)
	}
	return key
}

// HTTP is the operators' page, /metrics, the JSON API and live events.
type HTTP struct {
	Address string `yaml:"address"` // host:port to listen on (loopback by default); "": off
	// TokenFile holds the bearer token that mutating requests (feedback, reload, alarm
	// reset) must carry; it must not be readable by others. "": mutations are refused.
	TokenFile string  `yaml:"token_file"`
	Heatmaps  float64 `yaml:"heatmaps"` // heatmap overlays rendered per second at most, off the frame path
	// Required: a page that cannot start (the port in use) stops `adtrd run` with one
	// line naming http.address. false (the default): it is logged at error level and
	// the line runs without it, since the page only watches the line.
	Required bool `yaml:"required"`
	// Hosts are further names and addresses a request's Host header may give (a
	// reverse proxy's name, a DNS alias); the listener's own, localhost and the
	// machine's host name are always accepted. Others are refused (DNS rebinding).
	Hosts []string `yaml:"hosts"`
}

// Recordings are rejected and near-threshold frames kept on disk for the page and
// for feedback, under a size quota and an age limit (oldest removed first).
type Recordings struct {
	Dir    string   `yaml:"dir"`      // "": off
	Quota  int64    `yaml:"quota_mb"` // MiB the recordings may take
	MaxAge Duration `yaml:"max_age"`  // older recordings are removed; 0: no age limit
	// Near: passes scoring above near x threshold are recorded too (0: rejects only).
	Near float64 `yaml:"near"`
	Rate float64 `yaml:"rate"` // recordings per second at most; more are dropped and counted
	// Dataset: where feedback lands, in MVTec layout (train/good for false rejects,
	// test/<kind> for confirmed defects), read by calibrate and `adtr train --plus`;
	// "": feedback is refused.
	Dataset string `yaml:"dataset"`
}

// MQTT publishes decisions, faults and state changes to a broker (MQTT 3.1.1).
type MQTT struct {
	Broker string `yaml:"broker"` // tcp://host:1883 or ssl://host:8883; "": off
	// ClientID is also the session's name at the broker: two clients with one id take
	// the session from each other. "": "adtrd", this machine's name and a hash of it,
	// its machine id and the topic (mqtt.DefaultClientID), different on every line.
	ClientID     string    `yaml:"client_id"`
	Topic        string    `yaml:"topic"`     // prefix: <topic>/decision, /fault, /state, /availability
	Decisions    Decisions `yaml:"decisions"` // rejects (default: every decision but pass) | all | none
	Buffer       int       `yaml:"buffer"`    // messages held while the broker is away; the oldest go first
	Username     string    `yaml:"username"`
	PasswordFile string    `yaml:"password_file"`
}

type Model struct {
	// Engine names the runtime that runs the graph (engine.Factories); "tflite", the
	// TFLite C library, by default.
	Engine   string   `yaml:"engine"`
	Path     string   `yaml:"path"`
	Metadata string   `yaml:"metadata"` // default: <path>.json
	SHA256   string   `yaml:"sha256"`   // optional pin: a model file with another sha256 is refused
	Library  string   `yaml:"library"`  // libtensorflowlite_c.so; default: beside the binary, /usr/lib/adtrd, loader paths
	Threads  int      `yaml:"threads"`
	Delegate Delegate `yaml:"delegate"`
	GPU      GPU      `yaml:"gpu"`
	External External `yaml:"external"`
	// ONNXRuntime configures model.engine: onnxruntime.
	ONNXRuntime ONNXRuntime `yaml:"onnxruntime"`
	// LiteRT configures model.engine: litert.
	LiteRT LiteRT `yaml:"litert"`
}

// LiteRT is the LiteRT engine's library and accelerator.
type LiteRT struct {
	// Library is libLiteRt.so; its GPU accelerator (libLiteRtWebGpuAccelerator.so) is
	// looked for beside it. Default: beside the binary, ../lib/adtrd from it,
	// /usr/lib/adtrd, the loader's paths.
	Library string `yaml:"library"`
	// Accelerator: cpu (XNNPACK) or gpu (LiteRT's GPU accelerator over Vulkan; the ops
	// it cannot take run on the CPU, and the log, check and status page say how many).
	Accelerator Accelerator `yaml:"accelerator"`
	// Precision of the GPU's arithmetic: fp32 (default) or fp16 (faster on Jetson,
	// maps further from the CPU's).
	Precision Precision `yaml:"precision"`
	// OnFailure: a GPU accelerator that cannot start (no Vulkan device, library
	// missing): fallback (warn, run on the CPU) or refuse (the model does not load).
	OnFailure OnFailure `yaml:"on_failure"`
	// Cache is a folder where the GPU accelerator keeps its compiled programs, one
	// file per graph (keyed by its sha256), so a board compiles its shaders once per
	// graph instead of at every start; "": none. Under the unit, /var/lib/adtrd/litert.
	Cache string `yaml:"cache"`
}

// ONNXRuntime is the ONNX Runtime engine's library and execution providers.
type ONNXRuntime struct {
	// Library is libonnxruntime.so.1: JetPack's GPU build on a Jetson; default: beside
	// the binary, ../lib/adtrd from it, /usr/lib/adtrd, the loader's paths.
	Library string `yaml:"library"`
	// Providers in order of preference; the CPU takes what none of them can (ORT
	// assigns each node to the first provider that has a kernel for it). Default: cpu.
	Providers []Provider `yaml:"providers"`
	// OnFailure: a provider that cannot start (its libraries missing): fallback (warn,
	// try the next) or refuse (the model does not load).
	OnFailure OnFailure `yaml:"on_failure"`
	TensorRT  TensorRT  `yaml:"tensorrt"`
}

// TensorRT options of the tensorrt provider.
type TensorRT struct {
	FP16 bool `yaml:"fp16"`
	INT8 bool `yaml:"int8"` // needs a graph with QDQ nodes (TensorRT's int8)
	// Cache is a folder for the engines TensorRT builds (minutes on a Jetson), so a
	// board builds one per graph once instead of at every start; "": none.
	Cache string `yaml:"cache"`
}

type GPU struct {
	Library            string    `yaml:"library"`
	AllowPrecisionLoss bool      `yaml:"allow_precision_loss"`
	AllowQuantized     bool      `yaml:"allow_quantized"`
	MinLatency         bool      `yaml:"min_latency"`
	OnFailure          OnFailure `yaml:"on_failure"`
}

type External struct {
	Library string            `yaml:"library"`
	Loader  string            `yaml:"loader"`
	Options map[string]string `yaml:"options"`
}

type Capture struct {
	Source Source `yaml:"source"`
	Replay Replay `yaml:"replay"`
	Camera Camera `yaml:"camera"`
	Queue  int    `yaml:"queue"` // frames waiting for inference; when full, new frames are dropped
}

// Camera is a GStreamer camera (README "Cameras"): a supervised gst-launch-1.0 child
// whose frames reach the model through the toolkit's resize.
type Camera struct {
	// URI as jetson-inference spells it: csi://N, v4l2:///dev/videoN, rtsp://host/path,
	// gige://NAME-or-IP, or gst://<pipeline head> for anything else.
	URI       string         `yaml:"uri"`
	Converter spec.Converter `yaml:"converter"` // videoconvert (default; nvvidconv for csi://)
	// Width x Height: the frame size GStreamer delivers, in pixels. The camera's own
	// size keeps the preprocessing the toolkit's (adtrd resizes it to the model's
	// input); 0 x 0: the model's input size, scaled by GStreamer instead.
	Width  int     `yaml:"width"`
	Height int     `yaml:"height"`
	FPS    float64 `yaml:"fps"` // asked of csi:// and v4l2:// cameras; 0: the camera's rate
	// Latency: from exposure to the frame's arrival through the pipe; subtracted from
	// the arrival time to give the frame's capture time.
	Latency Duration `yaml:"latency"`
	// Stall: no frame for this long is a lost camera; FirstFrame the allowance after
	// each (re)start, while RTSP or GigE Vision connects.
	Stall      Duration `yaml:"stall"`
	FirstFrame Duration `yaml:"first_frame"`
	// Restarts back off from BackoffMin, doubling up to BackoffMax.
	BackoffMin Duration `yaml:"backoff_min"`
	BackoffMax Duration `yaml:"backoff_max"`
	V4L2       V4L2     `yaml:"v4l2"`
	RTSP       RTSP     `yaml:"rtsp"`
	GigE       GigE     `yaml:"gige"`
}

// FilePath is the folder or image of a file:// URI (jetson-inference's spelling of a
// replay: the files play as capture.replay does, paced at fps).
func (c Camera) FilePath() (string, bool) {
	p, ok := strings.CutPrefix(c.URI, "file://")
	return p, ok
}

// Spec is the camera's pipeline description; frames come at Width x Height, or at
// the model's input size (w x h) when those are 0.
func (c Camera) Spec(w, h int) spec.CameraSpec {
	if c.Width != 0 && c.Height != 0 {
		w, h = c.Width, c.Height
	}
	return spec.CameraSpec{
		URI: c.URI, Converter: c.Converter, Width: w, Height: h, FPS: c.FPS,
		V4L2Format: c.V4L2.Format, RTSPTransport: c.RTSP.Transport, RTSPLatency: time.Duration(c.RTSP.Latency),
		Exposure: c.GigE.Exposure, Gain: c.GigE.Gain, Features: c.GigE.Features,
	}
}

// V4L2 options for v4l2:// cameras.
type V4L2 struct {
	Format string `yaml:"format"` // "" (raw) or MJPG
}

// RTSP options for rtsp:// cameras.
type RTSP struct {
	Transport string   `yaml:"transport"` // tcp (default) or udp
	Latency   Duration `yaml:"latency"`   // rtspsrc's jitter buffer
}

// GigE options for gige:// cameras (aravissrc).
type GigE struct {
	Exposure float64           `yaml:"exposure"` // µs; 0: the camera's
	Gain     float64           `yaml:"gain"`     // dB; 0: the camera's
	Features map[string]string `yaml:"features"` // GenICam features by name: TriggerMode: "On"
}

type Replay struct {
	Path string   `yaml:"path"` // a directory of .png/.jpg, or one image file
	Loop bool     `yaml:"loop"`
	FPS  float64  `yaml:"fps"` // 0: as fast as the pipeline takes them
	Fit  spec.Fit `yaml:"fit"`
	// Labels: none (default) or name (the demo frames' NNN_<label>.png); the built-in
	// demo reads names.
	Labels Labels `yaml:"labels"`
}

type Output struct {
	Backend   Backend   `yaml:"backend"`
	SimCSV    string    `yaml:"sim_csv"` // simulated backend: also write every edge to this CSV
	Reject    Reject    `yaml:"reject"`
	Alarm     Pin       `yaml:"alarm"` // latched on a fail-safe alarm or a missing confirmation
	Ready     Pin       `yaml:"ready"` // on while the pipeline is healthy
	Heartbeat Heartbeat `yaml:"heartbeat"`
}

// Pin names a GPIO line for the gpiochip backend: by its name (gpioinfo), or by
// chip and offset. A pin with neither is not wired.
type Pin struct {
	Line      string `yaml:"line"`   // the line's name, e.g. PQ.05 on a Jetson
	Chip      string `yaml:"chip"`   // gpiochip0, /dev/gpiochip0 or the chip's label
	Offset    *int   `yaml:"offset"` // the line's offset on chip (instead of line)
	ActiveLow bool   `yaml:"active_low"`
}

// Wired says whether the pin names a line.
func (p Pin) Wired() bool { return p.Line != "" || p.Chip != "" || p.Offset != nil }

type Reject struct {
	Pin         `yaml:",inline"`
	Pulse       Duration `yaml:"pulse"`
	Delay       Duration `yaml:"delay"`        // from the part's stamp (trigger edge, or frame time) to the pulse
	DelayCounts int64    `yaml:"delay_counts"` // >0: the delay in encoder counts instead (needs input.encoder)
}

type Heartbeat struct {
	Pin    `yaml:",inline"`
	Period Duration `yaml:"period"` // toggles every period; 0: off
}

// InPin is an input line.
type InPin struct {
	Pin  `yaml:",inline"`
	Pull Pull `yaml:"pull"`
}

type Input struct {
	Trigger    Trigger `yaml:"trigger"`     // part present: stamps a part and takes its frame
	Encoder    InPin   `yaml:"encoder"`     // belt encoder pulses, for output.reject.delay_counts
	Confirm    Confirm `yaml:"confirm"`     // sees the reject happen; none within the window raises the alarm
	Inhibit    InPin   `yaml:"inhibit"`     // while active, rejects are suppressed (and counted)
	AlarmReset InPin   `yaml:"alarm_reset"` // an active edge clears the alarm
}

type Trigger struct {
	InPin    `yaml:",inline"`
	Debounce Duration `yaml:"debounce"`
	// With a camera (a paced source), a frame captured from FrameBefore before a
	// trigger edge to FrameAfter after it is that part's; a part with none takes the
	// fail-safe, a frame in no part's window is dropped and counted.
	FrameBefore Duration `yaml:"frame_before"`
	FrameAfter  Duration `yaml:"frame_after"`
}

type Confirm struct {
	InPin  `yaml:",inline"`
	Window Duration `yaml:"window"`
}

type Tracking struct {
	InFlight int      `yaml:"in_flight"` // parts between camera and ejector, at most
	Spin     Duration `yaml:"spin"`      // wake this early before an edge and spin to it (Go timers are ~1 ms coarse); 0: off
}

type Log struct {
	Format LogFormat `yaml:"format"`
	Level  string    `yaml:"level"`
}

// Default is the configuration every file starts from.
func Default() Config {
	return Config{
		Model:   Model{Engine: "tflite", Path: "models/demo/adtr.tflite", Threads: 2, Delegate: DelegateXNNPACK, GPU: GPU{OnFailure: OnFailureFallback}, ONNXRuntime: ONNXRuntime{Providers: []Provider{ProviderCPU}}},
		Capture: Capture{Source: SourceReplay, Replay: Replay{Path: "models/demo/frames", FPS: 10, Fit: spec.FitResize}, Queue: 2},
		Output: Output{Backend: BackendSim, Reject: Reject{
			Pulse: Duration(50 * time.Millisecond), Delay: Duration(200 * time.Millisecond),
		}},
		Input: Input{
			Trigger: Trigger{Debounce: Duration(5 * time.Millisecond), FrameBefore: Duration(20 * time.Millisecond), FrameAfter: Duration(100 * time.Millisecond)},
			Confirm: Confirm{Window: Duration(200 * time.Millisecond)},
		},
		Tracking: Tracking{InFlight: 64, Spin: Duration(2 * time.Millisecond)},
		FailSafe: FailSafeReject,
		Log:      Log{Format: LogText, Level: "info"},
		HTTP:     HTTP{Address: "127.0.0.1:8080", Heatmaps: 2, Hosts: []string{}},
		// Recordings are off unless a config names a folder: the package's config
		// puts them under /var/lib/adtrd (the unit's StateDirectory).
		Recordings: Recordings{Quota: 1024, MaxAge: Duration(7 * 24 * time.Hour), Near: 0.9, Rate: 2},
		MQTT:       MQTT{Topic: "adtrd", Decisions: DecisionsRejects, Buffer: 1000},
	}
}

// MetadataPath is where the model's metadata JSON is.
func (m Model) MetadataPath() string {
	if m.Metadata != "" {
		return m.Metadata
	}
	return m.Path + ".json"
}

// Problem is one thing wrong with a file.
type Problem struct {
	Line int
	Key  string
	Msg  string
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", p.Line, p.Key, p.Msg)
	}
	return fmt.Sprintf("%s: %s", p.Key, p.Msg)
}

// Errors is every problem found in one file.
type Errors struct {
	File     string
	Problems []Problem
}

func (e *Errors) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return fmt.Sprintf("%s: %d problem(s): %s", e.File, len(e.Problems), strings.Join(parts, "; "))
}

func (e *Errors) Unwrap() error { return ErrInvalid }

// Load reads, decodes strictly and validates a file. Relative paths in it are
// resolved against the file's directory.
func Load(path string) (Config, error) {
	b, err := safefile.Read(path, MaxFileBytes)
	if err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return Parse(path, b)
}

// MaxFileBytes bounds a config file: far above any real one, far below memory.
const MaxFileBytes = 4 << 20

// Parse decodes b (named name in errors) onto the defaults, validates it, and checks
// that the files it names exist: Decode, then the file step, with every problem in
// one list.
func Parse(name string, b []byte) (Config, error) { return parse(name, b, true) }

// Decode is Parse without the file step: it touches no file (FuzzParse runs it).
func Decode(name string, b []byte) (Config, error) { return parse(name, b, false) }

func parse(name string, b []byte, files bool) (Config, error) {
	cfg := Default()
	errs := &Errors{File: name}
	lines := map[string]int{}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		errs.Problems = append(errs.Problems, yamlProblem(err))
		return cfg, errs
	}
	if len(doc.Content) > 0 {
		root := doc.Content[0]
		if root.Kind != yaml.MappingNode {
			errs.Problems = append(errs.Problems, Problem{root.Line, "(top)", "want a mapping of keys"})
			return cfg, errs
		}
		decode(root, reflect.ValueOf(&cfg).Elem(), "", lines, errs)
	}
	cfg.lines = lines
	base := filepath.Dir(name)
	cfg.resolve(base)
	cfg.validate(lines, errs, files)
	if len(errs.Problems) > 0 {
		sort.SliceStable(errs.Problems, func(i, j int) bool { return errs.Problems[i].Line < errs.Problems[j].Line })
		return cfg, errs
	}
	return cfg, nil
}

func yamlProblem(err error) Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var line int
	if n, _ := fmt.Sscanf(msg, "line %d:", &line); n == 1 {
		msg = strings.TrimSpace(msg[strings.Index(msg, ":")+1:])
	}
	return Problem{line, "(syntax)", msg}
}

// decode walks a mapping node onto a struct: unknown keys, duplicate keys and wrong
// types are all collected rather than stopping at the first.
func decode(n *yaml.Node, v reflect.Value, prefix string, lines map[string]int, errs *Errors) {
	fields := map[string][]int{}
	collectFields(v.Type(), nil, fields)
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := join(prefix, k.Value)
		lines[key] = k.Line
		if refuseAliasOrMerge(k, val, prefix, key, errs) {
			continue
		}
		if seen[k.Value] {
			errs.Problems = append(errs.Problems, Problem{k.Line, key, "duplicate key"})
			continue
		}
		seen[k.Value] = true
		idx, ok := fields[k.Value]
		if !ok {
			errs.Problems = append(errs.Problems, Problem{k.Line, key, "unknown key" + suggest(k.Value, fields)})
			continue
		}
		f := v.FieldByIndex(idx)
		if f.Kind() == reflect.Struct && f.Type() != reflect.TypeOf(Duration(0)) {
			if val.Kind != yaml.MappingNode {
				if val.Tag == "!!null" {
					continue
				}
				errs.Problems = append(errs.Problems, Problem{val.Line, key, "want a mapping, got " + kindName(val)})
				continue
			}
			decode(val, f, key, lines, errs)
			continue
		}
		if f.Kind() == reflect.Map {
			decodeStringMap(val, f, key, lines, errs)
			continue
		}
		before := reflect.New(f.Type()).Elem()
		before.Set(f)
		named := decodesItself(f)
		if named && val.Kind != yaml.ScalarNode {
			// A name (fit: resize) or a duration: a list or mapping is no type error
			// of an integer, whatever the Go type under it.
			errs.Problems = append(errs.Problems, Problem{val.Line, key, fmt.Sprintf("want %s, got %s", scalarWanted(f.Type()), kindName(val))})
			continue
		}
		if k := f.Kind(); !named && (reflect.Int <= k && k <= reflect.Uint64) && val.Tag == "!!float" {
			// yaml.v3 truncates 1.5 into an int field without a word.
			errs.Problems = append(errs.Problems, Problem{val.Line, key, fmt.Sprintf("want a whole number, got %s", val.Value)})
			continue
		}
		if err := val.Decode(f.Addr().Interface()); err != nil {
			errs.Problems = append(errs.Problems, Problem{val.Line, key, typeMessage(err, f.Type(), val)})
			continue
		}
		if !finite(f) {
			// NaN defeats every range check (NaN < 0 and NaN > max are both false) and
			// every comparison after it: a NaN threshold passes every part, a NaN in the
			// reload diff is never equal to itself. No float key takes one, nor an infinity.
			errs.Problems = append(errs.Problems, Problem{val.Line, key, fmt.Sprintf("%s is not a finite number", val.Value)})
			f.Set(before)
		}
	}
}

// refuseAliasOrMerge reports YAML aliases (*name) and merge keys (<<) by name. Both are
// valid YAML, but resolving them here would give every other message two meanings (the
// line of the alias or of its anchor); writing the keys out is always possible.
func refuseAliasOrMerge(k, val *yaml.Node, prefix, key string, errs *Errors) bool {
	switch {
	case k.Kind == yaml.AliasNode:
		errs.Problems = append(errs.Problems, Problem{k.Line, join(prefix, "*"+k.Value), fmt.Sprintf("YAML aliases (*%s) are not supported as keys; write the key out", k.Value)})
	case k.Tag == "!!merge" || k.Value == "<<" && k.Style == 0:
		at := prefix
		if at == "" {
			at = "(top)"
		}
		errs.Problems = append(errs.Problems, Problem{k.Line, at, "YAML merge keys (<<) are not supported; write the keys out"})
	case val.Kind == yaml.AliasNode:
		errs.Problems = append(errs.Problems, Problem{val.Line, key, fmt.Sprintf("YAML aliases (*%s) are not supported; write the value out", val.Value)})
	default:
		return false
	}
	return true
}

// decodeStringMap decodes a mapping of scalars (model.external.options) pair by pair:
// linear in its size, each problem named by the entry's own key.
func decodeStringMap(n *yaml.Node, f reflect.Value, key string, lines map[string]int, errs *Errors) {
	if n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.MappingNode {
		errs.Problems = append(errs.Problems, Problem{n.Line, key, "want a mapping, got " + kindName(n)})
		return
	}
	m := reflect.MakeMapWithSize(f.Type(), len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		sub := join(key, k.Value)
		lines[sub] = k.Line
		switch {
		case refuseAliasOrMerge(k, val, key, sub, errs):
		case k.Kind != yaml.ScalarNode:
			errs.Problems = append(errs.Problems, Problem{k.Line, key, "want string keys, got " + kindName(k)})
		case m.MapIndex(reflect.ValueOf(k.Value)).IsValid():
			errs.Problems = append(errs.Problems, Problem{k.Line, sub, "duplicate key"})
		case val.Kind != yaml.ScalarNode:
			errs.Problems = append(errs.Problems, Problem{val.Line, sub, "want a string value, got " + kindName(val)})
		default:
			m.SetMapIndex(reflect.ValueOf(k.Value), reflect.ValueOf(val.Value))
		}
	}
	f.Set(m)
}

// finite reports whether every float in v (a float, or a pointer, slice or map of them)
// is a finite number.
func finite(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Float32, reflect.Float64:
		return !math.IsNaN(v.Float()) && !math.IsInf(v.Float(), 0)
	case reflect.Pointer:
		return v.IsNil() || finite(v.Elem())
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			if !finite(v.Index(i)) {
				return false
			}
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			if !finite(it.Value()) {
				return false
			}
		}
	}
	return true
}

// collectFields maps each YAML key of t to its field index, flattening ",inline" fields.
func collectFields(t reflect.Type, prefix []int, fields map[string][]int) {
	for i := 0; i < t.NumField(); i++ {
		parts := strings.Split(t.Field(i).Tag.Get("yaml"), ",")
		idx := append(append([]int(nil), prefix...), i)
		if len(parts) > 1 && parts[1] == "inline" {
			collectFields(t.Field(i).Type, idx, fields)
			continue
		}
		if parts[0] != "" {
			fields[parts[0]] = idx
		}
	}
}

func typeMessage(err error, t reflect.Type, val *yaml.Node) string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		if val.Kind != yaml.ScalarNode {
			return fmt.Sprintf("want %s, got %s", typeName(t), kindName(val))
		}
		return fmt.Sprintf("want %s, got %s %q", typeName(t), kindName(val), val.Value)
	}
	return err.Error()
}

// decodesItself: the key's type reads its own scalar (an enum's name, a duration),
// so its Go kind says nothing about what the file should hold.
func decodesItself(f reflect.Value) bool {
	p := f.Addr().Interface()
	_, y := p.(yaml.Unmarshaler)
	_, t := p.(encoding.TextUnmarshaler)
	return y || t
}

// scalarWanted names what a self-decoding key takes.
func scalarWanted(t reflect.Type) string {
	if t == reflect.TypeOf(Duration(0)) {
		return "a duration like 50ms"
	}
	return "a name"
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int64, reflect.Int32:
		if t == reflect.TypeOf(Duration(0)) {
			return "a duration like 50ms"
		}
		return "an integer"
	case reflect.Float64, reflect.Float32:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Map:
		return "a mapping"
	case reflect.Slice:
		return "a list of " + strings.TrimPrefix(strings.TrimPrefix(typeName(t.Elem()), "a "), "an ") + "s"
	case reflect.Pointer:
		return typeName(t.Elem())
	}
	return t.String()
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	switch n.Tag {
	case "!!int":
		return "integer"
	case "!!float":
		return "number"
	case "!!bool":
		return "boolean"
	case "!!null":
		return "nothing"
	}
	return "string"
}

func suggest(key string, fields map[string][]int) string {
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	return " (known: " + strings.Join(names, ", ") + ")"
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

func (c *Config) resolve(base string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) && base != "" {
			*p = filepath.Join(base, *p)
		}
	}
	abs(&c.Model.Path)
	abs(&c.Model.Metadata)
	abs(&c.Model.Library)
	abs(&c.Model.GPU.Library)
	abs(&c.Model.External.Library)
	abs(&c.Model.External.Loader)
	abs(&c.Model.ONNXRuntime.Library)
	abs(&c.Model.ONNXRuntime.TensorRT.Cache)
	abs(&c.Model.LiteRT.Library)
	abs(&c.Model.LiteRT.Cache)
	abs(&c.Capture.Replay.Path)
	abs(&c.Output.SimCSV)
	abs(&c.HTTP.TokenFile)
	abs(&c.Recordings.Dir)
	abs(&c.Recordings.Dataset)
	abs(&c.MQTT.PasswordFile)
	if p, ok := c.Capture.Camera.FilePath(); ok && p != "" { // file://relative/dir too
		abs(&p)
		c.Capture.Camera.URI = "file://" + p
	}
}

// validate checks values; with files, also that the files named exist (os.Stat).
func (c *Config) validate(lines map[string]int, errs *Errors, files bool) {
	bad := func(key, format string, args ...any) {
		errs.Problems = append(errs.Problems, Problem{lines[key], key, fmt.Sprintf(format, args...)})
	}
	missing := func(key, path, what string) {
		if path == "" {
			bad(key, "required")
			return
		}
		if !files {
			return
		}
		if _, err := os.Stat(path); err != nil {
			bad(key, "%s %s not found", what, path)
		}
	}
	missing("model.path", c.Model.Path, "model")
	if c.Model.Path != "" && files {
		if err := safefile.Regular(c.Model.Path); errors.Is(err, safefile.ErrNotRegular) {
			// A device, FIFO or folder is no model, whatever lies beside it: say so
			// rather than that <path>.json is missing.
			bad("model.path", "model %v", err)
		} else if _, err := os.Stat(c.Model.MetadataPath()); err != nil {
			key := "model.metadata"
			if _, set := lines[key]; !set {
				key = "model.path" // the default <path>.json: point at the line that chose it
			}
			bad(key, "metadata %s not found (it sits beside the model as <model>.json)", c.Model.MetadataPath())
		}
	}
	if c.Model.Library != "" {
		missing("model.library", c.Model.Library, "library")
	}
	if c.Model.LiteRT.Library != "" {
		missing("model.litert.library", c.Model.LiteRT.Library, "LiteRT library")
	}
	if strings.ContainsFunc(c.Model.LiteRT.Cache, func(r rune) bool { return r == '"' || r == '\\' || r < ' ' || r == 0x7f }) {
		// The accelerator reads it from a TOML string of its options.
		bad("model.litert.cache", "%q: a folder path without double quotes, backslashes or control characters", c.Model.LiteRT.Cache)
	}
	if h := c.Model.SHA256; h != "" && !isHex64(h) {
		bad("model.sha256", "want 64 hex digits, got %q", h)
	}
	if c.Model.Threads < 1 || c.Model.Threads > 64 {
		bad("model.threads", "%d out of range 1..64", c.Model.Threads)
	}
	if e := c.Model.Engine; e == "" || len(e) > 32 || strings.Trim(e, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" {
		bad("model.engine", "%q: want an engine's name (lowercase letters, digits, _), e.g. tflite", e)
	}
	seen := map[Provider]bool{}
	for _, p := range c.Model.ONNXRuntime.Providers {
		if seen[p] {
			bad("model.onnxruntime.providers", "%s given twice", p)
		}
		seen[p] = true
	}
	switch c.Model.Delegate {
	case DelegateGPU:
		missing("model.gpu.library", c.Model.GPU.Library, "GPU delegate library")
	case DelegateExternal:
		missing("model.external.library", c.Model.External.Library, "external delegate library")
	}
	if c.Threshold < 0 {
		bad("threshold", "%v is negative", c.Threshold)
	}
	if c.Capture.Queue < 1 || c.Capture.Queue > 64 {
		bad("capture.queue", "%d out of range 1..64", c.Capture.Queue)
	}
	// The replay folder is read only by `run` (and bench) with a replay source, which
	// say so by key when it is missing, and looked for by check: eval and calibrate on
	// a config that names only a model must not need the default folder beside it.
	if c.Capture.Source == SourceReplay && c.Capture.Replay.Path == "" {
		bad("capture.replay.path", "required")
	}
	if c.Capture.Source == SourceCamera {
		c.validateCamera(files, bad)
	}
	if c.Capture.Replay.FPS < 0 || c.Capture.Replay.FPS > 1000 {
		bad("capture.replay.fps", "%v out of range 0..1000", c.Capture.Replay.FPS)
	}
	if p := time.Duration(c.Output.Reject.Pulse); p < time.Millisecond || p > 10*time.Second {
		bad("output.reject.pulse", "%v out of range 1ms..10s", p)
	}
	if d := time.Duration(c.Output.Reject.Delay); d < 0 || d > time.Minute {
		bad("output.reject.delay", "%v out of range 0..1m", d)
	}
	c.validateLines(lines, bad)
	if _, err := parseLevel(c.Log.Level); err != nil {
		bad("log.level", "%v", err)
	}
	c.validateView(files, bad)
}

// validHost: an IP address (IPv6 with or without brackets) or a DNS name: labels of
// letters, digits, '-' and '_', 1 to 63 each, 253 in all, an optional final dot.
func validHost(h string) bool {
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")); err == nil && a.Zone() == "" {
		return true
	}
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, l := range strings.Split(h, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// validateView checks the operators' view: the listener, the recordings and MQTT.
func (c *Config) validateView(files bool, bad func(key, format string, args ...any)) {
	if a := c.HTTP.Address; a != "" {
		if _, port, err := net.SplitHostPort(a); err != nil {
			bad("http.address", "%q: want host:port, e.g. 127.0.0.1:8080", a)
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			bad("http.address", "%q: port %q is not 0..65535", a, port)
		}
	}
	if h := c.HTTP.Heatmaps; h <= 0 || h > 100 || math.IsNaN(h) {
		bad("http.heatmaps", "%v out of range (0, 100] per second", h)
	}
	for i, h := range c.HTTP.Hosts {
		if !validHost(h) {
			bad("http.hosts", "entry %d %q: want a host name (line-pc.plant.example) or an IP address, without scheme, port or wildcard", i+1, h)
		}
	}
	if f := c.HTTP.TokenFile; f != "" && files {
		if _, err := ReadSecret(f); err != nil {
			bad("http.token_file", "%v", err)
		}
	}
	r := c.Recordings
	if r.Quota < 1 || r.Quota > 1<<20 {
		bad("recordings.quota_mb", "%d out of range 1..1048576 MiB", r.Quota)
	}
	if a := time.Duration(r.MaxAge); a < 0 || (a > 0 && a < time.Minute) {
		bad("recordings.max_age", "%v: want 0 (no age limit) or at least 1m", a)
	}
	if r.Near < 0 || r.Near >= 1 || math.IsNaN(r.Near) {
		bad("recordings.near", "%v out of range 0..1 (a fraction of the threshold; 0: rejects only)", r.Near)
	}
	if r.Rate <= 0 || r.Rate > 1000 || math.IsNaN(r.Rate) {
		bad("recordings.rate", "%v out of range (0, 1000] per second", r.Rate)
	}
	if r.Dir != "" && r.Dataset != "" && (within(r.Dataset, r.Dir) || within(r.Dir, r.Dataset)) {
		bad("recordings.dataset", "%s and recordings.dir %s overlap: the quota would remove labelled frames", r.Dataset, r.Dir)
	}
	m := c.MQTT
	if m.Broker != "" {
		u, err := url.Parse(m.Broker)
		switch {
		case err != nil || u.Host == "" || u.Port() == "":
			bad("mqtt.broker", "%q: want tcp://host:port or ssl://host:port", m.Broker)
		case !slices.Contains([]string{"tcp", "ssl"}, u.Scheme):
			bad("mqtt.broker", "%q: scheme %q: want tcp or ssl", m.Broker, u.Scheme)
		case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
			bad("mqtt.broker", "%q: want tcp://host:port or ssl://host:port, no path or query", m.Broker)
		default:
			if n, err := strconv.Atoi(u.Port()); err != nil || n < 1 || n > 65535 {
				bad("mqtt.broker", "%q: port %q is not 1..65535", m.Broker, u.Port())
			}
		}
	}
	// Every string the publisher sends is an MQTT 3.1.1 UTF-8 string: checked here,
	// the broker would drop the connection at each CONNECT or PUBLISH, or the client
	// would cut it, with no word in either case.
	if id := m.ClientID; id != "" && (len(id) > 23 || strings.ContainsFunc(id, func(r rune) bool { return r < '!' || r > '~' })) {
		bad("mqtt.client_id", "%s: want 1..23 printable ASCII characters (what MQTT 3.1.1 brokers accept), or \"\" for adtrd and this machine's name", clip(id))
	}
	if t := m.Topic; t == "" || strings.ContainsAny(t, "+#") || strings.HasPrefix(t, "/") || strings.HasSuffix(t, "/") || strings.HasPrefix(t, "$") {
		bad("mqtt.topic", "%s: want a topic prefix like adtrd or plant/line3/adtrd (no +, #, $ first, leading or trailing /)", clip(t))
	} else if max := MQTTStringMax - len(MQTTLongestSuffix); len(t) > max {
		bad("mqtt.topic", "%s: MQTT allows %d bytes in a topic, %d with the suffix %s", clip(t), MQTTStringMax, max, MQTTLongestSuffix)
	} else if problem := mqttString(t); problem != "" {
		bad("mqtt.topic", "%s: %s", clip(t), problem)
	}
	// The username is not echoed: it may be half a secret.
	if u := m.Username; len(u) > MQTTStringMax {
		bad("mqtt.username", "%d bytes: MQTT allows %d", len(u), MQTTStringMax)
	} else if problem := mqttString(u); problem != "" {
		bad("mqtt.username", "%s", problem)
	}
	if m.Buffer < 1 || m.Buffer > 1_000_000 {
		bad("mqtt.buffer", "%d out of range 1..1000000", m.Buffer)
	}
	if f := m.PasswordFile; f != "" && files {
		// ReadSecret's 4 KiB is within MQTT's 65535 bytes for a password.
		if _, err := ReadSecret(f); err != nil {
			bad("mqtt.password_file", "%v", err)
		}
	}
}

// MQTTStringMax is the most bytes an MQTT 3.1.1 string (a topic, a client id, a
// username) or the password may have: its length is sent in two bytes.
const MQTTStringMax = 65535

// MQTTLongestSuffix is the longest suffix the publisher appends to mqtt.topic (its
// last will's topic); the mqtt package's tests hold its topics to it.
const MQTTLongestSuffix = "/availability"

// mqttString says what is wrong with the characters of s as an MQTT 3.1.1 UTF-8
// string, "" when nothing is: well-formed UTF-8, no U+0000, and neither control
// characters nor non-characters, which the standard says a string should not hold
// and brokers (mosquitto among them) answer by closing the connection.
func mqttString(s string) string {
	if !utf8.ValidString(s) {
		return "not UTF-8"
	}
	for i, r := range s {
		switch {
		case r == 0:
			return fmt.Sprintf("a NUL byte at byte %d", i)
		case r < 0x20 || r >= 0x7f && r <= 0x9f:
			return fmt.Sprintf("control character %U at byte %d", r, i)
		case r >= 0xfdd0 && r <= 0xfdef || r&0xfffe == 0xfffe:
			return fmt.Sprintf("non-character %U at byte %d", r, i)
		}
	}
	return ""
}

// clip quotes s for a message, cut to its first 40 bytes (a pasted blob must not
// become a 70,000-byte error line).
func clip(s string) string {
	const n = 40
	if len(s) <= n {
		return strconv.Quote(s)
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s... (%d bytes)", strconv.Quote(s[:cut]), len(s))
}

// within says whether path p is dir or inside it.
func within(p, dir string) bool {
	rel, err := filepath.Rel(filepath.Clean(dir), filepath.Clean(p))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// ErrSecretReadable: a token or password file that others can read.
var ErrSecretReadable = errors.New("readable by group or others (chmod 600)")

// ReadSecret reads a token or password file: one line, at most 4 KiB, readable by
// its owner only. The secret itself never appears in an error.
func ReadSecret(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, errors.Unwrap(err))
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s: not a regular file", path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s: mode %v: %w", path, st.Mode().Perm(), ErrSecretReadable)
	}
	b, err := safefile.Read(path, 4096)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	switch {
	case s == "":
		return "", fmt.Errorf("%s: empty", path)
	case strings.ContainsAny(s, "\r\n"):
		return "", fmt.Errorf("%s: more than one line", path)
	case len(s) < 16:
		return "", fmt.Errorf("%s: under 16 characters: too easy to guess", path)
	}
	return s, nil
}

func (c *Config) validateCamera(files bool, bad func(key, format string, args ...any)) {
	cam := c.Capture.Camera
	if cam.URI == "" {
		bad("capture.camera.uri", "missing: csi://N, v4l2:///dev/videoN, rtsp://host/path, gige://NAME or gst://<pipeline head>")
	} else if path, ok := cam.FilePath(); ok {
		if _, err := os.Stat(path); err != nil && files {
			bad("capture.camera.uri", "%s not found", path)
		}
	} else if _, err := cam.Spec(1, 1).Head(); err != nil {
		key := "capture.camera.uri"
		switch {
		case strings.Contains(err.Error(), "v4l2 format"):
			key = "capture.camera.v4l2.format"
		case strings.Contains(err.Error(), "rtsp transport"):
			key = "capture.camera.rtsp.transport"
		case strings.Contains(err.Error(), "gige feature"):
			key = "capture.camera.gige.features"
		case strings.Contains(err.Error(), "nvvidconv"):
			key = "capture.camera.converter"
		}
		bad(key, "%s", strings.TrimPrefix(err.Error(), spec.ErrURI.Error()+": "))
	}
	if (cam.Width == 0) != (cam.Height == 0) || cam.Width < 0 || cam.Height < 0 || cam.Width > 16384 || cam.Height > 16384 {
		bad("capture.camera.width", "%dx%d: give both width and height in 1..16384, or neither", cam.Width, cam.Height)
	}
	if cam.FPS < 0 || cam.FPS > 1000 || math.IsNaN(cam.FPS) {
		bad("capture.camera.fps", "%v out of range 0..1000", cam.FPS)
	}
	for _, d := range []struct {
		key    string
		v      Duration
		lo, hi time.Duration
	}{
		{"capture.camera.latency", cam.Latency, 0, 10 * time.Second},
		{"capture.camera.stall", cam.Stall, 0, time.Minute},
		{"capture.camera.first_frame", cam.FirstFrame, 0, 5 * time.Minute},
		{"capture.camera.backoff_min", cam.BackoffMin, 0, time.Minute},
		{"capture.camera.backoff_max", cam.BackoffMax, 0, 10 * time.Minute},
		{"capture.camera.rtsp.latency", cam.RTSP.Latency, 0, 10 * time.Second},
	} {
		if t := time.Duration(d.v); t < d.lo || t > d.hi {
			bad(d.key, "%v out of range %v..%v", t, d.lo, d.hi)
		}
	}
	if cam.BackoffMin != 0 && cam.BackoffMax != 0 && cam.BackoffMax < cam.BackoffMin {
		bad("capture.camera.backoff_max", "%v is below backoff_min %v", time.Duration(cam.BackoffMax), time.Duration(cam.BackoffMin))
	}
	if cam.Stall > 0 && time.Duration(cam.Stall) < 10*time.Millisecond {
		bad("capture.camera.stall", "%v: under 10ms every frame interval is a stall", time.Duration(cam.Stall))
	}
	if f := time.Duration(cam.FirstFrame); f > 0 && f < minFirstFrame {
		bad("capture.camera.first_frame", "%v: a camera pipeline takes longer than that to start (at least %v)", f, minFirstFrame)
	}
	// A camera slower than the stall time is lost between every two frames.
	stall := cmp.Or(time.Duration(cam.Stall), spec.DefaultStall)
	if fps, key := cameraRate(cam); fps > 0 && time.Duration(float64(time.Second)/fps) >= stall {
		bad("capture.camera.stall", "%v is not longer than the frame interval %v (%s %.4g frames/s): the camera would be lost between every two frames; set stall above %v",
			stall, time.Duration(float64(time.Second)/fps).Round(time.Millisecond), key, fps, time.Duration(float64(time.Second)/fps).Round(time.Millisecond))
	}
	if e := cam.GigE.Exposure; e < 0 || math.IsNaN(e) || e > 1e8 {
		bad("capture.camera.gige.exposure", "%v out of range 0..1e8 µs", e)
	}
	if math.IsNaN(cam.GigE.Gain) || math.Abs(cam.GigE.Gain) > 100 {
		bad("capture.camera.gige.gain", "%v out of range -100..100 dB", cam.GigE.Gain)
	}
}

// Roles lists every pin of the config with its key, outputs first.
func (c *Config) Roles() []Role {
	o, in := &c.Output, &c.Input
	return []Role{
		{"output.reject", o.Reject.Pin, false, PullNone}, {"output.alarm", o.Alarm, false, PullNone},
		{"output.ready", o.Ready, false, PullNone}, {"output.heartbeat", o.Heartbeat.Pin, false, PullNone},
		{"input.trigger", in.Trigger.Pin, true, in.Trigger.Pull}, {"input.encoder", in.Encoder.Pin, true, in.Encoder.Pull},
		{"input.confirm", in.Confirm.Pin, true, in.Confirm.Pull}, {"input.inhibit", in.Inhibit.Pin, true, in.Inhibit.Pull},
		{"input.alarm_reset", in.AlarmReset.Pin, true, in.AlarmReset.Pull},
	}
}

// Role is one pin and the key that configures it.
type Role struct {
	Key   string
	Pin   Pin
	Input bool
	Pull  Pull // inputs only
}

func (c *Config) validateLines(lines map[string]int, bad func(key, format string, args ...any)) {
	if d := c.Output.Reject.DelayCounts; d < 0 || d > 1<<30 {
		bad("output.reject.delay_counts", "%d out of range 0..%d", d, 1<<30)
	}
	if c.Output.Reject.DelayCounts > 0 && !c.Input.Encoder.Wired() {
		bad("output.reject.delay_counts", "a delay in encoder counts needs input.encoder")
	}
	if p := time.Duration(c.Output.Heartbeat.Period); p != 0 && (p < 10*time.Millisecond || p > time.Hour) {
		bad("output.heartbeat.period", "%v out of range 10ms..1h (0: off)", p)
	}
	if c.Output.Heartbeat.Wired() && c.Output.Heartbeat.Period == 0 {
		bad("output.heartbeat.period", "the heartbeat line is wired but its period is 0")
	}
	if d := time.Duration(c.Input.Trigger.Debounce); d < 0 || d > time.Second {
		bad("input.trigger.debounce", "%v out of range 0..1s", d)
	}
	if d := time.Duration(c.Input.Trigger.FrameBefore); d < 0 || d > 10*time.Second {
		bad("input.trigger.frame_before", "%v out of range 0..10s", d)
	}
	if d := time.Duration(c.Input.Trigger.FrameAfter); d < time.Millisecond || d > 10*time.Second {
		bad("input.trigger.frame_after", "%v out of range 1ms..10s", d)
	}
	if w := time.Duration(c.Input.Confirm.Window); w < time.Millisecond || w > time.Minute {
		bad("input.confirm.window", "%v out of range 1ms..1m", w)
	}
	if n := c.Tracking.InFlight; n < 1 || n > 4096 {
		bad("tracking.in_flight", "%d out of range 1..4096", n)
	}
	if d := time.Duration(c.Tracking.Spin); d < 0 || d > 10*time.Millisecond {
		bad("tracking.spin", "%v out of range 0..10ms", d)
	}
	seen := map[string]string{}
	for _, r := range c.Roles() {
		p := r.Pin
		switch {
		case p.Offset != nil && p.Line != "":
			bad(r.Key+".offset", "give line (a name) or chip and offset, not both")
		case p.Offset != nil && p.Chip == "":
			bad(r.Key+".offset", "an offset needs chip")
		case p.Offset != nil && *p.Offset < 0:
			bad(r.Key+".offset", "%d is negative", *p.Offset)
		case p.Chip != "" && p.Line == "" && p.Offset == nil:
			bad(r.Key+".chip", "which line? give line (a name) or offset")
		}
		if !p.Wired() {
			continue
		}
		if c.Output.Backend == BackendSim && r.Input {
			bad(r.Key, "the sim backend has no inputs; inputs need output.backend: gpiochip")
		}
		id := p.Chip + "/" + p.Line
		if p.Offset != nil {
			id = fmt.Sprintf("%s/#%d", p.Chip, *p.Offset)
		}
		if other, dup := seen[id]; dup {
			bad(r.Key, "same line as %s", other)
		}
		seen[id] = r.Key
	}
	if c.Output.Backend == BackendGPIOChip && !c.Output.Reject.Wired() {
		bad("output.reject", "the gpiochip backend needs the reject line (line: NAME, or chip: and offset:)")
	}
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// minFirstFrame is the least capture.camera.first_frame: gst-launch-1.0 alone takes
// 0.1-0.3 s to start here, a GigE or RTSP camera more.
const minFirstFrame = 500 * time.Millisecond

// framerateCaps finds a caps framerate (framerate=30/1, framerate=(fraction)1/5) in a
// gst:// head.
var framerateCaps = regexp.MustCompile(`framerate=(?:\(fraction\))?(\d+)/(\d+)`)

// cameraRate is the frame rate the config asks of the camera, and the key that asks
// it: capture.camera.fps, or the lowest framerate caps in a gst:// head; 0 when
// neither says (the camera's own rate).
func cameraRate(cam Camera) (float64, string) {
	if cam.FPS > 0 {
		return cam.FPS, "capture.camera.fps"
	}
	rate := 0.0
	for _, m := range framerateCaps.FindAllStringSubmatch(cam.URI, -1) {
		n, err1 := strconv.ParseFloat(m[1], 64)
		d, err2 := strconv.ParseFloat(m[2], 64)
		if err1 != nil || err2 != nil || n <= 0 || d <= 0 {
			continue
		}
		if r := n / d; rate == 0 || r < rate {
			rate = r
		}
	}
	return rate, "the framerate in capture.camera.uri"
}

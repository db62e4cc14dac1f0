// Package config is adtrd's YAML configuration: schema, defaults and strict validation
// that reports every problem at once, each with its key path and line.
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
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
	FailSafe  FailSafe `yaml:"fail_safe"`
	Log       Log      `yaml:"log"`
}

type Model struct {
	Path     string   `yaml:"path"`
	Metadata string   `yaml:"metadata"` // default: <path>.json
	Library  string   `yaml:"library"`  // libtensorflowlite_c.so; default: beside the binary, /usr/lib/adtrd, loader paths
	Threads  int      `yaml:"threads"`
	Delegate Delegate `yaml:"delegate"`
	GPU      GPU      `yaml:"gpu"`
	External External `yaml:"external"`
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
	Queue  int    `yaml:"queue"` // frames waiting for inference; when full, new frames are dropped
}

type Replay struct {
	Path string  `yaml:"path"` // a directory of .png/.jpg, or one image file
	Loop bool    `yaml:"loop"`
	FPS  float64 `yaml:"fps"` // 0: as fast as the pipeline takes them
	Fit  Fit     `yaml:"fit"`
}

type Output struct {
	Backend Backend `yaml:"backend"`
	SimCSV  string  `yaml:"sim_csv"` // simulated backend: also write every edge to this CSV
	Reject  Reject  `yaml:"reject"`
}

type Reject struct {
	Pulse    Duration `yaml:"pulse"`
	Delay    Duration `yaml:"delay"` // from the frame's capture time
	ActiveLo bool     `yaml:"active_low"`
}

type Log struct {
	Format LogFormat `yaml:"format"`
	Level  string    `yaml:"level"`
}

// Default is the configuration every file starts from.
func Default() Config {
	return Config{
		Model:    Model{Path: "models/demo/adtr.tflite", Threads: 2, Delegate: DelegateCPU, GPU: GPU{OnFailure: OnFailureFallback}},
		Capture:  Capture{Source: SourceReplay, Replay: Replay{Path: "models/demo/frames", Fit: FitResize}, Queue: 2},
		Output:   Output{Backend: BackendSim, Reject: Reject{Pulse: Duration(50 * time.Millisecond)}},
		FailSafe: FailSafeReject,
		Log:      Log{Format: LogText, Level: "info"},
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
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return Parse(path, b)
}

// Parse decodes b (named name in errors) onto the defaults and validates it.
func Parse(name string, b []byte) (Config, error) {
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
	base := filepath.Dir(name)
	cfg.resolve(base)
	cfg.validate(lines, errs)
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
	fields := map[string]int{}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		if tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]; tag != "" {
			fields[tag] = i
		}
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := join(prefix, k.Value)
		lines[key] = k.Line
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
		f := v.Field(idx)
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
		if err := val.Decode(f.Addr().Interface()); err != nil {
			errs.Problems = append(errs.Problems, Problem{val.Line, key, typeMessage(err, f.Type(), val)})
		}
	}
}

func typeMessage(err error, t reflect.Type, val *yaml.Node) string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("want %s, got %s %q", typeName(t), kindName(val), val.Value)
	}
	return err.Error()
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
	}
	return t.String()
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
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

func suggest(key string, fields map[string]int) string {
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
	abs(&c.Capture.Replay.Path)
	abs(&c.Output.SimCSV)
}

func (c *Config) validate(lines map[string]int, errs *Errors) {
	bad := func(key, format string, args ...any) {
		errs.Problems = append(errs.Problems, Problem{lines[key], key, fmt.Sprintf(format, args...)})
	}
	missing := func(key, path, what string) {
		if path == "" {
			bad(key, "required")
			return
		}
		if _, err := os.Stat(path); err != nil {
			bad(key, "%s %s not found", what, path)
		}
	}
	missing("model.path", c.Model.Path, "model")
	if c.Model.Path != "" {
		if _, err := os.Stat(c.Model.MetadataPath()); err != nil {
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
	if c.Model.Threads < 1 || c.Model.Threads > 64 {
		bad("model.threads", "%d out of range 1..64", c.Model.Threads)
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
	if c.Capture.Source == SourceReplay {
		missing("capture.replay.path", c.Capture.Replay.Path, "replay path")
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
	if _, err := parseLevel(c.Log.Level); err != nil {
		bad("log.level", "%v", err)
	}
}

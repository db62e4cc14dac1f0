// Package model reads the metadata JSON the toolkit writes beside every graph and
// checks it against the graph itself, so nothing model-specific is hard-coded.
package model

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/adtrd/adtrd/internal/safefile"
	"github.com/adtrd/adtrd/score"
)

// ErrMetadata reports metadata that is missing, malformed or disagrees with the graph.
var ErrMetadata = errors.New("model metadata")

// ErrModel reports a model file (the graph) that cannot be read as one: missing,
// unreadable, empty, too large, or not a regular file (a device, a FIFO, a folder).
var ErrModel = errors.New("model")

// Format is the only metadata format this daemon reads.
const Format = "adtr-model/1"

// Metadata is the part of <graph>.json the daemon uses.
type Metadata struct {
	Format       string `json:"format"`
	ModelVersion string `json:"model_version"`
	SHA256       string `json:"sha256"`
	Input        struct {
		Width    int    `json:"width"`
		Height   int    `json:"height"`
		Channels int    `json:"channels"`
		DType    string `json:"dtype"`
		Colour   string `json:"colour"`
	} `json:"input"`
	Output struct {
		Shape     []int   `json:"shape"`
		DType     string  `json:"dtype"`
		Scale     float64 `json:"scale"`
		ZeroPoint int32   `json:"zero_point"`
	} `json:"output"`
	Stride     int     `json:"stride"`
	Grid       []int   `json:"grid"`
	Upsample   string  `json:"upsample"`
	PoolKernel int     `json:"pool_kernel"`
	Threshold  float64 `json:"threshold"`
	// NormalScores are the held-out good images' scores on this graph (export.py);
	// Count 0: not known (older or hand-written metadata).
	NormalScores struct {
		Count int     `json:"count"`
		Mean  float64 `json:"mean"`
		Std   float64 `json:"std"`
		Min   float64 `json:"min"`
		Max   float64 `json:"max"`
	} `json:"normal_scores"`
	// Engines are the engines the graph was exported for, by model.engine name, each
	// with the score its export computed on the reference frame (ReferenceFrame);
	// absent in older exports.
	Engines      map[string]EngineReference `json:"-"` // decoded apart (engines), errors naming the engine
	Quantisation struct {
		// Rounding is RoundingExact for graphs whose int8 requantisations round alike on
		// every CPU path (training/adtr/exact.py); empty for older exports.
		Rounding string `json:"rounding"`
	} `json:"quantisation"`
}

// EngineReference is one engine's entry in the metadata's "engines".
type EngineReference struct {
	// Score is the image score of ReferenceFrame on this engine at export.
	Score *float64 `json:"reference_score"`
	// Tolerance is how far another run of this engine may score it (0: exactly, up to
	// the scorer's float rounding, ReferenceSlack).
	Tolerance float64 `json:"tolerance"`
}

// ReferenceSlack is the score difference float rounding alone explains (the toolkit
// scores in float64, the daemon in float32); one map step is about 0.06 of score.
const ReferenceSlack = 1e-3

// ReferenceFrame fills px (size*size*3 bytes, RGB) with the reference frame, the one
// the toolkit's export scores per engine (training/adtr/reference.py): a 16x16
// checkerboard, 100+10c on the squares where (x>>4)+(y>>4) is even, else 160-10c.
func ReferenceFrame(px []byte, size int) {
	for y := range size {
		for x := range size {
			even := ((x>>4)+(y>>4))%2 == 0
			for c := range 3 {
				v := 160 - 10*c
				if even {
					v = 100 + 10*c
				}
				px[(y*size+x)*3+c] = byte(v)
			}
		}
	}
}

// RoundingExact marks a graph that gives the same int8 map on amd64, arm64 and the toolkit.
const RoundingExact = "exact"

// Exact says whether the graph was exported with exact int8 rounding.
func (m *Metadata) Exact() bool { return m.Quantisation.Rounding == RoundingExact }

// Upsample is the only rule the scorer implements.
const Upsample = "bilinear-align-corners"

// Bounds on what a model's files may be: a path naming a device would otherwise be
// read until memory runs out. The demo graph is 3 MB; the paper preset's about 30.
const (
	MaxMetadataBytes = 1 << 20
	MaxGraphBytes    = 1 << 30
)

// Load reads and checks metadata on its own (shapes that make sense, known rules).
func Load(path string) (*Metadata, error) {
	b, err := safefile.Read(path, MaxMetadataBytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMetadata, err)
	}
	return Parse(path, b)
}

// Parse decodes and checks metadata bytes; path names them in errors. It touches no
// file (FuzzParse).
func Parse(path string, b []byte) (*Metadata, error) {
	var m Metadata
	if err := json.Unmarshal(b, &m); err != nil {
		// Go's own text names the Go type ("struct { Count int ... }"): say the JSON's.
		return nil, typeError(path, "", err)
	}
	if err := m.decodeEngines(path, b); err != nil {
		return nil, err
	}
	// null, or a missing value, reads as 0: a held-out score of 0 would be believed.
	var present struct {
		NormalScores *struct {
			Min, Mean, Max, Std *float64
		} `json:"normal_scores"`
		Stride json.RawMessage `json:"stride"`
		// The configuration the export wrote beside the top-level fields it derived
		// from it: the threshold and normal scores were computed with these.
		Model *struct {
			InputSize  *int `json:"input_size"`
			Stride     *int `json:"stride"`
			PoolKernel *int `json:"pool_kernel"`
		} `json:"model"`
	}
	if json.Unmarshal(b, &present) == nil && present.NormalScores != nil && m.NormalScores.Count != 0 {
		n := present.NormalScores
		for _, f := range []struct {
			name string
			v    *float64
		}{{"min", n.Min}, {"mean", n.Mean}, {"max", n.Max}, {"std", n.Std}} {
			if f.v == nil {
				return nil, fmt.Errorf("%w: %s: normal_scores: %s missing or null (count %d)", ErrMetadata, path, f.name, m.NormalScores.Count)
			}
		}
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrMetadata, path, fmt.Sprintf(format, args...))
	}
	switch {
	case m.Format != Format:
		return nil, bad("format %q, want %q", m.Format, Format)
	case m.Input.Width <= 0 || m.Input.Height <= 0 || m.Input.Width != m.Input.Height:
		return nil, bad("input %dx%d: want a positive square size", m.Input.Width, m.Input.Height)
	case m.Input.Channels != 3:
		return nil, bad("input has %d channels, want 3 (RGB)", m.Input.Channels)
	case len(m.Grid) != 2 || m.Grid[0] != m.Grid[1] || m.Grid[0] <= 0:
		return nil, bad("grid %v: want a positive square grid", m.Grid)
	case m.Stride < 0 || (m.Stride > 0 && m.Grid[0]*m.Stride != m.Input.Width):
		// The scorer upsamples the grid to the input: a grid that is not the input over
		// the stride means the metadata describes another graph. (0: older metadata
		// without a stride.)
		return nil, bad("stride %d with grid %v: the grid times the stride must be the input width %d", m.Stride, m.Grid, m.Input.Width)
	case len(m.Output.Shape) != 0 && !slices.Equal(m.Output.Shape, []int{1, m.Grid[0], m.Grid[1]}):
		return nil, bad("output shape %v disagrees with grid %v (want [1 %d %d])", m.Output.Shape, m.Grid, m.Grid[0], m.Grid[1])
	case m.Upsample != Upsample:
		return nil, bad("upsample %q: this daemon implements %q", m.Upsample, Upsample)
	case m.PoolKernel <= 0 || m.PoolKernel > m.Input.Width:
		return nil, bad("pool_kernel %d outside 1..%d", m.PoolKernel, m.Input.Width)
	case !(m.Threshold > 0) || math.IsInf(m.Threshold, 0):
		return nil, bad("threshold %v: want a positive number", m.Threshold)
	case m.Input.DType != "uint8" && m.Input.DType != "float32":
		return nil, bad("input dtype %q: want uint8 or float32", m.Input.DType)
	case m.Output.DType != "int8" && m.Output.DType != "float32":
		return nil, bad("output dtype %q: want int8 or float32", m.Output.DType)
	case m.Output.DType == "int8" && (!(m.Output.Scale > 0) || m.Output.Scale*255 > math.MaxFloat32 || float32(m.Output.Scale) == 0):
		// The scorer dequantises in float32: a scale it cannot hold, or one whose
		// 255 steps overflow it, gives a map of zeros or infinities.
		return nil, bad("output scale %v: an int8 map needs a positive scale that float32 holds, 255 steps included", m.Output.Scale)
	case m.Output.DType == "int8" && (m.Output.ZeroPoint < math.MinInt8 || m.Output.ZeroPoint > math.MaxInt8):
		return nil, bad("output zero_point %d outside the int8 range -128..127", m.Output.ZeroPoint)
	case m.NormalScores.Count < 0:
		return nil, bad("normal_scores: count %d: want the number of held-out good images scored (0: not known)", m.NormalScores.Count)
	case len(m.SHA256) != 64:
		return nil, bad("sha256 %q is not a SHA-256", m.SHA256)
	}
	// A stride of 0 or null is no stride; metadata older than the key simply lacks it.
	if len(present.Stride) > 0 && m.Stride <= 0 {
		return nil, bad("stride %s: want a positive number (or no stride key)", present.Stride)
	}
	if c := present.Model; c != nil {
		for _, f := range []struct {
			key       string
			saved     *int
			top       int
			topKey    string
			checkable bool
		}{
			{"input_size", c.InputSize, m.Input.Width, "input.width", true},
			{"stride", c.Stride, m.Stride, "stride", m.Stride > 0},
			{"pool_kernel", c.PoolKernel, m.PoolKernel, "pool_kernel", true},
		} {
			if f.saved != nil && f.checkable && *f.saved != f.top {
				return nil, bad("%s %d disagrees with model.%s %d, the value the export computed the threshold and normal scores with: an edited metadata; export again instead",
					f.topKey, f.top, f.key, *f.saved)
			}
		}
	}
	for name, e := range m.Engines {
		lo, hi, why := m.ScoreRange()
		switch {
		case name == "":
			return nil, bad("engines: an engine with no name")
		case len(name) > 32 || strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789_") != "":
			return nil, bad("engines: %.40q is not an engine's name (model.engine: lowercase letters, digits, _)", name)
		case e.Score == nil:
			return nil, bad("engines.%s: reference_score missing or null", name)
		case math.IsNaN(*e.Score) || *e.Score < lo || *e.Score > hi:
			return nil, bad("engines.%s: reference_score %s: outside the scores the map can give, %s..%s (%s)", name, Num(*e.Score), Num(lo), Num(hi), why)
		case !(e.Tolerance >= 0) || math.IsInf(e.Tolerance, 0):
			return nil, bad("engines.%s: tolerance %v: want a finite number, 0 or more", name, e.Tolerance)
		}
	}
	if n := m.NormalScores; n.Count > 0 {
		lo, hi, why := m.ScoreRange()
		// The spread of n scores within [min, max]: the population standard deviation
		// is at least (max-min)/sqrt(2n) (two at the ends, the rest at the mean) and
		// the sample one at most (max-min)/2*sqrt(n/(n-1)) <= max-min.
		spread := n.Max - n.Min
		least := spread / math.Sqrt(2*float64(n.Count))
		switch {
		case !(n.Min <= n.Mean && n.Mean <= n.Max):
			return nil, bad("normal_scores: count %d, min %v, mean %v, max %v: want min <= mean <= max", n.Count, n.Min, n.Mean, n.Max)
		case !(n.Std >= 0) || math.IsInf(n.Std, 0):
			return nil, bad("normal_scores: std %v: want a finite number, 0 or more", n.Std)
		case n.Min < lo || n.Max > hi:
			return nil, bad("normal_scores: min %s, max %s: outside the scores the map can give, %s..%s (%s)", Num(n.Min), Num(n.Max), Num(lo), Num(hi), why)
		case n.Count == 1 && (spread != 0 || n.Std != 0):
			return nil, bad("normal_scores: count 1 with min %v, max %v, std %v: one score has no spread", n.Min, n.Max, n.Std)
		case n.Std > spread*(1+1e-9) || n.Std < least*(1-1e-6):
			return nil, bad("normal_scores: std %v: %d scores within %s..%s have a standard deviation in %.4g..%.4g", n.Std, n.Count, Num(n.Min), Num(n.Max), least, spread)
		}
	} else if n.Min != 0 || n.Mean != 0 || n.Max != 0 || n.Std != 0 {
		return nil, bad("normal_scores: count 0 (not known) with scores given: set count to the number of images scored")
	}
	return &m, nil
}

// decodeEngines reads "engines" entry by entry, so that a wrong type names its engine
// (engines.tflite.reference_score), which Go's decoder of a map leaves out.
func (m *Metadata) decodeEngines(path string, b []byte) error {
	var raw struct {
		Engines map[string]json.RawMessage `json:"engines"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return typeError(path, "", err)
	}
	if raw.Engines == nil {
		return nil
	}
	m.Engines = make(map[string]EngineReference, len(raw.Engines))
	for name, rb := range raw.Engines {
		var e EngineReference
		if err := json.Unmarshal(rb, &e); err != nil {
			return typeError(path, "engines."+name, err)
		}
		m.Engines[name] = e
	}
	return nil
}

// typeError says a JSON decoding error in the metadata's words: the field's path
// under prefix, and the JSON kind found and wanted.
func typeError(path, prefix string, err error) error {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("%w: %s: malformed JSON (%v)", ErrMetadata, path, err)
	}
	field := te.Field
	switch {
	case prefix != "" && field != "":
		field = prefix + "." + field
	case prefix != "":
		field = prefix
	case field == "":
		field = "the metadata"
	}
	if strings.HasPrefix(te.Value, "number") && jsonKind(te.Type.Kind()) == "a number" {
		return fmt.Errorf("%w: %s: %s: %s is out of a float64's range", ErrMetadata, path, field, strings.TrimPrefix(te.Value, "number "))
	}
	return fmt.Errorf("%w: %s: %s is a JSON %s, want %s", ErrMetadata, path, field, te.Value, jsonKind(te.Type.Kind()))
}

// Num formats a score or threshold for a message: 4 decimals (one map step is about
// 0.06 of score), or 6 significant digits where that would print dozens of them
// (1e308 printed 300).
func Num(x float64) string {
	if math.Abs(x) < 1e9 {
		return strconv.FormatFloat(x, 'f', 4, 64)
	}
	return strconv.FormatFloat(x, 'g', 6, 64)
}

// ScoreParams are the scorer's parameters for this model.
// A float32 map is real-valued already (scale 1, zero point 0).
func (m *Metadata) ScoreParams() score.Params {
	if m.Output.DType == "float32" {
		return score.Params{Grid: m.Grid[0], Size: m.Input.Width, Kernel: m.PoolKernel, Scale: 1}
	}
	return score.Params{Grid: m.Grid[0], Size: m.Input.Width, Kernel: m.PoolKernel, Scale: float32(m.Output.Scale), ZeroPoint: m.Output.ZeroPoint}
}

// ScoreRange is the lowest and highest image score the graph can produce, and how
// that is known. The scorer's upsampling and pooling weigh map values with weights
// of at least 0, and float rounding keeps that monotone: no map scores above the one
// with every value at its top, so for an int8 map the bounds are the scores of the
// two constant maps at -128 and 127 (the scorer's own float32 arithmetic, a few
// millionths off the exact step). A float32 map is bounded by what float32 holds (a
// larger value is an infinity, which the scorer refuses as a failure).
func (m *Metadata) ScoreRange() (lo, hi float64, why string) {
	if m.Output.DType == "float32" {
		return -math.MaxFloat32, math.MaxFloat32, "a float32 map's largest value"
	}
	p := m.ScoreParams()
	why = fmt.Sprintf("the int8 map's top step: %g x (127 - %d)", m.Output.Scale, m.Output.ZeroPoint)
	step := func(q int32) float64 { return float64((float32(q) - float32(p.ZeroPoint)) * p.Scale) }
	lo, hi = step(math.MinInt8), step(math.MaxInt8)
	sc, err := score.New(p)
	if err != nil { // Parse refuses such parameters; the exact steps are then the bounds
		return lo, hi, why
	}
	constant := func(q int8, exact float64) float64 {
		raw := make([]int8, p.Grid*p.Grid)
		for i := range raw {
			raw[i] = q
		}
		if s, err := sc.ScoreInt8(raw); err == nil {
			return s
		}
		return exact
	}
	return constant(math.MinInt8, lo), constant(math.MaxInt8, hi), why
}

// ErrUnreachable reports a threshold no score of the model can exceed: every part,
// defects included, would pass.
var ErrUnreachable = errors.New("no score can exceed it")

// far: a threshold this many times the highest held-out good score is called out
// even where the map's range allows it (a float32 map's range is no bound at all).
// The demo's defects score 1.7 to 2.8 times its good parts; its int8 top is 3.2x.
const far = 10

// CheckThreshold says what threshold t (a part is rejected when its score is above
// t) does with this model: an ErrUnreachable error when no score can exceed it; a
// warning when the held-out good images the metadata knows scored above it (good
// parts would be rejected), or when it is far above all of them. The texts name
// neither the key nor its file: the caller does.
func (m *Metadata) CheckThreshold(t float64) (warning string, err error) {
	_, hi, why := m.ScoreRange()
	if !(t < hi) { // NaN too
		return "", fmt.Errorf("%v: %w: the model's scores reach %s at most (%s); every part would pass, defects too", t, ErrUnreachable, Num(hi), why)
	}
	n := m.NormalScores
	switch {
	case n.Count == 0:
	case t < n.Min:
		return fmt.Sprintf("%v is below every held-out good image's score (%d scored %s..%s): every part would be rejected", t, n.Count, Num(n.Min), Num(n.Max)), nil
	case t < n.Max:
		return fmt.Sprintf("%v is below the highest held-out good image's score %s (mean %s of %d): good parts would be rejected", t, Num(n.Max), Num(n.Mean), n.Count), nil
	case n.Max > 0 && t > far*n.Max:
		return fmt.Sprintf("%v is over %dx the highest held-out good image's score %s: only gross defects would be rejected", t, far, Num(n.Max)), nil
	}
	return "", nil
}

// ReadGraph reads a model file: a regular, non-empty file of at most MaxGraphBytes.
// Its errors are ErrModel ("model: /dev/zero: not a regular file (a character
// device)"): the metadata beside it may be fine.
func ReadGraph(path string) ([]byte, error) {
	b, err := safefile.Read(path, MaxGraphBytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrModel, err)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: %s: empty file", ErrModel, path)
	}
	return b, nil
}

// FileSHA256 hashes a model file read by ReadGraph.
func FileSHA256(path string) (string, error) {
	b, err := ReadGraph(path)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// CheckGraphFile hashes the model file graph and compares it with the metadata's
// sha256: ErrModel when the file cannot be read, ErrMetadata when they disagree.
func (m *Metadata) CheckGraphFile(graph string) (string, error) {
	sum, err := FileSHA256(graph)
	if err != nil {
		return "", err
	}
	return sum, m.checkSum(graph, sum)
}

// CheckGraph is CheckGraphFile for a graph already read into data (named graph).
func (m *Metadata) CheckGraph(graph string, data []byte) (string, error) {
	h := sha256.Sum256(data)
	sum := hex.EncodeToString(h[:])
	return sum, m.checkSum(graph, sum)
}

func (m *Metadata) checkSum(graph, sum string) error {
	if sum != m.SHA256 {
		return fmt.Errorf("%w: %s: sha256 %s.. but its metadata describes %s.. (model and metadata from different exports, or the file is cut short?)", ErrMetadata, graph, sum[:12], short(m.SHA256))
	}
	return nil
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// TensorInfo is what the engine reports about a tensor.
type TensorInfo struct {
	Type      string
	Shape     []int
	Scale     float64
	ZeroPoint int32
}

// CheckTensors compares the interpreter's tensors with the metadata. Errors
// (ErrMetadata) name the graph and the metadata file: which of the two is wrong is the
// operator's call (a graph swapped under old metadata, or an edited metadata).
func (m *Metadata) CheckTensors(graph, metaPath string, in, out TensorInfo) error {
	wantIn := []int{1, m.Input.Height, m.Input.Width, m.Input.Channels}
	if in.Type != m.Input.DType || !slices.Equal(in.Shape, wantIn) {
		return fmt.Errorf("%w: %s: input tensor is %s%v, its metadata %s says %s%v", ErrMetadata, graph, in.Type, in.Shape, metaPath, m.Input.DType, wantIn)
	}
	wantOut := []int{1, m.Grid[0], m.Grid[1]}
	if out.Type != m.Output.DType || !slices.Equal(out.Shape, wantOut) {
		return fmt.Errorf("%w: %s: output tensor is %s%v, its metadata %s says %s%v", ErrMetadata, graph, out.Type, out.Shape, metaPath, m.Output.DType, wantOut)
	}
	if out.Type == "int8" && (math.Abs(out.Scale-m.Output.Scale) > 1e-6*math.Abs(m.Output.Scale) || out.ZeroPoint != m.Output.ZeroPoint) {
		return fmt.Errorf("%w: %s: output quantisation is (%g, %d), its metadata %s says (%g, %d)", ErrMetadata, graph, out.Scale, out.ZeroPoint, metaPath, m.Output.Scale, m.Output.ZeroPoint)
	}
	return nil
}

// jsonKind names the JSON value a Go kind is decoded from.
func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return k.String()
}

package evaluate

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/adtrd/adtrd/capture"
	"github.com/adtrd/adtrd/daemon"
)

// Report is a model measured on a folder. Scores are in Find's order.
type Report struct {
	Model       string             `json:"model"`
	ModelSHA256 string             `json:"model_sha256"`
	Good        int                `json:"good"`
	Defective   int                `json:"defective"`
	ImageAUROC  float64            `json:"image_auroc"`
	PixelAUROC  float64            `json:"pixel_auroc"`
	PerKind     map[string]float64 `json:"per_kind_image_auroc"` // each defect kind against the good images
	Confusion   Confusion          `json:"confusion"`
	Scores      []Scored           `json:"scores"`
}

// Scored is one image's score.
type Scored struct {
	Path  string  `json:"path"`
	Kind  string  `json:"kind"`
	Score float64 `json:"score"`
}

// Run scores every item with gen (the daemon's engine, scorer and threshold; images
// decoded and fitted as the daemon's replay does with fit) and measures it. Pixel
// AUROC compares each image's pixel map with its mask brought to the model's input
// size the same way (white above 127 is defect), as the toolkit does; it holds every
// pixel map in memory (200 KB per image at 224x224).
func Run(gen *daemon.Generation, items []Item, fit capture.Fit) (Report, error) {
	size := capture.Size{W: gen.Meta.Input.Width, H: gen.Meta.Input.Height}
	r := Report{Model: gen.Config.Model.Path, ModelSHA256: gen.ModelSHA, PerKind: map[string]float64{}}
	scores, labels := make([]float64, len(items)), make([]bool, len(items))
	var pixels []float32
	var truth []bool
	for i, it := range items {
		s, err := scoreOne(gen, it.Path, size, fit)
		if err != nil {
			return Report{}, err
		}
		scores[i], labels[i] = s, it.Kind != Good
		r.Scores = append(r.Scores, Scored{it.Path, it.Kind, s})
		pixels = append(pixels, gen.Scorer.Map()...)
		if it.Kind == Good {
			r.Good++
			truth = append(truth, make([]bool, size.W*size.H)...)
			continue
		}
		r.Defective++
		m, err := capture.LoadRGB(it.Mask, size, fit)
		if err != nil {
			return Report{}, fmt.Errorf("mask: %w", err)
		}
		for k := 0; k < len(m); k += 3 {
			truth = append(truth, m[k] > 127)
		}
	}
	var err error
	if r.ImageAUROC, err = AUROC(scores, labels); err != nil {
		return Report{}, err
	}
	if r.PixelAUROC, err = AUROC(pixels, truth); err != nil {
		return Report{}, fmt.Errorf("pixel %w", err)
	}
	kinds := map[string]bool{}
	for _, it := range items {
		if it.Kind != Good {
			kinds[it.Kind] = true
		}
	}
	names := make([]string, 0, len(kinds))
	for k := range kinds {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		var s []float64
		var l []bool
		for i, it := range items {
			if it.Kind == Good || it.Kind == k {
				s, l = append(s, scores[i]), append(l, it.Kind == k)
			}
		}
		if r.PerKind[k], err = AUROC(s, l); err != nil {
			return Report{}, fmt.Errorf("%s: %w", k, err)
		}
	}
	r.Confusion = Confuse(scores, labels, gen.Threshold)
	return r, nil
}

// ScoreImages scores each image with gen, decoded and fitted as the daemon's replay does.
func ScoreImages(gen *daemon.Generation, paths []string, fit capture.Fit) ([]float64, error) {
	size := capture.Size{W: gen.Meta.Input.Width, H: gen.Meta.Input.Height}
	out := make([]float64, len(paths))
	for i, p := range paths {
		s, err := scoreOne(gen, p, size, fit)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

// scoreOne runs one image through gen; the scorer's Map then holds its pixel map.
func scoreOne(gen *daemon.Generation, path string, size capture.Size, fit capture.Fit) (float64, error) {
	px, err := capture.LoadRGB(path, size, fit)
	if err != nil {
		return 0, err
	}
	copy(gen.Engine.Input(), px)
	if err := gen.Engine.Invoke(); err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	s, err := gen.Score(gen.Engine.Output())
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// ReportKeys lists the key paths of a JSON report, sorted: nested keys joined by ".",
// array elements as "[]", and the per-kind map's keys (defect kinds, which are data)
// as "<kind>".
func ReportKeys(b []byte) ([]string, error) {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, sub := range v {
				if prefix == "per_kind_image_auroc" {
					k = "<kind>"
				}
				key := k
				if prefix != "" {
					key = prefix + "." + k
				}
				seen[key] = true
				walk(key, sub)
			}
		case []any:
			for _, sub := range v {
				walk(prefix+"[]", sub)
			}
		}
	}
	walk("", v)
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys, nil
}

// Package evaluate measures a deployed model on a labelled folder (MVTec AD layout):
// image and pixel AUROC, AUROC per defect kind and the confusion at a threshold.
package evaluate

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/adtrd/adtrd/capture"
)

// ErrLayout reports a folder that is not a usable MVTec-layout test split.
var ErrLayout = errors.New("not an MVTec-layout folder")

// Good is the kind of defect-free images.
const Good = "good"

// Item is one labelled image: Kind is Good or a defect kind; Mask (defects only) is
// its ground-truth mask, white where the defect is.
type Item struct {
	Path, Kind, Mask string
}

// Find lists the images of an MVTec-layout folder, as the toolkit's Dataset.test does:
// DIR/test/<kind>/*.png|jpg (or DIR/<kind>/ when DIR has no test/), with masks at
// DIR/ground_truth/<kind>/<stem>_mask.png for every kind but good. Kinds and files
// are sorted by name. A defect without its mask is an error naming both.
func Find(dir string) ([]Item, error) {
	root, test := dir, filepath.Join(dir, "test")
	if fi, err := os.Stat(test); err != nil || !fi.IsDir() {
		test = dir
	}
	if fi, err := os.Stat(filepath.Join(test, Good)); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%w: %s: no %s/ folder (want %s/test/good/ or %s/good/)", ErrLayout, dir, Good, dir, dir)
	}
	entries, err := os.ReadDir(test)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrLayout, err)
	}
	var items []Item
	for _, e := range entries {
		if !e.IsDir() || e.Name() == "ground_truth" || e.Name() == "train" {
			continue
		}
		kind := e.Name()
		paths, err := capture.ListImages(filepath.Join(test, kind))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrLayout, err)
		}
		for _, p := range paths {
			it := Item{Path: p, Kind: kind}
			if kind != Good {
				stem := strings.TrimSuffix(filepath.Base(p), filepath.Ext(p))
				it.Mask = filepath.Join(root, "ground_truth", kind, stem+"_mask.png")
				if _, err := os.Stat(it.Mask); err != nil {
					return nil, fmt.Errorf("%w: %s: mask missing for %s", ErrLayout, it.Mask, p)
				}
			}
			items = append(items, it)
		}
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i].Kind < items[j].Kind })
	var good, bad int
	for _, it := range items {
		if it.Kind == Good {
			good++
		} else {
			bad++
		}
	}
	if good == 0 || bad == 0 {
		return nil, fmt.Errorf("%w: %s: %d good and %d defective images; AUROC needs both", ErrLayout, dir, good, bad)
	}
	return items, nil
}

// AUROC is the area under the ROC curve of scores (higher = more anomalous) against
// labels (true = anomalous): the Mann-Whitney U statistic over positives x negatives,
// ties counted one half, which is what scikit-learn's roc_auc_score computes. It
// needs at least one of each label.
func AUROC[S float32 | float64](scores []S, labels []bool) (float64, error) {
	if len(scores) != len(labels) {
		return 0, fmt.Errorf("auroc: %d scores, %d labels", len(scores), len(labels))
	}
	idx := make([]int32, len(scores))
	for i := range idx {
		idx[i] = int32(i)
		if math.IsNaN(float64(scores[i])) {
			return 0, fmt.Errorf("auroc: score %d is NaN", i)
		}
	}
	slices.SortFunc(idx, func(a, b int32) int {
		switch {
		case scores[a] < scores[b]:
			return -1
		case scores[a] > scores[b]:
			return 1
		}
		return 0
	})
	// Walk groups of equal scores: each positive beats every negative below its group
	// and ties half of the negatives in it.
	var pos, neg, negBelow, u float64
	for i := 0; i < len(idx); {
		j := i
		var p, n float64
		for ; j < len(idx) && scores[idx[j]] == scores[idx[i]]; j++ {
			if labels[idx[j]] {
				p++
			} else {
				n++
			}
		}
		u += p * (negBelow + n/2)
		negBelow += n
		pos, neg = pos+p, neg+n
		i = j
	}
	if pos == 0 || neg == 0 {
		return 0, fmt.Errorf("auroc: %v positives and %v negatives; need both", pos, neg)
	}
	return u / (pos * neg), nil
}

// Confusion counts decisions at a threshold: a score above it is a reject. Its JSON
// names are snake_case like the rest of `eval --json` (testdata/report-keys.golden).
type Confusion struct {
	Threshold    float64 `json:"threshold"`
	TruePositive int     `json:"true_positives"` // rejected defects
	Escapes      int     `json:"escapes"`        // passed defects
	FalseRejects int     `json:"false_rejects"`  // rejected good parts
	TrueNegative int     `json:"true_negatives"` // passed good parts
}

// FalseRejectRate is false rejects / good parts (0 with none).
func (c Confusion) FalseRejectRate() float64 {
	return ratio(c.FalseRejects, c.FalseRejects+c.TrueNegative)
}

// EscapeRate is escapes / defective parts (0 with none).
func (c Confusion) EscapeRate() float64 { return ratio(c.Escapes, c.Escapes+c.TruePositive) }

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Confuse counts scores against labels at threshold.
func Confuse(scores []float64, labels []bool, threshold float64) Confusion {
	c := Confusion{Threshold: threshold}
	for i, s := range scores {
		switch reject := s > threshold; {
		case labels[i] && reject:
			c.TruePositive++
		case labels[i]:
			c.Escapes++
		case reject:
			c.FalseRejects++
		default:
			c.TrueNegative++
		}
	}
	return c
}

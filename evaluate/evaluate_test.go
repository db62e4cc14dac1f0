package evaluate_test

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/adtrd/adtrd/evaluate"
	"github.com/adtrd/adtrd/internal/testlib"
)

// AUROC equals scikit-learn's roc_auc_score (the toolkit's venv) to 1e-12 on scores
// with many ties, few positives, and on the edge cases.
func TestAUROCEqualsScikitLearn(t *testing.T) {
	py := testlib.Python(t)
	rng := rand.New(rand.NewPCG(1, 2))
	type set struct {
		Scores []float64 `json:"scores"`
		Labels []bool    `json:"labels"`
	}
	var sets []set
	for _, tc := range []struct {
		n      int
		p      float64 // share of positives
		digits int     // scores rounded to this many decimals: ties
	}{
		{1000, 0.3, 1}, // many ties
		{500, 0.02, 3}, // few positives
		{200, 0.5, 6},  // nearly no ties
		{50, 0.5, 0},   // almost all tied
	} {
		var s set
		for range tc.n {
			pos := rng.Float64() < tc.p
			v := rng.NormFloat64()
			if pos {
				v += 1
			}
			f := math.Pow(10, float64(tc.digits))
			s.Scores, s.Labels = append(s.Scores, math.Round(v*f)/f), append(s.Labels, pos)
		}
		s.Labels[0], s.Labels[1] = true, false // both classes, whatever the draw
		sets = append(sets, s)
	}
	in := filepath.Join(t.TempDir(), "sets.json")
	b, _ := json.Marshal(sets)
	os.WriteFile(in, b, 0o644)
	out, err := exec.Command(py, "-c", `import json, sys
from sklearn.metrics import roc_auc_score
print(json.dumps([roc_auc_score(s["labels"], s["scores"]) for s in json.load(open(sys.argv[1]))]))`, in).Output()
	if err != nil {
		t.Fatalf("scikit-learn: %v", err)
	}
	var want []float64
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatalf("scikit-learn output %q: %v", out, err)
	}
	for i, s := range sets {
		got, err := evaluate.AUROC(s.Scores, s.Labels)
		if err != nil || math.Abs(got-want[i]) > 1e-12 {
			t.Errorf("set %d: AUROC %v (%v), scikit-learn %v", i, got, err, want[i])
		}
	}
	// one class only, NaN and mismatched lengths are errors, not numbers
	for _, bad := range []struct {
		s []float64
		l []bool
	}{{[]float64{1, 2}, []bool{true, true}}, {[]float64{math.NaN(), 1}, []bool{true, false}}, {[]float64{1}, []bool{true, false}}} {
		if v, err := evaluate.AUROC(bad.s, bad.l); err == nil {
			t.Errorf("AUROC(%v, %v) = %v, want an error", bad.s, bad.l, v)
		}
	}
}

// Find reads the MVTec layout as the toolkit's Dataset.test does, and refuses by name
// what cannot be evaluated.
func TestFind(t *testing.T) {
	write := func(root string, files ...string) {
		for _, f := range files {
			p := filepath.Join(root, f)
			os.MkdirAll(filepath.Dir(p), 0o755)
			b, _ := os.ReadFile(testlib.Demo("frames", "000_good.png"))
			os.WriteFile(p, b, 0o644)
		}
	}
	for i, tc := range []struct {
		files []string
		n     int  // images found
		bad   bool // ErrLayout
	}{
		// test/ with good, one kind and its mask
		{[]string{"test/good/a.png", "test/crack/b.png", "ground_truth/crack/b_mask.png"}, 2, false},
		// the kinds directly under DIR
		{[]string{"good/a.png", "crack/b.png", "ground_truth/crack/b_mask.png"}, 2, false},
		// a defect without its mask
		{[]string{"test/good/a.png", "test/crack/b.png"}, 0, true},
		// good images only: no AUROC
		{[]string{"test/good/a.png"}, 0, true},
		// no good/ at all
		{[]string{"test/crack/b.png", "ground_truth/crack/b_mask.png"}, 0, true},
	} {
		root := filepath.Join(t.TempDir(), strconv.Itoa(i))
		write(root, tc.files...)
		items, err := evaluate.Find(root)
		if tc.bad != errors.Is(err, evaluate.ErrLayout) || len(items) != tc.n {
			t.Errorf("%v: %d items, err %v", tc.files, len(items), err)
		}
	}
}

// `eval --json` speaks one naming style: every key of the report, nested ones
// included, is snake_case, and the key set is the golden one (a renamed or added field
// shows here; update testdata/report-keys.golden and the README together).
// ReportKeys is also what the command's test checks its real output against.
func TestReportJSONKeys(t *testing.T) {
	b, err := json.Marshal(evaluate.Report{PerKind: map[string]float64{"scratch": 1}, Scores: []evaluate.Scored{{}}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := evaluate.ReportKeys(b)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(filepath.Join("testdata", "report-keys.golden"))
	if strings.Join(got, "\n")+"\n" != string(want) {
		t.Errorf("keys:\n%s\nwant (testdata/report-keys.golden):\n%s", strings.Join(got, "\n"), want)
	}
	snake := regexp.MustCompile(`^[a-z0-9]+(_[a-z0-9]+)*$`)
	for _, k := range got {
		for _, part := range strings.FieldsFunc(k, func(r rune) bool { return r == '.' || r == '[' || r == ']' }) {
			if part != "<kind>" && !snake.MatchString(part) {
				t.Errorf("%s: %q is not snake_case", k, part)
			}
		}
	}
}

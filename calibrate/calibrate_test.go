package calibrate_test

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/adtrd/adtrd/calibrate"
	"github.com/adtrd/adtrd/internal/testlib"
)

// UpperBound is the Clopper-Pearson bound scipy gives (beta.ppf(0.95, k+1, n-k)), and
// its k = 0 case the closed form; Needed is the smallest sample meeting a rate.
func TestUpperBoundEqualsScipy(t *testing.T) {
	py := testlib.Python(t)
	cases := [][2]int{{0, 20}, {0, 3000}, {1, 100}, {5, 100}, {50, 1000}, {99, 100}}
	b, _ := json.Marshal(cases)
	out, err := exec.Command(py, "-c", `import json, sys
from scipy.stats import beta
print(json.dumps([float(beta.ppf(0.95, k + 1, n - k)) for k, n in json.loads(sys.argv[1])]))`, string(b)).Output()
	if err != nil {
		t.Fatalf("scipy: %v", err)
	}
	var want []float64
	json.Unmarshal(out, &want)
	for i, c := range cases {
		if got := calibrate.UpperBound(c[0], c[1]); math.Abs(got-want[i]) > 1e-9 {
			t.Errorf("UpperBound(%d, %d) = %.12f, scipy %.12f", c[0], c[1], got, want[i])
		}
	}
	if got, want := calibrate.UpperBound(0, 3000), 1-math.Pow(0.05, 1.0/3000); math.Abs(got-want) > 1e-12 {
		t.Errorf("k = 0: %v, closed form %v", got, want)
	}
	if n := calibrate.Needed(0.001); n != 2995 || calibrate.UpperBound(0, n) > 0.001 || calibrate.UpperBound(0, n-1) <= 0.001 {
		t.Errorf("Needed(0.001) = %d", n)
	}
}

func TestPropose(t *testing.T) {
	good := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tc := range []struct {
		name      string
		bad       []float64
		frr, esc  float64
		want      []float64 // thresholds, in Propose's order
		falseRejs []int
	}{
		// good images alone, no false reject allowed: just above the highest
		{"good only", nil, 0, 0.01, []float64{10.01}, []int{0}},
		// one false reject in ten allowed, but ten images cannot vouch for 10 % even
		// with none rejected (bound 0.26): the threshold with none, the least bound
		{"good only, 10 %", nil, 0.1, 0.01, []float64{10.01}, []int{0}},
		// half the good images may be rejected, but ten images vouch (95 % upper bound
		// 0.39 <= 0.5) for one false reject at most, not the five the observed rate allows
		// (bound 0.81): picked by the bound, it is sufficient
		{"good only, 50 %", nil, 0.5, 0.01, []float64{9.5}, []int{1}},
		// separable defects: every threshold between the classes
		{"separable", []float64{20, 30}, 0, 0, []float64{15, 15, 15}, []int{0, 0, 0}},
		// overlap: frr 0 lets the defect at 9.7 escape; escape 0 rejects the good 10; F1
		// (0.8 against 0.67) picks the escape-free one
		{"overlap", []float64{9.7, 30}, 0, 0, []float64{20, 9.35, 9.35}, []int{0, 1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps, err := calibrate.Propose(good, tc.bad, tc.frr, tc.esc)
			if err != nil {
				t.Fatal(err)
			}
			if len(ps) != len(tc.want) {
				t.Fatalf("%d points, want %d: %+v", len(ps), len(tc.want), ps)
			}
			for i, p := range ps {
				if math.Abs(p.Threshold-tc.want[i]) > 1e-9 || p.FalseRej != tc.falseRejs[i] {
					t.Errorf("%s: threshold %v with %d false rejects, want %v and %d", p.Name, p.Threshold, p.FalseRej, tc.want[i], tc.falseRejs[i])
				}
				if p.Name == "false-reject rate" && p.Sufficient != (p.FRRUpper <= tc.frr) {
					t.Errorf("%s: sufficient %v with a bound of %.3f against %v", p.Name, p.Sufficient, p.FRRUpper, tc.frr)
				}
			}
		})
	}
	// A stricter target never gets a looser threshold: the false-reject threshold
	// rises, the escape threshold falls, as the targets tighten (field: 0.2 gave a
	// threshold with a false reject where 0.4 gave one without).
	bad := []float64{9.7, 12, 30}
	prevFRR, prevEsc := math.Inf(-1), math.Inf(1)
	for _, target := range []float64{0.9, 0.7, 0.5, 0.4, 0.3, 0.2, 0.1, 0.01, 0} {
		ps, err := calibrate.Propose(good, bad, target, target)
		if err != nil {
			t.Fatal(err)
		}
		if ps[0].Threshold < prevFRR || ps[1].Threshold > prevEsc {
			t.Fatalf("target %v: false-reject threshold %v (was %v), escape threshold %v (was %v)", target, ps[0].Threshold, prevFRR, ps[1].Threshold, prevEsc)
		}
		prevFRR, prevEsc = ps[0].Threshold, ps[1].Threshold
	}
	if _, err := calibrate.Propose([]float64{1, math.NaN()}, nil, 0, 0); err == nil {
		t.Error("a NaN score was accepted")
	}
	if _, err := calibrate.Propose(nil, []float64{1}, 0, 0); err == nil {
		t.Error("no good images was accepted")
	}
}

// WriteThreshold changes only the threshold line, adds one when there is none, never
// writes a config the daemon would refuse, and replaces the file by rename (a new
// inode: the watcher sees one complete file) keeping its mode.
func TestWriteThreshold(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, before, after string
		bad                 bool
	}{
		// the key replaced, the comment before the value dropped, others kept
		{"replace", "# line 3\nthreshold: 19.0  # old\nfail_safe: reject\n", "# line 3\nthreshold: 12.3457 # old\nfail_safe: reject\n", false},
		// no threshold yet: appended
		{"append", "fail_safe: reject\n", "fail_safe: reject\nthreshold: 12.3457 # set by adtrd calibrate\n", false},
		// a nested key of that name would not be the top-level one: appended at the top level
		{"nested only", "model:\n  path: x\n", "model:\n  path: x\nthreshold: 12.3457 # set by adtrd calibrate\n", false},
		// a config the daemon refuses stays as it was
		{"invalid", "treshold: 3\n", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name+".yaml")
			os.WriteFile(p, []byte(tc.before), 0o640)
			before, _ := os.Stat(p)
			err := calibrate.WriteThreshold(p, 12.345678)
			got, _ := os.ReadFile(p)
			if tc.bad {
				if err == nil || string(got) != tc.before {
					t.Fatalf("err %v, file now %q", err, got)
				}
				return
			}
			if err != nil || string(got) != tc.after {
				t.Fatalf("err %v, file %q, want %q", err, got, tc.after)
			}
			after, _ := os.Stat(p)
			if os.SameFile(before, after) || after.Mode().Perm() != 0o640 {
				t.Fatalf("not replaced by rename (same file %v) or mode %v", os.SameFile(before, after), after.Mode())
			}
			if m, _ := filepath.Glob(filepath.Join(dir, ".*")); len(m) != 0 {
				t.Fatalf("temporary files left: %v", m)
			}
		})
	}
}

func TestHistogramMarksThresholds(t *testing.T) {
	ps, _ := calibrate.Propose([]float64{1, 2, 3}, []float64{9}, 0, 0)
	h := calibrate.Histogram([]float64{1, 2, 3}, []float64{9}, ps, 10)
	if !strings.Contains(h, "<- false-reject rate 6.0000") || strings.Count(h, "\n") != 11 {
		t.Fatalf("histogram:\n%s", h)
	}
}

// Through a symlink, WriteThreshold edits the file at the end of the links and keeps
// every link, the target's mode and its owner: a config deployed by `ln -sfn`, a
// ConfigMap's ..data link or /etc/alternatives must not be cut from what it points
// at (field case 18: the link became a plain file, the managed file kept the old
// threshold, and the next deploy silently restored it).
func TestWriteThresholdThroughSymlinks(t *testing.T) {
	for _, tc := range []struct {
		name string
		// layout makes the links under dir and returns the path given to
		// WriteThreshold and the real file it must edit
		layout func(t *testing.T, dir string) (given, real string)
	}{
		// etc/adtrd.yaml -> ../real/line3.yaml, the field case
		{"relative link to another folder", func(t *testing.T, dir string) (string, string) {
			real := file(t, dir, "real/line3.yaml")
			return link(t, dir, "etc/adtrd.yaml", "../real/line3.yaml"), real
		}},
		// an absolute link
		{"absolute link", func(t *testing.T, dir string) (string, string) {
			real := file(t, dir, "real/line3.yaml")
			return link(t, dir, "etc/adtrd.yaml", real), real
		}},
		// a Kubernetes ConfigMap volume: adtrd.yaml -> ..data/adtrd.yaml, and ..data a
		// link to the folder of the current version
		{"ConfigMap ..data", func(t *testing.T, dir string) (string, string) {
			real := file(t, dir, "cm/..2026_12_05_10_00_00.123/adtrd.yaml")
			link(t, dir, "cm/..data", "..2026_12_05_10_00_00.123")
			return link(t, dir, "cm/adtrd.yaml", "..data/adtrd.yaml"), real
		}},
		// /etc/alternatives: a chain of links, absolute then relative
		{"alternatives chain", func(t *testing.T, dir string) (string, string) {
			real := file(t, dir, "opt/line3/adtrd.yaml")
			link(t, dir, "alternatives/adtrd.yaml", "../opt/line3/adtrd.yaml")
			return link(t, dir, "etc/adtrd.yaml", filepath.Join(dir, "alternatives/adtrd.yaml")), real
		}},
		// a link in the same folder to a link in the same folder
		{"chain in one folder", func(t *testing.T, dir string) (string, string) {
			real := file(t, dir, "etc/line3-v2.yaml")
			link(t, dir, "etc/line3.yaml", "line3-v2.yaml")
			return link(t, dir, "etc/adtrd.yaml", "line3.yaml"), real
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			given, real := tc.layout(t, dir)
			os.Chmod(real, 0o640)
			// the service's group must keep reading it (this test runs as root or not)
			if os.Getuid() == 0 {
				os.Chown(real, 1234, 5678)
			}
			before := links(t, dir)
			if err := calibrate.WriteThreshold(given, 12.345678); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(real); string(got) != "fail_safe: reject\nthreshold: 12.3457 # set by adtrd calibrate\n" {
				t.Fatalf("%s now %q", real, got)
			}
			if after := links(t, dir); after != before {
				t.Fatalf("links changed:\n%s\nwant\n%s", after, before)
			}
			fi, _ := os.Stat(real)
			if fi.Mode().Perm() != 0o640 {
				t.Errorf("mode %v, want 0640", fi.Mode().Perm())
			}
			if st := fi.Sys().(*syscall.Stat_t); os.Getuid() == 0 && (st.Uid != 1234 || st.Gid != 5678) {
				t.Errorf("owner %d:%d, want 1234:5678", st.Uid, st.Gid)
			}
			if m, _ := filepath.Glob(filepath.Join(filepath.Dir(real), ".*.yaml.*")); len(m) != 0 {
				t.Errorf("temporary files left: %v", m)
			}
		})
	}
	// links that lead nowhere are refused, and nothing is created
	dir := t.TempDir()
	loop := link(t, dir, "a.yaml", "b.yaml")
	link(t, dir, "b.yaml", "a.yaml")
	dangling := link(t, dir, "d.yaml", "missing/line3.yaml")
	for _, p := range []string{loop, dangling} {
		if err := calibrate.WriteThreshold(p, 1); err == nil {
			t.Errorf("%s: written", p)
		}
	}
	if got := links(t, dir); got != "a.yaml -> b.yaml\nb.yaml -> a.yaml\nd.yaml -> missing/line3.yaml\n" {
		t.Errorf("folder now:\n%s", got)
	}
}

// CheckWritable finds, before any scoring, the output paths a write would fail on,
// and leaves nothing behind.
func TestCheckWritable(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "file"), nil, 0o644)
	link(t, dir, "to-sub", "sub/new.png")
	for _, tc := range []struct {
		path string
		want string // in the error; "" = writable
	}{
		{filepath.Join(dir, "new.png"), ""},                           // a new file in an existing folder
		{filepath.Join(dir, "to-sub"), ""},                            // a link to a new file in an existing folder
		{filepath.Join(dir, "missing", "plot.png"), "does not exist"}, // the folder is missing
		{filepath.Join(dir, "file", "plot.png"), "is not a folder"},   // the "folder" is a file
		{filepath.Join(dir, "sub"), "not a regular file (a folder)"},  // a folder given as the file
		{"/dev/null", "not a regular file (a device)"},                // a device
	} {
		err := calibrate.CheckWritable(tc.path)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.path, err, tc.want)
		}
	}
	if got := links(t, dir); got != "file\nsub/\nto-sub -> sub/new.png\n" {
		t.Errorf("folder now:\n%s", got)
	}
}

// file writes a one-key config at dir/rel and returns its path.
func file(t *testing.T, dir, rel string) string {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("fail_safe: reject\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// link makes dir/rel a symlink to dest and returns its path.
func link(t *testing.T, dir, rel, dest string) string {
	t.Helper()
	p := filepath.Join(dir, rel)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.Symlink(dest, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// links lists dir's tree: links with their targets, folders with a slash.
func links(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if p == dir || err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Type()&os.ModeSymlink != 0:
			dest, _ := os.Readlink(p)
			fmt.Fprintf(&b, "%s -> %s\n", rel, dest)
		case d.IsDir():
			fmt.Fprintf(&b, "%s/\n", rel)
		default:
			fmt.Fprintf(&b, "%s\n", rel)
		}
		return nil
	})
	return b.String()
}

package record

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/adtrd/adtrd/internal/testlib"
)

// tree lists every file and folder under root with its size (folders -1).
func tree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		size := int64(-1)
		if fi, err := d.Info(); err == nil && !d.IsDir() {
			size = fi.Size()
		}
		rel, _ := filepath.Rel(root, p)
		if rel != "filler" {
			out = append(out, fmt.Sprintf("%s %d", rel, size))
		}
		return nil
	})
	return out
}

// noisy makes f's frames noise, which PNG cannot shrink: a copy of several pages.
func noisy(f *fixture) {
	x := uint32(1)
	for i := range f.src.frame {
		x = x*1664525 + 1013904223
		f.src.frame[i] = byte(x >> 24)
	}
}

// Feedback is all or nothing on a real full disk (a tmpfs filled up): a label whose
// writing fails midway leaves the dataset as it was (no copy, no mask, no staging
// folder, no new kind folder), keeps meta.json's old label, and says so; once there
// is room again the same label lands whole.
func TestLabelOnAFullDisk(t *testing.T) {
	const page = 4096
	pages := func(n int) int64 { return int64((n + page - 1) / page * page) }
	// The sizes of what a label writes, from a label on an ordinary disk.
	probe := newFixture(t, Options{Dataset: filepath.Join(t.TempDir(), "dataset")})
	noisy(probe)
	probe.reject()
	pid := probe.r.List(1)[0].ID
	if _, err := probe.r.Label(pid, Defect, "hole"); err != nil {
		t.Fatal(err)
	}
	frameN := len(mustReadFile(t, filepath.Join(probe.r.opt.Dataset, "test", "hole", pid+".png")))
	maskN := len(mustReadFile(t, filepath.Join(probe.r.opt.Dataset, "ground_truth", "hole", pid+"_mask.png")))
	if frameN <= page || maskN > page {
		t.Fatalf("the copy is %d bytes and the mask %d: the rows below want a copy over a page and a mask within one", frameN, maskN)
	}
	for _, tc := range []struct {
		name   string
		label  Label
		kind   string
		leave  int64 // bytes left free on the dataset's disk; -1: not filled
		inodes int   // files and folders the dataset's disk takes; 0: no limit
		recs   bool  // the recordings' disk is filled instead (meta.json cannot be written)
		setup  func(t *testing.T, ds, id string)
	}{
		// nothing fits: the mask, written first, fails
		{name: "full at the mask", label: Defect, kind: "hole", leave: 0},
		// the mask fits, the copy fails midway (part of it was written)
		{name: "full midway through the copy", label: Defect, kind: "hole", leave: pages(maskN) + page},
		// a false reject: its copy fails midway
		{name: "false reject, full midway", label: FalseReject, leave: pages(frameN) - page},
		// both files fit, then no inode for the kind's folder: ground_truth/ was made, then removed
		{name: "no room for the kind's folder", label: Defect, kind: "hole", leave: -1, inodes: 8},
		// the recordings' disk is full: meta.json's new text cannot be written
		{name: "recordings' disk full", label: Defect, kind: "hole", leave: -1, recs: true},
		// a folder stands where the copy goes: the mask was renamed into place first and
		// is taken back out
		{name: "copy's place taken", label: Defect, kind: "hole", leave: -1, setup: func(t *testing.T, ds, id string) {
			if err := os.MkdirAll(filepath.Join(ds, "test", "hole", id+".png", "x"), 0o750); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := filepath.Join(testlib.SmallDisk(t, 1<<20, tc.inodes), "dataset")
			opt := Options{Dataset: ds}
			if tc.recs {
				opt.Dir = filepath.Join(testlib.SmallDisk(t, 1<<20, 0), "recordings")
			}
			f := newFixture(t, opt)
			noisy(f)
			f.reject()
			id := f.r.List(1)[0].ID
			if tc.setup != nil {
				tc.setup(t, ds, id)
			}
			var filler string
			switch {
			case tc.recs:
				filler = testlib.Fill(t, f.dir, 0)
			case tc.leave >= 0:
				filler = testlib.Fill(t, filepath.Dir(ds), tc.leave)
			}
			before := tree(t, filepath.Dir(ds))
			meta := mustReadFile(t, filepath.Join(f.dir, id, MetaJSON))
			dest, err := f.r.Label(id, tc.label, tc.kind)
			if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrBadKind) {
				t.Fatalf("Label on a full disk: %q, %v; want a write error", dest, err)
			}
			t.Logf("error: %v", err)
			if after := tree(t, filepath.Dir(ds)); !slices.Equal(after, before) {
				t.Fatalf("the dataset changed:\nbefore %v\nafter  %v", before, after)
			}
			if got := mustReadFile(t, filepath.Join(f.dir, id, MetaJSON)); !bytes.Equal(got, meta) {
				t.Fatal("meta.json changed")
			}
			if ents, _ := os.ReadDir(filepath.Join(f.dir, id)); len(ents) != 3 {
				t.Fatalf("the recording holds %d files, want its 3", len(ents))
			}
			if m := f.r.List(1)[0]; m.Label != Unlabelled || f.r.Stats().Labelled != 0 {
				t.Fatalf("the index took the label: %+v", m)
			}
			// Room again: the same label lands whole.
			if filler != "" {
				os.Remove(filler)
			}
			if tc.inodes > 0 || tc.setup != nil {
				return // these disks stay as they are
			}
			dest, err = f.r.Label(id, tc.label, tc.kind)
			if err != nil {
				t.Fatalf("with room again: %v", err)
			}
			if got := mustReadFile(t, dest); len(got) != frameN {
				t.Fatalf("the copy is %d bytes, want %d", len(got), frameN)
			}
			if m := f.r.List(1)[0]; m.Label != tc.label {
				t.Fatalf("label %v after the retry", m.Label)
			}
		})
	}
}

func mustReadFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

package web_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/adtrd/adtrd/internal/demoline"
	"github.com/adtrd/adtrd/internal/testlib"
	"github.com/adtrd/adtrd/record"
	"github.com/adtrd/adtrd/web"
)

// recorder is the real recorder as the page sees it (cmd/adtrd's adapter, reduced to
// what this test uses).
type recorder struct{ r *record.Recorder }

func (a recorder) Recent(n int) []web.Recording {
	var out []web.Recording
	for _, m := range a.r.List(n) {
		rec := web.Recording{ID: m.ID, Decision: m.Decision, Kind: m.Kind}
		if m.Label != record.Unlabelled {
			rec.Label = m.Label.String()
		}
		out = append(out, rec)
	}
	return out
}
func (a recorder) Path(id, file string) (string, error) {
	p, err := a.r.File(id, file)
	if err != nil {
		return "", fmt.Errorf("%w: %v", web.ErrNotFound, err)
	}
	return p, nil
}
func (a recorder) Feedback(id, label, kind string) (string, error) {
	l, err := record.ParseLabel(label)
	if err != nil {
		return "", fmt.Errorf("%w: %v", web.ErrBadRequest, err)
	}
	dest, err := a.r.Label(id, l, kind)
	if errors.Is(err, record.ErrNotFound) {
		return "", fmt.Errorf("%w: %v", web.ErrNotFound, err)
	}
	return dest, err
}
func (a recorder) Stats() map[string]any { return map[string]any{} }

// everything lists the files and folders under root (but the filler) with their sizes.
func everything(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := d.Info()
		if d.Name() != "filler" {
			out = append(out, fmt.Sprintf("%s %v %d", p, d.IsDir(), fi.Size()))
		}
		return nil
	})
	return out
}

// Feedback over HTTP on a full disk (the dataset on a filled tmpfs): the reply says
// "not saved" with the reason, and nothing of the example is in the dataset, the
// recording keeps no label; with room again the same click saves it whole.
func TestFeedbackOnAFullDiskIsNotSaved(t *testing.T) {
	disk := testlib.SmallDisk(t, 1<<20, 0)
	ds := filepath.Join(disk, "dataset")
	l := demoline.New(t, demoline.Options{})
	rec, err := record.New(record.Options{Dir: filepath.Join(t.TempDir(), "rec"), Dataset: ds, Bus: l.Pipeline.Events()})
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rec.Close() })
	s := serveWith(t, 0, false, func(o *web.Options) { o.Token, o.Recordings = token, recorder{rec} })
	l.Start(t)
	l.Wait(t)
	id := ""
	for deadline := time.Now().Add(30 * time.Second); id == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, m := range rec.List(0) {
			if m.Decision == "reject" {
				id = m.ID
			}
		}
	}
	if id == "" {
		t.Fatal("no reject recorded in 30 s")
	}
	filler := testlib.Fill(t, disk, 8<<10) // room for the mask, not for the copy
	before := everything(t, disk)
	url := s.url + "/api/recordings/" + id + "/feedback"
	code, body := do(t, "POST", url, "Bearer "+token, `{"label":"defect","kind":"hole"}`)
	if code != 500 || !strings.Contains(body, "feedback not saved") || !strings.Contains(body, "no space left on device") {
		t.Fatalf("feedback on a full disk: %d %s", code, body)
	}
	if after := everything(t, disk); !slices.Equal(after, before) {
		t.Fatalf("the dataset changed:\nbefore %q\nafter  %q", before, after)
	}
	var list struct{ Recordings []web.Recording }
	_, lb := do(t, "GET", s.url+"/api/recordings?limit=1000", "", "")
	json.Unmarshal([]byte(lb), &list)
	for _, r := range list.Recordings {
		if r.ID == id && r.Label != "" {
			t.Fatalf("the recording took the label: %+v", r)
		}
	}
	os.Remove(filler)
	code, body = do(t, "POST", url, "Bearer "+token, `{"label":"defect","kind":"hole"}`)
	if code != 200 {
		t.Fatalf("feedback with room again: %d %s", code, body)
	}
	for _, p := range []string{filepath.Join(ds, "test", "hole", id+".png"), filepath.Join(ds, "ground_truth", "hole", id+"_mask.png")} {
		if _, err := os.Stat(p); err != nil {
			t.Fatal(err)
		}
	}
}

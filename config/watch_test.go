package config_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/adtrd/adtrd/config"
)

func startWatcher(t *testing.T, files ...string) *config.Watcher {
	t.Helper()
	w, err := config.NewWatcher(50*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Watch(files...); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go w.Run(ctx)
	t.Cleanup(func() { cancel(); w.Close() })
	return w
}

// requests counts reload requests over d.
func requests(w *config.Watcher, d time.Duration) int {
	n := 0
	end := time.After(d)
	for {
		select {
		case <-w.C():
			n++
		case <-end:
			return n
		}
	}
}

func TestWatcherSeesEveryKindOfSave(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(t *testing.T, dir, cfg string)
		want int // negative: 1 to -want requests
	}{
		// an editor writing the file in place
		{"in-place rewrite", func(t *testing.T, dir, cfg string) { os.WriteFile(cfg, []byte("threshold: 2\n"), 0o644) }, 1},
		// an editor writing a temporary file and renaming it over the config
		{"atomic rename", func(t *testing.T, dir, cfg string) {
			tmp := filepath.Join(dir, ".adtrd.yaml.tmp")
			os.WriteFile(tmp, []byte("threshold: 3\n"), 0o644)
			os.Rename(tmp, cfg)
		}, 1},
		// twenty quick writes are one reload (or two: the debounce is capped at 5 periods,
		// 250 ms here, which a loaded CI machine's twenty writes can straddle)
		{"burst", func(t *testing.T, dir, cfg string) {
			for i := range 20 {
				os.WriteFile(cfg, []byte{byte('0' + i%10)}, 0o644)
			}
		}, -2},
		// chmod alone is noise
		{"chmod only", func(t *testing.T, dir, cfg string) { os.Chmod(cfg, 0o600) }, 0},
		// an editor's swap file beside the config is not the config
		{"other file", func(t *testing.T, dir, cfg string) {
			os.WriteFile(filepath.Join(dir, ".adtrd.yaml.swp"), []byte("x"), 0o644)
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "adtrd.yaml")
			os.WriteFile(cfg, []byte("threshold: 1\n"), 0o644)
			w := startWatcher(t, cfg)
			tc.edit(t, dir, cfg)
			got := requests(w, 400*time.Millisecond)
			if tc.want >= 0 && got != tc.want || tc.want < 0 && (got < 1 || got > -tc.want) {
				t.Fatalf("%d reload requests, want %d (negative: 1 to that many)", got, tc.want)
			}
		})
	}
}

// A Kubernetes ConfigMap volume: adtrd.yaml -> ..data/adtrd.yaml, ..data -> ..v1; an
// update makes ..v2 and swaps ..data. A watch on the file would never see it.
func TestWatcherSeesAConfigMapSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	for _, v := range []string{"..v1", "..v2"} {
		os.Mkdir(filepath.Join(dir, v), 0o755)
		os.WriteFile(filepath.Join(dir, v, "adtrd.yaml"), []byte("threshold: "+v[3:]+"\n"), 0o644)
	}
	os.Symlink("..v1", filepath.Join(dir, "..data"))
	cfg := filepath.Join(dir, "adtrd.yaml")
	os.Symlink("..data/adtrd.yaml", cfg)
	w := startWatcher(t, cfg)
	os.Symlink("..v2", filepath.Join(dir, "..data_tmp"))
	os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data"))
	if got := requests(w, 400*time.Millisecond); got != 1 {
		t.Fatalf("%d reload requests, want 1", got)
	}
	if b, _ := os.ReadFile(cfg); string(b) != "threshold: 2\n" {
		t.Fatalf("the link now reads %q", b)
	}
}

// A model in another directory is watched too, and replacing it alone is seen.
func TestWatcherSeesAModelElsewhere(t *testing.T) {
	cfgDir, modelDir := t.TempDir(), t.TempDir()
	cfg, m := filepath.Join(cfgDir, "adtrd.yaml"), filepath.Join(modelDir, "adtr.tflite")
	os.WriteFile(cfg, []byte("x"), 0o644)
	os.WriteFile(m, []byte("model v1"), 0o644)
	w := startWatcher(t, cfg, m, m+".json")
	tmp := filepath.Join(modelDir, "new.tflite")
	os.WriteFile(tmp, []byte("model v2"), 0o644)
	os.Rename(tmp, m)
	if got := requests(w, 400*time.Millisecond); got != 1 {
		t.Fatalf("%d reload requests, want 1", got)
	}
	// After a reload the config names another model directory: the old one goes quiet.
	other := t.TempDir()
	if err := w.Watch(cfg, filepath.Join(other, "b.tflite")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(m, []byte("model v3"), 0o644)
	if got := requests(w, 300*time.Millisecond); got != 0 {
		t.Fatalf("%d requests for a model no longer named", got)
	}
}

// Field case 03: a provisioning tool deletes and recreates the config directory, or a
// deploy swaps it by rename. The directory's own watch dies with it; the watcher must
// see the directory come back, reload, and see every later save.
func TestWatcherSurvivesItsDirectoryBeingReplaced(t *testing.T) {
	for _, tc := range []struct {
		name    string
		replace func(t *testing.T, dir string)
	}{
		// rm -rf; mkdir; write
		{"removed and recreated", func(t *testing.T, dir string) {
			os.RemoveAll(dir)
			os.Mkdir(dir, 0o755)
			os.WriteFile(filepath.Join(dir, "adtrd.yaml"), []byte("threshold: 12\n"), 0o644)
		}},
		// mkdir dir.new; write; mv dir dir.old; mv dir.new dir
		{"swapped by rename", func(t *testing.T, dir string) {
			os.Mkdir(dir+".new", 0o755)
			os.WriteFile(filepath.Join(dir+".new", "adtrd.yaml"), []byte("threshold: 12\n"), 0o644)
			os.Rename(dir, dir+".old")
			os.Rename(dir+".new", dir)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "adtrd")
			os.Mkdir(dir, 0o755)
			cfg := filepath.Join(dir, "adtrd.yaml")
			os.WriteFile(cfg, []byte("threshold: 11\n"), 0o644)
			w := startWatcher(t, cfg)
			tc.replace(t, dir)
			if n := requests(w, 3*time.Second); n < 1 {
				t.Fatalf("no reload after the directory was replaced")
			}
			// what Reloader.Serve does after each reload
			if err := w.Watch(cfg); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(cfg, []byte("threshold: 13\n"), 0o644)
			if n := requests(w, time.Second); n != 1 {
				t.Fatalf("%d reloads after a save in the new directory, want 1", n)
			}
		})
	}
}

// A directory replaced while nothing could see it (its parent replaced too): Rearm,
// which SIGHUP calls, watches the directory there now.
func TestRearmWatchesTheDirectoryThereNow(t *testing.T) {
	root := t.TempDir()
	parent := filepath.Join(root, "etc")
	dir := filepath.Join(parent, "adtrd")
	os.MkdirAll(dir, 0o755)
	cfg := filepath.Join(dir, "adtrd.yaml")
	os.WriteFile(cfg, []byte("threshold: 11\n"), 0o644)
	w := startWatcher(t, cfg)
	os.RemoveAll(parent)
	os.MkdirAll(dir, 0o755)
	os.WriteFile(cfg, []byte("threshold: 12\n"), 0o644)
	requests(w, 300*time.Millisecond) // whatever the 2 s re-check finds or not
	if err := w.Rearm(cfg); err != nil {
		t.Fatal(err)
	}
	requests(w, 200*time.Millisecond)
	os.WriteFile(cfg, []byte("threshold: 13\n"), 0o644)
	if n := requests(w, time.Second); n != 1 {
		t.Fatalf("%d reloads after a save following Rearm, want 1", n)
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/adtrd/adtrd/internal/testlib"
)

// The feedback round trip as an operator does it: the daemon runs the demo with
// recordings and the page on; a recorded reject is marked a true defect and a
// recorded pass a false reject over HTTP with the token; the labelled frames land in
// the dataset, calibrate reads them (one defect, one good), and a POST without the
// token changes nothing.
func TestFeedbackRoundTrip(t *testing.T) {
	lib := testlib.TFLiteLibrary(t)
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("round-trip-token-0123456789\n"), 0o600)
	data := filepath.Join(dir, "dataset")
	cfg := filepath.Join(dir, "adtrd.yaml")
	os.WriteFile(cfg, []byte("model:\n  path: "+testlib.Demo("adtr.tflite")+"\n  library: "+lib+
		"\ncapture:\n  replay:\n    path: "+testlib.Demo("frames")+"\n    loop: true\n    fps: 10\n"+
		"http:\n  address: 127.0.0.1:0\n  token_file: token\n"+
		"recordings:\n  dir: rec\n  dataset: dataset\n  near: 0.5\n  rate: 20\n"), 0o644)
	cmd := testDaemon()
	cmd.Env = append(os.Environ(), "ADTRD_TEST_MAIN=1", "ADTRD_TEST_ARGS=run -c "+cfg)
	testlib.DiesWithTest(cmd)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}()
	url := ""
	sc := bufio.NewScanner(stderr)
	re := regexp.MustCompile(`operators' page" url=(http://127\.0\.0\.1:[0-9]+)/`)
	for url == "" && sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			url = m[1]
		}
	}
	go io.Copy(io.Discard, stderr)
	if url == "" {
		t.Fatal("no page address in the log")
	}
	// Wait for a recorded reject and a recorded pass (near: 0.5 records passes too).
	type rec struct{ ID, Decision, Frame string }
	var reject, pass rec
	for deadline := time.Now().Add(30 * time.Second); (reject.ID == "" || pass.ID == "") && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var list struct{ Recordings []rec }
		if err := getJSON(url+"/api/recordings?limit=100", &list); err != nil {
			t.Fatal(err)
		}
		for _, r := range list.Recordings {
			switch {
			case r.Decision == "reject" && strings.Contains(r.Frame, "hole"):
				reject = r
			case r.Decision == "pass":
				pass = r
			}
		}
	}
	if reject.ID == "" || pass.ID == "" {
		t.Fatalf("no recorded reject and pass in 30 s: %+v %+v", reject, pass)
	}
	// The recording's frame is the model's input: 224 x 224 PNG.
	resp, err := http.Get(url + "/api/recordings/" + reject.ID + "/frame.png")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Fatalf("frame.png: %d", resp.StatusCode)
	}
	post := func(id, body, auth string) int {
		req, _ := http.NewRequest("POST", url+"/api/recordings/"+id+"/feedback", strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(reject.ID, `{"label":"defect","kind":"hole"}`, "wrong-token"); code != 401 {
		t.Fatalf("feedback with a wrong token: %d", code)
	}
	if _, err := os.Stat(filepath.Join(data, "test")); !os.IsNotExist(err) {
		t.Fatalf("an unauthorised feedback left %v", err)
	}
	if code := post(reject.ID, `{"label":"defect","kind":"hole"}`, "round-trip-token-0123456789"); code != 200 {
		t.Fatalf("defect feedback: %d", code)
	}
	if code := post(pass.ID, `{"label":"false_reject"}`, "round-trip-token-0123456789"); code != 200 {
		t.Fatalf("false-reject feedback: %d", code)
	}
	for _, p := range []string{filepath.Join(data, "test", "hole", reject.ID+".png"), filepath.Join(data, "train", "good", pass.ID+".png")} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("labelled frame: %v", err)
		}
	}
	// calibrate reads the dataset as it is: one good image and one defect.
	var out, errb bytes.Buffer
	code := realMain(context.Background(), []string{"calibrate", "-c", cfg, "--use", "f1", data}, &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "1 good and 1 defective images scored") {
		t.Fatalf("calibrate on the feedback: exit %d\n%s%s", code, out.String(), errb.String())
	}
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// The page's status follows a reload that swaps the model: its path, version, engine
// and placement are the running generation's (the page showed the path captured at
// start, the old model's, after a reload had swapped it). The reload also swaps the
// engine, tflite for litert, whose placement the page then shows.
func TestStatusFollowsAReloadedModel(t *testing.T) {
	lib := testlib.TFLiteLibrary(t)
	litertLib := testlib.LiteRTLibrary(t)
	dir := t.TempDir()
	// the same graph under another folder: a model swap as an operator does it
	next := filepath.Join(dir, "next")
	os.Mkdir(next, 0o755)
	for _, name := range []string{"adtr.tflite", "adtr.tflite.json"} {
		b, err := os.ReadFile(testlib.Demo(name))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(next, name), b, 0o644)
	}
	addr := freeAddr(t)
	cfg := filepath.Join(dir, "line.yaml")
	body := func(model, engine string) []byte {
		return []byte("model:\n  engine: " + engine + "\n  path: " + model + "\n  library: " + lib + "\n  litert: {library: " + litertLib + "}\n  threads: 1\ncapture:\n  replay:\n    path: " + testlib.Demo("frames") +
			"\n    loop: true\nlog:\n  level: warn\nhttp:\n  address: " + addr + "\n")
	}
	os.WriteFile(cfg, body(testlib.Demo("adtr.tflite"), "tflite"), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan int)
	go func() { ran <- realMain(ctx, []string{"run", "-c", cfg}, io.Discard, io.Discard) }()
	defer func() { cancel(); <-ran }()
	type status struct {
		Generation uint64
		Model      struct{ Path, Version, SHA256, Engine, Placement string }
	}
	until := func(what string, ok func(status) bool) status {
		t.Helper()
		var st status
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			st = status{}
			if getJSON("http://"+addr+"/api/status", &st) == nil && ok(st) {
				return st
			}
		}
		t.Fatalf("%s: status %+v", what, st)
		return st
	}
	st := until("the page up", func(s status) bool { return s.Generation == 1 })
	if st.Model.Path != testlib.Demo("adtr.tflite") || st.Model.Version == "" || st.Model.Engine != "tflite" || st.Model.Placement != "" {
		t.Fatalf("at start: model %+v", st.Model)
	}
	tmp := cfg + ".tmp"
	os.WriteFile(tmp, body(filepath.Join(next, "adtr.tflite"), "litert"), 0o644)
	os.Rename(tmp, cfg)
	st = until("the reload", func(s status) bool { return s.Generation == 2 })
	if st.Model.Path != filepath.Join(next, "adtr.tflite") || st.Model.Version == "" || st.Model.Engine != "litert" || st.Model.Placement != "cpu: all 291 ops on the CPU" {
		t.Fatalf("after the reload: model %+v, want the path %s", st.Model, filepath.Join(next, "adtr.tflite"))
	}
}

// freeAddr is a 127.0.0.1 address no one listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

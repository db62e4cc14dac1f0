package web_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/adtrd/adtrd/internal/demoline"
	"github.com/adtrd/adtrd/metrics"
	"github.com/adtrd/adtrd/web"
)

const token = "a-test-token-0123456789"

// fakeRecordings is one recording whose feedback the tests watch; the recorder's
// own tests are in record/.
type fakeRecordings struct{ got chan [3]string }

func (f *fakeRecordings) Recent(int) []web.Recording {
	return []web.Recording{{ID: "r1", Frame: "005_hole.png", Score: 20, Threshold: 10, Decision: "reject"}}
}
func (f *fakeRecordings) Path(id, file string) (string, error) { return "", web.ErrNotFound }
func (f *fakeRecordings) Feedback(id, label, kind string) (string, error) {
	if id != "r1" {
		return "", web.ErrNotFound
	}
	if label != "defect" && label != "false_reject" {
		return "", fmt.Errorf("%w: label %q", web.ErrBadRequest, label)
	}
	f.got <- [3]string{id, label, kind}
	return "dataset/test/" + kind + "/r1.png", nil
}
func (f *fakeRecordings) Stats() map[string]any { return map[string]any{"count": 1} }

type served struct {
	line *demoline.Line
	srv  *web.Server
	m    *metrics.Metrics
	url  string
	rec  *fakeRecordings
}

// serve runs the demo line (paced at fps, looping if loop) with the server on a
// free loopback port; tok "" leaves mutations off. POSTs are limited as in
// production, or to mutations a second when that is not 0.
func serve(t *testing.T, tok string, fps float64, loop bool, mutations ...float64) *served {
	t.Helper()
	return serveWith(t, fps, loop, func(o *web.Options) { o.Token, o.Mutations = tok, append(mutations, 0)[0] })
}

// serveWith is serve with the server's options set by opt.
func serveWith(t *testing.T, fps float64, loop bool, opt func(*web.Options)) *served {
	t.Helper()
	l := demoline.New(t, demoline.Options{FPS: fps, Loop: loop})
	m, err := metrics.New(metrics.Options{Version: "test", Pipeline: l.Pipeline, Line: l.Tracker, Threshold: l.Pipeline.Generation().Threshold})
	if err != nil {
		t.Fatal(err)
	}
	m.Start()
	t.Cleanup(func() { m.Close() })
	rec := &fakeRecordings{got: make(chan [3]string, 4)}
	o := web.Options{Address: "127.0.0.1:0", Heatmaps: 20, Pipeline: l.Pipeline, Line: l.Tracker, Metrics: m.Handler(), Recordings: rec}
	opt(&o)
	srv, err := web.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return &served{line: l, srv: srv, m: m, url: "http://" + srv.Addr(), rec: rec}
}

func do(t *testing.T, method, url, auth, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Mutations need the token; bodies are bounded; bad requests say what is wrong in
// one line and never echo the token.
func TestMutationsNeedTheToken(t *testing.T) {
	s := serve(t, token, 0, false, 1000) // the table is one burst: not limited here
	off := serve(t, "", 0, false)
	big := `{"label":"defect","kind":"` + strings.Repeat("x", web.MaxBody) + `"}`
	tests := []struct {
		name, url, auth, body string
		code                  int
		want                  string
	}{
		// no token configured: mutations are off
		{"off", off.url + "/api/alarm/reset", "Bearer " + token, "", 403, "mutations are off"},
		// no Authorization header
		{"missing", s.url + "/api/alarm/reset", "", "", 401, "bearer token"},
		// a wrong token, and one that is a prefix of the right one
		{"wrong", s.url + "/api/reload", "Bearer nope", "", 401, "bearer token"},
		{"prefix", s.url + "/api/reload", "Bearer " + token[:10], "", 401, "bearer token"},
		// another scheme
		{"basic", s.url + "/api/alarm/reset", "Basic " + token, "", 401, "bearer token"},
		// the right token
		{"reset", s.url + "/api/alarm/reset", "Bearer " + token, "", 200, "reset requested"},
		// feedback: good, unknown recording, bad label, not JSON, unknown field, too big
		{"feedback", s.url + "/api/recordings/r1/feedback", "Bearer " + token, `{"label":"defect","kind":"scratch"}`, 200, "dataset/test/scratch/r1.png"},
		{"unknown recording", s.url + "/api/recordings/nope/feedback", "Bearer " + token, `{"label":"defect"}`, 404, "no such recording"},
		{"bad label", s.url + "/api/recordings/r1/feedback", "Bearer " + token, `{"label":"maybe"}`, 400, `label \"maybe\"`},
		{"not json", s.url + "/api/recordings/r1/feedback", "Bearer " + token, `label=defect`, 400, "want one JSON object"},
		{"unknown field", s.url + "/api/recordings/r1/feedback", "Bearer " + token, `{"label":"defect","x":1}`, 400, "want one JSON object"},
		{"too big", s.url + "/api/recordings/r1/feedback", "Bearer " + token, big, 413, "body over"},
		// too big whatever it holds, and JSON with more after it
		{"too big, not json", s.url + "/api/recordings/r1/feedback", "Bearer " + token, strings.Repeat("x", 2*web.MaxBody), 413, "body over"},
		{"two objects", s.url + "/api/recordings/r1/feedback", "Bearer " + token, `{"label":"defect"}{"label":"false_reject"}`, 400, "want one JSON object"},
		{"trailing", s.url + "/api/recordings/r1/feedback", "Bearer " + token, `{"label":"defect"} xx`, 400, "want one JSON object"},
		// a good part has no defect kind; a defect without one is "defect"
		{"kind on a good part", s.url + "/api/recordings/r1/feedback", "Bearer " + token, `{"label":"false_reject","kind":"hole"}`, 400, "only a defect has a kind"},
		{"default kind", s.url + "/api/recordings/r1/feedback", "Bearer " + token, `{"label":"defect"}`, 200, `"kind":"defect"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(t, "POST", tc.url, tc.auth, tc.body)
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Fatalf("%d %s, want %d with %q", code, body, tc.code, tc.want)
			}
			if strings.Contains(body, token) || strings.Count(strings.TrimSpace(body), "\n") > 0 {
				t.Fatalf("response echoes the token or is not one line: %q", body)
			}
		})
	}
	for _, want := range [][3]string{{"r1", "defect", "scratch"}, {"r1", "defect", "defect"}} {
		select {
		case got := <-s.rec.got:
			if got != want {
				t.Fatalf("feedback reached the recordings as %v, want %v", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("feedback %v did not reach the recordings", want)
		}
	}
	// GETs cannot mutate: the routes are POST only.
	if code, _ := do(t, "GET", s.url+"/api/alarm/reset", "Bearer "+token, ""); code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
		t.Fatalf("GET alarm reset: %d", code)
	}
}

// A burst of POSTs beyond the limit gets 429, authorised or not: the limit bounds
// guessing the token too.
func TestMutationsAreRateLimited(t *testing.T) {
	for _, auth := range []string{"Bearer " + token, "Bearer a-guess-0123456789"} {
		s := serve(t, token, 0, false)
		var limited int
		for range 40 {
			if code, _ := do(t, "POST", s.url+"/api/alarm/reset", auth, ""); code == http.StatusTooManyRequests {
				limited++
			}
		}
		if limited < 20 { // burst 10 and 5/s: far fewer than 40 pass in the time this takes
			t.Fatalf("%s: %d of 40 requests limited", auth[:12], limited)
		}
	}
}

// The exported counters agree with the run's summary and the tracker's stats.
func TestMetricsAgreeWithTheSummary(t *testing.T) {
	s := serve(t, "", 0, false)
	s.line.Start(t)
	sum := s.line.Wait(t)
	code, body := do(t, "GET", s.url+"/metrics", "", "")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	want := map[string]float64{
		"adtrd_frames_total": float64(sum.Frames),
		`adtrd_decisions_total{decision="reject",reason="score"}`: float64(sum.Rejects),
		`adtrd_decisions_total{decision="pass",reason="score"}`:   float64(sum.Frames - sum.Rejects),
		"adtrd_reject_pulses_total":                               float64(sum.Line.Pulses),
		"adtrd_parts_total":                                       float64(sum.Line.Parts),
		"adtrd_frames_dropped_total":                              0,
		"adtrd_camera_up":                                         1,
		"adtrd_alarm":                                             0,
		"adtrd_generation":                                        1,
		`adtrd_fail_safe_total{cause="frame dropped"}`:            0,
		`adtrd_stage_seconds_count{stage="inference"}`:            float64(sum.Frames),
		"adtrd_score_count":                                       float64(sum.Frames),
		`adtrd_model_info{generation="1",sha256="` + s.line.Gen.ModelSHA + `"}`: 1,
	}
	got := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ') // label values may hold spaces
		if i < 0 || strings.HasPrefix(line, "#") {
			continue
		}
		name, v := line[:i], line[i+1:]
		var f float64
		fmt.Sscan(v, &f)
		got[name] = f
	}
	if sum.Frames != 16 || sum.Rejects == 0 {
		t.Fatalf("summary %+v: want the 16 demo frames with rejects", sum)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	// Names, units and help as Prometheus' own linter wants them.
	problems, err := testutil.GatherAndLint(s.m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "adtrd_") {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	}
}

// /api/events pages by id and validates its parameters; the stream carries status,
// events and live images as the line runs; /readyz follows the first frame.
func TestEventsStreamAndReadiness(t *testing.T) {
	s := serve(t, "", 10, true)
	if code, body := do(t, "GET", s.url+"/readyz", "", ""); code != 503 || !strings.Contains(body, "no frame decided yet") {
		t.Fatalf("readyz before the first frame: %d %q", code, body)
	}
	resp, err := http.Get(s.url + "/api/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("stream content type %q", ct)
	}
	s.line.Start(t)
	seen := map[string]int{}
	var events []web.Event
	rd := bufio.NewReader(resp.Body)
	deadline := time.Now().Add(30 * time.Second)
	name := ""
	for (seen["live"] == 0 || seen["status"] < 2 || len(events) < 12) && time.Now().Before(deadline) {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimSpace(line[7:])
		case strings.HasPrefix(line, "data: "):
			seen[name]++
			if name == "event" {
				var ev web.Event
				if err := json.Unmarshal([]byte(line[6:]), &ev); err != nil {
					t.Fatal(err)
				}
				events = append(events, ev)
			}
		}
	}
	if seen["live"] == 0 || seen["status"] < 2 || len(events) < 12 {
		t.Fatalf("stream after 30 s: %v, %d events", seen, len(events))
	}
	for i, ev := range events {
		if ev.Kind != "decision" || (i > 0 && ev.ID != events[i-1].ID+1) || ev.Frame == "" || strings.Contains(ev.Frame, "/") {
			t.Fatalf("event %d: %+v", i, ev)
		}
	}
	if code, _ := do(t, "GET", s.url+"/readyz", "", ""); code != 200 {
		t.Fatalf("readyz while running: %d", code)
	}
	// Paging forward: the 3 after an id, then the 3 after those.
	after := events[2].ID
	for range 2 {
		code, body := do(t, "GET", fmt.Sprintf("%s/api/events?after=%d&limit=3", s.url, after), "", "")
		var page struct{ Events []web.Event }
		if err := json.Unmarshal([]byte(body), &page); code != 200 || err != nil || len(page.Events) != 3 || page.Events[0].ID != after+1 || page.Events[2].ID != after+3 {
			t.Fatalf("events after %d: %d %s", after, code, body)
		}
		after = page.Events[2].ID
	}
	resp2, err := http.Get(s.url + "/api/live.png")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	if resp2.StatusCode != 200 || resp2.Header.Get("Content-Type") != "image/png" || len(b) < 1000 || string(b[1:4]) != "PNG" {
		t.Fatalf("live.png: %d %s, %d bytes", resp2.StatusCode, resp2.Header.Get("Content-Type"), len(b))
	}
	for _, tc := range []struct{ q, want string }{
		{"limit=0", "limit: want 1.."},      // too few
		{"limit=100000", "limit: want 1.."}, // too many
		{"after=-1", "after: not a whole"},  // not a number
		{"kind=%3Cscript%3E", "kind: want"}, // unknown kind: not echoed
	} {
		if code, body := do(t, "GET", s.url+"/api/events?"+tc.q, "", ""); code != 400 || !strings.Contains(body, tc.want) || strings.Contains(body, "<script>") {
			t.Errorf("%s: %d %s", tc.q, code, body)
		}
	}
}

// A port already taken is ErrListen naming the address; Close is safe twice and
// after a failed Start, and ends the streams still open.
func TestListenFailureAndClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	l := demoline.New(t, demoline.Options{})
	srv, err := web.New(web.Options{Address: ln.Addr().String(), Pipeline: l.Pipeline, Line: l.Tracker})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); !errors.Is(err, web.ErrListen) || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Fatalf("start on a taken port: %v", err)
	}
	srv.Close()
	srv.Close()
	if _, err := web.New(web.Options{Pipeline: l.Pipeline, Line: l.Tracker}); !errors.Is(err, web.ErrListen) {
		t.Fatalf("no address: %v", err)
	}
	s := serve(t, "", 10, true)
	s.line.Start(t)
	resp, err := http.Get(s.url + "/api/stream") // a stream open at Close ends
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, resp.Body); close(done) }()
	s.srv.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a stream outlived Close")
	}
}

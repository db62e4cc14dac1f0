package metrics_test

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/adtrd/adtrd/events"
	"github.com/adtrd/adtrd/gpio"
	"github.com/adtrd/adtrd/metrics"
)

// fakePipeline is the frame loop as metrics sees it: counters, the running
// generation and a bus, set by the test (no engine, no cgo).
type fakePipeline struct {
	bus   *events.Bus
	st    events.Stats
	gen   events.GenInfo
	lost  time.Time
	score float64
}

func (f *fakePipeline) Events() *events.Bus     { return f.bus }
func (f *fakePipeline) Counters() *events.Stats { return &f.st }
func (f *fakePipeline) Running() events.GenInfo { return f.gen }
func (f *fakePipeline) CameraLost() time.Time   { return f.lost }
func (f *fakePipeline) LastScore() float64      { return f.score }

type fakeLine struct {
	st    gpio.Stats
	alarm bool
}

func (f *fakeLine) Stats() gpio.Stats { return f.st }
func (f *fakeLine) Alarm() bool       { return f.alarm }

func newMetrics(t *testing.T, p *fakePipeline, l *fakeLine) *metrics.Metrics {
	t.Helper()
	m, err := metrics.New(metrics.Options{Version: "test", Pipeline: p, Line: l, Threshold: 10,
		Reloads: func() events.ReloadStatus { return events.ReloadStatus{Applied: 2, Failed: 1} }})
	if err != nil {
		t.Fatal(err)
	}
	m.Start()
	t.Cleanup(func() { m.Close() })
	return m
}

// The counters are read exactly at scrape time from the pipeline, the tracker and
// the reloader, and the running generation's values follow a reload.
func TestCountersAreReadAtScrapeTime(t *testing.T) {
	p := &fakePipeline{bus: events.NewBus(), gen: events.GenInfo{N: 1, ModelSHA: "abc", Threshold: 10}}
	l := &fakeLine{}
	m := newMetrics(t, p, l)
	p.st.Frames.Store(7)
	p.st.Skipped.Store(3)
	p.st.SourceDropped.Store(2)
	p.st.Decisions[events.Reject][events.ByScore].Store(4)
	l.st.Pulses, l.st.Overruns, l.alarm = 4, 1, true
	l.st.FailSafe[gpio.CauseLate] = 5
	p.lost = time.Now()
	want := `
# HELP adtrd_frames_total Frames taken for inference (each is a part's frame, decided once).
# TYPE adtrd_frames_total counter
adtrd_frames_total 7
# HELP adtrd_frames_skipped_total Untriggered frames skipped because inference was behind (no part, no pulse).
# TYPE adtrd_frames_skipped_total counter
adtrd_frames_skipped_total 3
# HELP adtrd_camera_frames_dropped_total Frames the camera source read and dropped before the queue because every frame buffer was held.
# TYPE adtrd_camera_frames_dropped_total counter
adtrd_camera_frames_dropped_total 2
# HELP adtrd_reject_pulses_total Pulses of the reject output.
# TYPE adtrd_reject_pulses_total counter
adtrd_reject_pulses_total 4
# HELP adtrd_overrun_alarms_total Times the alarm was raised because the line could not keep up.
# TYPE adtrd_overrun_alarms_total counter
adtrd_overrun_alarms_total 1
# HELP adtrd_alarm 1 while the alarm output is on.
# TYPE adtrd_alarm gauge
adtrd_alarm 1
# HELP adtrd_camera_up 0 while the camera is lost, else 1.
# TYPE adtrd_camera_up gauge
adtrd_camera_up 0
# HELP adtrd_generation The running config generation.
# TYPE adtrd_generation gauge
adtrd_generation 1
# HELP adtrd_threshold The running threshold (reject when score > threshold).
# TYPE adtrd_threshold gauge
adtrd_threshold 10
`
	names := []string{"adtrd_frames_total", "adtrd_frames_skipped_total", "adtrd_camera_frames_dropped_total", "adtrd_reject_pulses_total",
		"adtrd_overrun_alarms_total", "adtrd_alarm", "adtrd_camera_up", "adtrd_generation", "adtrd_threshold"}
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
	// decisions by decision and reason; fail-safes by cause; reloads by result
	for _, tc := range []struct {
		name, line string
	}{
		{"adtrd_decisions_total", `adtrd_decisions_total{decision="reject",reason="score"} 4`},
		{"adtrd_fail_safe_total", `adtrd_fail_safe_total{cause="decision late"} 5`},
		{"adtrd_reloads_total", `adtrd_reloads_total{result="failed"} 1`},
		{"adtrd_model_info", `adtrd_model_info{generation="1",sha256="abc"} 1`},
	} {
		if got := scrape(t, m, tc.name); !strings.Contains(got, tc.line) {
			t.Errorf("%s: no %q in\n%s", tc.name, tc.line, got)
		}
	}
	// a reload: the next scrape shows the new generation
	p.gen = events.GenInfo{N: 2, ModelSHA: "def", Threshold: 12.5}
	if got := scrape(t, m, "adtrd_model_info"); !strings.Contains(got, `adtrd_model_info{generation="2",sha256="def"} 1`) || strings.Contains(got, `"abc"`) {
		t.Fatalf("after a reload:\n%s", got)
	}
	if got := scrape(t, m, "adtrd_threshold", "adtrd_generation"); got != "adtrd_threshold 12.5\nadtrd_generation 2\n" && got != "adtrd_generation 2\nadtrd_threshold 12.5\n" {
		t.Fatalf("after a reload:\n%s", got)
	}
}

// The latency and score histograms are fed from the bus: every decision's queue
// wait, and for decisions by score its inference, scoring and score.
func TestHistogramsFollowTheBus(t *testing.T) {
	p := &fakePipeline{bus: events.NewBus(), gen: events.GenInfo{N: 1, Threshold: 10}}
	m := newMetrics(t, p, &fakeLine{})
	for i, s := range []float64{2, 9.9, 10.4} {
		p.bus.Publish(events.Event{Kind: events.EventDecision, Record: events.Record{Seq: uint64(i + 1), Score: s, Reason: events.ByScore,
			Wait: time.Millisecond, Infer: 20 * time.Millisecond, Scoring: time.Millisecond}})
	}
	// a fail-safe decision: a queue wait, no inference or score
	p.bus.Publish(events.Event{Kind: events.EventDecision, Record: events.Record{Seq: 4, Reason: events.BadFrame, Wait: time.Millisecond}})
	p.bus.Publish(events.Event{Kind: events.EventSourceLost}) // not a decision: not counted
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(scrape(t, m, "adtrd_score"), "adtrd_score_count 3") {
		if time.Now().After(deadline) {
			t.Fatalf("the score histogram never counted 3:\n%s", scrape(t, m, "adtrd_score"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	got := scrape(t, m, "adtrd_score", "adtrd_stage_seconds")
	for _, line := range []string{
		`adtrd_score_bucket{le="10"} 2`,   // 2 and 9.9 at or below the threshold
		`adtrd_score_bucket{le="10.5"} 3`, // 10.4 within 1.05 of it
		`adtrd_stage_seconds_count{stage="queue"} 4`,
		`adtrd_stage_seconds_count{stage="inference"} 3`,
	} {
		if !strings.Contains(got, line) {
			t.Errorf("no %q in\n%s", line, got)
		}
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil { // safe twice
		t.Fatal(err)
	}
}

// scrape is /metrics' text lines of the named metrics (histograms with their
// _bucket, _sum and _count lines), as Prometheus reads them.
func scrape(t *testing.T, m *metrics.Metrics, names ...string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	var b strings.Builder
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		name, _, _ := strings.Cut(line, " ")
		name, _, _ = strings.Cut(name, "{")
		for _, n := range names {
			if name == n || name == n+"_bucket" || name == n+"_sum" || name == n+"_count" {
				b.WriteString(line + "\n")
			}
		}
	}
	return b.String()
}

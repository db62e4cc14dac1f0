// Package metrics exports the running daemon to Prometheus: counters read exactly at
// scrape time from the pipeline, the tracker and the reloader, and latency and score
// histograms fed by the event bus, off the frame path.
package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/adtrd/adtrd/events"
	"github.com/adtrd/adtrd/gpio"
)

// Line is what the metrics read from the tracker.
type Line interface {
	Stats() gpio.Stats
	Alarm() bool
}

// Pipeline is what the metrics read from the frame loop (daemon.Pipeline).
type Pipeline interface {
	Events() *events.Bus
	Counters() *events.Stats
	Running() events.GenInfo
	// CameraLost is when the camera was lost; zero while it runs.
	CameraLost() time.Time
	LastScore() float64
}

// Options are the metrics' sources. Pipeline and Line are required.
type Options struct {
	Version  string
	Pipeline Pipeline
	Line     Line
	Reloads  func() events.ReloadStatus // nil: no reload metrics
	// Thresholds at start: the score histogram's buckets are fractions of it (a
	// reload that moves the threshold keeps them; adtrd_threshold shows the new one).
	Threshold float64
	// Consumers are the event bus's other subscribers (recorder, MQTT, page) by name:
	// their dropped events become adtrd_events_dropped_total{consumer}.
	Consumers map[string]func() uint64
	Extra     []prometheus.Collector // the recorder's and MQTT's own
}

// Metrics is a registry with adtrd's metrics and the goroutine that feeds its
// histograms from the bus.
type Metrics struct {
	reg   *prometheus.Registry
	sub   *events.Subscription
	stage *prometheus.HistogramVec
	score prometheus.Histogram
	stop  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
}

// StageBuckets are the latency buckets in seconds: 0.5 ms to 2 s, where a frame's
// queue wait, inference and scoring fall on CPUs from a Jetson to a PC.
var StageBuckets = []float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2}

// ScoreFractions are the score histogram's bucket bounds as fractions of the
// threshold at start: fine near the threshold, where drift matters.
var ScoreFractions = []float64{0.25, 0.5, 0.75, 0.8, 0.85, 0.9, 0.95, 1, 1.05, 1.1, 1.25, 1.5, 2, 4}

// New registers every metric; Start begins feeding the histograms.
func New(opt Options) (*Metrics, error) {
	m := &Metrics{reg: prometheus.NewRegistry(), stop: make(chan struct{})}
	m.stage = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "adtrd_stage_seconds", Help: "Per-frame time by stage: queue (capture to inference start), inference, scoring.",
		Buckets: StageBuckets,
	}, []string{"stage"})
	th := opt.Threshold
	if th <= 0 {
		th = 1
	}
	b := make([]float64, len(ScoreFractions))
	for i, f := range ScoreFractions {
		b[i] = f * th
	}
	m.score = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "adtrd_score", Help: "Image scores of decided frames (buckets are fractions of the threshold at start).", Buckets: b,
	})
	cs := []prometheus.Collector{
		m.stage, m.score, &state{opt: opt},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}
	for _, c := range append(cs, opt.Extra...) {
		if err := m.reg.Register(c); err != nil {
			return nil, err
		}
	}
	m.sub = opt.Pipeline.Events().Subscribe(1024)
	return m, nil
}

// Dropped is how many bus events the histograms missed (their subscriber was full).
func (m *Metrics) Dropped() uint64 { return m.sub.Dropped() }

// Start feeds the histograms from the bus until Close.
func (m *Metrics) Start() {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for {
			select {
			case <-m.stop:
				return
			case e := <-m.sub.C():
				if e.Kind != events.EventDecision {
					continue
				}
				r := &e.Record
				m.stage.WithLabelValues("queue").Observe(r.Wait.Seconds())
				if r.Reason == events.ByScore {
					m.stage.WithLabelValues("inference").Observe(r.Infer.Seconds())
					m.stage.WithLabelValues("scoring").Observe(r.Scoring.Seconds())
					m.score.Observe(r.Score)
				}
			}
		}
	}()
}

// Handler serves the registry in Prometheus' text or protobuf format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, MaxRequestsInFlight: 4})
}

// Registry is where the metrics live (tests gather from it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Close stops the feeding goroutine and unsubscribes. Safe twice.
func (m *Metrics) Close() error {
	m.once.Do(func() {
		close(m.stop)
		m.wg.Wait()
		m.sub.Close()
	})
	return nil
}

// state reads the exact counters at scrape time.
type state struct{ opt Options }

var (
	descBuild      = prometheus.NewDesc("adtrd_build_info", "The running adtrd's version.", []string{"version"}, nil)
	descFrames     = prometheus.NewDesc("adtrd_frames_total", "Frames taken for inference (each is a part's frame, decided once).", nil, nil)
	descDecisions  = prometheus.NewDesc("adtrd_decisions_total", "Decided frames by decision and reason.", []string{"decision", "reason"}, nil)
	descDropped    = prometheus.NewDesc("adtrd_frames_dropped_total", "Triggered parts' frames dropped because the inference queue was full (each part takes the fail-safe).", nil, nil)
	descCamDropped = prometheus.NewDesc("adtrd_camera_frames_dropped_total", "Frames the camera source read and dropped before the queue because every frame buffer was held.", nil, nil)
	descSkipped    = prometheus.NewDesc("adtrd_frames_skipped_total", "Untriggered frames skipped because inference was behind (no part, no pulse).", nil, nil)
	descOverruns   = prometheus.NewDesc("adtrd_overrun_alarms_total", "Times the alarm was raised because the line could not keep up.", nil, nil)
	descBad        = prometheus.NewDesc("adtrd_frames_bad_total", "Frames that could not be read (decided by the fail-safe).", nil, nil)
	descInferErr   = prometheus.NewDesc("adtrd_inference_errors_total", "Frames whose inference or scoring failed (decided by the fail-safe).", nil, nil)
	descUnmatched  = prometheus.NewDesc("adtrd_frames_unmatched_total", "Triggered camera frames in no part's window (dropped).", nil, nil)
	descFailSafe   = prometheus.NewDesc("adtrd_fail_safe_total", "Parts that fell to the fail-safe, by cause.", []string{"cause"}, nil)
	descParts      = prometheus.NewDesc("adtrd_parts_total", "Parts stamped (a trigger edge or a frame).", nil, nil)
	descInFlight   = prometheus.NewDesc("adtrd_parts_in_flight", "Parts between the camera and the ejector.", nil, nil)
	descPulses     = prometheus.NewDesc("adtrd_reject_pulses_total", "Pulses of the reject output.", nil, nil)
	descInhibited  = prometheus.NewDesc("adtrd_rejects_inhibited_total", "Rejects suppressed by the inhibit input.", nil, nil)
	descLate       = prometheus.NewDesc("adtrd_decisions_late_total", "Decisions that came after their part's reject time.", nil, nil)
	descUnconfirm  = prometheus.NewDesc("adtrd_rejects_unconfirmed_total", "Reject pulses the confirm input did not see.", nil, nil)
	descAlarms     = prometheus.NewDesc("adtrd_alarms_total", "Times the alarm output was raised.", nil, nil)
	descAlarm      = prometheus.NewDesc("adtrd_alarm", "1 while the alarm output is on.", nil, nil)
	descCameraUp   = prometheus.NewDesc("adtrd_camera_up", "0 while the camera is lost, else 1.", nil, nil)
	descCameraLost = prometheus.NewDesc("adtrd_camera_losses_total", "Camera losses (each outage once; each is followed by reconnects).", nil, nil)
	descReloads    = prometheus.NewDesc("adtrd_reloads_total", "Config reloads by result.", []string{"result"}, nil)
	descModel      = prometheus.NewDesc("adtrd_model_info", "The running generation's model.", []string{"sha256", "generation"}, nil)
	descGen        = prometheus.NewDesc("adtrd_generation", "The running config generation.", nil, nil)
	descThreshold  = prometheus.NewDesc("adtrd_threshold", "The running threshold (reject when score > threshold).", nil, nil)
	descLastScore  = prometheus.NewDesc("adtrd_last_score", "The last decided frame's score.", nil, nil)
	descEvDropped  = prometheus.NewDesc("adtrd_events_dropped_total", "Bus events a slow consumer missed (the frame path never waits).", []string{"consumer"}, nil)
)

func (s *state) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBuild, descFrames, descDecisions, descDropped, descCamDropped, descSkipped, descOverruns, descBad, descInferErr, descUnmatched,
		descFailSafe, descParts, descInFlight, descPulses, descInhibited, descLate, descUnconfirm, descAlarms, descAlarm,
		descCameraUp, descCameraLost, descReloads, descModel, descGen, descThreshold, descLastScore, descEvDropped} {
		ch <- d
	}
}

func (s *state) Collect(ch chan<- prometheus.Metric) {
	p, opt := s.opt.Pipeline, s.opt
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descBuild, 1, opt.Version)
	st := p.Counters()
	counter(descFrames, st.Frames.Load())
	for d := range events.DecisionCount {
		for r := range events.ReasonCount {
			counter(descDecisions, st.Decisions[d][r].Load(), d.String(), r.String())
		}
	}
	counter(descDropped, st.Dropped.Load())
	counter(descSkipped, st.Skipped.Load())
	counter(descCamDropped, st.SourceDropped.Load())
	counter(descBad, st.BadFrames.Load())
	counter(descInferErr, st.InferErrors.Load())
	counter(descUnmatched, st.Unmatched.Load())
	counter(descCameraLost, st.CameraErrors.Load())
	up := 1.0
	if !p.CameraLost().IsZero() {
		up = 0
	}
	gauge(descCameraUp, up)
	ls := opt.Line.Stats()
	for c := 1; c < len(ls.FailSafe); c++ {
		if gpio.Cause(c) == gpio.CauseOverrun { // an alarm's cause, no part's: adtrd_overrun_alarms_total
			continue
		}
		counter(descFailSafe, ls.FailSafe[c], gpio.Cause(c).String())
	}
	counter(descOverruns, ls.Overruns)
	counter(descParts, ls.Parts)
	gauge(descInFlight, float64(ls.InFlight))
	counter(descPulses, ls.Pulses)
	counter(descInhibited, ls.Inhibited)
	counter(descLate, ls.LateDecisions)
	counter(descUnconfirm, ls.Unconfirmed)
	counter(descAlarms, ls.Alarms)
	alarm := 0.0
	if opt.Line.Alarm() {
		alarm = 1
	}
	gauge(descAlarm, alarm)
	if opt.Reloads != nil {
		rs := opt.Reloads()
		counter(descReloads, rs.Applied, "applied")
		counter(descReloads, rs.Unchanged, "unchanged")
		counter(descReloads, rs.Failed, "failed")
	}
	g := p.Running()
	gauge(descModel, 1, g.ModelSHA, strconv.FormatUint(g.N, 10))
	gauge(descGen, float64(g.N))
	gauge(descThreshold, g.Threshold)
	gauge(descLastScore, p.LastScore())
	for name, f := range opt.Consumers {
		counter(descEvDropped, f(), name)
	}
}

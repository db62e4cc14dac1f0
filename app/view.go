package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/daemon"
	"github.com/adtrd/adtrd/events"
	"github.com/adtrd/adtrd/gpio"
	"github.com/adtrd/adtrd/metrics"
	"github.com/adtrd/adtrd/mqtt"
	"github.com/adtrd/adtrd/record"
	"github.com/adtrd/adtrd/web"
)

// view is the operators' view of a run: metrics, the page and API, recordings and
// MQTT. Each part that fails to start is logged at error level and left off: the
// line runs without it (a busy port must not stop a production line), unless
// http.required says the page must be there.
type view struct {
	closers []func() error
	Addr    string // the page's address, once listening
	log     *slog.Logger
}

// startView starts what cfg asks for, on the pipeline's bus; rl may be nil (no
// reloads). The error is the page's failure to start under http.required (what was
// started is closed again); v is then nil.
func startView(cfg config.Config, cfgPath, version string, p *daemon.Pipeline, tr *gpio.Tracker, rl *daemon.Reloader, log *slog.Logger) (*view, error) {
	v := &view{log: log}
	var extra []prometheus.Collector
	consumers := map[string]func() uint64{}
	var recs web.Recordings
	if rc := cfg.Recordings; rc.Dir != "" {
		r, err := record.New(record.Options{
			Dir: rc.Dir, Quota: rc.Quota << 20, MaxAge: time.Duration(rc.MaxAge), Near: rc.Near, Rate: rc.Rate,
			Dataset: rc.Dataset, Bus: p.Events(), Log: log.With("component", "recordings"),
		})
		switch {
		case errors.Is(err, record.ErrUnusable):
			// Recordings are dropped and counted until the folder can be written.
			log.Warn("recordings: folder unusable for now; recordings are dropped and counted until it is writable", "err", err)
		case err != nil:
			log.Error("recordings: off", "err", err)
		}
		if r != nil {
			if err := r.Start(); err != nil {
				log.Error("recordings: off", "err", err)
			} else {
				v.closers = append(v.closers, r.Close)
				recs = recordings{r}
				extra = append(extra, recorderMetrics(r)...)
				log.Info("recordings", "dir", rc.Dir, "quota_mb", rc.Quota, "dataset", rc.Dataset)
			}
		}
	}
	if cfg.MQTT.Broker != "" {
		pub, err := mqtt.New(mqtt.Options{Config: cfg.MQTT, Bus: p.Events(), Alarm: tr.Alarm, Log: log.With("component", "mqtt")})
		if err == nil {
			err = pub.Start()
		}
		if err != nil {
			log.Error("mqtt: off; the line runs", "err", err)
		} else {
			v.closers = append(v.closers, pub.Close)
			consumers["mqtt"] = func() uint64 { return pub.Stats().BusDropped }
			extra = append(extra, mqttMetrics(pub)...)
		}
	}
	if cfg.HTTP.Address == "" {
		return v, nil
	}
	mo := metrics.Options{
		Version: version, Pipeline: p, Line: tr, Threshold: p.Generation().Threshold,
		Consumers: consumers, Extra: extra,
	}
	wo := web.Options{
		Address: cfg.HTTP.Address, Hosts: cfg.HTTP.Hosts, Heatmaps: cfg.HTTP.Heatmaps, Version: version,
		Pipeline: p, Line: tr, Recordings: recs, ConfigPath: AbsPath(cfgPath),
		Log: log.With("component", "http"),
	}
	if rl != nil {
		mo.Reloads, wo.Reloader = rl.Status, rl
	}
	m, err := metrics.New(mo)
	if err != nil {
		return v.pageOff(cfg.HTTP, fmt.Errorf("metrics: %w", err))
	}
	m.Start()
	v.closers = append(v.closers, m.Close)
	consumers["metrics"] = m.Dropped
	token := ""
	if cfg.HTTP.TokenFile != "" {
		// Validated when the config was loaded; read again here, and kept only hashed.
		if token, err = config.ReadSecret(cfg.HTTP.TokenFile); err != nil {
			log.Error("http: token file unreadable: mutations are off", "err", err)
		}
	}
	wo.Token, wo.Metrics = token, m.Handler()
	srv, err := web.New(wo)
	if err == nil {
		err = srv.Start()
	}
	if err != nil {
		return v.pageOff(cfg.HTTP, err)
	}
	v.closers = append(v.closers, srv.Close)
	consumers["page"] = srv.Dropped
	v.Addr = srv.Addr()
	log.Info("operators' page", "url", "http://"+v.Addr+"/", "metrics", "http://"+v.Addr+"/metrics")
	return v, nil
}

// pageOff handles a page that could not start: under http.required an error naming
// http.address (and the parts already started closed), else an error-level record
// and the line runs on.
func (v *view) pageOff(h config.HTTP, err error) (*view, error) {
	what := fmt.Sprintf("http.address %s: %v", h.Address, err)
	// web wraps the listener's error as text: its errno's words are what is left.
	if errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), syscall.EADDRINUSE.Error()) {
		what = fmt.Sprintf("http.address %s is in use", h.Address)
	}
	if h.Required {
		v.Close()
		return nil, fmt.Errorf("operators' page: %s (http.required: true; free the port, or set another http.address)", what)
	}
	v.log.Error("operators' page off: "+what, "err", err, "line", "runs without the page (http.required: true stops instead)")
	return v, nil
}

// Close stops the parts in the reverse order of their start and logs what they
// lost in stopping (MQTT messages the broker never took, say). Safe twice.
func (v *view) Close() error {
	var errs []error
	for i := len(v.closers) - 1; i >= 0; i-- {
		if err := v.closers[i](); err != nil {
			v.log.Warn("operators' view: stopping", "err", err)
			errs = append(errs, err)
		}
	}
	v.closers = nil
	return errors.Join(errs...)
}

// recordings is the recorder as the page sees it.
type recordings struct{ r *record.Recorder }

func (a recordings) Recent(n int) []web.Recording {
	ms := a.r.List(n)
	out := make([]web.Recording, len(ms))
	for i, m := range ms {
		out[i] = web.Recording{ID: m.ID, Time: m.Time, Seq: m.Seq, Part: m.Part, Frame: m.Frame, Score: events.Round4(m.Score),
			Threshold: events.Round4(m.Threshold), Decision: m.Decision, Kind: m.Kind}
		if m.Label != record.Unlabelled {
			out[i].Label = m.Label.String()
		}
	}
	return out
}

func (a recordings) Path(id, file string) (string, error) {
	p, err := a.r.File(id, file)
	if err != nil {
		return "", fmt.Errorf("%w: %v", web.ErrNotFound, err)
	}
	return p, nil
}

func (a recordings) Feedback(id, label, kind string) (string, error) {
	l, err := record.ParseLabel(label)
	if err != nil || l == record.Unlabelled {
		return "", fmt.Errorf("%w: label %q: want defect or false_reject", web.ErrBadRequest, label)
	}
	dest, err := a.r.Label(id, l, kind)
	switch {
	case errors.Is(err, record.ErrNotFound):
		return "", fmt.Errorf("%w: %v", web.ErrNotFound, err)
	case errors.Is(err, record.ErrBadKind), errors.Is(err, record.ErrBadLabel):
		return "", fmt.Errorf("%w: %v", web.ErrBadRequest, err)
	case errors.Is(err, record.ErrNoDataset):
		return "", fmt.Errorf("%w: feedback is off: set recordings.dataset in the config", web.ErrBadRequest)
	}
	return dest, err
}

func (a recordings) Stats() map[string]any {
	s := a.r.Stats()
	dropped := map[string]uint64{}
	for d := range record.DropReasons {
		dropped[d.String()] = s.Dropped[d]
	}
	out := map[string]any{"recorded": s.Recorded, "count": s.Count, "bytes": s.Bytes, "removed": s.Removed, "labelled": s.Labelled, "dropped": dropped}
	if s.LastError != "" {
		out["last_error"], out["last_error_at"] = s.LastError, s.LastErrorAt.UTC()
	}
	return out
}

// recorderMetrics are the recorder's counters for /metrics.
func recorderMetrics(r *record.Recorder) []prometheus.Collector {
	cs := []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "adtrd_recordings_total", Help: "Frames recorded (rejects and near-threshold passes)."},
			func() float64 { return float64(r.Stats().Recorded) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "adtrd_recordings_bytes", Help: "Bytes the recordings now take on disk."},
			func() float64 { return float64(r.Stats().Bytes) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "adtrd_recordings_removed_total", Help: "Recordings removed by the quota or the age limit."},
			func() float64 { return float64(r.Stats().Removed) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "adtrd_feedback_total", Help: "Recordings labelled by an operator."},
			func() float64 { return float64(r.Stats().Labelled) }),
	}
	for d := range record.DropReasons {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "adtrd_recordings_dropped_total", Help: "Recordings not made, by reason (never frames).",
			ConstLabels: prometheus.Labels{"reason": d.String()},
		}, func() float64 { return float64(r.Stats().Dropped[d]) }))
	}
	return cs
}

// mqttMetrics are the publisher's counters for /metrics.
func mqttMetrics(p *mqtt.Publisher) []prometheus.Collector {
	counter := func(name, help string, f func(mqtt.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f(p.Stats())) })
	}
	return []prometheus.Collector{
		counter("adtrd_mqtt_published_total", "MQTT messages the broker acknowledged.", func(s mqtt.Stats) uint64 { return s.Published }),
		counter("adtrd_mqtt_dropped_total", "MQTT messages dropped, oldest first, while the broker was away and the buffer full.", func(s mqtt.Stats) uint64 { return s.Dropped }),
		counter("adtrd_mqtt_reconnects_total", "Connections to the broker after the first.", func(s mqtt.Stats) uint64 { return s.Reconnects }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "adtrd_mqtt_queued", Help: "MQTT messages buffered or in flight, not yet acknowledged."},
			func() float64 { return float64(p.Stats().Queued) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "adtrd_mqtt_connected", Help: "1 while connected to the broker."}, func() float64 {
			if p.Stats().Connected {
				return 1
			}
			return 0
		}),
	}
}

// ErrPortBusy: http.address is in use now (`adtrd check` exit 1 under http.required).
var ErrPortBusy = errors.New("http.address in use")

// portBusyError says who holds the port; it is ErrPortBusy.
type portBusyError struct{ msg string }

func (e *portBusyError) Error() string { return e.msg }
func (e *portBusyError) Unwrap() error { return ErrPortBusy }

// AbsPath is path in full ("" stays ""): what the status says is the config, so
// that `adtrd check` run from another folder finds the same file.
func AbsPath(path string) string {
	if path == "" {
		return ""
	}
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return path
}

// CheckHTTP is `adtrd check`'s look at http.address: free, or held by the adtrd that
// runs this very config (checking the running line's config is ordinary), is fine.
// Held by anything else, `adtrd run` would lose its page: an error wrapping
// ErrPortBusy under http.required, else a warning on log. An address this host cannot
// listen on at all is an error under http.required.
func CheckHTTP(h config.HTTP, cfgPath string, log *slog.Logger) error {
	if h.Address == "" {
		return nil
	}
	l, err := net.Listen("tcp", h.Address)
	if err == nil {
		return l.Close()
	}
	what := fmt.Sprintf("http.address %s: %v", h.Address, err)
	if errors.Is(err, syscall.EADDRINUSE) {
		holder, same := portHolder(h.Address, cfgPath)
		if same {
			return nil
		}
		what = fmt.Sprintf("http.address %s is in use (by %s)", h.Address, holder)
		if h.Required {
			return &portBusyError{what + ": `adtrd run` would not start (http.required: true; free the port, or set another http.address)"}
		}
	} else if h.Required {
		return fmt.Errorf("%s (http.required: true)", what)
	}
	log.Warn("operators' page would be off: " + what + " (the line runs without it; http.required: true stops instead)")
	return nil
}

// portHolder asks what listens on addr for its status: an adtrd's page names its
// config file. same is true when that is cfgPath (the same file).
func portHolder(addr, cfgPath string) (holder string, same bool) {
	if host, port, err := net.SplitHostPort(addr); err == nil {
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			addr = net.JoinHostPort("127.0.0.1", port) // a wildcard listener answers on loopback
		}
	}
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/api/status")
	if err != nil {
		return "another program", false
	}
	defer resp.Body.Close()
	var st struct {
		Config *string `json:"config"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st) != nil || st.Config == nil {
		return "another program", false
	}
	a, errA := os.Stat(*st.Config)
	b, errB := os.Stat(cfgPath)
	if errA == nil && errB == nil && os.SameFile(a, b) {
		return "", true
	}
	return fmt.Sprintf("another adtrd, running %s", *st.Config), false
}

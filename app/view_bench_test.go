package app

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/engine/tflite"
	"github.com/adtrd/adtrd/internal/demoline"
	"github.com/adtrd/adtrd/internal/testlib"
)

// BenchmarkView: the pipeline's frames/s on the demo model with the operators' view
// off, and on as a line runs it: the page's server with a browser's stream open and
// the live image fetched twice a second, /metrics scraped every second, recordings
// (rejects and passes above 0.9 x threshold, at most 2 a second) and MQTT publishing
// every decision to a real mosquitto. The frames come unpaced (as fast as inference
// takes them) in b.N-frame passes; ratio is on
// over off (five of each, off and on alternately). Inference uses both of this
// machine's cores, as the default config does.
func BenchmarkView(b *testing.B) {
	broker := testlib.StartMosquitto(b)
	quiet := slog.New(slog.DiscardHandler)
	var off, on, cpuOff, cpuOn time.Duration
	var n int
	for range 5 {
		for _, view := range []bool{false, true} {
			l := demoline.New(b, demoline.Options{Loop: true, Limit: b.N, Threads: 2, Open: tflite.Opener})
			if view {
				cfg := config.Default()
				cfg.HTTP.Address = "127.0.0.1:0"
				cfg.Recordings.Dir = filepath.Join(b.TempDir(), "rec")
				cfg.MQTT.Broker, cfg.MQTT.Decisions = broker.URL(), config.DecisionsAll
				cfg.HTTP.Required = true
				v, err := startView(cfg, "", "bench", l.Pipeline, l.Tracker, nil, quiet)
				if err != nil || v.Addr == "" {
					b.Fatalf("the view did not start: %v", err)
				}
				stop := browse(b, "http://"+v.Addr)
				defer v.Close()
				defer stop()
			}
			start, cpu := time.Now(), cpuTime()
			l.Start(b)
			sum := l.Wait(b)
			if sum.Frames != uint64(b.N) {
				b.Fatalf("%d frames decided of %d: %v", sum.Frames, b.N, sum)
			}
			if view {
				on += time.Since(start)
				cpuOn += cpuTime() - cpu
			} else {
				off += time.Since(start)
				cpuOff += cpuTime() - cpu
			}
			n += b.N
		}
	}
	b.ReportMetric(float64(n/2)/off.Seconds(), "off-frames/s")
	b.ReportMetric(float64(n/2)/on.Seconds(), "on-frames/s")
	b.ReportMetric(off.Seconds()/on.Seconds(), "ratio")
	// The process's CPU per frame, on over off: what the view costs in CPU, which
	// the frame rate shows only where the cores are short.
	b.ReportMetric(cpuOn.Seconds()/cpuOff.Seconds(), "cpu-ratio")
	b.ReportMetric(0, "ns/op")
}

// browse is an operator's browser and a Prometheus: the stream read, the live image
// fetched every 500 ms and /metrics every second, until stop.
func browse(b *testing.B, url string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	get := func(path string) {
		req, _ := http.NewRequestWithContext(ctx, "GET", url+path, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	wg.Add(3)
	go func() {
		defer wg.Done()
		req, _ := http.NewRequestWithContext(ctx, "GET", url+"/api/stream", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
		}
	}()
	every := func(d time.Duration, path string) {
		defer wg.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				get(path)
			}
		}
	}
	go every(500*time.Millisecond, "/api/live.png")
	go every(time.Second, "/metrics")
	return func() { cancel(); wg.Wait() }
}

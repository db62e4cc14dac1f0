package main

import (
	"errors"
	"log/slog"

	"github.com/adtrd/adtrd/config"
	"github.com/adtrd/adtrd/daemon"
	"github.com/adtrd/adtrd/gpio"
	"github.com/adtrd/adtrd/metrics"
	"github.com/adtrd/adtrd/web"
)

// view is the operators' view of a run: metrics, the page and API, recordings and
// MQTT. Each part that fails to start is logged and left off: the line runs without
// it (a busy port must not stop a production line).
type view struct {
	closers []func() error
	Addr    string // the page's address, once listening
}

// startView starts what cfg asks for, on the pipeline's bus.
func startView(cfg config.Config, cfgPath string, p *daemon.Pipeline, tr *gpio.Tracker, rl *daemon.Reloader, log *slog.Logger) *view {
	v := &view{}
	if cfg.HTTP.Address == "" {
		return v
	}
	m, err := metrics.New(metrics.Options{
		Version: version, Pipeline: p, Line: tr, Reloads: rl.Status, Threshold: p.Generation().Threshold,
		Log: log.With("component", "metrics"),
	})
	if err != nil {
		log.Error("metrics: off", "err", err)
		return v
	}
	m.Start()
	v.closers = append(v.closers, m.Close)
	token := ""
	if cfg.HTTP.TokenFile != "" {
		// Validated when the config was loaded; read again here, and kept only hashed.
		if token, err = config.ReadSecret(cfg.HTTP.TokenFile); err != nil {
			log.Error("http: token file unreadable: mutations are off", "err", err)
		}
	}
	srv, err := web.New(web.Options{
		Address: cfg.HTTP.Address, Token: token, Heatmaps: cfg.HTTP.Heatmaps, Version: version,
		Pipeline: p, Line: tr, Reloader: rl, Metrics: m.Handler(), ModelPath: cfg.Model.Path, ConfigPath: cfgPath,
		Log: log.With("component", "http"),
	})
	if err == nil {
		err = srv.Start()
	}
	if err != nil {
		log.Warn("the operators' page is off; the line runs", "err", err)
		return v
	}
	v.closers = append(v.closers, srv.Close)
	v.Addr = srv.Addr()
	log.Info("operators' page", "url", "http://"+v.Addr+"/", "metrics", "http://"+v.Addr+"/metrics")
	return v
}

// Close stops the parts in the reverse order of their start. Safe twice.
func (v *view) Close() error {
	var errs []error
	for i := len(v.closers) - 1; i >= 0; i-- {
		errs = append(errs, v.closers[i]())
	}
	v.closers = nil
	return errors.Join(errs...)
}

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
)

// warnHandler prints a command's Warn and Error records as one line each,
// "adtrd check: warning: <msg> key=value...", and counts them: a check that finds only
// warnings still says ok, with how many were printed.
type warnHandler struct {
	w      io.Writer
	prefix string
	n      *atomic.Int64
	attrs  []slog.Attr
}

func newWarnLog(w io.Writer, prefix string) (*slog.Logger, *atomic.Int64) {
	n := new(atomic.Int64)
	return slog.New(&warnHandler{w: w, prefix: prefix, n: n}), n
}

func (h *warnHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h *warnHandler) Handle(_ context.Context, r slog.Record) error {
	h.n.Add(1)
	var b strings.Builder
	fmt.Fprintf(&b, "%s: warning: %s", h.prefix, r.Message)
	add := func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	_, err := fmt.Fprintln(h.w, strings.ReplaceAll(b.String(), "\n", "; "))
	return err
}

func (h *warnHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &c
}

// WithGroup is not used by the daemon's packages; a group's attributes print unqualified.
func (h *warnHandler) WithGroup(string) slog.Handler { return h }

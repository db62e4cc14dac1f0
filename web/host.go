package web

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// hostCheck refuses requests whose Host header is not a name or address of this
// server. A page on another site that re-points its own name at 127.0.0.1 (DNS
// rebinding) makes the browser send its name as the Host: refusing it keeps that page
// from reading the API, the metrics and the parts' images. Browsers always send the
// name they connected to, so the check needs no cooperation from the client.
//
// Allowed, whatever the port (a tunnel or a reverse proxy may change it):
//   - localhost and every loopback address: only this machine can serve them;
//   - the listener's own address, and the address the connection came in on;
//   - with a wildcard listener (0.0.0.0, ::), every address of this machine's
//     interfaces, read again when a Host misses (DHCP, a new interface);
//   - this machine's host name (and its first label when it has dots);
//   - the names and addresses of Options.Hosts (http.hosts).
type hostCheck struct {
	names    map[string]bool // lower case, no trailing dot
	addrs    map[netip.Addr]bool
	wildcard bool // listening on every interface

	mu     sync.Mutex
	ifaces map[netip.Addr]bool
	readAt time.Time

	refused atomic.Uint64
	logMu   sync.Mutex
	logAt   time.Time
	log     *slog.Logger
}

// ifaceEvery bounds how often a missing Host makes the interfaces be read again.
const ifaceEvery = time.Second

func newHostCheck(listen string, extra []string, log *slog.Logger) (*hostCheck, error) {
	h := &hostCheck{names: map[string]bool{"localhost": true}, addrs: map[netip.Addr]bool{}, log: log}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrListen, listen, err)
	}
	switch a, err := netip.ParseAddr(host); {
	case host == "":
		h.wildcard = true
	case err == nil && a.IsUnspecified():
		h.wildcard = true
	case err == nil:
		h.addrs[a.Unmap().WithZone("")] = true
	default:
		h.names[normalHost(host)] = true // a name to listen on (localhost, the host name)
	}
	if hn, err := os.Hostname(); err == nil && hn != "" {
		hn = normalHost(hn)
		h.names[hn] = true
		if short, _, ok := strings.Cut(hn, "."); ok && short != "" {
			h.names[short] = true
		}
	}
	for i, e := range extra {
		n := normalHost(e)
		if a, err := netip.ParseAddr(strings.Trim(n, "[]")); err == nil {
			h.addrs[a.Unmap().WithZone("")] = true
			continue
		}
		if n == "" || strings.ContainsAny(n, ":/ *") {
			return nil, fmt.Errorf("http: hosts[%d] %q: want a host name or an IP address, without scheme or port", i, e)
		}
		h.names[n] = true
	}
	return h, nil
}

// normalHost: host names compare without case and without the root's trailing dot
// ("localhost." is localhost).
func normalHost(s string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
}

// allowed says whether the request's Host names this server.
func (h *hostCheck) allowed(r *http.Request) bool {
	host := r.Host
	if host == "" {
		return false // HTTP/1.0 without a Host: no name to check, and no browser sends one
	}
	if hp, _, err := net.SplitHostPort(host); err == nil {
		host = hp
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return h.addr(r.Context(), a.Unmap().WithZone(""))
	}
	return h.names[normalHost(host)]
}

func (h *hostCheck) addr(ctx context.Context, a netip.Addr) bool {
	if a.IsLoopback() || h.addrs[a] {
		return true
	}
	if la, ok := ctx.Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ap, err := netip.ParseAddrPort(la.String()); err == nil && ap.Addr().Unmap().WithZone("") == a {
			return true
		}
	}
	if !h.wildcard {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.ifaces[a] && time.Since(h.readAt) >= ifaceEvery {
		h.readAt = time.Now()
		h.ifaces = interfaceAddrs()
	}
	return h.ifaces[a]
}

func interfaceAddrs() map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	as, err := net.InterfaceAddrs()
	if err != nil {
		return out
	}
	for _, a := range as {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out[p.Addr().Unmap().WithZone("")] = true
		}
	}
	return out
}

// wrap refuses, with 421 Misdirected Request and one line of text, every request
// whose Host is not allowed, before any handler sees it.
func (h *hostCheck) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.allowed(r) {
			next.ServeHTTP(w, r)
			return
		}
		n := h.refused.Add(1)
		host := r.Host
		if len(host) > 64 {
			host = host[:64] + "..."
		}
		h.logRefused(host, r.RemoteAddr, n)
		text(w, http.StatusMisdirectedRequest, fmt.Sprintf("misdirected request: Host %q is not a name or address of this server (add it to http.hosts)", host))
	})
}

// logRefused logs a refused Host at most once a minute: an operator behind a new
// proxy name learns why the page is refused, a scanner cannot fill the log.
func (h *hostCheck) logRefused(host, remote string, n uint64) {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	if !h.logAt.IsZero() && time.Since(h.logAt) < time.Minute {
		return
	}
	h.logAt = time.Now()
	h.log.Warn("http: request refused: its Host is not a name or address of this server; add it to http.hosts if it is", "host", host, "remote", remote, "refused_total", n)
}

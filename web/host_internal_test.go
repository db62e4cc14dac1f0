package web

import (
	"log/slog"
	"net"
	"net/http/httptest"
	"net/netip"
	"testing"
)

// A wildcard listener (0.0.0.0, ::) serves every address of this machine's
// interfaces, as the line engineer types them; an address that is not one of them
// is refused. (No socket: the tests listen on 127.0.0.1 only.)
func TestHostCheckOnAWildcardListener(t *testing.T) {
	var mine netip.Addr
	ifaces := interfaceAddrs()
	for a := range ifaces {
		if !a.IsLoopback() && a.Is4() {
			mine = a
			break
		}
	}
	// documentation addresses (RFC 5737), one that no interface here has
	other := ""
	for _, a := range []string{"203.0.113.77", "198.51.100.77", "192.0.2.77"} {
		if !ifaces[netip.MustParseAddr(a)] {
			other = a
			break
		}
	}
	for _, listen := range []string{"0.0.0.0:8080", "[::]:8080", ":8080"} {
		h, err := newHostCheck(listen, nil, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			host string
			ok   bool
		}{
			{"127.0.0.1:8080", true},    // loopback
			{other + ":8080", false},    // no interface here has it
			{"attacker.example", false}, // a name that is not ours
			{"0.0.0.0:8080", false},     // the wildcard is not an address to ask for
		} {
			r := httptest.NewRequest("GET", "/", nil)
			r.Host = tc.host
			if got := h.allowed(r); got != tc.ok {
				t.Errorf("listen %s, Host %s: allowed %v", listen, tc.host, got)
			}
		}
		if !mine.IsValid() {
			t.Logf("no non-loopback IPv4 interface here: the interface row is not tried")
			continue
		}
		r := httptest.NewRequest("GET", "/", nil)
		r.Host = net.JoinHostPort(mine.String(), "8080")
		if !h.allowed(r) {
			t.Errorf("listen %s: this machine's address %s refused", listen, mine)
		}
	}
	// A listener on one address does not serve the others'.
	h, _ := newHostCheck("127.0.0.1:8080", nil, slog.New(slog.DiscardHandler))
	if mine.IsValid() {
		r := httptest.NewRequest("GET", "/", nil)
		r.Host = mine.String()
		if h.allowed(r) {
			t.Errorf("a loopback listener allowed its machine's address %s", mine)
		}
	}
}

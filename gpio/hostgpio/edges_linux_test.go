//go:build linux

package hostgpio

import (
	"encoding/binary"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"periph.io/x/host/v3/gpioioctl"

	adgpio "github.com/adtrd/adtrd/gpio"
)

func event(ts int64, id uint32) []byte {
	b := make([]byte, eventSize)
	binary.NativeEndian.PutUint64(b[0:8], uint64(ts))
	binary.NativeEndian.PutUint32(b[8:12], id)
	return b
}

// The kernel's event records (here written into a pipe, as there is no GPIO chip on
// this machine) become edges with their direction and their own time: a 1 ms pulse
// that was over before anyone read it is still a rising edge 5 ms ago and a falling
// edge 4 ms ago, not one late edge at the time of the read.
func TestReadEdgesFromKernelEvents(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	now, mono := time.Now(), int64(1_000_000_000_000)
	clock := func() (time.Time, int64, error) { return now, mono, nil }
	var rec []byte
	rec = append(rec, event(mono-5_000_000, eventRising)...)
	rec = append(rec, event(mono-4_000_000, eventFalling)...)
	rec = append(rec, event(mono-3_000_000, 7)...) // not an edge: skipped
	w.Write(rec)
	out := make([]adgpio.EdgeEvent, 8)
	n, err := readEdges(int(r.Fd()), time.Second, make([]byte, 8*eventSize), out, clock)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 || !out[0].Rising || out[1].Rising {
		t.Fatalf("%d events %+v", n, out[:n])
	}
	if d := now.Sub(out[0].At); d != 5*time.Millisecond {
		t.Fatalf("rising edge %v ago, want 5ms", d)
	}
	if d := out[1].At.Sub(out[0].At); d != time.Millisecond {
		t.Fatalf("pulse %v long, want 1ms", d)
	}

	// nothing there: the wait ends at its timeout with no edge
	start := time.Now()
	if n, err := readEdges(int(r.Fd()), 20*time.Millisecond, make([]byte, eventSize), out, clock); n != 0 || err != nil {
		t.Fatalf("idle: %d, %v", n, err)
	}
	if time.Since(start) > time.Second {
		t.Fatal("the wait did not end at its timeout")
	}

	// a torn record is an error, not a guess
	w.Write(event(mono, eventRising)[:20])
	if _, err := readEdges(int(r.Fd()), time.Second, make([]byte, eventSize), out, clock); err == nil || !strings.Contains(err.Error(), "not a whole number") {
		t.Fatalf("torn record: %v", err)
	}
}

// lineFD reads periph's unexported fd field: this pins the field the pinned
// periph.io/x/host/v3 has, so an upgrade that moves it fails here instead of silently
// falling back to stamping edges on arrival.
func TestLineFDField(t *testing.T) {
	f, ok := reflect.TypeOf(gpioioctl.GPIOLine{}).FieldByName("fd")
	if !ok || f.Type.Kind() != reflect.Int32 {
		t.Fatalf("periph's GPIOLine has no int32 fd field (got %v, %v)", f.Type, ok)
	}
	if _, ok := lineFD(&gpioioctl.GPIOLine{}); ok {
		t.Fatal("a line never requested reports an fd")
	}
}

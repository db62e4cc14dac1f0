//go:build linux

package hostgpio

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"periph.io/x/conn/v3/gpio"
)

// TestRealChip runs only where ADTRD_GPIOCHIP names a chip (gpiochip0...): the build
// machine has none. With ADTRD_GPIOLINE (a line name or offset on that chip that is
// safe to drive) it also toggles that line as an output and releases it.
func TestRealChip(t *testing.T) {
	chipName := os.Getenv("ADTRD_GPIOCHIP")
	if chipName == "" {
		if m, _ := filepath.Glob("/dev/gpiochip*"); len(m) == 0 {
			if _, err := Open(slog.New(slog.NewTextHandler(io.Discard, nil))); !errors.Is(err, ErrNoChips) {
				t.Fatalf("no chips here, but Open said %v", err)
			}
		}
		t.Skip("ADTRD_GPIOCHIP is not set: no GPIO chip to test on this machine (see README, GPIO)")
	}
	b, err := Open(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	found := false
	for _, c := range b.Chips() {
		t.Logf("%s (%s): %d lines", c.Name(), c.Label(), c.LineCount())
		found = found || c.Name() == chipName
	}
	if !found {
		t.Fatalf("%s not among the chips", chipName)
	}
	lineName := os.Getenv("ADTRD_GPIOLINE")
	if lineName == "" {
		return
	}
	spec := Spec{Chip: chipName, Line: lineName, Offset: -1}
	if n, err := strconv.Atoi(lineName); err == nil {
		spec = Spec{Chip: chipName, Offset: n}
	}
	line, err := b.Line("test", spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Line("again", spec); !errors.Is(err, ErrInUse) {
		t.Fatalf("second use of the line: %v", err)
	}
	for _, l := range []gpio.Level{gpio.High, gpio.Low} {
		if err := line.Out(l); err != nil {
			t.Fatal(err)
		}
		if got := line.Read(); got != l {
			t.Fatalf("drove %v, read %v", l, got)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

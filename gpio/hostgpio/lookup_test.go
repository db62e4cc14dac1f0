package hostgpio

import (
	"errors"
	"strings"
	"testing"
)

type fakeChip struct {
	name, label string
	lines       []string
}

func (c fakeChip) Name() string               { return c.name }
func (c fakeChip) Label() string              { return c.label }
func (c fakeChip) LineCount() int             { return len(c.lines) }
func (c fakeChip) LineName(offset int) string { return c.lines[offset] }

// A Jetson Orin-like pair of chips (names as gpioinfo shows them), with one name on
// both chips the way periph reports a duplicate: prefixed by the chip.
var jetson = []Chip{
	fakeChip{"gpiochip0", "tegra234-gpio", []string{"PA.00", "PA.01", "PQ.05", "PQ.06", "PN.01", "SHARED"}},
	fakeChip{"gpiochip1", "tegra234-gpio-aon", []string{"PAA.00", "PAA.01", "PEE.02", "gpiochip1-SHARED"}},
}

func TestFind(t *testing.T) {
	for _, tc := range []struct {
		name     string
		spec     Spec
		chip     int
		offset   int
		err      error  // nil: found
		contains string // in the error message
	}{
		// a header pin by its line name, on whichever chip has it
		{"by name", Spec{Line: "PQ.05", Offset: -1}, 0, 2, nil, ""},
		// the always-on chip's line
		{"by name, second chip", Spec{Line: "PEE.02", Offset: -1}, 1, 2, nil, ""},
		// chip by device name and offset
		{"chip and offset", Spec{Chip: "gpiochip1", Offset: 1}, 1, 1, nil, ""},
		// chip by path
		{"chip path", Spec{Chip: "/dev/gpiochip0", Offset: 4}, 0, 4, nil, ""},
		// chip by label, line by name
		{"label and name", Spec{Chip: "tegra234-gpio-aon", Line: "PAA.00", Offset: -1}, 1, 0, nil, ""},
		// a name on two chips must say which
		{"ambiguous", Spec{Line: "SHARED", Offset: -1}, 0, 0, ErrAmbiguous, "gpiochip0 line 5 and gpiochip1 line 3"},
		// the same name resolved by naming the chip
		{"ambiguous resolved", Spec{Line: "SHARED", Chip: "gpiochip1", Offset: -1}, 1, 3, nil, ""},
		// a typo lists the chips searched
		{"unknown name", Spec{Line: "PQ.5", Offset: -1}, 0, 0, ErrNotFound, "gpiochip0 (tegra234-gpio, 6 lines)"},
		// a name that is on the other chip only
		{"name not on that chip", Spec{Line: "PQ.05", Chip: "gpiochip1", Offset: -1}, 0, 0, ErrNotFound, `gpiochip1 line "PQ.05"`},
		// past the chip's last line
		{"offset out of range", Spec{Chip: "gpiochip1", Offset: 4}, 0, 0, ErrNotFound, "lines 0..3, not 4"},
		{"unknown chip", Spec{Chip: "gpiochip9", Offset: 0}, 0, 0, ErrNotFound, `chip "gpiochip9"`},
		// an offset alone is meaningless with two chips
		{"offset without chip", Spec{Offset: 3}, 0, 0, nil, "which chip?"},
		{"nothing given", Spec{Offset: -1}, 0, 0, ErrNotFound, "give a line name"},
		{"name and offset", Spec{Line: "PQ.05", Chip: "gpiochip0", Offset: 2}, 0, 0, nil, "not both"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ci, off, err := Find(jetson, tc.spec)
			if tc.contains != "" {
				if err == nil || !strings.Contains(err.Error(), tc.contains) || (tc.err != nil && !errors.Is(err, tc.err)) {
					t.Fatalf("err %v, want %v containing %q", err, tc.err, tc.contains)
				}
				return
			}
			if err != nil || ci != tc.chip || off != tc.offset {
				t.Fatalf("got chip %d offset %d err %v, want %d %d", ci, off, err, tc.chip, tc.offset)
			}
		})
	}
	if _, _, err := Find(nil, Spec{Line: "PQ.05", Offset: -1}); !errors.Is(err, ErrNoChips) {
		t.Fatalf("no chips: %v", err)
	}
}

// Package hostgpio is the Linux GPIO character-device backend (periph.io's gpioioctl):
// it finds lines by name, or by chip and offset, and hands them to the tracker.
package hostgpio

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrNotFound: no chip or line matches the spec.
	ErrNotFound = errors.New("gpio line not found")
	// ErrAmbiguous: a line name exists on more than one chip.
	ErrAmbiguous = errors.New("gpio line name is ambiguous")
	// ErrInUse: the same line is named twice in one config.
	ErrInUse = errors.New("gpio line already in use")
	// ErrNoChips: this machine has no /dev/gpiochip* (or is not Linux).
	ErrNoChips = errors.New("no GPIO character devices")
)

// Spec names one line: by Line name (any chip, or only Chip), or by Chip and Offset.
type Spec struct {
	Line   string // the line's name as gpioinfo shows it, e.g. "PQ.05" on a Jetson
	Chip   string // gpiochip0, /dev/gpiochip0, or the chip's label, e.g. tegra234-gpio
	Offset int    // >= 0: the line's offset on Chip; -1: find it by name
}

func (s Spec) String() string {
	switch {
	case s.Offset >= 0:
		return fmt.Sprintf("%s line %d", s.Chip, s.Offset)
	case s.Chip != "":
		return fmt.Sprintf("%s line %q", s.Chip, s.Line)
	}
	return fmt.Sprintf("line %q", s.Line)
}

// Chip is what lookup needs of a GPIO chip.
type Chip interface {
	Name() string  // gpiochip0
	Label() string // tegra234-gpio
	LineCount() int
	LineName(offset int) string
}

// Find returns the index in chips and the offset of the line s names.
func Find(chips []Chip, s Spec) (int, int, error) {
	if len(chips) == 0 {
		return 0, 0, ErrNoChips
	}
	switch {
	case s.Line == "" && s.Offset < 0:
		return 0, 0, fmt.Errorf("%w: give a line name, or a chip and an offset", ErrNotFound)
	case s.Line != "" && s.Offset >= 0:
		return 0, 0, fmt.Errorf("%s: give a line name or an offset, not both", s)
	case s.Offset >= 0 && s.Chip == "":
		return 0, 0, fmt.Errorf("offset %d: which chip? (chips: %s)", s.Offset, list(chips))
	}
	candidates := chips
	first := 0
	if s.Chip != "" {
		ci := -1
		for i, c := range chips {
			if s.Chip == c.Name() || s.Chip == "/dev/"+c.Name() || s.Chip == c.Label() {
				ci = i
				break
			}
		}
		if ci < 0 {
			return 0, 0, fmt.Errorf("%w: chip %q (chips: %s)", ErrNotFound, s.Chip, list(chips))
		}
		if s.Offset >= 0 {
			if n := chips[ci].LineCount(); s.Offset >= n {
				return 0, 0, fmt.Errorf("%w: %s has lines 0..%d, not %d", ErrNotFound, chips[ci].Name(), n-1, s.Offset)
			}
			return ci, s.Offset, nil
		}
		candidates, first = chips[ci:ci+1], ci
	}
	var hits [][2]int
	for i, c := range candidates {
		for off := 0; off < c.LineCount(); off++ {
			// periph prefixes a name that two chips share with the chip's name.
			if n := c.LineName(off); n == s.Line || n == c.Name()+"-"+s.Line {
				hits = append(hits, [2]int{first + i, off})
			}
		}
	}
	switch len(hits) {
	case 0:
		return 0, 0, fmt.Errorf("%w: %s on %s", ErrNotFound, s, list(candidates))
	case 1:
		return hits[0][0], hits[0][1], nil
	}
	where := make([]string, len(hits))
	for i, h := range hits {
		where[i] = fmt.Sprintf("%s line %d", chips[h[0]].Name(), h[1])
	}
	return 0, 0, fmt.Errorf("%w: %s is %s; name the chip", ErrAmbiguous, s, strings.Join(where, " and "))
}

func list(chips []Chip) string {
	names := make([]string, len(chips))
	for i, c := range chips {
		names[i] = fmt.Sprintf("%s (%s, %d lines)", c.Name(), c.Label(), c.LineCount())
	}
	return strings.Join(names, ", ")
}

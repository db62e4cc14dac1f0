package hostgpio

import (
	"errors"
	"testing"
)

// FuzzFind: any spec against any chip layout either finds a line that really has the
// asked name (or chip and offset) or returns an error; it never panics or indexes out
// of range, and the message is one line. The seed corpus is the rows of TestFind
// plus hostile names (testdata/fuzz/FuzzFind holds what the fuzzer found worth keeping).
func FuzzFind(f *testing.F) {
	f.Add("PQ.05", "", -1, "PA.00\nPQ.05\nSHARED", "gpiochip1-SHARED\nPEE.02")
	f.Add("SHARED", "", -1, "SHARED", "gpiochip1-SHARED")
	f.Add("", "gpiochip1", 1, "a", "b\nc")
	f.Add("", "/dev/gpiochip0", 99, "a", "")
	f.Add("x", "tegra234-gpio", -1, "", "x")
	f.Add("", "", 3, "a\nb\nc\nd", "")
	f.Add("gpiochip0-", "", -1, "gpiochip0-gpiochip0-", "\n\n")
	f.Fuzz(func(t *testing.T, line, chip string, offset int, lines0, lines1 string) {
		chips := []Chip{fakeChip{"gpiochip0", "tegra234-gpio", split(lines0)}, fakeChip{"gpiochip1", "tegra234-gpio-aon", split(lines1)}}
		s := Spec{Line: line, Chip: chip, Offset: offset}
		ci, off, err := Find(chips, s)
		if err != nil {
			for _, c := range err.Error() {
				if c == '\n' && !containsNewline(line, chip, lines0, lines1) {
					t.Fatalf("%v: a multi-line error", err)
				}
			}
			if errors.Is(err, ErrNoChips) {
				t.Fatalf("%v with two chips", err)
			}
			return
		}
		if ci < 0 || ci >= len(chips) || off < 0 || off >= chips[ci].LineCount() {
			t.Fatalf("%+v: found chip %d line %d, outside the chips", s, ci, off)
		}
		c := chips[ci]
		if offset >= 0 {
			if off != offset || (chip != c.Name() && chip != "/dev/"+c.Name() && chip != c.Label()) {
				t.Fatalf("%+v: found %s line %d", s, c.Name(), off)
			}
			return
		}
		if n := c.LineName(off); n != line && n != c.Name()+"-"+line {
			t.Fatalf("%+v: found %s line %d named %q", s, c.Name(), off, n)
		}
	})
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// containsNewline: an error may quote what it was given, newlines included.
func containsNewline(ss ...string) bool {
	for _, s := range ss {
		for i := 0; i < len(s); i++ {
			if s[i] == '\n' {
				return true
			}
		}
	}
	return false
}

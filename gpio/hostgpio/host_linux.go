//go:build linux

package hostgpio

import (
	"fmt"
	"log/slog"
	"sync"

	"periph.io/x/conn/v3/driver/driverreg"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/host/v3/gpioioctl"
)

// Board is the machine's GPIO chips; lines opened through it are released by Close.
type Board struct {
	log    *slog.Logger
	chips  []Chip
	mu     sync.Mutex
	opened map[[2]int]string // (chip, offset) -> the role it was opened for
	lines  []*gpioioctl.GPIOLine
}

type ioctlChip struct{ c *gpioioctl.GPIOChip }

func (c ioctlChip) Name() string   { return c.c.Name() }
func (c ioctlChip) Label() string  { return c.c.Label() }
func (c ioctlChip) LineCount() int { return c.c.LineCount() }
func (c ioctlChip) LineName(offset int) string {
	if l := c.c.ByNumber(offset); l != nil {
		return l.Name()
	}
	return ""
}

// Open loads periph's gpioioctl driver and lists the chips.
func Open(log *slog.Logger) (*Board, error) {
	if _, err := driverreg.Init(); err != nil {
		return nil, fmt.Errorf("gpio: periph drivers: %w", err)
	}
	if len(gpioioctl.Chips) == 0 {
		return nil, fmt.Errorf("%w: /dev/gpiochip* missing or not readable (use output.backend: sim, or add the user to the gpio group)", ErrNoChips)
	}
	b := &Board{log: log, opened: map[[2]int]string{}}
	for _, c := range gpioioctl.Chips {
		b.chips = append(b.chips, ioctlChip{c})
	}
	return b, nil
}

// Chips lists the chips (for `adtrd check` and the hardware test).
func (b *Board) Chips() []Chip { return b.chips }

// Line finds the line s names for role (reject, trigger...); a line can serve one role.
func (b *Board) Line(role string, s Spec) (gpio.PinIO, error) {
	ci, off, err := Find(b.chips, s)
	if err != nil {
		return nil, fmt.Errorf("gpio %s: %w", role, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	key := [2]int{ci, off}
	if other, ok := b.opened[key]; ok {
		return nil, fmt.Errorf("gpio %s: %w: %s line %d is already the %s", role, ErrInUse, b.chips[ci].Name(), off, other)
	}
	line := gpioioctl.Chips[ci].ByNumber(off)
	if line == nil {
		return nil, fmt.Errorf("gpio %s: %w: %s", role, ErrNotFound, s)
	}
	b.opened[key] = role
	b.lines = append(b.lines, line)
	b.log.Info("gpio line", "role", role, "chip", b.chips[ci].Name(), "offset", off, "name", line.Name())
	return &edgeLine{GPIOLine: line}, nil
}

// Close releases every line opened; safe twice.
func (b *Board) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range b.lines {
		l.Close()
	}
	b.lines = nil
	clear(b.opened)
	return nil
}

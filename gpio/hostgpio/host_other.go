//go:build !linux

package hostgpio

import (
	"fmt"
	"log/slog"

	"periph.io/x/conn/v3/gpio"
)

// Board is the machine's GPIO chips: there are none off Linux.
type Board struct{}

// Open fails: the GPIO character device is Linux's.
func Open(*slog.Logger) (*Board, error) {
	return nil, fmt.Errorf("%w: the gpiochip backend needs Linux", ErrNoChips)
}

func (b *Board) Chips() []Chip { return nil }

func (b *Board) Line(role string, s Spec) (gpio.PinIO, error) {
	return nil, fmt.Errorf("gpio %s: %w", role, ErrNoChips)
}

func (b *Board) Close() error { return nil }

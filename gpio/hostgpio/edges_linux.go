//go:build linux

package hostgpio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"periph.io/x/host/v3/gpioioctl"

	adgpio "github.com/adtrd/adtrd/gpio"
)

// The kernel's struct gpio_v2_line_event (linux/gpio.h): timestamp_ns (CLOCK_MONOTONIC
// unless the line asked for another clock; periph does not), id (1 rising, 2 falling),
// offset, seqno, line_seqno, 6 words of padding: 48 bytes, native byte order.
const (
	eventSize    = 48
	eventRising  = 1
	eventFalling = 2
)

// edgeLine is a periph line whose input edges are read from the line's kernel event
// queue, with their timestamps and directions. periph's WaitForEdge reads the same
// events and throws both away, so a pulse shorter than a goroutine's wake-up read
// back as no edge, and every edge was stamped late by that wake-up.
type edgeLine struct {
	*gpioioctl.GPIOLine
	mu  sync.Mutex
	buf []byte
}

// ReadEdges implements gpio.EdgeReader on the fd periph requested the line with.
func (l *edgeLine) ReadEdges(timeout time.Duration, out []adgpio.EdgeEvent) (int, error) {
	fd, ok := lineFD(l.GPIOLine)
	if !ok {
		return 0, adgpio.ErrNoEdges
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) < len(out)*eventSize {
		l.buf = make([]byte, len(out)*eventSize)
	}
	return readEdges(fd, timeout, l.buf[:len(out)*eventSize], out, monotonicNow)
}

// lineFD is the line request's fd from periph's GPIOLine (unexported there; the
// pinned periph.io/x/host/v3 keeps it in field fd, int32, which TestLineFDField
// checks). false: no request yet, or a periph that keeps it elsewhere.
func lineFD(l *gpioioctl.GPIOLine) (int, bool) {
	f := reflect.ValueOf(l).Elem().FieldByName("fd")
	if !f.IsValid() || f.Kind() != reflect.Int32 {
		return 0, false
	}
	fd := int(f.Int())
	return fd, fd > 0
}

// monotonicNow pairs a time.Time with the CLOCK_MONOTONIC reading it was taken at.
func monotonicNow() (time.Time, int64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return time.Time{}, 0, err
	}
	return time.Now(), ts.Nano(), nil
}

// readEdges waits up to timeout for fd to have events, reads what fits in buf (a
// multiple of eventSize) and turns each into an EdgeEvent whose At is now minus the
// event's age on CLOCK_MONOTONIC, so it carries Go's monotonic reading like every
// other time the tracker compares.
func readEdges(fd int, timeout time.Duration, buf []byte, out []adgpio.EdgeEvent, now func() (time.Time, int64, error)) (int, error) {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(pfd, int(timeout.Milliseconds()))
	if errors.Is(err, unix.EINTR) || n == 0 {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("poll gpio events: %w", err)
	}
	if pfd[0].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 && pfd[0].Revents&unix.POLLIN == 0 {
		return 0, fmt.Errorf("gpio event queue closed (poll revents %#x)", pfd[0].Revents)
	}
	got, err := unix.Read(fd, buf)
	if err != nil {
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			return 0, nil
		}
		return 0, fmt.Errorf("read gpio events: %w", err)
	}
	if got%eventSize != 0 {
		return 0, fmt.Errorf("read gpio events: %d bytes, not a whole number of %d-byte events", got, eventSize)
	}
	t, mono, err := now()
	if err != nil {
		return 0, fmt.Errorf("clock_gettime: %w", err)
	}
	k := 0
	for off := 0; off < got && k < len(out); off += eventSize {
		e := buf[off : off+eventSize]
		ts := int64(binary.NativeEndian.Uint64(e[0:8]))
		id := binary.NativeEndian.Uint32(e[8:12])
		if id != eventRising && id != eventFalling {
			continue // not an edge event: nothing the tracker can use
		}
		age := time.Duration(mono - ts)
		if age < 0 {
			age = 0
		}
		out[k] = adgpio.EdgeEvent{Rising: id == eventRising, At: t.Add(-age)}
		k++
	}
	return k, nil
}

//go:build !linux

package child

import (
	"os"
	"os/exec"
)

// setProcAttr: process groups and Pdeathsig are Linux's; elsewhere the child is
// killed by Stop or Wait only (the daemon runs on Linux).
func setProcAttr(cmd *exec.Cmd) {}

func killGroup(p *os.Process) {
	if p != nil {
		_ = p.Kill()
	}
}

// interrupt: elsewhere the child is killed at once.
func interrupt(p *os.Process) {}

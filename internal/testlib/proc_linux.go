package testlib

import (
	"os/exec"
	"syscall"
)

// DiesWithTest has the kernel kill cmd's process when the test binary dies, so that a
// helper process (a fake camera, a server) never outlives a test killed by its timeout.
func DiesWithTest(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

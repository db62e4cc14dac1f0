//go:build !linux

package testlib

import "os/exec"

// DiesWithTest: Pdeathsig is Linux's; elsewhere the test's cleanup kills the process.
func DiesWithTest(cmd *exec.Cmd) {}

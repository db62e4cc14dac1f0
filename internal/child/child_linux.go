package child

import (
	"os"
	"os/exec"
	"syscall"
)

// setProcAttr puts the child in its own process group (so that killing the group
// takes whatever it forked) and has the kernel kill it when the daemon dies, even by
// SIGKILL (Pdeathsig: sent when the thread that started it exits; Go does not end
// its threads while the process runs).
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killGroup kills the child's process group; a stopped (SIGSTOP) child dies too.
func killGroup(p *os.Process) {
	if p == nil {
		return
	}
	_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
	_ = p.Kill()
}

// interrupt asks the child to stop as a Ctrl-C does.
func interrupt(p *os.Process) {
	if p != nil {
		_ = p.Signal(syscall.SIGINT)
		// A stopped child (SIGSTOP, a debugger) would hold the interrupt until the
		// grace ran out: let it run to handle it.
		_ = p.Signal(syscall.SIGCONT)
	}
}

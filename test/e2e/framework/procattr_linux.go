package framework

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal kills the child if the test binary dies without running its cleanups
// (for example on a `go test -timeout` panic), so no kube-controller-manager is left behind.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

package framework

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// process is a component the tests run as a child process (kube-controller-manager,
// cert-manager's controllers, the ECK operator), its output in a log file in the Env's Dir.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed when the process has exited; waitErr is then set
	waitErr error
	// cleanStop: an exit status other than 0 after SIGTERM, or needing SIGKILL, is an error.
	cleanStop bool

	once    sync.Once
	stopErr error
}

// startProcess starts path with args, and env as its whole environment if not nil.
func startProcess(e *Env, name, logName, path string, args, env []string) (*process, error) {
	logFile, err := e.createLog(logName)
	if err != nil {
		return nil, err
	}
	prefix := ""
	if env != nil {
		prefix = strings.Join(env, " ") + " "
	}
	fmt.Fprintf(logFile, "+ %s%s %s\n", prefix, path, strings.Join(args, " "))
	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logFile.Name(), exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// hasExited reports whether the process has exited.
func (p *process) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// failure describes the process's end, with the tail of its log.
func (p *process) failure(what string) error {
	return fmt.Errorf("%s %s: %v; last lines of %s:\n%s", p.name, what, p.waitErr, p.logPath, tail(p.logPath, 30))
}

// stop sends SIGTERM and waits (SIGKILL after 10s). It returns an error if the process had
// exited on its own (or, with cleanStop, did not stop cleanly); only the first call reports.
func (p *process) stop() error {
	p.once.Do(func() {
		if p.hasExited() {
			p.stopErr = p.failure("exited while the test ran")
			return
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
			if p.cleanStop && p.waitErr != nil {
				p.stopErr = p.failure("did not stop cleanly")
			}
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
			if p.cleanStop {
				p.stopErr = p.failure("did not stop within 10s of SIGTERM")
			}
		}
	})
	return p.stopErr
}

// stopWith stops the process when e stops (before the control plane goes); a no-op if it has
// exited already, which stop or the test that saw it exit reports.
func (p *process) stopWith(e *Env) {
	e.Go(func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			return p.stop()
		case <-p.exited:
			return nil
		}
	})
}

package record

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
)

// gatedCommand is a command started in a stopped state: its process exists
// (so its PID can be put into the kernel-side filter) but it runs the user's
// program only once released. Without the gate, the program's first events,
// its own exec among them, would happen before the filter selects it.
//
// The gate is /bin/sh waiting for one line on a pipe and then exec'ing the
// program: exec keeps the PID, so the PID selected before release is the
// program's own. The only events seen from the shell itself are the tail of
// that read(2) and the execve.
//
// startGated returns once the shell runs its script (it says so on a second
// pipe), not merely once it is exec'd: only then has the dynamic loader
// mapped the shell's libraries, which the user-space tracers instrument in
// the gated process (dns and bash probe libc, the same file the program
// loads); right after the exec only the loader is mapped.
type gatedCommand struct {
	cmd  *exec.Cmd
	gate *os.File // write end of the pipe the shell waits on
}

// gateScript says it runs on fd 4 and closes it, reads one line from fd 3,
// closes it and execs its arguments.
const gateScript = `echo >&4; exec 4>&-; read -r _ <&3 || exit 126; exec 3<&-; exec "$@"`

// startGated starts argv behind a gate. The caller selects cmd.Process.Pid
// and then calls release.
func startGated(argv []string, stdin io.Reader, stdout, stderr io.Writer) (*gatedCommand, error) {
	if len(argv) == 0 {
		return nil, errors.New("record: no command given after --")
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return nil, fmt.Errorf("record: command %q: %w", argv[0], err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("record: command gate: %w", err)
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("record: command gate: %w", err)
	}
	defer readyR.Close()
	args := append([]string{"-c", gateScript, argv[0], path}, argv[1:]...)
	cmd := exec.Command("/bin/sh", args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	cmd.ExtraFiles = []*os.File{r, readyW}
	// Its own process group, so a Ctrl-C in the terminal reaches the
	// recorder, which then stops the command itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	r.Close()
	readyW.Close()
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("record: start %q: %w", argv[0], err)
	}
	g := &gatedCommand{cmd: cmd, gate: w}
	// The shell's line, or EOF if it died first.
	if n, _ := readyR.Read(make([]byte, 1)); n != 1 {
		g.abort()
		return nil, fmt.Errorf("record: start %q: the gate shell /bin/sh exited before running", argv[0])
	}
	return g, nil
}

// pid is the process ID the program will run with.
func (g *gatedCommand) pid() int { return g.cmd.Process.Pid }

// release lets the program run.
func (g *gatedCommand) release() error {
	_, err := g.gate.Write([]byte("go\n"))
	g.gate.Close()
	if err != nil {
		return fmt.Errorf("record: release command: %w", err)
	}
	return nil
}

// abort kills a command that was never released (e.g. attaching failed).
func (g *gatedCommand) abort() {
	g.gate.Close()
	_ = g.cmd.Process.Kill()
	_ = g.cmd.Wait()
}

// signal forwards sig to the command's process group.
func (g *gatedCommand) signal(sig syscall.Signal) {
	_ = syscall.Kill(-g.cmd.Process.Pid, sig)
}

// wait waits for the command and returns its exit code (128+signal when
// killed by a signal, as shells report it).
func (g *gatedCommand) wait() (int, error) {
	err := g.cmd.Wait()
	if err == nil {
		return 0, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	return -1, err
}

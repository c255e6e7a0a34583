package tofu

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/gantry-iac/gantry/internal/jobprocs"
)

// KillGrace is how long Run waits after interrupting a cancelled tool before
// killing it. OpenTofu and Terraform stop cleanly on SIGINT (releasing state
// locks, writing state) if given the time.
var KillGrace = 10 * time.Second

// drainTimeout bounds how long Run waits for more output once the tool's
// process group is gone and its pipes are idle (only a process that left
// the group can hold them open). Output still being written out (to a log
// that takes it slowly) is waited for.
var drainTimeout = 5 * time.Second

// Run runs bin with args in dir, with stdout and stderr both written to out
// (nil discards) and stdin empty. env is the complete environment; nil
// inherits this process's, as with exec.Cmd.
//
// The tool runs in its own process group (on Linux, its own session). When
// ctx is done the group gets SIGINT, then SIGKILL after KillGrace; once the
// tool has exited anything left in its group is killed too. What left the
// group (setsid, setpgid) is not: the worker kills it when the job ends
// (package jobprocs), where the environment carries the job's mark.
//
// It returns the exit code (128+N for death by signal N, -1 if the tool
// never ran). err is non-nil only when the tool could not be started or ctx
// ended the run (then it wraps ctx.Err()); a non-zero exit code alone is not
// an error.
func Run(ctx context.Context, bin, dir string, env []string, out io.Writer, args ...string) (exitCode int, err error) {
	return run(ctx, bin, dir, env, out, nil, false, args)
}

// RunShell is Run of `/bin/sh -c command` (a hook, a task), except that
// on Linux what the command leaves running in the background lives on
// once the shell has exited: a hook's `kubectl port-forward ... &` serves
// the commands after it. The caller ends the job's processes (package
// jobprocs). Output they write once the shell has exited and its pipes
// have been idle for drainTimeout is discarded. Elsewhere they are killed
// with the shell's process group, as Run does.
func RunShell(ctx context.Context, dir string, env []string, out io.Writer, command string) (exitCode int, err error) {
	return run(ctx, "/bin/sh", dir, env, out, nil, keepBackground, []string{"-c", command})
}

// RunSplit is Run with stdout and stderr kept apart, for commands whose
// stdout is data (`show -json`, `output -json`): warnings on stderr, such
// as one about a missing CLI configuration file, would corrupt it.
func RunSplit(ctx context.Context, bin, dir string, env []string, stdout, stderr io.Writer, args ...string) (exitCode int, err error) {
	if stderr == nil {
		stderr = io.Discard
	}
	return run(ctx, bin, dir, env, stdout, stderr, false, args)
}

// run runs the tool; a nil stderr means stderr shares stdout's pipe. With
// background, what the tool leaves in its process group when it exits by
// itself is not killed.
func run(ctx context.Context, bin, dir string, env []string, stdout, stderr io.Writer, background bool, args []string) (int, error) {
	name := filepath.Base(bin)
	if err := ctx.Err(); err != nil {
		return -1, fmt.Errorf("%s not started: %w", name, err)
	}
	if stdout == nil {
		stdout = io.Discard
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	var mark string
	if !background {
		// What the tool leaves running dies with it (jobprocs.EndCommand).
		mark = jobprocs.NewCommandMark()
		if env == nil {
			env = os.Environ()
		}
		cmd.Env = append(env[:len(env):len(env)], jobprocs.CommandVar+"="+mark)
	}
	setProcessGroup(cmd)
	// Our own pipes rather than exec's copying goroutines: Wait then returns
	// when the tool exits, even if a stray child still holds a pipe open.
	var out outputs
	var err error
	if cmd.Stdout, err = out.pipe(stdout); err == nil {
		cmd.Stderr = cmd.Stdout
		if stderr != nil {
			cmd.Stderr, err = out.pipe(stderr)
		}
	}
	started := func() {}
	if err == nil {
		started, err = jobprocs.StartWaited(cmd)
	}
	defer started()
	out.closeWriters()
	if err != nil {
		out.closeReaders()
		return -1, fmt.Errorf("starting %s: %w", name, err)
	}
	done := out.copy()

	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	waitErr, cancelled := waitOrStop(ctx, cmd.Process, exited)

	if cancelled || !background {
		killGroup(cmd.Process)
	}
	if !background {
		jobprocs.EndCommand(mark, cmd.Process.Pid)
	}
	if out.drain(done) {
		out.closeReaders()
	} else if background {
		// Background processes hold the pipes: closing them would kill
		// the next to write (SIGPIPE). Their output is discarded, the
		// pipes closed once they are gone.
		out.discard()
		go func() {
			<-done
			out.closeReaders()
		}()
	} else {
		out.closeReaders()
		<-done
	}

	if cmd.ProcessState == nil {
		return -1, fmt.Errorf("waiting for %s: %w", name, waitErr)
	}
	code := exitCodeOf(cmd.ProcessState)
	if cancelled {
		return code, fmt.Errorf("%s cancelled: %w", name, ctx.Err())
	}
	return code, nil
}

// outputs are the pipes carrying a tool's output to writers.
type outputs struct {
	readers []*os.File
	writers []*os.File // the child's ends
	dests   []io.Writer

	mu        sync.Mutex
	writing   int       // copies inside a writer's Write
	last      time.Time // when output last went to a writer
	discarded bool      // the run returned: output goes nowhere
}

// discard sends what comes through the pipes from now on nowhere.
func (o *outputs) discard() {
	o.mu.Lock()
	o.discarded = true
	o.mu.Unlock()
}

// drain waits until the copies are done (it returns true), or the pipes
// have been idle for drainTimeout: no output came and no writer is still
// taking some (a writer that holds its caller back, like a run's log, is
// waited for).
func (o *outputs) drain(done <-chan struct{}) bool {
	o.mu.Lock()
	o.last = time.Now()
	o.mu.Unlock()
	t := time.NewTicker(max(drainTimeout/10, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-done:
			return true
		case <-t.C:
		}
		o.mu.Lock()
		idle := o.writing == 0 && time.Since(o.last) >= drainTimeout
		o.mu.Unlock()
		if idle {
			return false
		}
	}
}

// tracked is a pipe's writer, noting when output goes through it.
type tracked struct {
	o *outputs
	w io.Writer
}

func (t tracked) Write(p []byte) (int, error) {
	t.o.mu.Lock()
	if t.o.discarded {
		t.o.mu.Unlock()
		return len(p), nil
	}
	t.o.writing++
	t.o.mu.Unlock()
	n, err := t.w.Write(p)
	t.o.mu.Lock()
	t.o.writing--
	t.o.last = time.Now()
	t.o.mu.Unlock()
	return n, err
}

func (o *outputs) pipe(dest io.Writer) (*os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	o.readers = append(o.readers, r)
	o.writers = append(o.writers, w)
	o.dests = append(o.dests, dest)
	return w, nil
}

func (o *outputs) closeWriters() {
	for _, w := range o.writers {
		w.Close()
	}
}

func (o *outputs) closeReaders() {
	for _, r := range o.readers {
		r.Close()
	}
}

// copy copies every pipe to its writer; the channel closes when all are done.
func (o *outputs) copy() <-chan struct{} {
	var wg sync.WaitGroup
	for i, r := range o.readers {
		wg.Go(func() { _, _ = io.Copy(tracked{o, o.dests[i]}, r) })
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	return done
}

// waitOrStop waits for the tool to exit, interrupting and then killing its
// process group if ctx ends first.
func waitOrStop(ctx context.Context, p *os.Process, exited <-chan error) (waitErr error, cancelled bool) {
	select {
	case err := <-exited:
		return err, false
	case <-ctx.Done():
	}
	select {
	case err := <-exited: // finished on its own as ctx ended
		return err, false
	default:
	}
	interruptGroup(p)
	grace := time.NewTimer(KillGrace)
	defer grace.Stop()
	select {
	case err := <-exited:
		return err, true
	case <-grace.C:
	}
	killGroup(p)
	return <-exited, true
}

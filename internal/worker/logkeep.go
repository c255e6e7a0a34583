package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/gantry-iac/gantry/internal/bytesize"
	"github.com/gantry-iac/gantry/internal/workerapi"
)

// logKeeper is the file on the worker that keeps what a run's log stream
// could not deliver: <rescue-dir>/<run-id>.log, mode 0600, beside the
// errored.tfstate the worker rescues. It holds output masked as it would
// have been sent, in order, appended to by every job of the run on this
// worker. The file is made only when something must be kept. A failure to
// write it (a full disk) is remembered and nothing more is written: the
// file keeps what came before, whole.
type logKeeper struct {
	path   string
	worker string // the worker's name, for the notes that name the file
	f      *os.File
	end    int64 // the file's size
	wrote  int64 // bytes this job kept
	lost   int64 // bytes this job could not keep (after err)
	err    error
}

func newLogKeeper(dir, runID, worker string) *logKeeper {
	return &logKeeper{path: filepath.Join(dir, runID+".log"), worker: worker}
}

// open opens the file, if it can.
func (k *logKeeper) open() bool {
	if k.f != nil {
		return true
	}
	if k.err != nil {
		return false
	}
	if err := os.MkdirAll(filepath.Dir(k.path), 0o700); err != nil {
		k.err = err
		return false
	}
	f, err := os.OpenFile(k.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		k.err = err
		return false
	}
	fi, err := f.Stat()
	if err == nil && fi.Mode().Perm() != 0o600 {
		err = f.Chmod(0o600)
	}
	if err != nil {
		f.Close()
		k.err = err
		return false
	}
	k.f, k.end = f, fi.Size()
	return true
}

// mark returns where the next bytes kept will go (opening the file: a
// drop run starts).
func (k *logKeeper) mark() int64 {
	k.open()
	return k.end
}

// write appends b.
func (k *logKeeper) write(b []byte) {
	k.insert(k.end, b)
}

// insert writes b at off, moving what follows it: the bytes a stream held
// when a drop run began, never sent, go before what that run dropped. The
// file is made longer first, so that a full disk leaves it as it was.
func (k *logKeeper) insert(off int64, b []byte) {
	if len(b) == 0 {
		return
	}
	if !k.open() {
		k.lost += int64(len(b))
		return
	}
	if _, err := k.f.WriteAt(b, k.end); err != nil {
		k.fail(err, int64(len(b)), k.end)
		return
	}
	if off < k.end {
		if err := shiftUp(k.f, off, k.end, int64(len(b))); err != nil {
			k.fail(err, int64(len(b)), -1)
			return
		}
		if _, err := k.f.WriteAt(b, off); err != nil {
			k.fail(err, int64(len(b)), -1)
			return
		}
	}
	k.end += int64(len(b))
	k.wrote += int64(len(b))
}

// fail records err, the first failure, and n bytes not kept; truncate,
// when not negative, is the size the file is cut back to.
func (k *logKeeper) fail(err error, n, truncate int64) {
	if truncate >= 0 {
		err = errors.Join(err, k.f.Truncate(truncate))
	}
	k.err = err
	k.lost += n
	k.close()
}

// shiftUp moves f's bytes [from, end) by n bytes up, from the last block.
func shiftUp(f *os.File, from, end, n int64) error {
	buf := make([]byte, min(end-from, 64<<10))
	for pos := end; pos > from; {
		size := min(int64(len(buf)), pos-from)
		pos -= size
		if _, err := f.ReadAt(buf[:size], pos); err != nil && err != io.EOF {
			return err
		}
		if _, err := f.WriteAt(buf[:size], pos+n); err != nil {
			return err
		}
	}
	return nil
}

// close closes the file (a later write opens it again).
func (k *logKeeper) close() {
	if k.f == nil {
		return
	}
	if err := k.f.Close(); err != nil && k.err == nil {
		k.err = err
	}
	k.f = nil
}

// where says, for the run's log, where dropped output is kept.
func (k *logKeeper) where() string {
	if k.err != nil {
		return fmt.Sprintf("keeping it on worker %s at %s failed: %v", k.worker, k.path, k.err)
	}
	return fmt.Sprintf("it is kept on worker %s at %s", k.worker, k.path)
}

// keptLog is what a job's log stream kept, or failed to keep.
type keptLog struct {
	path  string
	size  int64 // the file's size (earlier jobs of the run included)
	wrote int64 // bytes this job kept
	lost  int64 // bytes this job could not keep
	err   error
}

// summary says, for the run's reason, what was kept and where ("":
// the server took the whole log).
func (k keptLog) summary(worker string) string {
	switch {
	case k.wrote == 0 && k.lost == 0:
		return ""
	case k.lost == 0:
		return fmt.Sprintf("the server did not take all of this run's log: what it did not take is kept on worker %s at %s (%s)",
			worker, k.path, sized(k.size))
	case k.wrote == 0:
		return fmt.Sprintf("the server did not take all of this run's log, and keeping it on worker %s at %s failed (%v): %s of it are lost",
			worker, k.path, k.err, sized(k.lost))
	}
	return fmt.Sprintf("the server did not take all of this run's log: what it did not take is kept on worker %s at %s (%s), "+
		"except %s that could not be written there (%v)", worker, k.path, sized(k.size), sized(k.lost), k.err)
}

// sized is n in bytes, and in the unit that reads best when that differs.
func sized(n int64) string {
	if n < 1024 {
		return bytesize.Format(n)
	}
	return fmt.Sprintf("%s, %d bytes", bytesize.Format(n), n)
}

// closeLog closes the run's log (see logStream.Close), heartbeating
// meanwhile: a server that comes back while the worker still tries to send
// the end of the log must not take the run for lost before it gets the
// job's report. It says in the worker's log what the stream kept in its
// file, and returns that in short, for the run's reason ("": the server
// took the whole log).
func (j *jobRun) closeLog(kill context.Context, log *slog.Logger) string {
	j.beating(func() { j.log.Close(kill) })
	k := j.log.Kept()
	switch {
	case k.wrote == 0 && k.lost == 0:
	case k.lost == 0:
		log.Error("the server did not take all of the run's log: what it did not take is kept on this worker",
			"path", k.path, "size", k.size, "kept", k.wrote)
	default:
		log.Error("the server did not take all of the run's log, and keeping it on this worker failed: some of it is lost",
			"path", k.path, "size", k.size, "kept", k.wrote, "lost", k.lost, "err", k.err)
	}
	return k.summary(j.w.cfg.Name)
}

// beating runs fn, one of the last steps of a job that may wait for a
// server that is down (the end of the log, finish), with the job's
// heartbeats going on meanwhile, so that a server back in time does not
// take the run for lost before it hears from the job. A stop answer
// changes nothing: the job has ended already.
func (j *jobRun) beating(fn func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		j.beat(ctx, func(_ workerapi.HeartbeatResponse, err error) bool {
			return err == nil || !workerapi.Permanent(err)
		})
	}()
	fn()
	cancel()
	<-done
}

package dbtest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// binGlob is where Debian installs PostgreSQL's server binaries.
const binGlob = "/usr/lib/postgresql/*/bin"

// clusterConf is appended to postgresql.conf: durability off for speed
// (the cluster is thrown away), connections over TCP on localhost or on a
// socket inside the cluster's directory.
const clusterConf = `
listen_addresses = '127.0.0.1'
unix_socket_directories = '%s'
fsync = off
full_page_writes = off
synchronous_commit = off
max_connections = 200
shared_buffers = 32MB
`

// cluster is a throwaway PostgreSQL cluster in a temporary directory.
//
// It is stopped, and its directory removed, by a small shell process (the
// stopper) that waits for end of file on a pipe whose only writer is this
// test binary: closing the pipe in stop, or this process dying in any way
// (a panic, a test timeout, a signal), sets it off. So no cluster outlives
// its test binary.
type cluster struct {
	bin    string   // directory holding initdb, pg_ctl and postgres
	dir    string   // temporary directory: data/, logs, unix socket
	asUser []string // command prefix running a program as the postgres user, if we are root
	port   int

	stopper  *exec.Cmd
	stopPipe *os.File
	stopOnce sync.Once
}

// findBinaries returns a directory holding initdb, pg_ctl and postgres:
// the one of pg_ctl on PATH, else the newest of /usr/lib/postgresql/*/bin.
func findBinaries() (string, bool) {
	var dirs []string
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	found, _ := filepath.Glob(binGlob)
	slices.SortFunc(found, func(a, b string) int { return majorVersion(b) - majorVersion(a) })
	dirs = append(dirs, found...)
	for _, dir := range dirs {
		if isExecutable(dir, "initdb") && isExecutable(dir, "pg_ctl") && isExecutable(dir, "postgres") {
			return dir, true
		}
	}
	return "", false
}

// majorVersion returns N of /usr/lib/postgresql/N/bin, or 0.
func majorVersion(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func isExecutable(dir, name string) bool {
	fi, err := os.Stat(filepath.Join(dir, name))
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// startCluster creates and starts a cluster with the binaries in bin.
func startCluster(bin string) (_ *cluster, err error) {
	c := &cluster{bin: bin}
	uid, gid := -1, -1
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root.
		if uid, gid, err = postgresUser(); err != nil {
			return nil, err
		}
		runuser, err := exec.LookPath("runuser")
		if err != nil {
			return nil, errors.New("running as root needs runuser(1) to start PostgreSQL as the postgres user")
		}
		c.asUser = []string{runuser, "-u", "postgres", "--"}
	}
	if c.dir, err = os.MkdirTemp(parentDir(), "gantry-pg-"); err != nil {
		return nil, err
	}
	if err := c.startStopper(); err != nil {
		os.RemoveAll(c.dir)
		return nil, err
	}
	defer func() {
		if err != nil {
			c.stop()
		}
	}()
	if uid >= 0 {
		if err := os.Chown(c.dir, uid, gid); err != nil {
			return nil, err
		}
	}
	data := filepath.Join(c.dir, "data")
	out, err := c.command("initdb", "-D", data, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--no-locale", "--no-sync").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	if err := appendFile(filepath.Join(data, "postgresql.conf"), fmt.Sprintf(clusterConf, c.dir)); err != nil {
		return nil, err
	}
	// Another process may take the free port before the server binds it:
	// then try another.
	for attempt := 1; ; attempt++ {
		if c.port, err = freePort(); err != nil {
			return nil, err
		}
		err = c.pgCtl("-D", data, "-l", c.logFile(), "-w", "-t", "60", "-o", "-p "+strconv.Itoa(c.port), "start")
		if err == nil {
			return c, nil
		}
		if attempt == 3 || !strings.Contains(c.logTail(), "could not bind") {
			return nil, fmt.Errorf("start PostgreSQL: %w\n%s", err, c.logTail())
		}
	}
}

// parentDir returns the directory to make the cluster in: /dev/shm if it
// is there with a GiB free, else the default temporary directory. Creating
// a database copies its template, about 7 MB of files, which is several
// times faster in memory than on a slow disk.
func parentDir() string {
	const shm = "/dev/shm"
	var st syscall.Statfs_t
	if syscall.Statfs(shm, &st) != nil || uint64(st.Bavail)*uint64(st.Bsize) < 1<<30 || syscall.Access(shm, 2 /* W_OK */) != nil {
		return ""
	}
	return shm
}

// postgresUser returns the ids of the postgres OS user.
func postgresUser() (uid, gid int, err error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return -1, -1, fmt.Errorf("running as root needs a postgres OS user to run PostgreSQL: %w", err)
	}
	uid, err = strconv.Atoi(u.Uid)
	if err == nil {
		gid, err = strconv.Atoi(u.Gid)
	}
	return uid, gid, err
}

// startStopper starts the process that stops the cluster and removes its
// directory once stopPipe is closed (see cluster).
func (c *cluster) startStopper() error {
	r, w, err := os.Pipe() // close-on-exec: no other child inherits w
	if err != nil {
		return err
	}
	defer r.Close()
	stop := append(slices.Clone(c.asUser), filepath.Join(c.bin, "pg_ctl"),
		"-D", filepath.Join(c.dir, "data"), "-m", "immediate", "-w", "-t", "30", "stop")
	cmd := exec.Command("sh", append([]string{"-c",
		`cat >/dev/null; "$@" >/dev/null 2>&1; rm -rf -- "$GANTRY_PG_DIR"`, "sh"}, stop...)...)
	cmd.Env = append(os.Environ(), "GANTRY_PG_DIR="+c.dir)
	cmd.Stdin = r
	// Its own process group: a ^C to the test run must not kill it before
	// it has cleaned up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return fmt.Errorf("start cluster stopper: %w", err)
	}
	c.stopper, c.stopPipe = cmd, w
	return nil
}

// stop stops the cluster and removes its directory, waiting up to a minute.
func (c *cluster) stop() {
	c.stopOnce.Do(func() {
		c.stopPipe.Close()
		done := make(chan struct{})
		go func() { c.stopper.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(time.Minute):
			fmt.Fprintf(os.Stderr, "dbtest: PostgreSQL cluster in %s did not stop within a minute\n", c.dir)
		}
	})
}

// command returns a command running the PostgreSQL program name, as the
// postgres user if we are root, in the cluster's directory.
func (c *cluster) command(name string, args ...string) *exec.Cmd {
	argv := append(slices.Clone(c.asUser), filepath.Join(c.bin, name))
	argv = append(argv, args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = c.dir
	return cmd
}

// pgCtl runs pg_ctl with its output going to a file, not a pipe: the server
// it starts must not hold a pipe of ours open.
func (c *cluster) pgCtl(args ...string) error {
	out, err := os.OpenFile(filepath.Join(c.dir, "pg_ctl.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := c.command("pg_ctl", args...)
	cmd.Stdout, cmd.Stderr = out, out
	return cmd.Run()
}

func (c *cluster) logFile() string { return filepath.Join(c.dir, "postgres.log") }

// logTail returns the end of pg_ctl's output and the server log, for error
// messages.
func (c *cluster) logTail() string {
	var b strings.Builder
	for _, name := range []string{"pg_ctl.out", "postgres.log"} {
		data, _ := os.ReadFile(filepath.Join(c.dir, name))
		if len(data) > 4096 {
			data = data[len(data)-4096:]
		}
		fmt.Fprintf(&b, "--- %s ---\n%s\n", name, data)
	}
	return b.String()
}

// url returns the URL of database name on the cluster.
func (c *cluster) url(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, name)
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(text)
	return errors.Join(err, f.Close())
}

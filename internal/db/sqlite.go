package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// sqliteFile is the name of the SQLite database inside the data directory.
const sqliteFile = "gantry.db"

// Pragmas every SQLite connection gets, through the DSN so that a
// connection the pool opens later gets them too. busy_timeout comes first so
// that the others wait for a lock rather than fail.
const sqlitePragmas = "_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)"

// openSQLite opens <dataDir>/gantry.db with two pools.
//
// SQLite allows one writer at a time per file. With a pool of several
// connections, two goroutines writing at once would contend inside SQLite:
// an IMMEDIATE transaction waits out busy_timeout and then fails with
// SQLITE_BUSY, and a read transaction that later writes can fail at once
// (SQLITE_BUSY_SNAPSHOT) whatever the timeout. So every transaction and
// every statement that may write goes through a writer pool of exactly one
// connection: Go's pool queues the writers, SQLite never sees two, and a
// transaction begins IMMEDIATE (_txlock), taking the write lock up front.
//
// One pool of one connection would also be correct, but then a reader
// waits for every writer, and a goroutine that iterates rows outside a
// transaction while writing would deadlock against itself. In WAL mode
// readers neither block nor are blocked by the writer, so plain SELECTs
// outside a transaction run on a separate pool of reader connections,
// opened with query_only so that nothing can write through them.
func openSQLite(ctx context.Context, dataDir string, log *slog.Logger) (*DB, error) {
	if dataDir == "" {
		return nil, errors.New("db: SQLite needs a data directory")
	}
	dir, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, fmt.Errorf("db: data directory: %w", err)
	}
	if strings.ContainsRune(dir, '?') {
		return nil, fmt.Errorf("db: data directory %q must not contain '?'", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("db: data directory: %w", err)
	}
	path := filepath.Join(dir, sqliteFile)
	if err := checkFiles(dir, path); err != nil {
		return nil, err
	}
	if err := makePrivate(path, log); err != nil {
		return nil, err
	}

	write, err := sql.Open("sqlite", path+"?"+sqlitePragmas+
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("db: open %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)
	// Migrate through the writer before any reader connects.
	schema, err := migrate(ctx, write, SQLite, log)
	if err != nil {
		write.Close()
		return nil, err
	}

	read, err := sql.Open("sqlite", path+"?"+sqlitePragmas+"&_pragma=query_only(1)")
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("db: open %s: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	read.SetMaxOpenConns(n)
	read.SetMaxIdleConns(n)
	read.SetConnMaxIdleTime(5 * time.Minute)
	if err := read.PingContext(ctx); err != nil {
		write.Close()
		read.Close()
		return nil, fmt.Errorf("db: open %s: %w", path, err)
	}
	log.Info("database opened", "dialect", SQLite.String(), "path", path, "schema_version", schema)
	return &DB{Dialect: SQLite, write: write, read: read, log: log, schema: schema}, nil
}

// checkFiles checks, before SQLite opens anything, that this process can
// use the database: the data directory writable (SQLite creates the -wal
// and -shm files in it), the database file and its -wal and -shm, where
// present, regular files it can read and write. SQLite's own errors name
// no file ("unable to open database file (14)"); these name the file, the
// problem and its owner.
func checkFiles(dir, path string) error {
	if err := syscall.Access(dir, 0o3); err != nil { // write and search
		return fmt.Errorf("db: the data directory %s is not writable by this process (%s): %w; "+
			"SQLite creates %s-wal and -shm in it", dir, ownerOf(dir), err, filepath.Base(path))
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("db: %s: %w", p, err)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("db: %s is not a regular file but a %s: SQLite cannot use it; move it out of the way "+
				"(a -wal or -shm file that is not SQLite's own cannot hold data of this database)", p, fileKind(fi.Mode()))
		}
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("db: %s cannot be read and written by this process (%s): %w; "+
				"give it to the server's user (chown), or run the server as its owner", p, ownerOf(p), errors.Unwrap(err))
		}
		f.Close()
	}
	return nil
}

// ownerOf describes who owns path and who this process runs as.
func ownerOf(path string) string {
	self := userName(os.Geteuid())
	fi, err := os.Stat(path)
	if err != nil {
		return "this process runs as " + self
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "mode " + fi.Mode().Perm().String() + ", this process runs as " + self
	}
	return fmt.Sprintf("owner %s, mode %s; this process runs as %s", userName(int(st.Uid)), fi.Mode().Perm(), self)
}

// userName returns "name (uid N)", or "uid N" when the name is unknown.
func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return fmt.Sprintf("%s (uid %d)", u.Username, uid)
	}
	return fmt.Sprintf("uid %d", uid)
}

// fileKind names what a non-regular file is.
func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&os.ModeSymlink != 0:
		return "symbolic link"
	case m&os.ModeNamedPipe != 0:
		return "named pipe"
	case m&os.ModeSocket != 0:
		return "socket"
	case m&os.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

// makePrivate creates the database file path with mode 0600 if it does not
// exist, and takes the group's and others' permissions off it and its
// -wal and -shm files if they have any: they hold the audit trail, run
// logs and variables, and the data directory may be a pre-existing one
// that others can enter. SQLite creates -wal and -shm with the mode of the
// main file, so creating that one first is enough for a new database.
func makePrivate(path string, log *slog.Logger) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("db: open %s: %w", path, err)
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm()&0o077 == 0 {
			continue
		}
		mode := fi.Mode().Perm()
		if err := os.Chmod(p, mode&^0o077); err != nil {
			log.Warn("a database file is readable by other users, and changing its mode failed: chmod 600 it", "path", p, "mode", mode.String(), "err", err)
			continue
		}
		log.Warn("a database file was readable by other users: its mode is now owner-only", "path", p, "was", mode.String(), "now", (mode &^ 0o077).String())
	}
	return nil
}

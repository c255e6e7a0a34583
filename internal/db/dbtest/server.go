package dbtest

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// envURL names the environment variable pointing at an existing server.
const envURL = "GANTRY_TEST_PG_URL"

var (
	mainCalled atomic.Bool
	dbSeq      atomic.Int64

	startOnce  sync.Once
	srv        *pgServer
	srvErr     error
	skipReason string
)

// pgServer is the PostgreSQL server this test binary creates databases on.
type pgServer struct {
	admin   *sql.DB  // connected to the server's maintenance database
	base    url.URL  // the admin URL; a test database's URL differs in its path
	cluster *cluster // the throwaway cluster, or nil for GANTRY_TEST_PG_URL
}

// Main runs the tests of a package and then stops the PostgreSQL cluster,
// if the tests started one, and exits. Call it from TestMain:
//
//	func TestMain(m *testing.M) { dbtest.Main(m) }
func Main(m *testing.M) {
	mainCalled.Store(true)
	code := m.Run()
	if srv != nil {
		srv.close()
	}
	os.Exit(code)
}

// server returns the server, starting it on first use. It skips t if no
// PostgreSQL is available and fails t if one should be but is not.
func server(t testing.TB) *pgServer {
	t.Helper()
	if !mainCalled.Load() {
		t.Fatal("dbtest: PostgreSQL tests need `func TestMain(m *testing.M) { dbtest.Main(m) }` in the package, to stop the cluster at exit")
	}
	startOnce.Do(func() { srv, skipReason, srvErr = start() })
	if skipReason != "" {
		t.Skip(skipReason)
	}
	if srvErr != nil {
		t.Fatalf("dbtest: PostgreSQL: %v", srvErr)
	}
	return srv
}

// start connects to GANTRY_TEST_PG_URL or starts a throwaway cluster. It
// returns a reason to skip if neither is possible.
func start() (s *pgServer, skip string, err error) {
	if u := os.Getenv(envURL); u != "" {
		s, err := connect(u)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", envURL, err)
		}
		return s, "", nil
	}
	bin, ok := findBinaries()
	if !ok {
		return nil, "dbtest: no PostgreSQL binaries (initdb, pg_ctl, postgres) on PATH or in " +
			binGlob + "; install PostgreSQL or set " + envURL + " to run the PostgreSQL tests", nil
	}
	c, err := startCluster(bin)
	if err != nil {
		return nil, "", err
	}
	s, err = connect(c.url("postgres"))
	if err != nil {
		c.stop()
		return nil, "", fmt.Errorf("%w\n%s", err, c.logTail())
	}
	s.cluster = c
	return s, "", nil
}

// connect opens the admin connection to rawURL.
func connect(rawURL string) (*pgServer, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse URL: %w", err)
	}
	admin, err := sql.Open("pgx", rawURL)
	if err != nil {
		return nil, err
	}
	admin.SetMaxOpenConns(4)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		admin.Close()
		return nil, fmt.Errorf("connect: %w", err)
	}
	return &pgServer{admin: admin, base: *u}, nil
}

// createDatabase creates a fresh database, dropped when t ends, and returns
// its URL.
func (s *pgServer) createDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("gantry_test_%d_%d_%08x", os.Getpid(), dbSeq.Add(1), rand.Uint32())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("dbtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// FORCE ends connections a test left open.
		if _, err := s.admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("dbtest: drop database %s: %v", name, err)
		}
	})
	u := s.base
	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
}

// outage implements Outage.
func (s *pgServer) outage(t testing.TB, rawURL string) (end func()) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("dbtest: outage: %v", err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	if !strings.HasPrefix(name, "gantry_test_") {
		t.Fatalf("dbtest: outage: %q is not a database made by PostgresURL", name)
	}
	exec := func(q string, args ...any) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := s.admin.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("dbtest: outage: %s: %v", q, err)
		}
	}
	exec("ALTER DATABASE " + name + " WITH ALLOW_CONNECTIONS false")
	exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", name)
	var once sync.Once
	end = func() { once.Do(func() { exec("ALTER DATABASE " + name + " WITH ALLOW_CONNECTIONS true") }) }
	t.Cleanup(end)
	return end
}

// close closes the admin connection and stops the cluster, if any.
func (s *pgServer) close() {
	s.admin.Close()
	if s.cluster != nil {
		s.cluster.stop()
	}
}

package httpx_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/httpx"
)

func TestNewServerLimits(t *testing.T) {
	srv := httpx.NewServer(http.NotFoundHandler())
	if srv.IdleTimeout <= 0 || srv.IdleTimeout > 5*time.Minute {
		t.Errorf("IdleTimeout = %v: idle keep-alive connections must be closed", srv.IdleTimeout)
	}
	if srv.ReadHeaderTimeout <= 0 {
		t.Errorf("ReadHeaderTimeout = %v", srv.ReadHeaderTimeout)
	}
	if srv.ReadTimeout != 0 || srv.WriteTimeout != 0 {
		t.Errorf("ReadTimeout %v, WriteTimeout %v: they would cut long polls and big transfers", srv.ReadTimeout, srv.WriteTimeout)
	}
}

// trickle sends a POST declaring size bytes of body, then writes chunk
// bytes every every until the body is sent or the server closes; it
// returns the status line of the answer and how long it took.
func trickle(t *testing.T, addr string, size, chunk int, every time.Duration) (string, time.Duration) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	begin := time.Now()
	fmt.Fprintf(conn, "POST /x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", size)
	go func() {
		for sent := 0; sent < size; sent += chunk {
			if _, err := conn.Write([]byte(strings.Repeat(" ", min(chunk, size-sent)))); err != nil {
				return
			}
			time.Sleep(every)
		}
	}()
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("no answer after %v: %v", time.Since(begin), err)
	}
	return strings.TrimSpace(line), time.Since(begin)
}

func TestSlowBodies(t *testing.T) {
	const window = 400 * time.Millisecond
	h := httpx.Adapter{}.H(func(w http.ResponseWriter, r *http.Request) error {
		if _, err := httpx.ReadBody(w, r, 1<<20, "body"); err != nil {
			return err
		}
		// A long poll after the body: the request must live on.
		time.Sleep(2 * window)
		if err := r.Context().Err(); err != nil {
			return fmt.Errorf("request context ended after the body: %w", err)
		}
		_, err := io.WriteString(w, "ok")
		return err
	})
	srv := httptest.NewServer(httpx.SlowBodies(h, window, 100))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	t.Run("one byte at a time is cut", func(t *testing.T) {
		status, took := trickle(t, addr, 100000, 1, 50*time.Millisecond)
		if !strings.Contains(status, " 408 ") || took > 5*time.Second {
			t.Errorf("a trickling body: %q after %v, want 408 after about %v", status, took, window)
		}
	})
	t.Run("a slow but steady body passes", func(t *testing.T) {
		// 150 bytes every 100 ms, for 2 s: five windows.
		status, took := trickle(t, addr, 3000, 150, 100*time.Millisecond)
		if !strings.Contains(status, " 200 ") {
			t.Errorf("a steady body: %q after %v, want 200", status, took)
		}
	})
	t.Run("a long poll after a small body", func(t *testing.T) {
		resp, err := http.Post(srv.URL, "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("POST then wait = %d %s", resp.StatusCode, b)
		}
	})
}

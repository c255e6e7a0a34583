package worker

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A remote that accepts and never answers fails the run once the
// checkout's time is up, with a reason that says so.
func TestJobCheckoutTimeout(t *testing.T) {
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-hang }))
	t.Cleanup(func() { close(hang); srv.Close() })
	for _, cache := range []bool{false, true} {
		fx := newJobFixture(t, nil)
		fx.worker.cfg.CheckoutTimeout = 500 * time.Millisecond
		if cache {
			fx.worker.cfg.GitCache = t.TempDir()
		}
		job := fx.job("plan")
		job.Repository = srv.URL + "/repo.git"
		start := time.Now()
		fx.worker.execute(context.Background(), job, 0)
		if took := time.Since(start); took > 20*time.Second {
			t.Errorf("cache %v: the job took %v with a 500ms checkout timeout", cache, took)
		}
		if len(fx.proto.finishes) != 1 || fx.proto.finishes[0].OK {
			t.Fatalf("cache %v: Finish = %+v, want one failed finish", cache, fx.proto.finishes)
		}
		if reason := fx.proto.finishes[0].Reason; !strings.Contains(reason, "checking out the code: timed out after 500ms") {
			t.Errorf("cache %v: reason = %q, want it to say the checkout timed out", cache, reason)
		}
	}
}

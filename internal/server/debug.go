package server

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"

	"github.com/gantry-iac/gantry/internal/httpx"
)

// serveDebug serves Go's profiler on its own listener, never on the API's.
func (s *Server) serveDebug() error {
	ln, err := net.Listen("tcp", s.cfg.DebugListen)
	if err != nil {
		return fmt.Errorf("listening on %s for --debug-listen: %w", s.cfg.DebugListen, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := httpx.NewServer(mux)
	go func() { _ = srv.Serve(ln) }()
	s.log.Info("profiler listening", "url", "http://"+ln.Addr().String()+"/debug/pprof/")
	return nil
}

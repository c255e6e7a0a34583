package worker

import (
	"bytes"
	"strings"
	"sync"
)

// errorCatcher passes output through and remembers the first diagnostic
// line ("Error: ...") so that a failure's reason can say what went wrong.
type errorCatcher struct {
	mu    sync.Mutex
	dst   interface{ Write([]byte) (int, error) }
	line  []byte
	first string
}

func (e *errorCatcher) Write(p []byte) (int, error) {
	e.mu.Lock()
	for _, c := range p {
		if c != '\n' {
			if len(e.line) < 1024 {
				e.line = append(e.line, c)
			}
			continue
		}
		e.check()
		e.line = e.line[:0]
	}
	e.mu.Unlock()
	return e.dst.Write(p)
}

func (e *errorCatcher) check() {
	if e.first != "" {
		return
	}
	l := strings.TrimSpace(strings.TrimLeft(string(bytes.TrimSpace(e.line)), "│╷╵ "))
	if strings.HasPrefix(l, "Error: ") {
		e.first = l
	}
}

// First returns the first error line seen, if any.
func (e *errorCatcher) First() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.check()
	return e.first
}

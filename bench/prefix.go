package bench

import (
	"bytes"
	"io"
	"sync"
)

// prefixed writes whole lines to w, each after prefix: the servers of a set
// share one log (-log), and a line (a log record, a GODEBUG=gctrace=1
// collection) must say which server wrote it. A partial line waits for its
// end; what is left at close is dropped with the process, and a write the
// log refuses is dropped too.
type prefixed struct {
	mu     *sync.Mutex // shared by every writer on w
	w      io.Writer
	prefix []byte
	part   []byte
}

func (p *prefixed) Write(b []byte) (int, error) {
	n := len(b)
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			p.part = append(p.part, b...)
			break
		}
		line := append(append(append([]byte(nil), p.prefix...), p.part...), b[:i+1]...)
		p.part = p.part[:0]
		b = b[i+1:]
		// A failed write of the log loses the line, never the server: an
		// error here would close the pipe, and the server's next line
		// would kill it (SIGPIPE).
		_, _ = p.w.Write(line)
	}
	return n, nil
}

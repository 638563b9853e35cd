package security

// What 100 parallel requests without a token cost the server (finding 4 of
// issue 11): the growth of its resident memory and the audit log bytes per
// request, for 1 MiB bodies and for bodies just within the cap. The figures
// are reported, not asserted:
//
//	go test ./tests/security/ -run '^$' -bench HTTPAttackTokenless -benchtime 1x
//
// SEC_HTTP_BENCH_PARALLEL changes the 100 (measure main's binary, through
// SEC_COFFER_BIN, with a few: it decodes and audits every body).

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func BenchmarkHTTPAttackTokenlessBodies(b *testing.B) {
	parallel := 100
	if v := os.Getenv("SEC_HTTP_BENCH_PARALLEL"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("SEC_HTTP_BENCH_PARALLEL=%q: want a positive number", v)
		}
		parallel = n
	}
	zeros := httpAttackZeros(1 << 20)
	str := func(n int) []byte { return []byte(`{"token":"` + strings.Repeat("x", n-13) + `"}`) }
	cases := []struct {
		name, method, path string
		body               []byte
		chunked            bool
	}{
		// 1 MiB of [0,0,...] to a path that needs a token (the finding): core
		// refuses, the body is never read.
		{"refused-1MiB-zeros", "PUT", "/v1/secret/data/app", zeros, false},
		// To a path served without a token, streamed: [0,0,...] is refused
		// past 1024 values, a long string at the 64 KiB cap.
		{"unauthenticated-1MiB-zeros-chunked", "PUT", "/v1/sys/wrapping/lookup", zeros, true},
		{"unauthenticated-1MiB-string-chunked", "PUT", "/v1/sys/wrapping/lookup", str(1 << 20), true},
		// Just within the cap: decoded, served (an unknown wrapping token),
		// audited.
		{"unauthenticated-60KiB-string", "PUT", "/v1/sys/wrapping/lookup", str(60 << 10), false},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			s := startDevServer(b, serverOpts{NoNATS: true})
			auditLog := filepath.Join(b.TempDir(), "audit.log")
			if _, err := s.rootClient().Logical().Write("sys/audit/file", map[string]any{"type": "file", "options": map[string]any{"file_path": auditLog}}); err != nil {
				b.Fatalf("enable the file audit device: %v", err)
			}
			auditBefore := httpAttackFileSize(b, auditLog)
			rssBefore, _ := s.rssKiB()
			var codes sync.Map // status code -> *atomic.Int64
			b.ResetTimer()
			for range b.N {
				var wg sync.WaitGroup
				for range parallel {
					wg.Go(func() {
						code := httpAttackSendWhole(s.addr, tc.method, tc.path, tc.body, tc.chunked)
						n, _ := codes.LoadOrStore(code, new(atomic.Int64))
						n.(*atomic.Int64).Add(1)
					})
				}
				wg.Wait()
			}
			b.StopTimer()
			rssAfter, peak := s.rssKiB()
			requests := float64(b.N * parallel)
			b.ReportMetric(float64(rssAfter-rssBefore)/1024, "rss-growth-MiB")
			b.ReportMetric(float64(peak-rssBefore)/1024, "peak-growth-MiB")
			b.ReportMetric(float64(httpAttackFileSize(b, auditLog)-auditBefore)/requests, "audit-B/req")
			codes.Range(func(k, v any) bool {
				b.Logf("%s: %d responses %v of %v requests", tc.name, v.(*atomic.Int64).Load(), k, requests)
				return true
			})
		})
	}
}

// httpAttackSendWhole sends a whole request with body (as a client that
// does not wait for the server), and returns the response's status code, or
// 0 when the connection ended without one.
func httpAttackSendWhole(addr, method, path string, body []byte, chunked bool) int {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return 0
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	hdr := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: coffer\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", method, path, len(body))
	if chunked {
		hdr = fmt.Sprintf("%s %s HTTP/1.1\r\nHost: coffer\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n", method, path)
	}
	go func() {
		if _, err := c.Write([]byte(hdr)); err != nil {
			return
		}
		if !chunked {
			_, _ = c.Write(body)
			return
		}
		for off := 0; off < len(body); off += 16 << 10 {
			end := min(off+16<<10, len(body))
			if _, err := fmt.Fprintf(c, "%x\r\n%s\r\n", end-off, body[off:end]); err != nil {
				return
			}
		}
		_, _ = c.Write([]byte("0\r\n\r\n"))
	}()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func httpAttackFileSize(tb testing.TB, path string) int64 {
	tb.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		tb.Fatalf("stat %s: %v", path, err)
	}
	return fi.Size()
}

package testutil

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// FreeAddr returns a loopback address ("127.0.0.1:port") for a test to give
// to a server it starts, with the port claimed for the rest of the test.
//
// Asking the kernel for port 0 and closing the listener is racy: the kernel
// hands the same port to the next bind(0) or outgoing connection of any
// process, an embedded NATS server with a random port among them (CI saw a
// coffer server's listener collide with its own bus that way). So the port
// comes from below the kernel's ephemeral range, which bind(0) and connect
// never use (claimRange: above it, or within it on a host that leaves no
// room), and is claimed across the test processes that run in parallel by
// an flock on a file named after it; the lock is released when the test ends
// (or its process exits).
func FreeAddr(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", FreePort(t))
}

// FreePort is FreeAddr's port alone.
func FreePort(t testing.TB) int {
	t.Helper()
	lo, hi := claimRange()
	dir := filepath.Join(os.TempDir(), "coffer-test-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		t.Fatalf("free port: %v", err)
	}
	for range 1000 {
		port := lo + rand.IntN(hi-lo)
		f, err := claim(dir, port)
		if err != nil {
			continue
		}
		if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err != nil {
			_ = f.Close() // in use by something that takes no lock
			continue
		} else if err := ln.Close(); err != nil {
			_ = f.Close()
			continue
		}
		t.Cleanup(func() { _ = f.Close() })
		return port
	}
	t.Fatalf("free port: no free port in %d-%d after 1000 tries", lo, hi)
	return 0
}

// claim takes an exclusive, non-blocking flock on dir/<port>; the file is
// the claim, held while it stays open.
func claim(dir string, port int) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

// claimRange is the range ports are drawn from: below the kernel's ephemeral
// range (ip_local_port_range), or above it when it starts too low. A host
// whose ephemeral range leaves no room on either side (1024-65000, say) gets
// the ephemeral range itself: the flock claims still keep the tests apart,
// only the kernel's own picks can collide there.
func claimRange() (lo, hi int) {
	eLo, eHi, err := ephemeralRange()
	switch {
	case err != nil:
		return 20000, 32768 // Linux's default ephemeral range starts at 32768
	case eLo >= 3024:
		return max(1024, eLo-22768), eLo
	case eHi <= 63535:
		return eHi + 1, 65536
	default:
		return eLo, eHi + 1
	}
}

func ephemeralRange() (lo, hi int, err error) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0, errors.New("ip_local_port_range: want two numbers")
	}
	if lo, err = strconv.Atoi(f[0]); err != nil {
		return 0, 0, err
	}
	if hi, err = strconv.Atoi(f[1]); err != nil {
		return 0, 0, err
	}
	return lo, hi, nil
}

package testutil

import (
	"errors"
	"net"
	"strconv"
	"testing"
)

// CI once gave a coffer server the same port for its listener and its bus:
// two free-port calls of one test returned the same just-released port.
func TestFreeAddrNeverRepeatsWithinATestAndAvoidsTheEphemeralRange(t *testing.T) {
	lo, hi, rangeErr := ephemeralRange()
	if cLo, _ := claimRange(); rangeErr == nil && cLo == lo {
		rangeErr = errNoRoom // this host leaves no room beside its ephemeral range
	}
	seen := map[string]bool{}
	for range 200 {
		addr := FreeAddr(t)
		if seen[addr] {
			t.Fatalf("FreeAddr returned %s twice in one test", addr)
		}
		seen[addr] = true
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		port, _ := strconv.Atoi(p)
		if rangeErr == nil && port >= lo && port <= hi {
			t.Fatalf("FreeAddr gave %d, inside the ephemeral range %d-%d that bind(0) draws from", port, lo, hi)
		}
	}
}

var errNoRoom = errors.New("no room beside the ephemeral range")

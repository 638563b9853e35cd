package bench

import (
	"testing"
	"time"
)

func TestDist(t *testing.T) {
	var s Sample
	if d := s.Dist(); d.N != 0 || d.String() != "no samples" {
		t.Fatalf("empty: %+v %q", d, d.String())
	}
	for i := 100; i >= 1; i-- {
		s.Add(time.Duration(i) * time.Millisecond)
	}
	d := s.Dist()
	if d.N != 100 || d.P50 != 51*time.Millisecond || d.P90 != 91*time.Millisecond || d.P99 != 100*time.Millisecond || d.Max != 100*time.Millisecond {
		t.Fatalf("Dist of 1..100 ms = %+v", d)
	}
	if got := d.String(); got != "p50 51.00ms p90 91.00ms p99 100.00ms max 100.00ms (n=100)" {
		t.Fatalf("String = %q", got)
	}
}

func TestProcessCPU(t *testing.T) {
	d, err := ProcessCPU(1)
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	if d < 0 {
		t.Fatalf("CPU of pid 1 = %s", d)
	}
	if _, err := ProcessCPU(1 << 30); err == nil {
		t.Fatal("CPU of a process that does not exist: no error")
	}
}

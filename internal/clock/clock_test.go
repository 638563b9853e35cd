package clock

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestOffsetFile(t *testing.T) {
	t.Cleanup(func() { Set(0) })
	path := filepath.Join(t.TempDir(), "offset")
	if err := Load(path); err != nil || Offset() != 0 {
		t.Fatalf("missing file: offset %s, err %v; want 0, nil", Offset(), err)
	}
	if err := os.WriteFile(path, []byte("-5m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Load(path); err != nil || Offset() != -5*time.Minute {
		t.Fatalf("offset %s, err %v; want -5m", Offset(), err)
	}
	if d := time.Until(Now()); d > -4*time.Minute || d < -6*time.Minute {
		t.Fatalf("Now is %s from time.Now; want about -5m", d)
	}
	if err := os.WriteFile(path, []byte("soon"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Load(path); err == nil || Offset() != -5*time.Minute {
		t.Fatalf("bad file: offset %s, err %v; want an error and the offset kept", Offset(), err)
	}
}

func TestFollowMovesTheClock(t *testing.T) {
	t.Cleanup(func() { Set(0) })
	path := filepath.Join(t.TempDir(), "offset")
	ctx, cancel := context.WithCancel(context.Background())
	seen := make(chan time.Duration, 8)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Follow(ctx, path, 5*time.Millisecond, func(d time.Duration, err error) {
			if err == nil {
				seen <- d
			}
		})
	}()
	for _, want := range []time.Duration{90 * time.Second, 0} {
		if err := os.WriteFile(path, []byte(want.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		select {
		case d := <-seen:
			if d != want || Offset() != want {
				t.Fatalf("followed %s (offset %s); want %s", d, Offset(), want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("the offset %s was not followed", want)
		}
	}
	cancel()
	<-done
}

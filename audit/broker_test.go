package audit

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/rs/zerolog"
)

func newBroker(t *testing.T) (*Broker, *testutil.SyncBuffer) {
	t.Helper()
	var logs testutil.SyncBuffer
	b := NewBroker(zerolog.New(&logs))
	t.Cleanup(func() { _ = b.Close() })
	return b, &logs
}

func fullDevice(t *testing.T) Device {
	t.Helper()
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full on this system")
	}
	d, err := NewFile("full/", map[string]string{OptionFilePath: "/dev/full"}, testSalt)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func fileAt(t *testing.T, name string) (Device, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	d, err := NewFile(name+"/", map[string]string{OptionFilePath: path}, testSalt)
	if err != nil {
		t.Fatal(err)
	}
	return d, path
}

func TestBrokerWithoutDevices(t *testing.T) {
	b, _ := newBroker(t)
	if b.Enabled() {
		t.Fatal("a new broker is enabled")
	}
	if err := b.LogRequest(context.Background(), kvWrite()); err != nil {
		t.Fatalf("LogRequest without devices: %v", err)
	}
	if err := b.LogResponse(context.Background(), kvWrite()); err != nil {
		t.Fatalf("LogResponse without devices: %v", err)
	}
}

func TestBrokerOnlyDeviceFails(t *testing.T) {
	b, logs := newBroker(t)
	if err := b.Register("full", fullDevice(t), false); err != nil {
		t.Fatal(err)
	}
	if !b.Enabled() {
		t.Fatal("broker with a device is not enabled")
	}
	for _, log := range []func(context.Context, *LogInput) error{b.LogRequest, b.LogResponse} {
		err := log(context.Background(), kvWrite())
		if !errors.Is(err, ErrAuditFailed) {
			t.Fatalf("got %v, want ErrAuditFailed", err)
		}
	}
	out := logs.String()
	for _, want := range []string{`"device":"full/"`, "no space left on device", "the request is refused"} {
		if !strings.Contains(out, want) {
			t.Errorf("server log does not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, secretValue) || strings.Contains(out, callerToken) {
		t.Errorf("server log holds a secret:\n%s", out)
	}
}

func TestBrokerToleratesOneFailingDevice(t *testing.T) {
	b, logs := newBroker(t)
	good, path := fileAt(t, "good")
	if err := b.Register("full/", fullDevice(t), false); err != nil {
		t.Fatal(err)
	}
	if err := b.Register("good/", good, false); err != nil {
		t.Fatal(err)
	}
	in := kvWrite()
	if err := b.LogRequest(context.Background(), in); err != nil {
		t.Fatalf("LogRequest with one working device: %v", err)
	}
	if err := b.LogResponse(context.Background(), in); err != nil {
		t.Fatalf("LogResponse with one working device: %v", err)
	}
	lines := readLines(t, path)
	if len(lines) != 2 {
		t.Fatalf("working device has %d lines, want 2", len(lines))
	}
	equal(t, decode(t, lines[0]), "request", "type")
	equal(t, decode(t, lines[1]), "response", "type")
	if out := logs.String(); strings.Count(out, `"device":"full/"`) != 2 {
		t.Errorf("the failing device's two failures are not in the server log:\n%s", out)
	}
	if strings.Contains(logs.String(), "refused") {
		t.Error("the broker reported a refusal although one device logged")
	}
}

func TestBrokerSameTimeOnEveryDevice(t *testing.T) {
	b, _ := newBroker(t)
	d1, p1 := fileAt(t, "one")
	d2, p2 := fileAt(t, "two")
	if err := b.Register("one", d1, false); err != nil {
		t.Fatal(err)
	}
	if err := b.Register("two", d2, true); err != nil {
		t.Fatal(err)
	}
	in := kvWrite()
	if err := b.LogRequest(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	if !in.Time.IsZero() {
		t.Error("the broker modified its input")
	}
	l1, l2 := readLines(t, p1), readLines(t, p2)
	if len(l1) != 1 || len(l2) != 1 {
		t.Fatalf("lines: %d and %d, want 1 and 1", len(l1), len(l2))
	}
	if !bytes.Equal(l1[0], l2[0]) {
		t.Errorf("two devices with the same salt and options wrote different lines:\n%s\n%s", l1[0], l2[0])
	}
	if b.IsLocal("one") || !b.IsLocal("two/") {
		t.Error("IsLocal does not report what Register recorded")
	}
}

func TestBrokerRegistry(t *testing.T) {
	b, _ := newBroker(t)
	dz, _ := fileAt(t, "z")
	da, _ := fileAt(t, "a")
	if err := b.Register("z", dz, false); err != nil {
		t.Fatal(err)
	}
	if err := b.Register("/a/", da, false); err != nil {
		t.Fatal(err)
	}
	other, _ := fileAt(t, "other")
	defer other.Close()
	if err := b.Register("a/", other, false); !errors.Is(err, ErrPathInUse) {
		t.Fatalf("Register at a used path = %v, want ErrPathInUse", err)
	}
	if err := b.Register("", other, false); err == nil {
		t.Fatal("Register at an empty path succeeded")
	}
	if got := b.Devices(); !slices.Equal(got, []string{"a/", "z/"}) {
		t.Fatalf("Devices = %v", got)
	}

	hash, err := b.Hash("a", "value")
	if err != nil || hash != HashString(testSalt, "value") {
		t.Fatalf("Hash = %q, %v; want %q", hash, err, HashString(testSalt, "value"))
	}
	if _, err := b.Hash("missing/", "v"); !errors.Is(err, ErrNotRegistered) {
		t.Fatalf("Hash of a missing device = %v, want ErrNotRegistered", err)
	}

	if err := b.Deregister("a"); err != nil {
		t.Fatal(err)
	}
	if err := da.LogRequest(context.Background(), kvWrite()); !errors.Is(err, ErrDeviceClosed) {
		t.Fatalf("a deregistered device still logs: %v", err)
	}
	if err := b.Deregister("a/"); !errors.Is(err, ErrNotRegistered) {
		t.Fatalf("second Deregister = %v, want ErrNotRegistered", err)
	}
	if got := b.Devices(); !slices.Equal(got, []string{"z/"}) {
		t.Fatalf("Devices after Deregister = %v", got)
	}
}

func TestBrokerReload(t *testing.T) {
	b, _ := newBroker(t)
	d, path := fileAt(t, "rot")
	if err := b.Register("rot", d, false); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.LogRequest(ctx, kvWrite()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := b.LogResponse(ctx, kvWrite()); err != nil {
		t.Fatal(err)
	}
	if n := len(readLines(t, path)); n != 1 {
		t.Fatalf("the new file has %d lines, want 1", n)
	}
}

func TestBrokerClose(t *testing.T) {
	b, _ := newBroker(t)
	d, path := fileAt(t, "c")
	if err := b.Register("c", d, false); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := d.LogRequest(context.Background(), kvWrite()); !errors.Is(err, ErrDeviceClosed) {
		t.Fatalf("Close left the device open: %v", err)
	}
	if err := b.LogRequest(context.Background(), kvWrite()); !errors.Is(err, ErrBrokerClosed) {
		t.Fatalf("LogRequest after Close = %v, want ErrBrokerClosed", err)
	}
	if err := b.Register("c2", d, false); !errors.Is(err, ErrBrokerClosed) {
		t.Fatalf("Register after Close = %v, want ErrBrokerClosed", err)
	}
	if n := len(readLines(t, path)); n != 0 {
		t.Fatalf("%d lines written", n)
	}
}

// Devices come and go while requests are logged: every call either logs or
// fails cleanly, and the race detector sees no data race.
func TestBrokerConcurrentRegistry(t *testing.T) {
	b, _ := newBroker(t)
	keep, path := fileAt(t, "keep")
	if err := b.Register("keep", keep, false); err != nil {
		t.Fatal(err)
	}
	const n = 200
	churn := make([]Device, n/10)
	for i := range churn {
		churn[i], _ = fileAt(t, "churn")
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	wg.Go(func() {
		for range n {
			if err := b.LogRequest(context.Background(), kvWrite()); err != nil {
				errs <- err
			}
		}
	})
	wg.Go(func() {
		for _, d := range churn {
			if err := b.Register("churn", d, false); err != nil {
				errs <- err
				return
			}
			if err := b.Deregister("churn"); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := len(readLines(t, path)); got != n {
		t.Fatalf("the stable device has %d lines, want %d", got, n)
	}
}

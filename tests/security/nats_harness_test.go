package security

// What only the NATS tests (nats_*_test.go) need: a raw NATS protocol
// client and a CA of the test's own for the embedded server's TLS.

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsConnect connects a plain nats.go client with opts.
func natsConnect(url string, opts ...nats.Option) (*nats.Conn, error) {
	return nats.Connect(url, append([]nats.Option{nats.Timeout(5 * time.Second), nats.NoReconnect()}, opts...)...)
}

// natsRefused asserts that a client with opts is refused as unauthorized.
func natsRefused(t *testing.T, url, what string, opts ...nats.Option) {
	t.Helper()
	nc, err := natsConnect(url, opts...)
	if err == nil {
		nc.Close()
		t.Fatalf("%s: connected to the embedded NATS of a non-dev server", what)
	}
	if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("%s: %v, want an authorization violation", what, err)
	}
}

// natsJetStreamWorks connects with opts and asks the JetStream API for the
// account's information.
func natsJetStreamWorks(t *testing.T, url string, opts ...nats.Option) {
	t.Helper()
	nc, err := natsConnect(url, opts...)
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		t.Fatalf("JetStream account info on %s: %v", url, err)
	}
}

// natsRawAttempt speaks the NATS protocol by hand: it reads the server's
// INFO line, sends connect (a CONNECT line) followed by a subscription to
// every subject, a publish and a PING, and returns the INFO line and
// everything the server sent until it closed the connection (or 10 s).
func natsRawAttempt(t *testing.T, addr, connect string) (info, rest string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial NATS at %s: %v", addr, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	info, err = r.ReadString('\n')
	if err != nil {
		t.Fatalf("read INFO from %s: %v", addr, err)
	}
	msg := connect + "\r\nSUB > 1\r\nPUB coffer.attack 5\r\nhello\r\nPING\r\n"
	if _, err := io.WriteString(conn, msg); err != nil {
		t.Fatalf("write to %s: %v", addr, err)
	}
	b, _ := io.ReadAll(r) // ends at the server's close or the deadline
	return strings.TrimSpace(info), string(b)
}

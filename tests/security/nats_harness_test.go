package security

// The NATS topic's harness: a coffer binary built for the test, coffer
// processes on free loopback ports, and a raw NATS protocol client. Every
// name starts with nats so that the other topics' files in this package do
// not collide with it.

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
)

const (
	natsStartTimeout = 60 * time.Second
	natsStopTimeout  = 30 * time.Second
)

// natsBuildCoffer builds ./cmd/coffer into t.TempDir() and returns its path.
func natsBuildCoffer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "coffer")
	build := exec.Command("go", "build", "-o", bin, "./cmd/coffer")
	build.Dir = "../.." // the module root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/coffer: %v\n%s", err, out)
	}
	return bin
}

// natsFreeAddr returns a loopback address with a port nobody listens on now.
func natsFreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// natsOutput collects a process's output from its copying goroutines.
type natsOutput struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *natsOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *natsOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// natsProc is one running coffer process.
type natsProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  *natsOutput
	done chan struct{}
}

// natsStartCoffer runs bin with args and waits until apiAddr answers
// sys/health with any status. The process is stopped when the test ends.
func natsStartCoffer(t *testing.T, bin, apiAddr string, args ...string) *natsProc {
	t.Helper()
	p := &natsProc{t: t, cmd: exec.Command(bin, args...), out: &natsOutput{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start coffer %v: %v", args, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("coffer %v output:\n%s", args, p.out.String())
		}
		p.stop()
	})
	hc := &http.Client{Timeout: 2 * time.Second}
	testutil.Eventually(t, natsStartTimeout, fmt.Sprintf("coffer %v answers on %s", args, apiAddr), func() error {
		select {
		case <-p.done:
			t.Fatalf("coffer %v exited before serving; output:\n%s", args, p.out.String())
		default:
		}
		resp, err := hc.Get("http://" + apiAddr + "/v1/sys/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	return p
}

// stop sends SIGTERM and waits for the exit (SIGKILL after natsStopTimeout).
func (p *natsProc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(natsStopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		p.t.Errorf("coffer did not exit within %s of SIGTERM", natsStopTimeout)
	}
}

// natsConfigServer writes a non-dev config into dir (bolt storage, plain
// HTTP on apiAddr, cluster name name, the bus block body busBody, and a
// static seal with sealKey when it is not nil) and returns its path.
func natsConfigServer(t *testing.T, dir, apiAddr, name, busBody string, sealKey []byte) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "storage \"bolt\" {\n  path = %q\n}\n", filepath.Join(dir, "coffer.db"))
	fmt.Fprintf(&b, "listener \"tcp\" {\n  address     = %q\n  tls_disable = true\n}\n", apiAddr)
	fmt.Fprintf(&b, "api_addr = %q\ncluster_name = %q\n", "http://"+apiAddr, name)
	fmt.Fprintf(&b, "bus {\n  %s\n}\n", busBody)
	if sealKey != nil {
		keyFile := filepath.Join(dir, "unseal.key")
		if err := os.WriteFile(keyFile, sealKey, 0o600); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "seal \"static\" {\n  key_file = %q\n}\n", keyFile)
	}
	path := filepath.Join(dir, "coffer.hcl")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
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

// natsCA is a CA made for one test and a server certificate it signed for
// 127.0.0.1, as PEM files.
type natsCA struct {
	caFile, certFile, keyFile string
}

func natsNewCA(t *testing.T) natsCA {
	t.Helper()
	dir := t.TempDir()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey, key := newKey(), newKey()
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "coffer nats test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "coffer nats"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c := natsCA{caFile: filepath.Join(dir, "ca.pem"), certFile: filepath.Join(dir, "nats.pem"), keyFile: filepath.Join(dir, "nats-key.pem")}
	for file, block := range map[string]*pem.Block{
		c.caFile:   {Type: "CERTIFICATE", Bytes: caDER},
		c.certFile: {Type: "CERTIFICATE", Bytes: der},
		c.keyFile:  {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

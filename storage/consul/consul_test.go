package consul_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/consul"
	"github.com/cofferhq/coffer/storage/consul/consultest"
	"github.com/cofferhq/coffer/storage/storagetest"
	"github.com/hashicorp/consul/api"
)

var paths atomic.Int64

// open returns a backend on a fresh path of the agent.
func open(t *testing.T, a *consultest.Agent) *consul.Backend {
	t.Helper()
	b, err := consul.Open(consul.Options{Address: a.Addr, Path: fmt.Sprintf("coffer-test/%d/", paths.Add(1))})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	a := consultest.Start(t)
	storagetest.Run(t, func(t *testing.T) storage.Backend { return open(t, a) })
}

func ops(n int, prefix string) []*storage.TxnOp {
	out := make([]*storage.TxnOp, n)
	for i := range out {
		out[i] = &storage.TxnOp{Operation: storage.PutOperation,
			Entry: &storage.Entry{Key: fmt.Sprintf("%s/%03d", prefix, i), Value: []byte("v")}}
	}
	return out
}

func TestTransactionOverTheCapIsRefusedWhole(t *testing.T) {
	a := consultest.Start(t)
	b := open(t, a)
	ctx := context.Background()

	if err := b.Transaction(ctx, ops(consul.MaxOps, "full")); err != nil {
		t.Fatalf("a transaction of exactly MaxOps=%d operations: %v", consul.MaxOps, err)
	}
	if names, err := b.List(ctx, "full/"); err != nil || len(names) != consul.MaxOps {
		t.Fatalf("after MaxOps puts List = %d names, %v; want %d", len(names), err, consul.MaxOps)
	}

	err := b.Transaction(ctx, ops(consul.MaxOps+1, "over"))
	if !errors.Is(err, consul.ErrTooManyOps) {
		t.Fatalf("a transaction of MaxOps+1 operations: error = %v, want ErrTooManyOps", err)
	}
	if !strings.Contains(err.Error(), "nothing was applied") || !strings.Contains(err.Error(), fmt.Sprint(consul.MaxOps+1)) {
		t.Errorf("error %q does not say nothing was applied and how many operations there were", err)
	}
	if names, err := b.List(ctx, ""); err != nil || strings.Join(names, ",") != "full/" {
		t.Fatalf("after the refused transaction List = %q, %v; want only full/", names, err)
	}
}

// Consul's own cap holds as well: the agent refuses a transaction over it
// whole, which is why the backend never needs to split one.
func TestRolledBackTransactionAppliesNothing(t *testing.T) {
	a := consultest.Start(t)
	b := open(t, a)
	ctx := context.Background()
	big := make([]byte, consultest.MaxValueSize+1)
	err := b.Transaction(ctx, []*storage.TxnOp{
		{Operation: storage.PutOperation, Entry: &storage.Entry{Key: "small", Value: []byte("x")}},
		{Operation: storage.PutOperation, Entry: &storage.Entry{Key: "big", Value: big}},
	})
	if err == nil {
		t.Fatal("a transaction over the agent's txn_max_req_len succeeded")
	}
	if !strings.Contains(err.Error(), "txn_max_req_len") {
		t.Errorf("error %q does not name the Consul limit to raise", err)
	}
	if e, err := b.Get(ctx, "small"); err != nil || e != nil {
		t.Fatalf("Get(small) after the refused transaction = %v, %v; want nothing", e, err)
	}
}

func TestConsulDown(t *testing.T) {
	a := consultest.Start(t)
	b := open(t, a)
	ctx := context.Background()
	if err := b.Put(ctx, &storage.Entry{Key: "k", Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	a.Stop()

	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, consul.ErrUnreachable) {
			t.Fatalf("%s with Consul down: error = %v, want ErrUnreachable", op, err)
		}
		for _, want := range []string{a.Addr, "Consul agent is running", "CONSUL_HTTP_ADDR"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s error %q does not mention %q", op, err, want)
			}
		}
	}
	_, err := b.Get(ctx, "k")
	check("Get", err)
	_, err = b.List(ctx, "")
	check("List", err)
	check("Put", b.Put(ctx, &storage.Entry{Key: "k2", Value: []byte("v")}))
	check("Transaction", b.Transaction(ctx, ops(3, "t")))
}

func TestConfigWinsOverEnvironment(t *testing.T) {
	a := consultest.Start(t)
	t.Setenv("CONSUL_HTTP_ADDR", "127.0.0.1:1")
	b := open(t, a) // Address set: the variable is not used
	if err := b.Put(context.Background(), &storage.Entry{Key: "k", Value: []byte("v")}); err != nil {
		t.Fatalf("Put with address set and CONSUL_HTTP_ADDR elsewhere: %v", err)
	}

	t.Setenv("CONSUL_HTTP_ADDR", a.Addr)
	b2, err := consul.Open(consul.Options{Path: b.Path()})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if e, err := b2.Get(context.Background(), "k"); err != nil || e == nil || string(e.Value) != "v" {
		t.Fatalf("Get through CONSUL_HTTP_ADDR = %v, %v; want v", e, err)
	}
}

func TestFromMap(t *testing.T) {
	o, err := consul.FromMap("coffer", map[string]string{"address": "10.0.0.1:8500", "token": "t", "scheme": "https"})
	if err != nil || o.Address != "10.0.0.1:8500" || o.Token != "t" || o.Scheme != "https" || o.Path != "coffer" {
		t.Fatalf("FromMap = %+v, %v", o, err)
	}
	for _, tc := range []struct {
		m    map[string]string
		want string
	}{
		{map[string]string{"adress": "x"}, `unknown key(s) adress`},
		{map[string]string{"scheme": "ftp"}, `scheme "ftp"`},
		{map[string]string{"tls_cert_file": "c"}, "tls_cert_file and tls_key_file go together"},
	} {
		if _, err := consul.FromMap("", tc.m); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("FromMap(%v) error = %v, want one saying %q", tc.m, err, tc.want)
		}
	}
}

// MaxOps is the agent's own cap: one operation more, sent past the backend's
// check, is refused by Consul itself.
func TestMaxOpsIsConsulsCap(t *testing.T) {
	a := consultest.Start(t)
	c, err := api.NewClient(&api.Config{Address: a.Addr})
	if err != nil {
		t.Fatal(err)
	}
	txn := func(n int) error {
		ops := make(api.TxnOps, n)
		for i := range ops {
			ops[i] = &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVSet, Key: fmt.Sprintf("cap/%d", i), Value: []byte("v")}}
		}
		ok, resp, _, err := c.Txn().Txn(ops, nil)
		if err == nil && !ok {
			err = fmt.Errorf("rolled back: %+v", resp.Errors)
		}
		return err
	}
	if err := txn(consul.MaxOps); err != nil {
		t.Fatalf("Consul refused MaxOps=%d operations: %v", consul.MaxOps, err)
	}
	if err := txn(consul.MaxOps + 1); err == nil || !strings.Contains(err.Error(), "too many operations") {
		t.Fatalf("Consul accepted MaxOps+1 operations (err %v): raise MaxOps to its cap", err)
	}
}

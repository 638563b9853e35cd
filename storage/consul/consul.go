package consul

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cofferhq/coffer/storage"
	"github.com/hashicorp/consul/api"
)

// MaxOps is the most operations Consul accepts in one KV transaction
// (maxTxnOps in Consul's agent/txn_endpoint.go: 128 since Consul 1.x, and in
// 1.16 and 1.20 alike). A Transaction with more is refused with ErrTooManyOps.
const MaxOps = 128

// DefaultPath is the KV path the keys live under when the block sets none.
const DefaultPath = "coffer/"

// Errors of this backend, besides storage's sentinels.
var (
	// ErrTooManyOps refuses a Transaction with more than MaxOps operations;
	// nothing of it is applied. The caller must commit fewer operations at once:
	// a logical write that needs more cannot be stored on Consul.
	ErrTooManyOps = fmt.Errorf("consul storage: transaction has more than %d operations, Consul's cap per transaction: "+
		"nothing was applied; commit fewer operations at once (one logical write must fit in one transaction)", MaxOps)
	// ErrUnreachable wraps a failure to reach the Consul agent at all (the
	// connection was refused or could not be made): nothing was applied.
	ErrUnreachable = errors.New("consul storage: the Consul agent cannot be reached")
	// ErrOutcomeUnknown wraps a write whose request reached Consul but whose
	// answer did not come back: it may or may not have been applied.
	ErrOutcomeUnknown = errors.New("consul storage: the write's outcome is unknown (the connection failed after the request was sent)")
)

// Options configures the backend, with the keys of Vault's storage "consul"
// block. Empty fields fall back to the CONSUL_* environment of
// github.com/hashicorp/consul/api (CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN,
// CONSUL_HTTP_SSL, CONSUL_CACERT, ...), then to its defaults: as in Vault, a
// key of the block wins over the environment.
type Options struct {
	// Address of the Consul agent, host:port (or a URL, or unix:///path).
	Address string
	// Scheme is http or https.
	Scheme string
	// Path is the KV prefix every key lives under; DefaultPath when empty. A
	// missing trailing "/" is added, a leading one removed.
	Path string
	// Token is the Consul ACL token: it needs key:write on Path.
	Token string
	// TLSCAFile verifies the agent's certificate; TLSCertFile and TLSKeyFile
	// are a client certificate.
	TLSCAFile   string
	TLSCertFile string
	TLSKeyFile  string
	// HAEnabled makes the nodes sharing Path elect an active node through a
	// Consul lock (ha.go); only the lock's holder writes. True unless the
	// block says ha_enabled = "false", as in Vault.
	HAEnabled bool
	// SessionTTL, LockDelay and CheckInterval tune the lock (LockOptions).
	SessionTTL, LockDelay, CheckInterval time.Duration
}

// Keys are the storage block's keys this backend takes, besides path.
var Keys = []string{"address", "scheme", "token", "tls_ca_file", "tls_cert_file", "tls_key_file",
	"ha_enabled", "session_ttl", "lock_delay", "check_interval"}

// FromMap reads the storage block's options (config.Storage.Options) and its path.
func FromMap(path string, m map[string]string) (Options, error) {
	o := Options{Path: path, HAEnabled: true}
	var unknown []string
	var errs []error
	dur := func(k, v string, d *time.Duration) {
		x, err := time.ParseDuration(v)
		if err != nil || x < 0 {
			errs = append(errs, fmt.Errorf(`storage "consul": %s = %q: use a duration such as "15s"`, k, v))
			return
		}
		*d = x
	}
	for k, v := range m {
		switch k {
		case "ha_enabled":
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Errorf(`storage "consul": ha_enabled = %q: use "true" or "false"`, v))
			}
			o.HAEnabled = b
		case "session_ttl":
			dur(k, v, &o.SessionTTL)
		case "lock_delay":
			dur(k, v, &o.LockDelay)
		case "check_interval":
			dur(k, v, &o.CheckInterval)
		case "address":
			o.Address = v
		case "scheme":
			o.Scheme = v
		case "token":
			o.Token = v
		case "tls_ca_file":
			o.TLSCAFile = v
		case "tls_cert_file":
			o.TLSCertFile = v
		case "tls_key_file":
			o.TLSKeyFile = v
		default:
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return o, fmt.Errorf(`storage "consul": unknown key(s) %s: valid keys are path, %s`,
			strings.Join(unknown, ", "), strings.Join(Keys, ", "))
	}
	if len(errs) > 0 {
		return o, errors.Join(errs...)
	}
	return o, o.Validate()
}

// Validate reports a bad scheme, a path that is only "/", and half a client certificate.
func (o *Options) Validate() error {
	var errs []error
	if o.Scheme != "" && o.Scheme != "http" && o.Scheme != "https" {
		errs = append(errs, fmt.Errorf(`storage "consul": scheme %q: use http or https`, o.Scheme))
	}
	if o.Path != "" && strings.Trim(o.Path, "/") == "" {
		errs = append(errs, fmt.Errorf(`storage "consul": path %q holds no name: use a KV prefix such as "coffer/"`, o.Path))
	}
	if o.SessionTTL != 0 && o.SessionTTL < minSessionTTL {
		errs = append(errs, fmt.Errorf(`storage "consul": session_ttl %s is below Consul's minimum of 10s`, o.SessionTTL))
	}
	if (o.TLSCertFile == "") != (o.TLSKeyFile == "") {
		errs = append(errs, errors.New(`storage "consul": tls_cert_file and tls_key_file go together: set both, or neither`))
	}
	return errors.Join(errs...)
}

// Backend is a storage.Transactional on Consul's KV store.
type Backend struct {
	transport *http.Transport
	kv        *api.KV
	txn       *api.Txn
	session   *api.Session
	agent     *api.Agent
	path      string // the encoded keys' prefix, ends with "/"
	addr      string // for errors: scheme://address
	closed    atomic.Bool
	opts      Options
	// ha: writes need the lock; fence is the session holding it (nil: none).
	ha    bool
	fence atomic.Pointer[fence]
}

var _ storage.Transactional = (*Backend)(nil)

// Open makes a client for the agent. It does not contact Consul: the first
// operation does, and fails with ErrUnreachable when the agent is down.
func Open(opts Options) (*Backend, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	cfg := api.DefaultConfig()
	if opts.Address != "" {
		cfg.Address = opts.Address
	}
	if opts.Scheme != "" {
		cfg.Scheme = opts.Scheme
	}
	if opts.Token != "" {
		cfg.Token = opts.Token
		cfg.TokenFile = ""
	}
	if opts.TLSCAFile != "" {
		cfg.TLSConfig.CAFile = opts.TLSCAFile
	}
	if opts.TLSCertFile != "" {
		cfg.TLSConfig.CertFile, cfg.TLSConfig.KeyFile = opts.TLSCertFile, opts.TLSKeyFile
	}
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("open consul storage at %s: %w (check storage \"consul\" address, scheme and tls_* files)", cfg.Address, err)
	}
	path := strings.TrimLeft(opts.Path, "/")
	if path == "" {
		path = DefaultPath
	}
	if !strings.HasSuffix(path, "/") {
		path += "/"
	}
	addr := cfg.Address
	if !strings.Contains(addr, "://") {
		addr = cfg.Scheme + "://" + addr
	}
	return &Backend{transport: cfg.Transport, kv: client.KV(), txn: client.Txn(), session: client.Session(), agent: client.Agent(),
		path: path, addr: addr, opts: opts, ha: opts.HAEnabled}, nil
}

// Options returns the options the backend was opened with.
func (b *Backend) Options() Options { return b.opts }

// Path is the KV prefix the keys live under, ending with "/".
func (b *Backend) Path() string { return b.path }

// Get reads one key.
func (b *Backend) Get(ctx context.Context, key string) (*storage.Entry, error) {
	if err := storage.ValidateKey(key); err != nil {
		return nil, err
	}
	if b.closed.Load() {
		return nil, storage.ErrClosed
	}
	pair, _, err := b.kv.Get(b.path+encodeKey(key), b.query(ctx))
	if err != nil {
		return nil, b.wrap(ctx, "get", err, false)
	}
	if pair == nil {
		return nil, nil
	}
	v := make([]byte, len(pair.Value))
	copy(v, pair.Value)
	return &storage.Entry{Key: key, Value: v}, nil
}

// Put writes one entry in its own transaction.
func (b *Backend) Put(ctx context.Context, entry *storage.Entry) error {
	return b.Transaction(ctx, []*storage.TxnOp{{Operation: storage.PutOperation, Entry: entry}})
}

// Delete removes one key in its own transaction.
func (b *Backend) Delete(ctx context.Context, key string) error {
	return b.Transaction(ctx, []*storage.TxnOp{{Operation: storage.DeleteOperation, Entry: &storage.Entry{Key: key}}})
}

// List returns the one-level names under prefix from one listing of Consul
// keys with "/" as separator (a folder comes back once, as "name/").
func (b *Backend) List(ctx context.Context, prefix string) ([]string, error) {
	if b.closed.Load() {
		return nil, storage.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	raw, _, err := b.kv.Keys(b.path+encodeKey(prefix), "/", b.query(ctx))
	if err != nil {
		return nil, b.wrap(ctx, "list", err, false)
	}
	keys := make([]string, 0, len(raw))
	for _, k := range raw {
		if !strings.HasPrefix(k, b.path) || strings.HasPrefix(k[len(b.path):], ".") {
			continue // outside the path, or the HA lock's folder
		}
		d, err := decodeKey(k[len(b.path):])
		if err != nil {
			return nil, fmt.Errorf("consul list %q: %w", prefix, err)
		}
		keys = append(keys, d)
	}
	sort.Strings(keys)
	return storage.ListNames(prefix, keys), nil
}

// Transaction applies ops as one Consul KV transaction: all or nothing. More
// than MaxOps operations are refused with ErrTooManyOps, never split.
func (b *Backend) Transaction(ctx context.Context, ops []*storage.TxnOp) error {
	if err := storage.ValidateOps(ops); err != nil {
		return err
	}
	if len(ops) > b.MaxTransactionOps() {
		return fmt.Errorf("%w (this one has %d)", ErrTooManyOps, len(ops))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.closed.Load() {
		return storage.ErrClosed
	}
	if len(ops) == 0 {
		return nil
	}
	sid, err := b.holding()
	if err != nil {
		return err
	}
	tops := make(api.TxnOps, 0, len(ops)+1)
	if sid != "" {
		// Inside Consul, atomically with the writes: this node still holds
		// the lock. A node that lost it, however late it notices, writes nothing.
		tops = append(tops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVCheckSession, Key: b.LockKey(), Session: sid}})
	}
	for _, op := range ops {
		kv := &api.KVTxnOp{Key: b.path + encodeKey(op.Entry.Key)}
		switch op.Operation {
		case storage.PutOperation:
			kv.Verb = api.KVSet
			// The request is encoded before Txn returns, so the caller's
			// slice is never kept.
			kv.Value = op.Entry.Value
		case storage.DeleteOperation:
			kv.Verb = api.KVDelete
		}
		tops = append(tops, &api.TxnOp{KV: kv})
	}
	ok, resp, _, err := b.txn.Txn(tops, b.query(ctx))
	if err != nil {
		return b.wrap(ctx, "transaction", err, true)
	}
	if !ok {
		var msgs []string
		if resp != nil {
			for _, e := range resp.Errors {
				if sid != "" && e.OpIndex == 0 {
					return fmt.Errorf("consul transaction of %d operations: %w (%s): %w; nothing applied, another node may be active",
						len(ops), ErrLockLost, e.What, storage.ErrNotActive)
				}
				msgs = append(msgs, fmt.Sprintf("operation %d: %s", e.OpIndex, e.What))
			}
		}
		return fmt.Errorf("consul transaction of %d operations rolled back by Consul, nothing applied: %s",
			len(ops), strings.Join(msgs, "; "))
	}
	return nil
}

// Close releases idle connections; later calls fail with storage.ErrClosed.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	if b.transport != nil {
		b.transport.CloseIdleConnections()
	}
	return nil
}

func (b *Backend) query(ctx context.Context) *api.QueryOptions {
	return (&api.QueryOptions{}).WithContext(ctx)
}

// wrap turns a failed request into an error that says what to check.
func (b *Backend) wrap(ctx context.Context, op string, err error, write bool) error {
	if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
		return ctxErr
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return fmt.Errorf("consul %s: %w at %s: %v (check that the Consul agent is running and that storage \"consul\" "+
			"address and scheme, or CONSUL_HTTP_ADDR, point at it; nothing was applied)", op, ErrUnreachable, b.addr, err)
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		if write {
			return fmt.Errorf("consul %s: %w at %s: %v (check the Consul agent and the network to it, then "+
				"read the keys back)", op, ErrOutcomeUnknown, b.addr, err)
		}
		return fmt.Errorf("consul %s at %s: %w (check the Consul agent and the network to it)", op, b.addr, err)
	}
	var se api.StatusError
	msg := err.Error()
	switch {
	case errors.As(err, &se) && se.Code == http.StatusForbidden, strings.Contains(msg, "Permission denied"),
		strings.Contains(msg, "ACL not found"):
		return fmt.Errorf("consul %s at %s: %w (the Consul ACL token, storage \"consul\" token or CONSUL_HTTP_TOKEN, "+
			"needs key:write on %q)", op, b.addr, err, b.path)
	case strings.Contains(msg, "too large"), strings.Contains(msg, "exceeds"):
		return fmt.Errorf("consul %s at %s: %w (a value or transaction over the agent's limits.kv_max_value_size "+
			"or limits.txn_max_req_len, 512 KiB by default: raise them on every Consul server; nothing was applied)",
			op, b.addr, err)
	}
	return fmt.Errorf("consul %s at %s: %w", op, b.addr, err)
}

// MaxTransactionOps is Consul's cap (storage.OpLimiter), less the operation
// that checks the HA lock when HA is on.
func (b *Backend) MaxTransactionOps() int {
	if b.ha {
		return MaxOps - 1
	}
	return MaxOps
}

package seal_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/barrier"
	"github.com/cofferhq/coffer/barrier/seal"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/bolt"
	"github.com/cofferhq/coffer/storage/inmem"
)

func TestValidateConfig(t *testing.T) {
	cases := []struct {
		cfg     seal.Config
		wantErr string // substring; "" means valid
		want    seal.Config
	}{
		{cfg: seal.Config{Type: "shamir", SecretShares: 1, SecretThreshold: 1}},
		{cfg: seal.Config{Type: "shamir", SecretShares: 5, SecretThreshold: 3}},
		{cfg: seal.Config{Type: "shamir", SecretShares: 255, SecretThreshold: 255}},
		{cfg: seal.Config{Type: "shamir", SecretShares: 2, SecretThreshold: 2}},
		{cfg: seal.Config{Type: "shamir", SecretShares: 0, SecretThreshold: 0}, wantErr: "secret_shares must be at least 1"},
		{cfg: seal.Config{Type: "shamir", SecretShares: 256, SecretThreshold: 3}, wantErr: "at most 255"},
		{cfg: seal.Config{Type: "shamir", SecretShares: 5, SecretThreshold: 0}, wantErr: "secret_threshold must be at least 1"},
		{cfg: seal.Config{Type: "shamir", SecretShares: 3, SecretThreshold: 4}, wantErr: "cannot be larger"},
		{cfg: seal.Config{Type: "shamir", SecretShares: 5, SecretThreshold: 1}, wantErr: "greater than 1"},
		{cfg: seal.Config{Type: "shamir", SecretShares: 5, SecretThreshold: 3, RecoveryShares: 5}, wantErr: "recovery_shares not applicable"},
		{cfg: seal.Config{Type: "static"}, want: seal.Config{Type: "static", SecretShares: 1, SecretThreshold: 1, RecoveryShares: 5, RecoveryThreshold: 3}},
		{cfg: seal.Config{Type: "static", SecretShares: 1, SecretThreshold: 1, RecoveryShares: 1, RecoveryThreshold: 1}},
		{cfg: seal.Config{Type: "static", RecoveryShares: 7, RecoveryThreshold: 4}, want: seal.Config{Type: "static", SecretShares: 1, SecretThreshold: 1, RecoveryShares: 7, RecoveryThreshold: 4}},
		{cfg: seal.Config{Type: "static", SecretShares: 5, SecretThreshold: 3}, wantErr: "secret_shares,secret_threshold not applicable"},
		{cfg: seal.Config{Type: "static", RecoveryShares: 4, RecoveryThreshold: 1}, wantErr: "recovery_threshold must be greater than 1"},
		{cfg: seal.Config{Type: "static", RecoveryShares: 3}, wantErr: "recovery_threshold must be at least 1"},
		{cfg: seal.Config{Type: "awskms"}, wantErr: "unknown seal type"},
		{cfg: seal.Config{}, wantErr: "seal type is empty"},
	}
	for _, c := range cases {
		got := c.cfg
		err := seal.ValidateConfig(&got)
		if c.wantErr == "" {
			if err != nil {
				t.Errorf("%+v: unexpected error %v", c.cfg, err)
				continue
			}
			want := c.want
			if want == (seal.Config{}) {
				want = c.cfg
			}
			if got != want {
				t.Errorf("%+v: filled to %+v, want %+v", c.cfg, got, want)
			}
			continue
		}
		var ce *seal.ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("%+v: err = %v, want a *ConfigError containing %q", c.cfg, err, c.wantErr)
		}
	}
}

func shamirInit(t *testing.T, b storage.Backend, n, k int) ([]byte, [][]byte) {
	t.Helper()
	s := seal.NewShamir()
	root, shares, err := s.Init(context.Background(), b, seal.Config{Type: seal.TypeShamir, SecretShares: n, SecretThreshold: k})
	if err != nil {
		t.Fatalf("Init %d/%d: %v", k, n, err)
	}
	if len(root) != seal.KeySize || len(shares) != n {
		t.Fatalf("Init %d/%d: root %d bytes, %d shares", k, n, len(root), len(shares))
	}
	return root, shares
}

func TestShamirRoundTrip(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct{ n, k int }{{1, 1}, {2, 2}, {5, 3}, {10, 10}, {255, 2}} {
		b := inmem.New()
		s := seal.NewShamir()
		if cfg, err := s.Config(ctx, b); err != nil || cfg != nil {
			t.Fatalf("Config before init = %v, %v", cfg, err)
		}
		root, shares := shamirInit(t, b, c.n, c.k)
		cfg, err := s.Config(ctx, b)
		if err != nil || *cfg != (seal.Config{Type: "shamir", SecretShares: c.n, SecretThreshold: c.k}) {
			t.Fatalf("Config = %+v, %v", cfg, err)
		}
		if c.n == 1 && len(shares[0]) != seal.KeySize {
			t.Fatalf("single share is %d bytes, want the %d-byte key itself", len(shares[0]), seal.KeySize)
		}
		// Any threshold-sized subset opens, and so does the full set.
		for _, subset := range [][][]byte{shares[:c.k], shares[c.n-c.k:], shares} {
			got, err := s.RootKeyFromShares(ctx, b, subset)
			if err != nil {
				t.Fatalf("%d/%d: RootKeyFromShares: %v", c.k, c.n, err)
			}
			if !bytes.Equal(got, root) {
				t.Fatalf("%d/%d: combined root key differs", c.k, c.n)
			}
		}
		if err := s.VerifyShares(ctx, b, shares[:c.k]); err != nil {
			t.Fatalf("VerifyShares: %v", err)
		}
		if _, err := s.AutoUnseal(ctx, b); !errors.Is(err, seal.ErrManualUnsealRequired) {
			t.Fatalf("AutoUnseal: %v", err)
		}
	}
}

func TestShamirWrongShares(t *testing.T) {
	ctx := context.Background()
	b := inmem.New()
	s := seal.NewShamir()
	_, shares := shamirInit(t, b, 5, 3)
	_, foreign := shamirInit(t, inmem.New(), 5, 3)

	altered := append([]byte(nil), shares[0]...)
	altered[3] ^= 0xff
	cases := map[string]struct {
		shares [][]byte
		want   error
	}{
		"another cluster's shares": {foreign[:3], seal.ErrInvalidShares},
		"mixed clusters":           {[][]byte{shares[0], shares[1], foreign[2]}, seal.ErrInvalidShares},
		"altered share":            {[][]byte{altered, shares[1], shares[2]}, seal.ErrInvalidShares},
		"too few":                  {shares[:2], seal.ErrTooFewShares},
		"none":                     {nil, seal.ErrTooFewShares},
		"duplicate":                {[][]byte{shares[0], shares[1], shares[0]}, seal.ErrInvalidShares},
		"short share":              {[][]byte{shares[0][:10], shares[1], shares[2]}, seal.ErrInvalidShares},
		"empty share":              {[][]byte{{}, shares[1], shares[2]}, seal.ErrInvalidShares},
		"same x coordinate": {[][]byte{shares[0], shares[1], append(append([]byte(nil), shares[2][:32]...), shares[0][32])},
			seal.ErrInvalidShares},
	}
	for name, c := range cases {
		root, err := s.RootKeyFromShares(ctx, b, c.shares)
		if root != nil || !errors.Is(err, c.want) {
			t.Errorf("%s: root=%v err=%v, want %v", name, root != nil, err, c.want)
		}
		if err := s.VerifyShares(ctx, b, c.shares); !errors.Is(err, c.want) {
			t.Errorf("%s: VerifyShares err=%v, want %v", name, err, c.want)
		}
	}
	if !strings.Contains(seal.ErrInvalidShares.Error(), "this cluster's init") {
		t.Fatalf("ErrInvalidShares does not say what to do: %v", seal.ErrInvalidShares)
	}

	// Single share: a wrong 32-byte key.
	b1 := inmem.New()
	shamirInit(t, b1, 1, 1)
	wrong := bytes.Repeat([]byte{7}, seal.KeySize)
	if _, err := s.RootKeyFromShares(ctx, b1, [][]byte{wrong}); !errors.Is(err, seal.ErrInvalidShares) {
		t.Fatalf("wrong single key: %v", err)
	}
}

func TestShamirUninitializedAndTampered(t *testing.T) {
	ctx := context.Background()
	s := seal.NewShamir()
	if _, err := s.RootKeyFromShares(ctx, inmem.New(), [][]byte{make([]byte, 32)}); !errors.Is(err, seal.ErrNotInitialized) {
		t.Fatalf("RootKeyFromShares before init: %v", err)
	}
	b := inmem.New()
	_, shares := shamirInit(t, b, 3, 2)
	good, _ := b.Get(ctx, seal.RootKeyPath)
	for i := range good.Value {
		bad := append([]byte(nil), good.Value...)
		bad[i] ^= 1
		_ = b.Put(ctx, &storage.Entry{Key: seal.RootKeyPath, Value: bad})
		if root, err := s.RootKeyFromShares(ctx, b, shares[:2]); err == nil || root != nil {
			t.Fatalf("root key blob with byte %d flipped still opened", i)
		}
	}
	_ = b.Put(ctx, &storage.Entry{Key: seal.RootKeyPath, Value: good.Value[:10]})
	if _, err := s.RootKeyFromShares(ctx, b, shares[:2]); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("truncated root key blob: %v", err)
	}
	_ = b.Delete(ctx, seal.RootKeyPath)
	if _, err := s.RootKeyFromShares(ctx, b, shares[:2]); !errors.Is(err, seal.ErrNotInitialized) {
		t.Fatalf("missing root key blob: %v", err)
	}
	_ = b.Put(ctx, &storage.Entry{Key: seal.ConfigPath, Value: []byte{9, '{', '}'}})
	if _, err := s.Config(ctx, b); err == nil || !strings.Contains(err.Error(), "version 9") {
		t.Fatalf("config with version 9: %v", err)
	}
}

func TestInitRefusesInitializedBarrier(t *testing.T) {
	ctx := context.Background()
	b := inmem.New()
	root, _ := shamirInit(t, b, 1, 1)
	if err := barrier.New(b).Initialize(ctx, root); err != nil {
		t.Fatal(err)
	}
	before, _ := b.Get(ctx, seal.RootKeyPath)
	for _, s := range []seal.Seal{seal.NewShamir(), newStatic(t, writeKey(t, "hex", key32(1)))} {
		cfg := seal.Config{Type: s.Type()}
		if s.Type() == seal.TypeShamir {
			cfg.SecretShares, cfg.SecretThreshold = 1, 1
		}
		if _, _, err := s.Init(ctx, b, cfg); !errors.Is(err, seal.ErrAlreadyInitialized) {
			t.Fatalf("%s Init over a keyring: %v", s.Type(), err)
		}
	}
	after, _ := b.Get(ctx, seal.RootKeyPath)
	if !bytes.Equal(before.Value, after.Value) {
		t.Fatal("a refused Init replaced the root key")
	}
}

func TestInitInvalidConfig(t *testing.T) {
	ctx := context.Background()
	b := inmem.New()
	_, _, err := seal.NewShamir().Init(ctx, b, seal.Config{Type: "shamir", SecretShares: 3, SecretThreshold: 1})
	var ce *seal.ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("Init 1-of-3: %v, want *ConfigError", err)
	}
	_, _, err = seal.NewShamir().Init(ctx, b, seal.Config{Type: "static"})
	if !errors.As(err, &ce) {
		t.Fatalf("shamir Init with type static: %v, want *ConfigError", err)
	}
	if e, _ := b.Get(ctx, seal.ConfigPath); e != nil {
		t.Fatal("a refused Init stored a configuration")
	}
}

// TestShamirWithBarrierOnBolt runs core's sequence on a bolt file across a
// restart: init the seal, initialize the barrier, store data, reopen, combine
// shares, unseal, read.
func TestShamirWithBarrierOnBolt(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "coffer.db")
	raw, err := bolt.Open(bolt.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	root, shares := shamirInit(t, raw, 5, 3)
	br := barrier.New(raw)
	if err := br.Initialize(ctx, root); err != nil {
		t.Fatal(err)
	}
	if err := br.Unseal(ctx, root); err != nil {
		t.Fatal(err)
	}
	if err := br.Put(ctx, &storage.Entry{Key: "secret/a", Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}

	raw2, err := bolt.Open(bolt.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer raw2.Close()
	s := seal.NewShamir()
	got, err := s.RootKeyFromShares(ctx, raw2, [][]byte{shares[4], shares[1], shares[2]})
	if err != nil {
		t.Fatal(err)
	}
	br2 := barrier.New(raw2)
	if err := br2.Unseal(ctx, got); err != nil {
		t.Fatal(err)
	}
	e, err := br2.Get(ctx, "secret/a")
	if err != nil || e == nil || string(e.Value) != "v" {
		t.Fatalf("Get after restart = %v, %v", e, err)
	}
	if _, err := newStatic(t, writeKey(t, "hex", key32(3))).Config(ctx, raw2); !errors.Is(err, seal.ErrTypeMismatch) {
		t.Fatalf("static seal on shamir storage: %v, want ErrTypeMismatch", err)
	}
}

func key32(seed byte) []byte {
	k := make([]byte, seal.KeySize)
	for i := range k {
		k[i] = seed + byte(i)*13
	}
	return k
}

// writeKey writes key to a file in the given encoding and returns its path.
func writeKey(t *testing.T, encoding string, key []byte) string {
	t.Helper()
	var data []byte
	switch encoding {
	case "raw":
		data = key
	case "hex":
		data = []byte(hex.EncodeToString(key))
	case "hex-newline":
		data = []byte("  " + hex.EncodeToString(key) + "\n")
	case "HEX":
		data = []byte(strings.ToUpper(hex.EncodeToString(key)))
	case "base64":
		data = []byte(base64.StdEncoding.EncodeToString(key) + "\n")
	case "base64-raw-url":
		data = []byte(base64.RawURLEncoding.EncodeToString(key))
	default:
		t.Fatalf("unknown encoding %s", encoding)
	}
	p := filepath.Join(t.TempDir(), "seal.key")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func newStatic(t *testing.T, path string) *seal.Static {
	t.Helper()
	s, err := seal.NewStatic(path)
	if err != nil {
		t.Fatalf("NewStatic: %v", err)
	}
	return s
}

func TestStaticKeyFileEncodings(t *testing.T) {
	ctx := context.Background()
	key := key32(42)
	// A raw key holding whitespace bytes at its ends must be taken as is.
	key[0], key[31] = '\n', ' '
	b := inmem.New()
	root, _, err := newStatic(t, writeKey(t, "raw", key)).Init(ctx, b, seal.Config{Type: seal.TypeStatic})
	if err != nil {
		t.Fatal(err)
	}
	// Every encoding of the same key opens what the raw file sealed.
	for _, enc := range []string{"raw", "hex", "hex-newline", "HEX", "base64", "base64-raw-url"} {
		got, err := newStatic(t, writeKey(t, enc, key)).AutoUnseal(ctx, b)
		if err != nil {
			t.Fatalf("%s: AutoUnseal: %v", enc, err)
		}
		if !bytes.Equal(got, root) {
			t.Fatalf("%s: root key differs", enc)
		}
	}
}

func TestStaticKeyFileErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope.key")
	if _, err := seal.NewStatic(missing); err == nil || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing file: %v", err)
	}
	for name, data := range map[string][]byte{
		"empty":         {},
		"31 raw bytes":  key32(1)[:31],
		"33 raw bytes":  append(key32(1), 1),
		"short hex":     []byte(hex.EncodeToString(key32(1)[:16])),
		"bad hex":       []byte(strings.Repeat("zz", 32)),
		"base64 of 16":  []byte(base64.StdEncoding.EncodeToString(key32(1)[:16])),
		"base64 of 48":  []byte(base64.StdEncoding.EncodeToString(append(key32(1), key32(2)[:16]...))),
		"text sentence": []byte("this is not a key at all, sorry!!\n"),
		"32-char text":  []byte("correct horse battery staple 123"),
		"base64 of 24":  []byte(base64.StdEncoding.EncodeToString(key32(1)[:24])),
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := seal.NewStatic(p)
		if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "32") {
			t.Errorf("%s: err = %v, want an error naming the file and the size", name, err)
		}
	}
}

func TestStaticSeal(t *testing.T) {
	ctx := context.Background()
	keyFile := writeKey(t, "hex", key32(5))
	s := newStatic(t, keyFile)
	if !s.RecoveryKeySupported() || s.Type() != "static" {
		t.Fatal("static seal must report recovery keys and type static")
	}
	raw := inmem.New()
	if _, err := s.AutoUnseal(ctx, raw); !errors.Is(err, seal.ErrNotInitialized) {
		t.Fatalf("AutoUnseal before init: %v", err)
	}
	root, recovery, err := s.Init(ctx, raw, seal.Config{Type: seal.TypeStatic})
	if err != nil {
		t.Fatal(err)
	}
	if len(recovery) != seal.DefaultRecoveryShares {
		t.Fatalf("%d recovery shares, want the default %d", len(recovery), seal.DefaultRecoveryShares)
	}
	cfg, err := s.Config(ctx, raw)
	if err != nil || *cfg != (seal.Config{Type: "static", SecretShares: 1, SecretThreshold: 1, RecoveryShares: 5, RecoveryThreshold: 3}) {
		t.Fatalf("Config = %+v, %v", cfg, err)
	}
	// Nothing stored holds the root key or the recovery key in the clear.
	for _, k := range []string{seal.RootKeyPath, seal.RecoveryKeyPath, seal.ConfigPath} {
		e, _ := raw.Get(ctx, k)
		if e == nil || bytes.Contains(e.Value, root) {
			t.Fatalf("%s missing or holds the root key", k)
		}
	}

	got, err := s.AutoUnseal(ctx, raw)
	if err != nil || !bytes.Equal(got, root) {
		t.Fatalf("AutoUnseal = %v", err)
	}
	if _, err := s.RootKeyFromShares(ctx, raw, recovery[:3]); !errors.Is(err, seal.ErrAutoUnsealOnly) {
		t.Fatalf("RootKeyFromShares with recovery keys: %v", err)
	}

	// Recovery shares: the right ones verify, wrong ones do not.
	if err := s.VerifyShares(ctx, raw, [][]byte{recovery[4], recovery[0], recovery[2]}); err != nil {
		t.Fatalf("VerifyShares: %v", err)
	}
	_, foreign, err := newStatic(t, keyFile).Init(ctx, inmem.New(), seal.Config{Type: seal.TypeStatic})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.VerifyShares(ctx, raw, foreign[:3]); !errors.Is(err, seal.ErrInvalidRecoveryShares) {
		t.Fatalf("foreign recovery shares: %v", err)
	}
	if err := s.VerifyShares(ctx, raw, recovery[:2]); !errors.Is(err, seal.ErrTooFewShares) {
		t.Fatalf("two recovery shares: %v", err)
	}
	if err := s.VerifyShares(ctx, raw, [][]byte{recovery[0], recovery[0], recovery[1]}); !errors.Is(err, seal.ErrInvalidRecoveryShares) {
		t.Fatalf("duplicate recovery shares: %v", err)
	}

	// Another key file opens nothing, and the error names the file.
	wrongFile := writeKey(t, "hex", key32(6))
	wrong := newStatic(t, wrongFile)
	if root, err := wrong.AutoUnseal(ctx, raw); root != nil || !errors.Is(err, seal.ErrWrongSealKey) || !strings.Contains(err.Error(), wrongFile) {
		t.Fatalf("wrong key file: root=%v err=%v", root != nil, err)
	}
	if err := wrong.VerifyShares(ctx, raw, recovery[:3]); !errors.Is(err, seal.ErrWrongSealKey) {
		t.Fatalf("wrong key file VerifyShares: %v", err)
	}

	// Storage initialized by the static seal is refused by the shamir seal.
	if _, err := seal.NewShamir().Config(ctx, raw); !errors.Is(err, seal.ErrTypeMismatch) {
		t.Fatalf("shamir seal on static storage: %v", err)
	}
}

func TestStaticSingleRecoveryShare(t *testing.T) {
	ctx := context.Background()
	s := newStatic(t, writeKey(t, "base64", key32(9)))
	raw := inmem.New()
	_, recovery, err := s.Init(ctx, raw, seal.Config{Type: seal.TypeStatic, SecretShares: 1, SecretThreshold: 1, RecoveryShares: 1, RecoveryThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(recovery) != 1 || len(recovery[0]) != seal.KeySize {
		t.Fatalf("single recovery share: %d shares", len(recovery))
	}
	if err := s.VerifyShares(ctx, raw, recovery); err != nil {
		t.Fatal(err)
	}
	if err := s.VerifyShares(ctx, raw, [][]byte{key32(1)}); !errors.Is(err, seal.ErrInvalidRecoveryShares) {
		t.Fatalf("wrong single recovery key: %v", err)
	}
}

// plainBackend hides the Transactional capability of a real backend.
type plainBackend struct{ storage.Backend }

func TestInitOnNonTransactionalBackend(t *testing.T) {
	ctx := context.Background()
	raw := plainBackend{inmem.New()}
	s := seal.NewShamir()
	root, shares := shamirInit(t, raw, 3, 2)
	got, err := s.RootKeyFromShares(ctx, raw, shares[1:])
	if err != nil || !bytes.Equal(got, root) {
		t.Fatalf("RootKeyFromShares: %v", err)
	}
}

func TestStaticWrapIsBoundToKeyAndPurpose(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, key byte) *seal.Static {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, bytes.Repeat([]byte{key}, seal.KeySize), 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := seal.NewStatic(p)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := write("a", 0xa1), write("b", 0xb2)
	blob, err := a.Wrap("activation", []byte("private"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(blob, []byte("private")) {
		t.Fatal("the wrapped blob holds the plaintext")
	}
	if pt, err := a.Unwrap("activation", blob); err != nil || string(pt) != "private" {
		t.Fatalf("Unwrap = %q, %v", pt, err)
	}
	if _, err := a.Unwrap("other", blob); err == nil {
		t.Fatal("a blob unwrapped for another purpose")
	}
	if _, err := b.Unwrap("activation", blob); err == nil || !strings.Contains(err.Error(), "key file changed") {
		t.Fatalf("another key: %v", err)
	}
	blob[len(blob)-1] ^= 1
	if _, err := a.Unwrap("activation", blob); err == nil {
		t.Fatal("an altered blob unwrapped")
	}
}

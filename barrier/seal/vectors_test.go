package seal_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cofferhq/coffer/barrier/seal"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/inmem"
)

// TestOldSealVectors opens seal storage written while Coffer split its keys
// with github.com/hashicorp/vault/shamir, with the shares handed out then:
// every threshold-sized subset of the unseal shares opens the root key, and
// every threshold-sized subset of the recovery shares passes VerifyShares.
func TestOldSealVectors(t *testing.T) {
	ctx := context.Background()
	data, err := os.ReadFile("testdata/seal_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Vectors []struct {
			Kind    string            `json:"kind"`
			Config  seal.Config       `json:"config"`
			KeyFile string            `json:"key_file"`
			Entries map[string]string `json:"entries"`
			RootKey string            `json:"root_key"`
			Shares  []string          `json:"shares"`
		}
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Vectors) == 0 {
		t.Fatal("no vectors")
	}
	unhex := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, v := range f.Vectors {
		b := inmem.New()
		for path, value := range v.Entries {
			if err := b.Put(ctx, &storage.Entry{Key: path, Value: unhex(value)}); err != nil {
				t.Fatal(err)
			}
		}
		root := unhex(v.RootKey)
		shares := make([][]byte, len(v.Shares))
		for i, s := range v.Shares {
			shares[i] = unhex(s)
		}
		var s seal.Seal
		threshold := v.Config.SecretThreshold
		switch v.Kind {
		case seal.TypeShamir:
			s = seal.NewShamir()
		case seal.TypeStatic:
			kf := filepath.Join(t.TempDir(), "seal.key")
			if err := os.WriteFile(kf, []byte(v.KeyFile), 0o600); err != nil {
				t.Fatal(err)
			}
			st, err := seal.NewStatic(kf)
			if err != nil {
				t.Fatal(err)
			}
			got, err := st.AutoUnseal(ctx, b)
			if err != nil || !bytes.Equal(got, root) {
				t.Fatalf("static AutoUnseal = %x, %v", got, err)
			}
			s, threshold = st, v.Config.RecoveryThreshold
		default:
			t.Fatalf("unknown kind %q", v.Kind)
		}
		cfg, err := s.Config(ctx, b)
		if err != nil || *cfg != v.Config {
			t.Fatalf("%s: Config = %+v, %v; want %+v", v.Kind, cfg, err, v.Config)
		}
		n := 0
		eachSubset(len(shares), threshold, func(idx []int) {
			n++
			sub := make([][]byte, len(idx))
			for i, j := range idx {
				sub[i] = shares[j]
			}
			if err := s.VerifyShares(ctx, b, sub); err != nil {
				t.Fatalf("%s %d/%d: VerifyShares%v: %v", v.Kind, threshold, len(shares), idx, err)
			}
			if v.Kind == seal.TypeShamir {
				got, err := s.RootKeyFromShares(ctx, b, sub)
				if err != nil || !bytes.Equal(got, root) {
					t.Fatalf("%d/%d: RootKeyFromShares%v = %x, %v", threshold, len(shares), idx, got, err)
				}
			}
		})
		if threshold > 1 {
			if err := s.VerifyShares(ctx, b, shares[:threshold-1]); !errors.Is(err, seal.ErrTooFewShares) {
				t.Fatalf("%s: %d shares: %v, want ErrTooFewShares", v.Kind, threshold-1, err)
			}
		}
		t.Logf("%s %d/%d: %d subsets open", v.Kind, threshold, len(shares), n)
	}
}

// eachSubset calls fn with every k-element subset of 0..n-1, in order.
func eachSubset(n, k int, fn func([]int)) {
	idx := make([]int, k)
	for i := range idx {
		idx[i] = i
	}
	for {
		fn(idx)
		i := k - 1
		for i >= 0 && idx[i] == n-k+i {
			i--
		}
		if i < 0 {
			return
		}
		idx[i]++
		for j := i + 1; j < k; j++ {
			idx[j] = idx[j-1] + 1
		}
	}
}

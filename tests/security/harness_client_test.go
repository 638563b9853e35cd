package security

// Clients of a server: vault/api without retries, tokens holding a policy,
// and the kv version 2 mount secret/ as the tests use it (a field v per key),
// read whole as a snapshot two clusters can be compared by.

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/hashicorp/vault/api"
)

// clientTimeout is a vault/api client's: longer than a forwarded write's
// (10 s on the secondary), so that the client sees what the server answers.
const clientTimeout = 60 * time.Second

// newClient returns a vault/api client of the plain-HTTP server at addr with
// token, without retries: a refused request fails at once and visibly.
func newClient(t testing.TB, addr, token string) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = "http://" + addr
	cfg.MaxRetries = 0
	cfg.Timeout = clientTimeout
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatalf("vault api client: %v", err)
	}
	c.SetToken(token) // overrides any VAULT_TOKEN in the environment
	return c
}

// tokenWithPolicy writes policy under name (as root) and returns a new
// token holding only it.
func (s *server) tokenWithPolicy(name, policy string) string {
	s.t.Helper()
	root := s.rootClient()
	if err := root.Sys().PutPolicy(name, policy); err != nil {
		s.t.Fatalf("write policy %s: %v", name, err)
	}
	sec, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{name}, NoDefaultPolicy: true})
	if err != nil {
		s.t.Fatalf("create a token with policy %s: %v", name, err)
	}
	return sec.Auth.ClientToken
}

// jsonString returns a JSON value as a string ("" for nil).
func jsonString(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

// kvPut writes {"v": value} to secret/<key> through c.
func kvPut(c *api.Client, key, value string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := c.KVv2("secret").Put(ctx, key, map[string]any{"v": value})
	return err
}

// mustKVPut is kvPut failing t.
func mustKVPut(t testing.TB, c *api.Client, key, value string) {
	t.Helper()
	if err := kvPut(c, key, value); err != nil {
		t.Fatalf("kv put secret/%s on %s: %v", key, c.Address(), err)
	}
}

// kvHas reports nil when secret/<key> has v = want on c's server.
func kvHas(c *api.Client, key, want string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.KVv2("secret").Get(ctx, key)
	if err != nil {
		return err
	}
	if got := jsonString(s.Data["v"]); got != want {
		return fmt.Errorf("secret/%s: v=%q, want %q", key, got, want)
	}
	return nil
}

// waitKV waits until secret/<key> has v = want on c's server.
func waitKV(t testing.TB, c *api.Client, key, want string) {
	t.Helper()
	testutil.Eventually(t, replTimeout, fmt.Sprintf("secret/%s = %q on %s", key, want, c.Address()), func() error {
		return kvHas(c, key, want)
	})
}

// kvSnapshot reads every key of the secret/ kv-v2 mount (one level) as
// "v=<value> version=<n>", and every ACL policy, as "policy <name>".
func kvSnapshot(c *api.Client) (map[string]string, error) {
	out := map[string]string{}
	l, err := c.Logical().List("secret/metadata")
	if err != nil {
		return nil, fmt.Errorf("list secret/metadata: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if l != nil {
		keys, _ := l.Data["keys"].([]any)
		for _, k := range keys {
			key := jsonString(k)
			s, err := c.KVv2("secret").Get(ctx, key)
			if err != nil {
				return nil, fmt.Errorf("read secret/%s: %w", key, err)
			}
			v := -1
			if s.VersionMetadata != nil {
				v = s.VersionMetadata.Version
			}
			out["secret/"+key] = fmt.Sprintf("v=%s version=%d", jsonString(s.Data["v"]), v)
		}
	}
	pols, err := c.Sys().ListPolicies()
	if err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	for _, p := range pols {
		out["policy "+p] = "present"
	}
	return out, nil
}

// snapshotDiff describes how got differs from want ("" when equal).
func snapshotDiff(want, got map[string]string) string {
	var d []string
	for k, w := range want {
		if g, ok := got[k]; !ok {
			d = append(d, fmt.Sprintf("%s: gone (was %q)", k, w))
		} else if g != w {
			d = append(d, fmt.Sprintf("%s: %q, was %q", k, g, w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			d = append(d, fmt.Sprintf("%s: new %q", k, g))
		}
	}
	sort.Strings(d)
	return strings.Join(d, "; ")
}

// sameData reads both clusters and returns the primary's snapshot when the
// secondary holds the same secret/ keys, values, versions and policies.
func sameData(P, S *api.Client) (map[string]string, error) {
	sp, err := kvSnapshot(P)
	if err != nil {
		return nil, fmt.Errorf("primary: %w", err)
	}
	ss, err := kvSnapshot(S)
	if err != nil {
		return nil, fmt.Errorf("secondary: %w", err)
	}
	if d := snapshotDiff(sp, ss); d != "" {
		return nil, fmt.Errorf("secondary differs from the primary: %s", d)
	}
	return sp, nil
}

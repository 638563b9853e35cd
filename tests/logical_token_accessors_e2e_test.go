package tests

import (
	"net/http"
	"slices"
	"testing"

	"github.com/hashicorp/vault/api"
)

// LIST auth/token/accessors: the accessors of the valid tokens, for a
// token with sudo on the path only (as Vault).
func TestTokenAccessorsList(t *testing.T) {
	t.Parallel()
	_, root := devServer(t)
	s, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	acc := s.Auth.Accessor
	list := func(c *api.Client) ([]string, error) {
		l, err := c.Logical().List("auth/token/accessors")
		if err != nil || l == nil {
			return nil, err
		}
		var keys []string
		for _, k := range l.Data["keys"].([]any) {
			keys = append(keys, k.(string))
		}
		return keys, nil
	}
	keys, err := list(root)
	if err != nil || !slices.Contains(keys, acc) {
		t.Fatalf("accessors %v, err %v: want %s among them", keys, err, acc)
	}
	_, err = list(withToken(t, root, s.Auth.ClientToken))
	refused(t, "listing accessors without sudo", err, http.StatusForbidden, "")
	if err := root.Auth().Token().RevokeAccessor(acc); err != nil {
		t.Fatal(err)
	}
	if keys, err = list(root); err != nil || slices.Contains(keys, acc) {
		t.Fatalf("accessors after the revocation %v, err %v: %s still listed", keys, err, acc)
	}
	if l, err := root.Auth().Token().LookupAccessor(acc); err == nil {
		t.Fatalf("lookup-accessor of a revoked token: %v", l)
	}
}

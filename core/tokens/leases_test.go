package tokens

import (
	"strings"
	"testing"

	"github.com/cofferhq/coffer/storage"
)

// Tidy removes the accessor records and parent links a lost token left,
// leaves alone a record it cannot read, and revokes expired tokens.
func TestTidyRemovesWhatPointsNowhere(t *testing.T) {
	h := newHarness(t, Options{})
	parent := h.child(h.root, "default")
	lost := h.child(parent.ID, "default")
	key, err := h.s.hash(h.ctx, lost.ID)
	if err != nil {
		t.Fatal(err)
	}
	// The token's record goes alone, as a crash between transactions of an
	// older release could leave it.
	if err := h.view.Delete(h.ctx, idPrefix+key); err != nil {
		t.Fatal(err)
	}
	unreadable := &storage.Entry{Key: accessorPrefix + "ffff", Value: []byte(`{"v":9,"token_key":"x"}`)}
	if err := h.view.Put(h.ctx, unreadable); err != nil {
		t.Fatal(err)
	}
	res, err := h.s.Tidy(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Accessors != 1 || res.ParentLinks != 1 {
		t.Fatalf("tidy removed %+v, want the lost token's accessor and parent link", res)
	}
	for _, k := range append(h.keys(accessorPrefix), h.keys(parentPrefix)...) {
		if strings.HasSuffix(k, key) {
			t.Fatalf("%s is still there", k)
		}
	}
	if e, _ := h.view.Get(h.ctx, unreadable.Key); e == nil {
		t.Fatal("tidy deleted an accessor record of a newer version it cannot read")
	}
	if h.lookup(parent.ID) == nil {
		t.Fatal("tidy revoked a valid token")
	}
}

package forwarder

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func TestIndexRoundTrip(t *testing.T) {
	key, err := IndexKey([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	want := IndexState{SetID: "set-1", Local: 17, Replicated: 9}
	h := EncodeIndex(key, want)
	raw, _ := base64.StdEncoding.DecodeString(h)
	if !strings.HasPrefix(string(raw), "v1:set-1:17:9:") {
		t.Fatalf("layout: %s", raw)
	}
	got, err := DecodeIndex(key, h)
	if err != nil || got != want {
		t.Fatalf("decode: %+v %v", got, err)
	}
}

func TestIndexRefused(t *testing.T) {
	key, _ := IndexKey([]byte("root-a"))
	other, _ := IndexKey([]byte("root-b"))
	good := EncodeIndex(key, IndexState{SetID: "s", Replicated: 5})
	raw, _ := base64.StdEncoding.DecodeString(good)
	tampered := base64.StdEncoding.EncodeToString([]byte(strings.Replace(string(raw), ":5:", ":6:", 1)))
	for name, tc := range map[string]struct {
		key  []byte
		h    string
		want error
	}{
		"not base64":    {key, "%%%", ErrIndexEncoding},
		"no mac":        {key, base64.StdEncoding.EncodeToString([]byte("v1")), ErrIndexNoMAC},
		"tampered":      {key, tampered, ErrIndexMAC},
		"other set key": {other, good, ErrIndexMAC},
		"bad layout":    {key, EncodeIndex(key, IndexState{SetID: "a:b"}), ErrIndexLayout},
	} {
		if _, err := DecodeIndex(tc.key, tc.h); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}

func TestRequiredIndex(t *testing.T) {
	key, _ := IndexKey([]byte("root"))
	hs := []string{
		EncodeIndex(key, IndexState{SetID: "s", Replicated: 5}),
		EncodeIndex(key, IndexState{SetID: "s", Replicated: 12}),
		EncodeIndex(key, IndexState{SetID: "other", Replicated: 99}),
	}
	if n, err := RequiredIndex(key, hs, "s"); err != nil || n != 12 {
		t.Fatalf("need %d %v, want 12", n, err)
	}
	if n, err := RequiredIndex(key, hs, "none"); err != nil || n != 0 {
		t.Fatalf("other set: %d %v", n, err)
	}
	if _, err := RequiredIndex(key, append(hs, "junk"), "s"); err == nil {
		t.Fatal("a bad header was ignored")
	}
	if _, err := IndexKey(nil); err == nil {
		t.Fatal("an index key from no root key")
	}
}

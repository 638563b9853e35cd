package drtoken

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/core/rootgen"
	"github.com/cofferhq/coffer/internal/testutil"
)

func TestZeroSetMintsValidTokens(t *testing.T) {
	var s Set
	tok, exp, err := s.Mint()
	if err != nil {
		t.Fatal(err)
	}
	body, ok := strings.CutPrefix(tok, Prefix)
	if !ok || len(tok) != Length || strings.Trim(body, rootgen.OTPAlphabet) != "" {
		t.Fatalf("token %q: want %q and %d base62 characters", tok, Prefix, Length-len(Prefix))
	}
	if d := time.Until(exp); d <= DefaultTTL-time.Minute || d > DefaultTTL {
		t.Fatalf("expires in %v, want about %v", d, DefaultTTL)
	}
	if !s.Valid(tok) || s.Len() != 1 {
		t.Fatal("a minted token is not valid")
	}
	other, _, err := s.Mint()
	if err != nil || other == tok {
		t.Fatalf("second mint: %q %v", other, err)
	}
	for _, bad := range []string{"", tok + "x", tok[:len(tok)-1], strings.ToUpper(tok), Prefix + strings.Repeat("A", Length-len(Prefix))} {
		if s.Valid(bad) {
			t.Errorf("Valid(%q) = true", bad)
		}
	}
}

func TestRevoke(t *testing.T) {
	var s Set
	a, _, _ := s.Mint()
	b, _, _ := s.Mint()
	if s.Revoke("not-a-token") || s.Revoke("") {
		t.Fatal("revoked a token that was never minted")
	}
	if !s.Revoke(a) {
		t.Fatal("Revoke of a live token reported false")
	}
	if s.Valid(a) || s.Revoke(a) {
		t.Fatal("a revoked token is still live")
	}
	if !s.Valid(b) {
		t.Fatal("revoking one token took another")
	}
	s.Clear()
	if s.Valid(b) || s.Len() != 0 {
		t.Fatal("Clear left a token")
	}
}

func TestExpiry(t *testing.T) {
	c := testutil.NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	s := Set{Now: c.Now, TTL: 10 * time.Minute}
	tok, exp, err := s.Mint()
	if err != nil || !exp.Equal(c.Now().Add(10*time.Minute)) {
		t.Fatalf("mint: %v %v", exp, err)
	}
	c.Advance(10*time.Minute - time.Nanosecond)
	late, _, _ := s.Mint()
	if !s.Valid(tok) {
		t.Fatal("invalid before its TTL")
	}
	c.Advance(time.Nanosecond)
	if s.Valid(tok) || s.Revoke(tok) {
		t.Fatal("valid at its TTL")
	}
	if !s.Valid(late) || s.Len() != 1 {
		t.Fatal("the expiry of one token took another")
	}
}

// The set never holds a token in clear: only its digest.
func TestNoTokenInClear(t *testing.T) {
	var s Set
	tok, _, _ := s.Mint()
	s.mu.Lock()
	dump := fmt.Sprintf("%#v %v", s.live, s.live)
	s.mu.Unlock()
	if strings.Contains(dump, tok) || strings.Contains(dump, tok[len(Prefix):]) {
		t.Fatalf("the set holds the token in clear: %s", dump)
	}
}

func TestMintWithoutRandomness(t *testing.T) {
	s := Set{Rand: bytes.NewReader(nil)}
	if _, _, err := s.Mint(); !errors.Is(err, io.EOF) {
		t.Fatalf("mint from an empty reader: %v", err)
	}
	if s.Len() != 0 {
		t.Fatal("a failed mint left an entry")
	}
}

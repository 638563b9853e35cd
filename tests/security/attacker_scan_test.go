package security

// Scanning the bus attacker's capture for secrets: every form a secret can
// take in a message (raw, hex, base64 and base64url at every alignment), in
// every part of a message, and inside base64 and deflate layers.

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
)

// attackerHit is one place a secret was found.
type attackerHit struct {
	Secret  string // the name the caller gave it
	Subject string
	Where   string // subject, reply, header <name>, data, and the layers decoded to get there
	Form    string // raw, hex, base64, base64url
}

func (h attackerHit) String() string {
	return fmt.Sprintf("%s in %s of a message on %s, as %s", h.Secret, h.Where, h.Subject, h.Form)
}

// attackerNeedle is one searchable form of a secret.
type attackerNeedle struct {
	secret, form string
	b            []byte
}

// attackerForms returns the forms of secret the scan looks for: itself, hex
// (both cases), and the base64 and base64url characters that depend on it
// alone at each of the three alignments it can have inside a longer encoded
// string (so a secret is found inside an encoding of a larger message too).
func attackerForms(name string, secret []byte) []attackerNeedle {
	out := []attackerNeedle{
		{name, "raw", secret},
		{name, "hex", []byte(hex.EncodeToString(secret))},
		{name, "hex", []byte(strings.ToUpper(hex.EncodeToString(secret)))},
	}
	for _, enc := range []struct {
		form string
		e    *base64.Encoding
	}{{"base64", base64.RawStdEncoding}, {"base64url", base64.RawURLEncoding}} {
		for k := range 3 {
			s := enc.e.EncodeToString(append(make([]byte, k), secret...))
			from, to := (8*k+5)/6, 8*(k+len(secret))/6
			if to-from >= 8 {
				out = append(out, attackerNeedle{name, enc.form, []byte(s[from:to])})
			}
		}
	}
	return out
}

// attackerBase64Run matches runs of base64 or base64url characters long
// enough to hold a secret.
var attackerBase64Run = regexp.MustCompile(`[A-Za-z0-9+/_-]{16,}={0,2}`)

// Find scans the capture for every secret (name -> bytes) in every form of
// attackerForms, in each message's subject, reply subject, headers and
// data, and in what the data decodes to: base64 runs, deflate, zlib, gzip
// (two layers deep). It returns every hit.
func (a *attacker) Find(secrets map[string][]byte) []attackerHit {
	var needles []attackerNeedle
	for name, s := range secrets {
		if len(s) < 6 {
			a.t.Fatalf("attacker: secret %s of %d bytes is too short to search for", name, len(s))
		}
		needles = append(needles, attackerForms(name, s)...)
	}
	var hits []attackerHit
	for _, m := range a.Messages() {
		add := func(where string, b []byte) {
			for _, n := range needles {
				if bytes.Contains(b, n.b) {
					hits = append(hits, attackerHit{Secret: n.secret, Subject: m.Subject, Where: where, Form: n.form})
				}
			}
		}
		add("subject", []byte(m.Subject))
		add("reply subject", []byte(m.Reply))
		for k, vs := range m.Header {
			for _, v := range vs {
				add("header "+k, []byte(v))
			}
		}
		attackerScanLayers(m.Data, "data", 2, add)
	}
	return hits
}

// attackerScanLayers passes b to add, then what b decodes to, down to depth
// layers.
func attackerScanLayers(b []byte, where string, depth int, add func(where string, b []byte)) {
	add(where, b)
	if depth == 0 || len(b) == 0 {
		return
	}
	for _, dec := range []struct {
		name string
		open func(io.Reader) (io.Reader, error)
	}{
		{"deflate", func(r io.Reader) (io.Reader, error) { return flate.NewReader(r), nil }},
		{"zlib", func(r io.Reader) (io.Reader, error) { return zlib.NewReader(r) }},
		{"gzip", func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) }},
	} {
		r, err := dec.open(bytes.NewReader(b))
		if err != nil {
			continue
		}
		out, err := io.ReadAll(io.LimitReader(r, 16<<20))
		if (err == nil || errors.Is(err, io.ErrUnexpectedEOF)) && len(out) > 0 {
			attackerScanLayers(out, where+" ("+dec.name+")", depth-1, add)
		}
	}
	for _, run := range attackerBase64Run.FindAll(b, -1) {
		s := strings.TrimRight(string(run), "=")
		for _, e := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
			if out, err := e.DecodeString(s); err == nil {
				attackerScanLayers(out, where+" (base64)", depth-1, add)
				break
			}
		}
	}
}

// requireNotFound fails t with every hit of secrets in the capture, one
// line per secret and subject.
func (a *attacker) requireNotFound(t *testing.T, what string, secrets map[string][]byte) {
	t.Helper()
	hits := a.Find(secrets)
	if len(hits) == 0 {
		return
	}
	type group struct{ secret, subject string }
	forms := map[group][]string{}
	var order []group
	for _, h := range hits {
		g := group{h.Secret, h.Subject}
		if _, ok := forms[g]; !ok {
			order = append(order, g)
		}
		if f := h.Form + " in " + h.Where; !attackerContains(forms[g], f) {
			forms[g] = append(forms[g], f)
		}
	}
	var lines []string
	for _, g := range order {
		lines = append(lines, fmt.Sprintf("  %s, on %s (%s)", g.secret, g.subject, strings.Join(forms[g], ", ")))
	}
	t.Errorf("%s: the attacker's capture (%d messages, seen with nothing but a NATS connection) holds secrets:\n%s",
		what, len(a.Messages()), strings.Join(lines, "\n"))
}

package rootgen

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

const testOTPLength = 28

var (
	otpA = strings.Repeat("a", testOTPLength)
	tok  = "hvs." + strings.Repeat("T", testOTPLength-4)
)

func share(b byte) string { return strings.Repeat(string([]byte{b}), 33) }

// op is one call on a Generation and what it must give.
type op struct {
	do    string // start, add, complete, cancel
	nonce string
	arg   string // the OTP (start), the share (add), the token (complete)
	err   error  // errors.Is; nil: success
	ready int    // add: how many shares it hands out
	// The state after the call.
	started  bool
	progress int
}

func TestGeneration(t *testing.T) {
	const required = 2
	cases := []struct {
		name string
		ops  []op
	}{
		{"a whole attempt", []op{
			{do: "start", nonce: "n1", arg: otpA, started: true},
			{do: "add", nonce: "n1", arg: share(1), started: true, progress: 1},
			{do: "add", nonce: "n1", arg: share(2), ready: 2, started: true},
			{do: "complete", nonce: "n1", arg: tok},
		}},
		{"nothing without an attempt", []op{
			{do: "add", nonce: "n1", arg: share(1), err: ErrNotStarted},
			{do: "complete", nonce: "n1", arg: tok, err: ErrNotStarted},
			{do: "cancel"},
		}},
		{"one attempt at a time: a second start changes nothing", []op{
			{do: "start", nonce: "n1", arg: otpA, started: true},
			{do: "add", nonce: "n1", arg: share(1), started: true, progress: 1},
			{do: "start", nonce: "n2", arg: otpA, err: ErrInProgress, started: true, progress: 1},
			{do: "add", nonce: "n2", arg: share(2), err: ErrNonceMismatch, started: true, progress: 1},
			{do: "add", nonce: "n1", arg: share(2), ready: 2, started: true},
		}},
		{"another attempt's nonce counts nothing", []op{
			{do: "start", nonce: "n1", arg: otpA, started: true},
			{do: "add", nonce: "n0", arg: share(1), err: ErrNonceMismatch, started: true},
			{do: "add", nonce: "", arg: share(1), err: ErrNonceMismatch, started: true},
			{do: "add", nonce: "n1", arg: share(1), started: true, progress: 1},
			{do: "complete", nonce: "n0", arg: tok, err: ErrNonceMismatch, started: true, progress: 1},
		}},
		{"a share counts once", []op{
			{do: "start", nonce: "n1", arg: otpA, started: true},
			{do: "add", nonce: "n1", arg: share(1), started: true, progress: 1},
			{do: "add", nonce: "n1", arg: share(1), err: ErrDuplicateShare, started: true, progress: 1},
		}},
		{"share sizes", []op{
			{do: "start", nonce: "n1", arg: otpA, started: true},
			{do: "add", nonce: "n1", arg: "", err: ErrShareSize, started: true},
			{do: "add", nonce: "n1", arg: strings.Repeat("x", MinShareSize-1), err: ErrShareSize, started: true},
			{do: "add", nonce: "n1", arg: strings.Repeat("x", MaxShareSize+1), err: ErrShareSize, started: true},
			{do: "add", nonce: "n1", arg: strings.Repeat("x", MinShareSize), started: true, progress: 1},
			{do: "add", nonce: "n1", arg: strings.Repeat("y", MaxShareSize), ready: 2, started: true},
		}},
		{"an OTP of the wrong length opens nothing", []op{
			{do: "start", nonce: "n1", arg: otpA[1:], err: ErrOTPLength},
			{do: "start", nonce: "n1", arg: otpA + "a", err: ErrOTPLength},
			{do: "start", nonce: "n1", arg: "", err: ErrOTPLength},
		}},
		{"the threshold hands the shares out and starts the count again", []op{
			{do: "start", nonce: "n1", arg: otpA, started: true},
			{do: "add", nonce: "n1", arg: share(1), started: true, progress: 1},
			{do: "add", nonce: "n1", arg: share(2), ready: 2, started: true},
			// The caller found them invalid: the same shares may come again.
			{do: "add", nonce: "n1", arg: share(1), started: true, progress: 1},
			{do: "add", nonce: "n1", arg: share(3), ready: 2, started: true},
			{do: "complete", nonce: "n1", arg: tok},
		}},
		{"one attempt mints one token", []op{
			{do: "start", nonce: "n1", arg: otpA, started: true},
			{do: "add", nonce: "n1", arg: share(1), started: true, progress: 1},
			{do: "add", nonce: "n1", arg: share(2), ready: 2, started: true},
			{do: "complete", nonce: "n1", arg: tok},
			{do: "complete", nonce: "n1", arg: tok, err: ErrNotStarted},
			{do: "add", nonce: "n1", arg: share(1), err: ErrNotStarted},
			{do: "start", nonce: "n2", arg: otpA, started: true},
		}},
		{"a token of another length is refused and the attempt stays", []op{
			{do: "start", nonce: "n1", arg: otpA, started: true},
			{do: "complete", nonce: "n1", arg: tok + "x", err: ErrTokenLength, started: true},
			{do: "complete", nonce: "n1", arg: "", err: ErrTokenLength, started: true},
		}},
		{"cancel ends the attempt and its progress", []op{
			{do: "start", nonce: "n1", arg: otpA, started: true},
			{do: "add", nonce: "n1", arg: share(1), started: true, progress: 1},
			{do: "cancel"},
			{do: "add", nonce: "n1", arg: share(2), err: ErrNotStarted},
			{do: "start", nonce: "n2", arg: otpA, started: true},
			{do: "add", nonce: "n2", arg: share(2), started: true, progress: 1},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := New(testOTPLength)
			for i, o := range tc.ops {
				var (
					err   error
					ready [][]byte
				)
				switch o.do {
				case "start":
					err = g.Start(o.nonce, o.arg)
				case "add":
					ready, err = g.Add(o.nonce, []byte(o.arg), required)
				case "complete":
					_, err = g.Complete(o.nonce, o.arg)
				case "cancel":
					g.Cancel()
				default:
					t.Fatalf("op %d: unknown %q", i, o.do)
				}
				if !errors.Is(err, o.err) || (err != nil) != (o.err != nil) {
					t.Fatalf("op %d %s(%q): error %v, want %v", i, o.do, o.nonce, err, o.err)
				}
				if len(ready) != o.ready {
					t.Fatalf("op %d %s: %d shares handed out, want %d", i, o.do, len(ready), o.ready)
				}
				st := g.Status(required)
				if st.Started != o.started || st.Progress != o.progress || st.Required != required || st.OTPLength != testOTPLength {
					t.Fatalf("op %d %s(%q): status %+v, want started %v progress %d", i, o.do, o.nonce, st, o.started, o.progress)
				}
				if st.Started != (st.Nonce != "") {
					t.Fatalf("op %d: nonce %q with started %v", i, st.Nonce, st.Started)
				}
			}
		})
	}
}

func TestStatusKeepsTheFirstNonce(t *testing.T) {
	g := New(testOTPLength)
	if st := g.Status(3); st.Started || st.Nonce != "" || st.Progress != 0 || st.Required != 3 || st.OTPLength != testOTPLength {
		t.Fatalf("status without an attempt: %+v", st)
	}
	if err := g.Start("n1", otpA); err != nil {
		t.Fatal(err)
	}
	if err := g.Start("n2", otpA); !errors.Is(err, ErrInProgress) {
		t.Fatalf("second start: %v", err)
	}
	if st := g.Status(3); st.Nonce != "n1" {
		t.Fatalf("nonce after a refused start: %q, want n1", st.Nonce)
	}
}

func TestCompleteEncodesWithTheAttemptsOTP(t *testing.T) {
	g := New(testOTPLength)
	otp := "ABCDEFGHIJKLMNOPQRSTUVWXYZab"
	if err := g.Start("n1", otp); err != nil {
		t.Fatal(err)
	}
	enc, err := g.Complete("n1", "hvs.0123456789abcdefghijklmn")
	if err != nil {
		t.Fatal(err)
	}
	if enc != vaultVector {
		t.Fatalf("encoded %q, want %q", enc, vaultVector)
	}
}

func TestSharesAreCopiedAndWiped(t *testing.T) {
	g := New(testOTPLength)
	if err := g.Start("n1", otpA); err != nil {
		t.Fatal(err)
	}
	in := []byte(share(7))
	if _, err := g.Add("n1", in, 2); err != nil {
		t.Fatal(err)
	}
	in[0] = 0 // the caller reuses its buffer
	held := g.cur.shares[0]
	if !bytes.Equal(held, []byte(share(7))) {
		t.Fatal("the attempt holds the caller's buffer, not a copy")
	}
	g.Cancel()
	if !bytes.Equal(held, make([]byte, len(held))) {
		t.Fatal("cancel left the share's bytes in memory")
	}
	if err := g.Start("n2", otpA); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Add("n2", []byte(share(8)), 2); err != nil {
		t.Fatal(err)
	}
	ready, err := g.Add("n2", []byte(share(9)), 2)
	if err != nil || len(ready) != 2 || !bytes.Equal(ready[0], []byte(share(8))) || !bytes.Equal(ready[1], []byte(share(9))) {
		t.Fatalf("handed out %q, %v", ready, err)
	}
}

func TestNewPanicsWithoutALength(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("New(0) did not panic")
		}
	}()
	New(0)
}

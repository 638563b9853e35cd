package forwarder

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestMessagesRoundTrip(t *testing.T) {
	req := &Request{ID: "r1", Seq: 7, Operation: "update", Path: "secret/data/app", Data: json.RawMessage(`{"data":{"n":1.50}}`),
		WrapTTL: 60, CallerDisplayName: "userpass-bob", CallerPolicies: []string{"default", "dev"}, RemoteAddr: "10.0.0.1"}
	b, err := EncodeRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"v":2`) {
		t.Fatalf("no version in %s", b)
	}
	got, err := DecodeRequest(b)
	if err != nil || !reflect.DeepEqual(got, req) {
		t.Fatalf("round trip: %v\n got %+v\nwant %+v", err, got, req)
	}
	rep := &Reply{Status: 200, Body: json.RawMessage(`{"data":{"x":"y"}}`), WALIndex: 42}
	b, err = EncodeReply(rep)
	if err != nil {
		t.Fatal(err)
	}
	gr, err := DecodeReply(b)
	if err != nil || !reflect.DeepEqual(gr, rep) {
		t.Fatalf("reply round trip: %v %+v", err, gr)
	}
}

// Version 1 (no sequence number: it could be replayed) is refused with an
// error that says to upgrade the secondary.
func TestMessagesOldVersionRefused(t *testing.T) {
	old := `{"v":1,"id":"req-1","operation":"update","path":"secret/data/x","data":{"data":{"v":1}}}`
	if _, err := DecodeRequest([]byte(old)); !errors.Is(err, ErrOldVersion) || !strings.Contains(err.Error(), "upgrade the secondary") {
		t.Fatalf("v1 request: %v", err)
	}
}

func TestMessagesRefused(t *testing.T) {
	for name, tc := range map[string]struct {
		in   string
		want error
	}{
		"not json":      {`{`, ErrCorrupt},
		"no version":    {`{"id":"a","seq":1,"operation":"update","path":"p"}`, ErrCorrupt},
		"newer version": {`{"v":3,"id":"a","seq":1,"operation":"update","path":"p"}`, ErrUnknownVersion},
		"no id":         {`{"v":2,"seq":1,"operation":"update","path":"p"}`, ErrCorrupt},
		"no seq":        {`{"v":2,"id":"a","operation":"update","path":"p"}`, ErrCorrupt},
		"long id":       {`{"v":2,"id":"` + strings.Repeat("a", 129) + `","seq":1,"operation":"update","path":"p"}`, ErrCorrupt},
		"long path":     {`{"v":2,"id":"a","seq":1,"operation":"update","path":"` + strings.Repeat("p", 4097) + `"}`, ErrCorrupt},
	} {
		if _, err := DecodeRequest([]byte(tc.in)); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	if _, err := DecodeReply([]byte(`{"v":2,"status":700}`)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("status out of range: %v", err)
	}
	if _, err := DecodeRequest(make([]byte, MaxMessageSize+1)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("oversized: %v", err)
	}
	if _, err := EncodeRequest(&Request{}); err == nil {
		t.Error("an empty request was encoded")
	}
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"v":2,"id":"a","seq":3,"operation":"update","path":"secret/x","data":{"a":1}}`))
	f.Add([]byte(`{"v":1,"id":"a","operation":"update","path":"secret/x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeRequest(data)
		if err != nil {
			return
		}
		b, err := EncodeRequest(m)
		if err != nil {
			t.Fatalf("a decoded request does not encode: %v", err)
		}
		if _, err := DecodeRequest(b); err != nil {
			t.Fatalf("re-encoded request does not decode: %v", err)
		}
	})
}

func FuzzDecodeReply(f *testing.F) {
	f.Add([]byte(`{"v":2,"status":200,"body":{"data":{}},"wal_index":7}`))
	f.Add([]byte(`{"v":2,"status":403,"errors":["no"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeReply(data)
		if err != nil {
			return
		}
		if _, err := EncodeReply(m); err != nil {
			t.Fatalf("a decoded reply does not encode: %v", err)
		}
	})
}

package replication

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestMessagesRoundTrip(t *testing.T) {
	for _, m := range []Message{
		&SyncRequest{After: "core/a", MaxKeys: 512, MaxBytes: 1 << 20},
		&SyncReply{WALIndex: 99, Entries: []KV{{"a", []byte{1}}, {"b", nil}}, Next: "b"},
		&SyncReply{WALIndex: 99, Done: true},
		&HeartbeatRequest{LastRemoteWAL: 7, APIAddr: "http://x:8210", ClusterID: "sec-cluster"},
		&HeartbeatReply{LastWAL: 9, APIAddr: "http://x:8200"},
		&KeyRequest{Epoch: 5},
		&KeyReply{Epoch: 5, Key: testKey},
		&FetchRequest{Keys: []string{"logical/a", "core/mounts"}},
		&FetchReply{WALIndex: 12, Answered: 3, Entries: []KV{{"logical/a", []byte{1}}, {"core/mounts", []byte{}}}, Absent: []string{"logical/gone"}},
		&FetchReply{WALIndex: 12},
	} {
		data, err := EncodeMessage(m)
		if err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		if !strings.Contains(string(data), `"v":1`) {
			t.Fatalf("%T: no version in %s", m, data)
		}
		got := reflect.New(reflect.TypeOf(m).Elem()).Interface().(Message)
		if err := DecodeMessage(data, got); err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("%T round trip:\n got %+v\nwant %+v", m, got, m)
		}
	}
	if !(&RPCError{Code: CodeTokenUsed}).Permanent() {
		t.Fatal("token_used is not permanent")
	}
}

func TestDecodeMessageRejects(t *testing.T) {
	for _, tc := range []struct {
		data string
		m    Message
		want error
	}{
		{`{"after":"a"}`, &SyncRequest{}, ErrCorrupt},
		{`{"v":2,"after":"a"}`, &SyncRequest{}, ErrUnknownVersion},
		{`{"v":1,"max_keys":-1}`, &SyncRequest{}, ErrCorrupt},
		{`not json`, &HeartbeatRequest{}, ErrCorrupt},
		{`{"v":1,"epoch":1,"key":"AAAA"}`, &KeyReply{}, ErrCorrupt},
		{`{"v":1,"entries":[{"key":"b"},{"key":"a"}],"done":true}`, &SyncReply{}, ErrCorrupt},
		{`{"v":1,"entries":[{"key":""}],"done":true}`, &SyncReply{}, ErrCorrupt},
		{`{"v":1,"entries":[{"key":"b"}],"next":"a"}`, &SyncReply{}, ErrCorrupt},
		{`{"v":1,"entries":[]}`, &SyncReply{}, ErrCorrupt},
		{`{"v":1,"keys":["a","a"]}`, &FetchRequest{}, ErrCorrupt},
		{`{"v":1,"keys":[""]}`, &FetchRequest{}, ErrCorrupt},
		{`{"v":1,"answered":2,"entries":[{"key":"a"}]}`, &FetchReply{}, ErrCorrupt},
		{`{"v":1,"answered":1,"absent":[""]}`, &FetchReply{}, ErrCorrupt},
		{`{"v":1,"answered":-1}`, &FetchReply{}, ErrCorrupt},
	} {
		if err := DecodeMessage([]byte(tc.data), tc.m); !errors.Is(err, tc.want) {
			t.Errorf("%s into %T: %v, want %v", tc.data, tc.m, err, tc.want)
		}
	}
	if err := DecodeMessage(make([]byte, MaxMessageSize+1), &KeyRequest{}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("oversize: %v", err)
	}
	// Fields added by a newer peer within v1 are ignored.
	var hb HeartbeatRequest
	if err := DecodeMessage([]byte(`{"v":1,"last_remote_wal":3,"new_field":true}`), &hb); err != nil || hb.LastRemoteWAL != 3 {
		t.Errorf("unknown field: %v %+v", err, hb)
	}
	if _, err := EncodeMessage(&KeyReply{Key: []byte{1}}); err == nil {
		t.Error("invalid message encoded")
	}
}

package kv

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// metaSamples are metadata records of the shapes KV v2 writes and a few
// it never does, each to be encoded as json.Marshal does and read back.
func metaSamples() []*keyMeta {
	tz := time.FixedZone("", -(9*3600 + 30*60))
	del := t0.Add(time.Hour)
	many := map[uint64]*versionMeta{}
	for n := uint64(1); n <= 12; n++ {
		many[n] = &versionMeta{CreatedTime: t0.Add(time.Duration(n) * time.Second)}
	}
	many[3].DeletionTime, many[4].Destroyed = &del, true
	return []*keyMeta{
		{V: 1, Key: "app", CreatedTime: t0, UpdatedTime: t0, Versions: map[uint64]*versionMeta{}},
		{V: 1, Key: "a/b/c", CreatedTime: t0, UpdatedTime: t0.Add(time.Minute), CurrentVersion: 12, OldestVersion: 3,
			MaxVersions: 4294967295, CASRequired: true, DeleteVersionAfter: -time.Second, Versions: many},
		{V: 1, Key: `quote" back\ <html> & clé 秘密` + "\u2028\x01", CreatedTime: time.Date(2025, 1, 2, 3, 4, 5, 0, tz),
			UpdatedTime:    time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
			CustomMetadata: map[string]string{"owner": "ops", "z": "", "<k>": "v&", "é": "\n"},
			Versions:       map[uint64]*versionMeta{2: nil, 10: {CreatedTime: time.Unix(0, 1).UTC()}, 9: {}}},
		{V: 2, Key: "", Versions: nil},
		{V: 1, Key: "k", CustomMetadata: map[string]string{}, Versions: map[uint64]*versionMeta{18446744073709551615: {Destroyed: true}}},
	}
}

func TestEncodeMetaIsJSONMarshal(t *testing.T) {
	for i, m := range metaSamples() {
		want, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := encodeMeta(m)
		if err != nil {
			t.Fatalf("sample %d: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("sample %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

// decodeMeta reads what json.Unmarshal reads, the same, whether its fast
// path takes the record or hands it on.
func TestDecodeMetaIsJSONUnmarshal(t *testing.T) {
	var inputs [][]byte
	for _, m := range metaSamples() {
		raw, _ := json.Marshal(m)
		indented, _ := json.MarshalIndent(m, "", " ")
		inputs = append(inputs, raw, indented)
	}
	inputs = append(inputs,
		[]byte(`{"key":"reordered","v":1,"versions":{"1":{"destroyed":false,"created_time":"2025-03-01T12:00:00Z"}}}`),
		[]byte(`{"v":1,"key":"esc\u0041ped","created_time":"2025-03-01T12:00:00Z","updated_time":"2025-03-01T12:00:00Z","current_version":1,"oldest_version":0,"max_versions":0,"cas_required":false,"delete_version_after_ns":0,"versions":{"01":null}}`),
		[]byte(`{"v":1,"key":"k","created_time":"2025-03-01T12:00:00Z","updated_time":"2025-03-01T12:00:00Z","current_version":1,"oldest_version":0,"max_versions":0,"cas_required":false,"delete_version_after_ns":0,"versions":{"1":{"created_time":null,"deletion_time":null,"destroyed":false}}}`),
		[]byte(`{"v":1,"key":"k","created_time":null,"updated_time":"2025-03-01T12:00:00+01:00","current_version":1,"oldest_version":0,"max_versions":0,"cas_required":false,"delete_version_after_ns":0,"versions":{},"extra":1}`),
	)
	for i, raw := range inputs {
		checkDecodeMeta(t, i, raw)
	}
	// What encodeMeta writes of plain keys and times is read by the fast
	// path, not handed on.
	for i, m := range metaSamples() {
		raw, _ := encodeMeta(m)
		var got keyMeta
		if fast := fastMeta(raw, &got); fast != (i != 2) {
			t.Fatalf("sample %d: fast path took it: %v, want %v", i, fast, i != 2)
		}
	}
	// json.Unmarshal's errors stay errors.
	for _, raw := range []string{``, `{`, `{"v":1,"key":"k","created_time":"yesterday"}`, `{"v":1,"max_versions":4294967296}`, `[]`} {
		var m keyMeta
		if err := decodeMeta([]byte(raw), &m); err == nil {
			t.Fatalf("decodeMeta(%q) = nil, want json.Unmarshal's error", raw)
		}
	}
}

func checkDecodeMeta(t *testing.T, i int, raw []byte) {
	t.Helper()
	var want, got keyMeta
	werr := json.Unmarshal(raw, &want)
	gerr := decodeMeta(raw, &got)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("input %d %.120q: decodeMeta error %v, json.Unmarshal's %v", i, raw, gerr, werr)
	}
	if werr == nil && !metaEqual(&got, &want) {
		t.Fatalf("input %d %.120q:\n got %+v\nwant %+v", i, raw, got, want)
	}
}

// metaEqual compares metadata as the engine sees it: times as instants.
func metaEqual(a, b *keyMeta) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if !bytes.Equal(ja, jb) || !a.CreatedTime.Equal(b.CreatedTime) || !a.UpdatedTime.Equal(b.UpdatedTime) {
		return false
	}
	return reflect.DeepEqual(a.CustomMetadata, b.CustomMetadata) && len(a.Versions) == len(b.Versions) && (a.Versions == nil) == (b.Versions == nil)
}

// FuzzMetaCodec: metadata made from the fuzzer's bytes encodes as
// json.Marshal does, and decodes back as json.Unmarshal does; the fuzzer's
// bytes taken as a record decode as json.Unmarshal decodes them.
func FuzzMetaCodec(f *testing.F) {
	for _, m := range metaSamples() {
		raw, _ := json.Marshal(m)
		f.Add(raw)
	}
	f.Add([]byte("\x01\x02\x03<&>\"\\ key"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecodeMeta(t, 0, data)
		m := metaFrom(data)
		want, werr := json.Marshal(m)
		got, gerr := encodeMeta(m)
		if (werr == nil) != (gerr == nil) || !bytes.Equal(got, want) {
			t.Fatalf("encodeMeta = %s, %v; json.Marshal = %s, %v", got, gerr, want, werr)
		}
		if werr == nil {
			checkDecodeMeta(t, 1, got)
		}
	})
}

// metaFrom builds metadata from arbitrary bytes.
func metaFrom(data []byte) *keyMeta {
	next := func(n int) []byte {
		if len(data) < n {
			data = append(data, make([]byte, n-len(data))...)
		}
		b := data[:n]
		data = data[n:]
		return b
	}
	u64 := func() uint64 { return binary.LittleEndian.Uint64(next(8)) }
	str := func() string { return string(next(int(next(1)[0] % 12))) }
	when := func() time.Time {
		// Years past 9999 and offsets of a day test the refusals.
		return time.Unix(int64(u64()%(400000000000))-62135596800, int64(u64()%1e9)).In(time.FixedZone("", int(int32(u64()))%(26*3600)))
	}
	m := &keyMeta{V: int(next(1)[0] % 3), Key: str(), CreatedTime: when(), UpdatedTime: when(),
		CurrentVersion: u64(), OldestVersion: u64(), MaxVersions: uint32(u64()), CASRequired: next(1)[0]&1 == 1,
		DeleteVersionAfter: time.Duration(u64())}
	if n := next(1)[0] % 4; n > 0 {
		m.CustomMetadata = map[string]string{}
		for range n {
			m.CustomMetadata[str()] = str()
		}
	}
	if next(1)[0]%5 != 0 {
		m.Versions = map[uint64]*versionMeta{}
		for range next(1)[0] % 14 {
			k := u64() % 40
			switch next(1)[0] % 4 {
			case 0:
				m.Versions[k] = nil
			case 1:
				d := when()
				m.Versions[k] = &versionMeta{CreatedTime: when(), DeletionTime: &d}
			default:
				m.Versions[k] = &versionMeta{CreatedTime: when(), Destroyed: next(1)[0]&1 == 1}
			}
		}
	}
	return m
}

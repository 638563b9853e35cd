package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/storage"
)

func sampleEntry() *Entry {
	return &Entry{
		Index: 42,
		Time:  1_700_000_000_123_456_789,
		Ops: []Op{
			{Kind: storage.PutOperation, Class: Replicated, Key: "logical/abc/secret", Value: []byte("ciphertext\x00\xff")},
			{Kind: storage.DeleteOperation, Class: Local, Key: "sys/token/id/xyz"},
			{Kind: storage.PutOperation, Class: Replicated, Key: "core/mounts", Value: []byte{}},
		},
	}
}

func TestEntryRoundTrip(t *testing.T) {
	e := sampleEntry()
	buf := EncodeEntry(e)
	if buf[0] != 1 {
		t.Fatalf("version byte %d, want 1", buf[0])
	}
	if got := binary.BigEndian.Uint64(buf[1:9]); got != 42 {
		t.Fatalf("index field %d, want 42", got)
	}
	got, err := DecodeEntry(buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, e) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, e)
	}
	if !got.CommitTime().Equal(e.CommitTime()) || got.CommitTime().UnixNano() != e.Time {
		t.Fatalf("commit time %v", got.CommitTime())
	}
	// The result must not alias the input.
	buf[len(buf)-10] ^= 0xff
	if !reflect.DeepEqual(got, e) {
		t.Fatal("decoded entry aliases its input")
	}
}

func TestEntryDeleteValueNotEncoded(t *testing.T) {
	e := &Entry{Index: 1, Ops: []Op{{Kind: storage.DeleteOperation, Class: Replicated, Key: "k", Value: []byte("ignored")}}}
	got, err := DecodeEntry(EncodeEntry(e))
	if err != nil {
		t.Fatal(err)
	}
	if got.Ops[0].Value != nil {
		t.Fatalf("delete decoded with value %q", got.Ops[0].Value)
	}
}

func TestDecodeEntryErrors(t *testing.T) {
	good := EncodeEntry(sampleEntry())
	reseal := func(b []byte) []byte {
		sealEntry(b, binary.BigEndian.Uint64(b[1:9]), int64(binary.BigEndian.Uint64(b[9:17])))
		return b
	}
	cases := map[string]struct {
		buf  []byte
		want error
	}{
		"empty":          {nil, ErrCorrupt},
		"version 2":      {append([]byte{2}, good[1:]...), ErrUnknownVersion},
		"version 0":      {append([]byte{0}, good[1:]...), ErrUnknownVersion},
		"short":          {good[:minEntryLen-1], ErrCorrupt},
		"truncated":      {good[:len(good)-1], ErrCorrupt},
		"bad crc":        {append(append([]byte{}, good[:len(good)-1]...), good[len(good)-1]^1), ErrCorrupt},
		"flipped body":   {func() []byte { b := bytes.Clone(good); b[25] ^= 0x40; return b }(), ErrCorrupt},
		"trailing byte":  {reseal(append(append(bytes.Clone(good[:len(good)-4]), 0), 0, 0, 0, 0)), ErrCorrupt},
		"huge op count":  {reseal(append(append(bytes.Clone(good[:17]), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), 0, 0, 0, 0)), ErrCorrupt},
		"overlong count": {reseal(append(append(bytes.Clone(good[:17]), 0x80, 0x00), 0, 0, 0, 0)), ErrCorrupt},
		"bad kind":       {reseal(EncodeEntry(&Entry{Ops: []Op{{Kind: 7, Class: Replicated, Key: "k"}}})), ErrCorrupt},
		"bad class":      {reseal(EncodeEntry(&Entry{Ops: []Op{{Kind: storage.PutOperation, Class: 0, Key: "k"}}})), ErrCorrupt},
		"empty key":      {reseal(EncodeEntry(&Entry{Ops: []Op{{Kind: storage.PutOperation, Class: Local, Key: ""}}})), ErrCorrupt},
		"nul in key":     {reseal(EncodeEntry(&Entry{Ops: []Op{{Kind: storage.PutOperation, Class: Local, Key: "a\x00b"}}})), ErrCorrupt},
		"key too long": {func() []byte {
			b := EncodeEntry(&Entry{Ops: []Op{{Kind: storage.PutOperation, Class: Local, Key: "abc", Value: []byte("v")}}})
			b[20] = 100 // key length byte
			return reseal(b)
		}(), ErrCorrupt},
		"delete with value": {func() []byte {
			b := EncodeEntry(&Entry{Ops: []Op{{Kind: storage.PutOperation, Class: Local, Key: "abc", Value: []byte("v")}}})
			b[18] = byte(storage.DeleteOperation)
			return reseal(b)
		}(), ErrCorrupt},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			e, err := DecodeEntry(c.buf)
			if !errors.Is(err, c.want) {
				t.Fatalf("DecodeEntry = %+v, %v; want %v", e, err, c.want)
			}
		})
	}
}

func TestMetaRoundTripAndErrors(t *testing.T) {
	m := meta{last: math.MaxUint64 - 1, truncated: 12}
	got, err := decodeMeta(encodeMeta(m))
	if err != nil || got != m {
		t.Fatalf("decodeMeta = %+v, %v", got, err)
	}
	b := encodeMeta(m)
	b[3] ^= 1
	if _, err := decodeMeta(b); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("flipped meta: %v", err)
	}
	b = encodeMeta(m)
	b[0] = 9
	if _, err := decodeMeta(b); !errors.Is(err, ErrUnknownVersion) {
		t.Fatalf("meta version 9: %v", err)
	}
	if _, err := decodeMeta(encodeMeta(meta{last: 3, truncated: 4})); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated past last: %v", err)
	}
}

func TestLogKey(t *testing.T) {
	for _, c := range []struct {
		i    uint64
		want string
	}{
		{0, "wal/logs/00000000000000000000"},
		{1, "wal/logs/00000000000000000001"},
		{1234567890, "wal/logs/00000000001234567890"},
		{math.MaxUint64, "wal/logs/18446744073709551615"},
	} {
		if got := logKey(c.i); got != c.want {
			t.Errorf("logKey(%d) = %q, want %q", c.i, got, c.want)
		}
	}
	if !(logKey(9) < logKey(10)) {
		t.Error("log keys do not sort in index order")
	}
}

// FuzzDecodeEntry feeds hostile bytes to DecodeEntry: it must never panic, it
// must fail only with ErrCorrupt or ErrUnknownVersion, and whatever it accepts
// must re-encode to the very same bytes (the format is canonical) and decode
// again to an equal entry.
func FuzzDecodeEntry(f *testing.F) {
	f.Add(EncodeEntry(sampleEntry()))
	f.Add(EncodeEntry(&Entry{}))
	f.Add(EncodeEntry(&Entry{Index: 1, Ops: []Op{{Kind: storage.DeleteOperation, Class: Local, Key: "sys/token/a"}}}))
	f.Add(EncodeEntry(&Entry{Index: math.MaxUint64, Time: -1, Ops: []Op{{Kind: storage.PutOperation, Class: Ignored, Key: strings.Repeat("k", 200), Value: bytes.Repeat([]byte{7}, 300)}}}))
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add([]byte{2, 0, 0})
	f.Add(append([]byte{1}, bytes.Repeat([]byte{0xff}, 40)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecode(t, data)
		// Random bytes almost never pass the checksum; give the parser behind it a
		// chance too by fixing the checksum up.
		if len(data) >= minEntryLen && data[0] == entryVersion {
			fixed := bytes.Clone(data)
			sealEntry(fixed, binary.BigEndian.Uint64(fixed[1:9]), int64(binary.BigEndian.Uint64(fixed[9:17])))
			checkDecode(t, fixed)
		}
	})
}

func checkDecode(t *testing.T, data []byte) {
	e, err := DecodeEntry(data)
	if err != nil {
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnknownVersion) {
			t.Fatalf("unclassified error %v", err)
		}
		return
	}
	again := EncodeEntry(e)
	if !bytes.Equal(again, data) {
		t.Fatalf("re-encoding differs:\n in %x\nout %x", data, again)
	}
	e2, err := DecodeEntry(again)
	if err != nil || !reflect.DeepEqual(e, e2) {
		t.Fatalf("decode(encode(x)) = %+v, %v; want %+v", e2, err, e)
	}
}

// FuzzEntryRoundTrip builds entries from fuzzed fields and checks
// decode(encode(x)) == x.
func FuzzEntryRoundTrip(f *testing.F) {
	f.Add(uint64(1), int64(0), "a", []byte("v"), "b", uint8(0))
	f.Add(uint64(math.MaxUint64), int64(math.MinInt64), "sys/token/x", []byte{}, "logical/y", uint8(0xff))
	f.Add(uint64(77), int64(1e18), strings.Repeat("z", 130), bytes.Repeat([]byte{1}, 200), "", uint8(0x5a))
	f.Fuzz(func(t *testing.T, index uint64, ts int64, k1 string, v1 []byte, k2 string, flags uint8) {
		e := &Entry{Index: index, Time: ts}
		add := func(key string, val []byte, bits uint8) {
			if storage.ValidateKey(key) != nil {
				return
			}
			op := Op{Kind: storage.PutOperation, Class: Class(bits%3) + 1, Key: key, Value: append([]byte{}, val...)}
			if bits&4 != 0 {
				op.Kind, op.Value = storage.DeleteOperation, nil
			}
			e.Ops = append(e.Ops, op)
		}
		add(k1, v1, flags)
		add(k2, v1, flags>>3)
		if flags&0x80 != 0 {
			add(k1+k2, nil, flags>>5)
		}
		got, err := DecodeEntry(EncodeEntry(e))
		if err != nil {
			t.Fatalf("decode(encode(%+v)): %v", e, err)
		}
		if !reflect.DeepEqual(got, e) {
			t.Fatalf("decode(encode(x)):\n got %+v\nwant %+v", got, e)
		}
	})
}

// DecodeOpShared leaves the value in the caller's buffer, DecodeOp copies
// it; both parse the same.
func TestDecodeOpSharedAliases(t *testing.T) {
	buf := AppendOp(nil, &Op{Kind: storage.PutOperation, Class: Replicated, Key: "logical/k", Value: []byte("value")})
	var shared, copied Op
	if _, err := DecodeOpShared(buf, &shared); err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeOp(buf, &copied); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(shared, copied) || string(shared.Value) != "value" || cap(shared.Value) != len(shared.Value) {
		t.Fatalf("shared %+v (cap %d), copied %+v", shared, cap(shared.Value), copied)
	}
	buf[len(buf)-1] ^= 0xff
	if string(copied.Value) != "value" || string(shared.Value) == "value" {
		t.Fatalf("after changing the buffer: shared %q, copied %q", shared.Value, copied.Value)
	}
}

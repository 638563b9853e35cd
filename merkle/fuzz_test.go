package merkle

import (
	"bytes"
	"testing"
)

func FuzzDecodePage(f *testing.F) {
	keys := []string{"a", "logical/x/secret/y", "core/mounts"}
	for _, k := range keys {
		b, fp := keyHash(k)
		f.Add(encodePage(b, 7, []item{{fp: fp, vh: ValueHash(k, []byte("v"))}}, []string{k}), b)
	}
	f.Add([]byte{pageVersion}, uint32(0))
	f.Add([]byte{9, 1, 2}, uint32(1))
	f.Fuzz(func(t *testing.T, data []byte, want uint32) {
		want %= Buckets
		p, err := decodePage(data, want, true)
		if err != nil {
			return
		}
		q, err := decodePage(data, want, false)
		if err != nil {
			t.Fatalf("fast decode refused what the full decode accepted: %v", err)
		}
		if len(q.items) != len(p.items) || q.lsn != p.lsn {
			t.Fatal("fast and full decodes disagree")
		}
		if re := encodePage(p.bucket, p.lsn, p.items, p.keys); !bytes.Equal(re, data) {
			t.Fatal("page encoding is not canonical")
		}
	})
}

func FuzzDecodeCheckpoint(f *testing.F) {
	f.Add(encodeCheckpoint(1))
	f.Add(encodeCheckpoint(1 << 40))
	f.Add([]byte{checkpointVersion, 3, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		redo, err := decodeCheckpoint(data)
		if err != nil {
			return
		}
		if !bytes.Equal(encodeCheckpoint(redo), data) {
			t.Fatal("checkpoint encoding is not canonical")
		}
	})
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add(EncodeRequest(&Request{KnownRoot: make([]byte, HashSize), Pages: []PageRef{{0, 0}, {3, 4095}}, Buckets: []uint32{0, 65535}}))
	f.Add(EncodeRequest(&Request{}))
	f.Add([]byte{2})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeRequest(data)
		if err != nil {
			return
		}
		if !bytes.Equal(EncodeRequest(r), data) {
			t.Fatal("request encoding is not canonical")
		}
	})
}

func FuzzDecodeResponse(f *testing.F) {
	var page [Fanout][HashSize]byte
	page[3][0] = 1
	f.Add(EncodeResponse(&Response{Applied: 9, Pages: [][Fanout][HashSize]byte{page, {}},
		Buckets: []BucketList{{Bucket: BucketOf("k"), Items: []Item{{Key: "k"}}}, {Bucket: 5}}}))
	f.Add(EncodeResponse(&Response{}))
	f.Add([]byte{responseVersion})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeResponse(data)
		if err != nil {
			return
		}
		if !bytes.Equal(EncodeResponse(r), data) {
			t.Fatal("response encoding is not canonical")
		}
	})
}

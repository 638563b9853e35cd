package merkle

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Format constants of the sync RPC messages: part of the wire format.
const (
	requestVersion  = 1
	responseVersion = 1

	flagKnownRoot = 1 << 0
	pageZero      = 0 // a page whose children are all empty subtrees
	pageFull      = 1 // Fanout hashes follow
)

// totalPages is the number of interior pages (nodes) in the tree.
var totalPages = func() int {
	n := 0
	for _, c := range levelNodes {
		n += c
	}
	return n
}()

// PageRef names interior node Index at Level (0 = root node).
type PageRef struct {
	Level uint8
	Index uint32
}

// Item is one key of a bucket, as listed for a diff.
type Item struct {
	Key       string
	ValueHash [ValueHashSize]byte
}

// Request asks a page source for pages and bucket listings in one round trip.
type Request struct {
	// KnownRoot, when set, is the asker's root: if the source's root equals it,
	// the response carries only the root.
	KnownRoot []byte
	Pages     []PageRef
	Buckets   []uint32
}

// BucketList is one bucket's items in a Response.
type BucketList struct {
	Bucket uint32
	Items  []Item
}

// Response answers a Request.
type Response struct {
	// Root is the source's root; Applied the WAL index it reflects. A
	// secondary replays the stream from Applied after the sync.
	Root    [HashSize]byte
	Applied uint64
	// Pages answer Request.Pages in order (empty when KnownRoot matched).
	Pages [][Fanout][HashSize]byte
	// Buckets answer Request.Buckets in order (empty when KnownRoot matched).
	Buckets []BucketList
}

// EncodeRequest encodes r (version 1):
//
//	version(1)=1 | flags(1) | [known root(32) if flags&1] | uvarint n | n × (level(1) | uvarint index) | uvarint m | m × uvarint bucket
func EncodeRequest(r *Request) []byte {
	buf := make([]byte, 0, 2+HashSize+8+len(r.Pages)*4+len(r.Buckets)*3)
	buf = append(buf, requestVersion)
	if len(r.KnownRoot) == HashSize {
		buf = append(buf, flagKnownRoot)
		buf = append(buf, r.KnownRoot...)
	} else {
		buf = append(buf, 0)
	}
	buf = binary.AppendUvarint(buf, uint64(len(r.Pages)))
	for _, p := range r.Pages {
		buf = append(buf, p.Level)
		buf = binary.AppendUvarint(buf, uint64(p.Index))
	}
	buf = binary.AppendUvarint(buf, uint64(len(r.Buckets)))
	for _, b := range r.Buckets {
		buf = binary.AppendUvarint(buf, uint64(b))
	}
	return buf
}

// reader walks a message; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrCorrupt, what)
	}
}

func (r *reader) byte1(what string) byte {
	if r.err != nil || len(r.b) < 1 {
		r.fail(what)
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) bytesN(n int, what string) []byte {
	if r.err != nil || len(r.b) < n {
		r.fail(what)
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || n != uvarintLen(v) {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a count of elements of at least min bytes each, bounded by limit
// and by the bytes left.
func (r *reader) count(minSize, limit int, what string) int {
	n := r.uvarint(what)
	if r.err == nil && (n > uint64(limit) || n > uint64(len(r.b)/minSize)) {
		r.fail(what)
	}
	if r.err != nil {
		return 0
	}
	return int(n)
}

// DecodeRequest decodes a request and checks every reference against the tree.
func DecodeRequest(data []byte) (*Request, error) {
	if len(data) < 1 {
		return nil, fmt.Errorf("%w: empty request", ErrCorrupt)
	}
	if data[0] != requestVersion {
		return nil, fmt.Errorf("%w: request version %d", ErrUnknownVersion, data[0])
	}
	r := &reader{b: data[1:]}
	req := &Request{}
	flags := r.byte1("request flags")
	if flags&^flagKnownRoot != 0 {
		r.fail("request flags")
	}
	if flags&flagKnownRoot != 0 {
		req.KnownRoot = bytes.Clone(r.bytesN(HashSize, "known root"))
	}
	n := r.count(2, totalPages, "page count")
	for range n {
		p := PageRef{Level: r.byte1("page level"), Index: uint32(min(r.uvarint("page index"), 1<<32-1))}
		if r.err == nil && (int(p.Level) >= Depth || int(p.Index) >= levelNodes[p.Level]) {
			r.fail("page reference outside the tree")
		}
		req.Pages = append(req.Pages, p)
	}
	m := r.count(1, Buckets, "bucket count")
	for range m {
		b := r.uvarint("bucket")
		if r.err == nil && b >= Buckets {
			r.fail("bucket outside the tree")
		}
		req.Buckets = append(req.Buckets, uint32(b))
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes in request")
	}
	if r.err != nil {
		return nil, r.err
	}
	return req, nil
}

// EncodeResponse encodes r (version 1):
//
//	version(1)=1 | root(32) | applied(8 BE) | uvarint n | n × page | uvarint m | m × bucket
//	page:   0 (all children empty) | 1 followed by Fanout × hash(32)
//	bucket: uvarint bucket | uvarint k | k × (value hash(16) | uvarint key len | key)
func EncodeResponse(r *Response) []byte {
	size := 1 + HashSize + 8 + 2*binary.MaxVarintLen32
	for _, p := range r.Pages {
		size += 1 + len(p)*HashSize
	}
	for _, b := range r.Buckets {
		size += 2 * binary.MaxVarintLen32
		for _, it := range b.Items {
			size += ValueHashSize + binary.MaxVarintLen32 + len(it.Key)
		}
	}
	buf := make([]byte, 0, size)
	buf = append(buf, responseVersion)
	buf = append(buf, r.Root[:]...)
	buf = binary.BigEndian.AppendUint64(buf, r.Applied)
	buf = binary.AppendUvarint(buf, uint64(len(r.Pages)))
	for i := range r.Pages {
		p := &r.Pages[i]
		if *p == ([Fanout][HashSize]byte{}) {
			buf = append(buf, pageZero)
			continue
		}
		buf = append(buf, pageFull)
		for _, h := range p {
			buf = append(buf, h[:]...)
		}
	}
	buf = binary.AppendUvarint(buf, uint64(len(r.Buckets)))
	for _, b := range r.Buckets {
		buf = binary.AppendUvarint(buf, uint64(b.Bucket))
		buf = binary.AppendUvarint(buf, uint64(len(b.Items)))
		for _, it := range b.Items {
			buf = append(buf, it.ValueHash[:]...)
			buf = binary.AppendUvarint(buf, uint64(len(it.Key)))
			buf = append(buf, it.Key...)
		}
	}
	return buf
}

// DecodeResponse decodes a response. Every listed key is checked to hash into
// the bucket it is listed under.
func DecodeResponse(data []byte) (*Response, error) {
	if len(data) < 1 {
		return nil, fmt.Errorf("%w: empty response", ErrCorrupt)
	}
	if data[0] != responseVersion {
		return nil, fmt.Errorf("%w: response version %d", ErrUnknownVersion, data[0])
	}
	r := &reader{b: data[1:]}
	resp := &Response{}
	copy(resp.Root[:], r.bytesN(HashSize, "root"))
	if a := r.bytesN(8, "applied"); a != nil {
		resp.Applied = binary.BigEndian.Uint64(a)
	}
	n := r.count(1, totalPages, "page count")
	if n > 0 {
		resp.Pages = make([][Fanout][HashSize]byte, n)
	}
	for i := 0; i < n && r.err == nil; i++ {
		switch r.byte1("page kind") {
		case pageZero:
		case pageFull:
			raw := r.bytesN(Fanout*HashSize, "page hashes")
			for j := 0; j < Fanout && raw != nil; j++ {
				copy(resp.Pages[i][j][:], raw[j*HashSize:])
			}
		default:
			r.fail("page kind")
		}
	}
	m := r.count(2, Buckets, "bucket count")
	for range m {
		bl := BucketList{Bucket: uint32(min(r.uvarint("bucket"), 1<<32-1))}
		if r.err == nil && bl.Bucket >= Buckets {
			r.fail("bucket outside the tree")
		}
		k := r.count(ValueHashSize+2, 1<<31, "item count")
		for range k {
			var it Item
			copy(it.ValueHash[:], r.bytesN(ValueHashSize, "value hash"))
			l := r.uvarint("key length")
			if r.err == nil && (l == 0 || l > uint64(len(r.b))) {
				r.fail("key length")
			}
			if r.err != nil {
				break
			}
			it.Key = string(r.bytesN(int(l), "key"))
			if strings.IndexByte(it.Key, 0) >= 0 || BucketOf(it.Key) != bl.Bucket {
				r.fail("key listed under a bucket it does not hash to")
			}
			bl.Items = append(bl.Items, it)
		}
		resp.Buckets = append(resp.Buckets, bl)
		if r.err != nil {
			break
		}
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes in response")
	}
	if r.err != nil {
		return nil, r.err
	}
	return resp, nil
}

// BucketItems lists bucket b's items with their keys (from the bucket's
// pending keys and its stored page), in fingerprint order.
func (x *Index) BucketItems(ctx context.Context, b uint32) ([]Item, error) {
	if b >= Buckets {
		return nil, fmt.Errorf("%w: bucket %d", ErrBadRef, b)
	}
	x.flushMu.Lock()
	defer x.flushMu.Unlock()
	x.mu.Lock()
	bk := &x.buckets[b]
	items := slices.Clone(bk.items)
	pending := slices.Clone(bk.pending)
	x.mu.Unlock()
	if len(items) == 0 {
		return nil, nil
	}
	keys, err := x.bucketKeys(ctx, b, items, pending, false)
	if err != nil {
		return nil, err
	}
	out := make([]Item, len(items))
	for i := range items {
		out[i] = Item{Key: keys[i], ValueHash: items[i].vh}
	}
	return out, nil
}

// Serve answers a Request from this index: the server side of merkle sync.
func (x *Index) Serve(ctx context.Context, req *Request) (*Response, error) {
	resp := &Response{}
	x.mu.Lock()
	x.refresh()
	resp.Root, resp.Applied = x.nodes[0][0], x.applied
	if req.KnownRoot != nil && bytes.Equal(req.KnownRoot, resp.Root[:]) {
		x.mu.Unlock()
		return resp, nil
	}
	resp.Pages = make([][Fanout][HashSize]byte, len(req.Pages))
	for i, p := range req.Pages {
		if int(p.Level) >= Depth || int(p.Index) >= levelNodes[p.Level] {
			x.mu.Unlock()
			return nil, fmt.Errorf("%w: page %d/%d", ErrBadRef, p.Level, p.Index)
		}
		x.pageLocked(int(p.Level), p.Index, &resp.Pages[i])
	}
	x.mu.Unlock()
	for _, b := range req.Buckets {
		items, err := x.BucketItems(ctx, b)
		if err != nil {
			return nil, err
		}
		resp.Buckets = append(resp.Buckets, BucketList{Bucket: b, Items: items})
	}
	return resp, nil
}

// ServeRPC decodes an encoded Request, serves it and encodes the Response:
// what the primary's RPC handler for coffer.<cluster>.rpc.merkle.pages calls.
func (x *Index) ServeRPC(ctx context.Context, data []byte) ([]byte, error) {
	req, err := DecodeRequest(data)
	if err != nil {
		return nil, err
	}
	resp, err := x.Serve(ctx, req)
	if err != nil {
		return nil, err
	}
	return EncodeResponse(resp), nil
}

// Source is the remote side of a diff: it answers an encoded Request with an
// encoded Response (over NATS request/reply in production, the remote index's
// ServeRPC in tests).
type Source interface {
	Fetch(ctx context.Context, req []byte) ([]byte, error)
}

// SourceFunc adapts a function to Source.
type SourceFunc func(ctx context.Context, req []byte) ([]byte, error)

// Fetch calls f.
func (f SourceFunc) Fetch(ctx context.Context, req []byte) ([]byte, error) { return f(ctx, req) }

// DiffOptions bounds the requests of a diff.
type DiffOptions struct {
	// MaxPagesPerRequest splits a round's pages over several requests sent
	// concurrently. Default 1024 (about 512 KiB of response).
	MaxPagesPerRequest int
	// MaxBucketsPerRequest does the same for bucket listings. Default 256.
	MaxBucketsPerRequest int
	// Parallel is the most requests in flight. Default 4.
	Parallel int
}

// DiffResult is the outcome of Diff: what the local side must change to
// equal the remote side, and what finding it cost.
type DiffResult struct {
	// Added are keys the remote has and the local side lacks; Changed keys
	// both hold with different values; Deleted keys only the local side has.
	// Each is sorted.
	Added, Changed, Deleted []string
	// RemoteRoot and RemoteApplied come from the first response.
	RemoteRoot    [HashSize]byte
	RemoteApplied uint64
	// Rounds is the number of sequential round trips; Requests the number of
	// requests (a round may send several concurrently).
	Rounds, Requests int
	// BytesSent and BytesReceived count the encoded messages.
	BytesSent, BytesReceived int64
	// DifferingBuckets is the number of buckets whose items were listed.
	DifferingBuckets int
}

// Keys returns the number of differing keys.
func (d *DiffResult) Keys() int { return len(d.Added) + len(d.Changed) + len(d.Deleted) }

// Diff compares local with remote top down and returns exactly the keys that
// differ. Rounds:
//
//  1. the root and every page of levels 0..Depth-2 (273 pages, ~137 KiB), or
//     only the root when it equals the local root;
//  2. the level Depth-1 pages under the differing level Depth-1 nodes;
//  3. the listings of the differing buckets.
//
// The values are fetched afterwards by the caller (round 4). Keys written on
// either side while the diff runs may be missed or reported spuriously: the
// caller replays the WAL from the position noted before the sync (see
// RemoteApplied), which fixes both.
func Diff(ctx context.Context, local *Index, remote Source, opts DiffOptions) (*DiffResult, error) {
	if opts.MaxPagesPerRequest <= 0 {
		opts.MaxPagesPerRequest = 1024
	}
	if opts.MaxBucketsPerRequest <= 0 {
		opts.MaxBucketsPerRequest = 256
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 4
	}
	res := &DiffResult{}
	diffNodes, same, err := res.compareTop(ctx, local, remote, opts)
	if err != nil {
		return nil, err
	}
	if same {
		return res, nil
	}
	diffBuckets, err := res.compareNodes(ctx, local, remote, diffNodes, opts)
	if err != nil {
		return nil, err
	}
	res.DifferingBuckets = len(diffBuckets)
	if err := res.compareBuckets(ctx, local, remote, diffBuckets, opts); err != nil {
		return nil, err
	}
	slices.Sort(res.Added)
	slices.Sort(res.Changed)
	slices.Sort(res.Deleted)
	return res, nil
}

// compareTop is round 1: the remote root and the pages of levels 0..Depth-2. It
// returns the level Depth-1 nodes whose hashes differ, or same when the roots
// are equal.
func (res *DiffResult) compareTop(ctx context.Context, local *Index, remote Source, opts DiffOptions) (diffNodes []uint32, same bool, err error) {
	localRoot := local.Root()
	var top []PageRef
	for l := 0; l < Depth-1; l++ {
		for i := range levelNodes[l] {
			top = append(top, PageRef{Level: uint8(l), Index: uint32(i)})
		}
	}
	resps, err := res.round(ctx, remote, []*Request{{KnownRoot: localRoot, Pages: top}}, opts.Parallel)
	if err != nil {
		return nil, false, err
	}
	first := resps[0]
	res.RemoteRoot, res.RemoteApplied = first.Root, first.Applied
	if bytes.Equal(first.Root[:], localRoot) {
		return nil, true, nil
	}
	if len(first.Pages) != len(top) {
		return nil, false, fmt.Errorf("merkle diff: %w: round 1 answered %d pages of %d", ErrCorrupt, len(first.Pages), len(top))
	}
	// The level-2 pages give the remote hashes of level Depth-1 nodes.
	local.mu.Lock()
	defer local.mu.Unlock()
	local.refresh()
	base := len(top) - levelNodes[Depth-2]
	for i := range levelNodes[Depth-2] {
		p := &first.Pages[base+i]
		for j := range Fanout {
			id := uint32(i*Fanout + j)
			if p[j] != local.nodes[Depth-1][id] {
				diffNodes = append(diffNodes, id)
			}
		}
	}
	return diffNodes, false, nil
}

// compareNodes is round 2: the pages of the differing level Depth-1 nodes. It
// returns the buckets whose hashes differ.
func (res *DiffResult) compareNodes(ctx context.Context, local *Index, remote Source, diffNodes []uint32, opts DiffOptions) ([]uint32, error) {
	var reqs []*Request
	for c := range slices.Chunk(diffNodes, opts.MaxPagesPerRequest) {
		r := &Request{}
		for _, id := range c {
			r.Pages = append(r.Pages, PageRef{Level: Depth - 1, Index: id})
		}
		reqs = append(reqs, r)
	}
	if len(reqs) == 0 {
		return nil, nil
	}
	resps, err := res.round(ctx, remote, reqs, opts.Parallel)
	if err != nil {
		return nil, err
	}
	var diffBuckets []uint32
	local.mu.Lock()
	defer local.mu.Unlock()
	local.refresh()
	for k, r := range reqs {
		if len(resps[k].Pages) != len(r.Pages) {
			return nil, fmt.Errorf("merkle diff: %w: round 2 answered %d pages of %d", ErrCorrupt, len(resps[k].Pages), len(r.Pages))
		}
		for i, ref := range r.Pages {
			for j := range Fanout {
				b := ref.Index*Fanout + uint32(j)
				if resps[k].Pages[i][j] != local.buckets[b].hash {
					diffBuckets = append(diffBuckets, b)
				}
			}
		}
	}
	return diffBuckets, nil
}

// compareBuckets is round 3: the listings of the differing buckets, compared
// with the local ones into res.Added, Changed and Deleted.
func (res *DiffResult) compareBuckets(ctx context.Context, local *Index, remote Source, diffBuckets []uint32, opts DiffOptions) error {
	var reqs []*Request
	for c := range slices.Chunk(diffBuckets, opts.MaxBucketsPerRequest) {
		reqs = append(reqs, &Request{Buckets: slices.Clone(c)})
	}
	if len(reqs) == 0 {
		return nil
	}
	resps, err := res.round(ctx, remote, reqs, opts.Parallel)
	if err != nil {
		return err
	}
	for k, r := range reqs {
		if len(resps[k].Buckets) != len(r.Buckets) {
			return fmt.Errorf("merkle diff: %w: round 3 answered %d buckets of %d", ErrCorrupt, len(resps[k].Buckets), len(r.Buckets))
		}
		for i, b := range r.Buckets {
			if resps[k].Buckets[i].Bucket != b {
				return fmt.Errorf("merkle diff: %w: round 3 answered bucket %d for %d", ErrCorrupt, resps[k].Buckets[i].Bucket, b)
			}
			mine, err := local.BucketItems(ctx, b)
			if err != nil {
				return fmt.Errorf("merkle diff: list local bucket %04x: %w", b, err)
			}
			a, c, d := DiffItems(mine, resps[k].Buckets[i].Items)
			res.Added = append(res.Added, a...)
			res.Changed = append(res.Changed, c...)
			res.Deleted = append(res.Deleted, d...)
		}
	}
	return nil
}

// round sends reqs concurrently (at most parallel at a time) and decodes the
// responses, in order.
func (res *DiffResult) round(ctx context.Context, remote Source, reqs []*Request, parallel int) ([]*Response, error) {
	res.Rounds++
	res.Requests += len(reqs)
	out := make([]*Response, len(reqs))
	errs := make([]error, len(reqs))
	sizes := make([][2]int, len(reqs))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			data := EncodeRequest(r)
			raw, err := remote.Fetch(ctx, data)
			if err != nil {
				errs[i] = fmt.Errorf("merkle diff: round %d request %d: %w", res.Rounds, i, err)
				return
			}
			sizes[i] = [2]int{len(data), len(raw)}
			out[i], errs[i] = DecodeResponse(raw)
		})
	}
	wg.Wait()
	for i := range reqs {
		res.BytesSent += int64(sizes[i][0])
		res.BytesReceived += int64(sizes[i][1])
		if errs[i] != nil {
			return nil, errs[i]
		}
	}
	return out, nil
}

// DiffItems compares one bucket's items: added are keys only in remote,
// changed keys in both with different value hashes, deleted keys only in
// local.
func DiffItems(local, remote []Item) (added, changed, deleted []string) {
	mine := make(map[string][ValueHashSize]byte, len(local))
	for _, it := range local {
		mine[it.Key] = it.ValueHash
	}
	for _, it := range remote {
		vh, ok := mine[it.Key]
		switch {
		case !ok:
			added = append(added, it.Key)
		case vh != it.ValueHash:
			changed = append(changed, it.Key)
		}
		delete(mine, it.Key)
	}
	for k := range mine {
		deleted = append(deleted, k)
	}
	return added, changed, deleted
}

package kv

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A key's metadata is read and written on every KV v2 write: through
// encoding/json, decoding and encoding it were two fifths of a write's CPU
// on the primary (coffer bench -profile, ten versions kept). encodeMeta and
// decodeMeta do the same by hand, for the one layout json.Marshal writes:
// encodeMeta's output is json.Marshal's, byte for byte, and decodeMeta
// hands anything else (a string with escapes, other spacing, another field
// order, a time json would refuse) to json.Unmarshal. The stored format
// does not change: the record is the JSON of keyMeta, as before.

// encodeMeta is json.Marshal(m).
func encodeMeta(m *keyMeta) ([]byte, error) {
	b := make([]byte, 0, 256+96*len(m.Versions))
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, int64(m.V), 10)
	b = append(b, `,"key":`...)
	b = appendString(b, m.Key)
	b = append(b, `,"created_time":`...)
	b, ok := appendTime(b, m.CreatedTime)
	b = append(b, `,"updated_time":`...)
	b, ok2 := appendTime(b, m.UpdatedTime)
	if !ok || !ok2 {
		return json.Marshal(m) // its error: a time JSON cannot hold
	}
	b = append(b, `,"current_version":`...)
	b = strconv.AppendUint(b, m.CurrentVersion, 10)
	b = append(b, `,"oldest_version":`...)
	b = strconv.AppendUint(b, m.OldestVersion, 10)
	b = append(b, `,"max_versions":`...)
	b = strconv.AppendUint(b, uint64(m.MaxVersions), 10)
	b = append(b, `,"cas_required":`...)
	b = strconv.AppendBool(b, m.CASRequired)
	b = append(b, `,"delete_version_after_ns":`...)
	b = strconv.AppendInt(b, int64(m.DeleteVersionAfter), 10)
	if len(m.CustomMetadata) > 0 {
		b = append(b, `,"custom_metadata":{`...)
		for i, k := range slices.Sorted(maps.Keys(m.CustomMetadata)) {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(appendString(b, k), ':')
			b = appendString(b, m.CustomMetadata[k])
		}
		b = append(b, '}')
	}
	b = append(b, `,"versions":`...)
	if m.Versions == nil {
		return append(b, "null}"...), nil
	}
	// json.Marshal sorts integer keys as the strings they become.
	type version struct {
		key string
		vm  *versionMeta
	}
	vs := make([]version, 0, len(m.Versions))
	for n, vm := range m.Versions {
		vs = append(vs, version{strconv.FormatUint(n, 10), vm})
	}
	slices.SortFunc(vs, func(a, b version) int { return strings.Compare(a.key, b.key) })
	b = append(b, '{')
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(append(append(b, '"'), v.key...), `":`...)
		vm := v.vm
		if vm == nil {
			b = append(b, "null"...)
			continue
		}
		b = append(b, `{"created_time":`...)
		if b, ok = appendTime(b, vm.CreatedTime); !ok {
			return json.Marshal(m)
		}
		if vm.DeletionTime != nil {
			b = append(b, `,"deletion_time":`...)
			if b, ok = appendTime(b, *vm.DeletionTime); !ok {
				return json.Marshal(m)
			}
		}
		b = append(b, `,"destroyed":`...)
		b = append(strconv.AppendBool(b, vm.Destroyed), '}')
	}
	return append(b, "}}"...), nil
}

// appendString appends s as json.Marshal writes it: as it is when it holds
// nothing to escape, else through json.Marshal.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	return append(append(append(b, '"'), s...), '"')
}

// appendTime appends t as time.Time's MarshalJSON does; false when that
// would fail (a year outside 0-9999, an offset of a day or more).
func appendTime(b []byte, t time.Time) ([]byte, bool) {
	if y := t.Year(); y < 0 || y > 9999 {
		return b, false
	}
	if _, off := t.Zone(); off <= -24*3600 || off >= 24*3600 {
		return b, false
	}
	b = append(b, '"')
	return append(t.AppendFormat(b, time.RFC3339Nano), '"'), true
}

// decodeMeta is json.Unmarshal(raw, m), for m zero.
func decodeMeta(raw []byte, m *keyMeta) error {
	if fastMeta(raw, m) {
		return nil
	}
	*m = keyMeta{}
	return json.Unmarshal(raw, m)
}

// fastMeta decodes the layout encodeMeta writes; false (m partly filled)
// at the first byte it does not expect.
func fastMeta(raw []byte, m *keyMeta) bool {
	c := cursor{b: raw}
	var v int64
	ok := c.lit(`{"v":`) && c.int(&v) && c.lit(`,"key":`) && c.str(&m.Key) &&
		c.lit(`,"created_time":`) && c.time(&m.CreatedTime) &&
		c.lit(`,"updated_time":`) && c.time(&m.UpdatedTime) &&
		c.lit(`,"current_version":`) && c.uint(&m.CurrentVersion) &&
		c.lit(`,"oldest_version":`) && c.uint(&m.OldestVersion)
	var maxv uint64
	var dva int64
	ok = ok && c.lit(`,"max_versions":`) && c.uint(&maxv) && maxv <= 1<<32-1 &&
		c.lit(`,"cas_required":`) && c.bool(&m.CASRequired) &&
		c.lit(`,"delete_version_after_ns":`) && c.int(&dva)
	if !ok || v != int64(int(v)) {
		return false
	}
	m.V, m.MaxVersions, m.DeleteVersionAfter = int(v), uint32(maxv), time.Duration(dva)
	if c.lit(`,"custom_metadata":{`) {
		m.CustomMetadata = map[string]string{}
		for first := true; !c.lit("}"); first = false {
			var k, val string
			if (!first && !c.lit(",")) || !c.str(&k) || !c.lit(":") || !c.str(&val) {
				return false
			}
			m.CustomMetadata[k] = val
		}
	}
	if !c.lit(`,"versions":`) {
		return false
	}
	if c.lit("null}") {
		return c.end()
	}
	if !c.lit("{") {
		return false
	}
	m.Versions = map[uint64]*versionMeta{}
	for first := true; !c.lit("}"); first = false {
		var n uint64
		if (!first && !c.lit(",")) || !c.lit(`"`) || !c.uint(&n) || !c.lit(`":`) {
			return false
		}
		if c.lit("null") {
			m.Versions[n] = nil
			continue
		}
		vm := &versionMeta{}
		if !c.lit(`{"created_time":`) || !c.time(&vm.CreatedTime) {
			return false
		}
		switch {
		case c.lit(`,"deletion_time":null`):
			// json.Unmarshal leaves a pointer nil on null: not deleted.
		case c.lit(`,"deletion_time":`):
			vm.DeletionTime = new(time.Time)
			if !c.time(vm.DeletionTime) {
				return false
			}
		}
		if !c.lit(`,"destroyed":`) || !c.bool(&vm.Destroyed) || !c.lit("}") {
			return false
		}
		m.Versions[n] = vm
	}
	return c.lit("}") && c.end()
}

// cursor reads raw from its start; every method consumes what it matched
// and reports whether it did.
type cursor struct{ b []byte }

func (c *cursor) lit(s string) bool {
	if !bytes.HasPrefix(c.b, []byte(s)) {
		return false
	}
	c.b = c.b[len(s):]
	return true
}

func (c *cursor) end() bool { return len(c.b) == 0 }

// digits returns the run of decimal digits at the cursor, in JSON's form
// (no leading zero but "0" itself), and consumes it.
func (c *cursor) digits() (string, bool) {
	n := 0
	for n < len(c.b) && c.b[n] >= '0' && c.b[n] <= '9' {
		n++
	}
	if n == 0 || (n > 1 && c.b[0] == '0') || (n < len(c.b) && (c.b[n] == '.' || c.b[n] == 'e' || c.b[n] == 'E')) {
		return "", false
	}
	s := string(c.b[:n])
	c.b = c.b[n:]
	return s, true
}

func (c *cursor) uint(v *uint64) bool {
	s, ok := c.digits()
	if !ok {
		return false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	*v = n
	return err == nil
}

func (c *cursor) int(v *int64) bool {
	neg := c.lit("-")
	s, ok := c.digits()
	if !ok {
		return false
	}
	if neg {
		s = "-" + s
	}
	n, err := strconv.ParseInt(s, 10, 64)
	*v = n
	return err == nil
}

func (c *cursor) bool(v *bool) bool {
	switch {
	case c.lit("true"):
		*v = true
	case c.lit("false"):
		*v = false
	default:
		return false
	}
	return true
}

// str reads a string holding nothing escaped and no byte appendString
// would escape: anything else is json.Unmarshal's to read.
func (c *cursor) str(v *string) bool {
	if !c.lit(`"`) {
		return false
	}
	for i, ch := range c.b {
		switch {
		case ch == '"':
			*v = string(c.b[:i])
			c.b = c.b[i+1:]
			return true
		case ch < 0x20 || ch > 0x7e || ch == '\\' || ch == '<' || ch == '>' || ch == '&':
			return false
		}
	}
	return false
}

// time reads a time as time.Time's UnmarshalJSON does.
func (c *cursor) time(t *time.Time) bool {
	i := bytes.IndexByte(c.b, '}')
	j := bytes.IndexByte(c.b, ',')
	if j < 0 || (i >= 0 && i < j) {
		j = i
	}
	if j < 0 {
		return false
	}
	if err := t.UnmarshalJSON(c.b[:j]); err != nil {
		return false
	}
	c.b = c.b[j:]
	return true
}

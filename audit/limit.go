package audit

import "fmt"

// The bound on the request data one audit entry carries.
//
// Every string and number of request data is logged as a 76-byte HMAC, and
// map keys are logged in clear, so a request's data can grow many times over
// in the log: 1 MiB of [0,0,...] was 41 MB of audit line. Request data with
// more than MaxRequestDataValues values (every map entry, slice element and
// scalar counts one), or with more than MaxRequestDataKeyBytes bytes of map
// keys, is left out of the entry: "request.data" is absent and
// "request.data_omitted" says how much there was. The request itself is
// served or refused as it would be; only its audit line is smaller.
// Response data is not bounded: the server produced it from what
// authenticated clients stored (elide_list_responses shortens large lists).
//
// These numbers are part of the log format's contract: raising them is
// safe, lowering them drops data from lines that carried it before.
const (
	MaxRequestDataValues   = 4096
	MaxRequestDataKeyBytes = 64 << 10
)

// dataSize counts the values and map key bytes of request data; its add
// methods stop and return false as soon as either bound is passed, so
// measuring costs no more than the bounds.
type dataSize struct {
	values, keyBytes int
}

func (s *dataSize) over() bool {
	return s.values > MaxRequestDataValues || s.keyBytes > MaxRequestDataKeyBytes
}

func (s *dataSize) addMap(m map[string]any) bool {
	for k, v := range m {
		s.keyBytes += len(k)
		if !s.add(v) {
			return false
		}
	}
	return true
}

// add counts v and what it holds; false once over a bound.
func (s *dataSize) add(v any) bool {
	s.values++
	if s.over() {
		return false
	}
	switch x := v.(type) {
	case map[string]any:
		return s.addMap(x)
	case []any:
		for _, e := range x {
			if !s.add(e) {
				return false
			}
		}
	case []string:
		s.values += len(x)
	case map[string]string:
		for k := range x {
			s.keyBytes += len(k)
		}
		s.values += len(x)
	case []map[string]any:
		for _, e := range x {
			if !s.add(e) {
				return false
			}
		}
	}
	return !s.over()
}

// omitRequestData reports whether d is over the bounds, and the text
// request.data_omitted then carries.
func omitRequestData(d map[string]any) (string, bool) {
	var s dataSize
	if s.addMap(d) && !s.over() {
		return "", false
	}
	return fmt.Sprintf("the request data holds more than %d values or %d bytes of keys, the most an audit entry carries: it was not logged",
		MaxRequestDataValues, MaxRequestDataKeyBytes), true
}

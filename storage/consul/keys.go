package consul

import (
	"fmt"
	"strings"
)

// The encoding of a storage key into a Consul key, part of the on-disk format:
// changing it strands every key already stored.
//
// A storage key is any non-empty byte string without NUL; a Consul key travels
// in a URL path (where Go's HTTP server cleans "//" and "/./") and in JSON
// (where bytes that are not UTF-8 are replaced). So each byte is kept as is,
// or written %XX (two upper-case hex digits) when it is:
//
//   - '%', a byte below 0x20, 0x7f, or any byte from 0x80 (non-ASCII, so
//     UTF-8 text is escaped byte by byte too);
//   - '/' or '.' right after a '/' or at the start of the key (the Consul key
//     is path + encoded key, and path ends with '/').
//
// Each byte's encoding depends only on the bytes before it, so the encoding of
// a prefix is a prefix of the encoding of every key that starts with it, and a
// '/' in a Consul key is always a '/' of the storage key: Consul's prefix
// listing with "/" as separator lists exactly the storage folders.
func encodeKey(key string) string {
	var b strings.Builder
	prevSlash := true
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c == '%' || c < 0x20 || c >= 0x7f || (prevSlash && (c == '/' || c == '.')) {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
		prevSlash = c == '/'
	}
	return b.String()
}

// decodeKey reverses encodeKey; a malformed escape is an error (a key that
// Coffer did not write).
func decodeKey(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) || unhex(s[i+1]) < 0 || unhex(s[i+2]) < 0 {
			return "", fmt.Errorf("consul key %q: malformed escape at byte %d", s, i)
		}
		b.WriteByte(byte(unhex(s[i+1])<<4 | unhex(s[i+2])))
		i += 2
	}
	return b.String(), nil
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

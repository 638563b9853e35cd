package core

import (
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/cofferhq/coffer/core/acl"
	"github.com/cofferhq/coffer/logical"
)

// One path for the router, the ACL, the sudo check and the backend.
//
// A request path reaches four readers: the router picks the mount by prefix,
// the ACL and RequiresSudo match it against policies, and the backend finds
// its endpoint and its key in it. If any of them reads the path differently
// from the others, a caller denied one spelling can use another: before this
// normalization, "sys/policies/acl/admin/" was matched by the ACL with its
// slash (no deny rule) and served by the system backend without it.
// HandleRequest therefore computes one canonical path first and hands that
// same string to all four. NormalizePath does the generic part; a backend
// that reads names other than byte for byte (the system backend lowercases
// policy names) also implements pathCanonicalizer.

// NormalizePath returns the canonical form of a request path (the part after
// /v1/) for op, or a 400 error saying why the path is refused:
//
//   - a path that is not valid UTF-8, or that holds a NUL byte, is refused:
//     storage keys are built from paths and travel as JSON strings between
//     clusters, where invalid UTF-8 would come back altered and NUL is
//     refused by some storage backends;
//   - a ".." segment is refused: Coffer resolves no relative paths;
//   - empty segments (a leading slash, "a//b") and "." segments are dropped;
//   - a list keeps one trailing slash (Vault's form of a list path, which the
//     ACL's list rule expects); every other operation has none.
func NormalizePath(p string, op logical.Operation) (string, error) {
	if !utf8.ValidString(p) {
		i := firstInvalidUTF8(p)
		return "", logical.Errorf(http.StatusBadRequest,
			"the request path is not valid UTF-8 (byte 0x%02x at offset %d): paths and keys must be UTF-8 text; percent-encode the UTF-8 bytes of the name instead", p[i], i)
	}
	if i := strings.IndexByte(p, 0); i >= 0 {
		return "", logical.Errorf(http.StatusBadRequest,
			"the request path holds a NUL byte (%%00) at offset %d: paths and keys cannot contain NUL; remove it", i)
	}
	segs := strings.Split(p, "/")
	out := make([]string, 0, len(segs))
	for _, s := range segs {
		switch s {
		case "", ".":
			continue
		case "..":
			return "", logical.Errorf(http.StatusBadRequest,
				"the request path has a \"..\" segment: Coffer does not resolve relative paths; send the full path without \"..\"")
		}
		out = append(out, s)
	}
	clean := strings.Join(out, "/")
	if op == logical.ListOperation && clean != "" {
		clean += "/"
	}
	return clean, nil
}

func firstInvalidUTF8(s string) int {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return i
			}
		}
	}
	return 0
}

// pathCanonicalizer is implemented by a backend that does not read every
// name in its paths byte for byte. CanonicalPath returns the path below the
// mount (already normalized) as the backend will read it, or an error to
// refuse it; core then authorizes and routes that canonical path.
type pathCanonicalizer interface {
	CanonicalPath(rel string) (string, error)
}

// canonical applies the backend's canonical form to rel, the part of path
// below the mount, if the backend has one; it returns both again.
func canonical(mb *mountedBackend, path, rel string) (string, string, error) {
	pc, ok := mb.backend.(pathCanonicalizer)
	if !ok {
		return path, rel, nil
	}
	c, err := pc.CanonicalPath(rel)
	if err != nil || c == rel {
		return path, rel, err
	}
	return strings.TrimSuffix(path, rel) + c, c, nil
}

// CanonicalPath is the system backend's form of a path: policy names are
// case-insensitive (the policy store lowercases them), so their segment is
// lowercased here and the ACL sees the policy that will be written; mount and
// audit paths and policy names are trimmed of white space by the backend, so
// a segment with white space at either end is refused rather than trimmed
// behind the ACL's back.
func (s *systemBackend) CanonicalPath(rel string) (string, error) {
	for seg := range strings.SplitSeq(rel, "/") {
		if strings.TrimSpace(seg) != seg {
			return "", logical.Errorf(http.StatusBadRequest,
				"sys/%s: the path segment %q starts or ends with white space: remove it", rel, seg)
		}
	}
	for _, prefix := range []string{"policies/acl/", "policy/"} {
		if name, ok := strings.CutPrefix(rel, prefix); ok {
			return prefix + acl.NormalizeName(name), nil
		}
	}
	return rel, nil
}

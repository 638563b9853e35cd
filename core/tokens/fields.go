package tokens

import (
	"time"

	"github.com/cofferhq/coffer/logical"
)

// fields reads a request's parameters with logical's Field functions (which
// accept both JSON values and query-string strings, and name the field in
// their errors), and remembers which ones were read: parameters nobody read
// are reported as a warning, as Vault does.
type fields struct {
	raw  map[string]any
	seen map[string]bool
}

func newFields(raw map[string]any) *fields { return &fields{raw: raw, seen: map[string]bool{}} }

// unknown returns the warning naming the parameters nobody read, or "".
func (f *fields) unknown() string {
	var names []string
	for k := range f.raw {
		if !f.seen[k] {
			names = append(names, k)
		}
	}
	return logical.IgnoredFieldsWarning(names)
}

// read marks name as read and reads it with get.
func read[T any](f *fields, name string, get func(map[string]any, string) (T, bool, error)) (T, bool, error) {
	f.seen[name] = true
	return get(f.raw, name)
}

func (f *fields) str(name string) (string, error) {
	s, _, err := read(f, name, logical.FieldString)
	return s, err
}

// boolean reads a boolean; def when it is not given (or blank).
func (f *fields) boolean(name string, def bool) (bool, error) {
	b, ok, err := read(f, name, logical.FieldBool)
	if !ok {
		return def, nil
	}
	return b, err
}

func (f *fields) integer(name string) (int64, error) {
	n, _, err := read(f, name, logical.FieldInt)
	return n, err
}

// duration reads a duration and whether it was given (a blank string is not).
func (f *fields) duration(name string) (time.Duration, bool, error) {
	return read(f, name, logical.FieldDuration)
}

func (f *fields) strList(name string) ([]string, error) {
	l, _, err := read(f, name, logical.FieldStrings)
	return l, err
}

func (f *fields) strMap(name string) (map[string]string, error) {
	m, _, err := read(f, name, logical.FieldStringMap)
	return m, err
}

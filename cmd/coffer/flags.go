package main

// Flag types of the vault-compatible commands beyond the standard flag
// package's (durations with a days suffix, repeatable lists and k=v maps),
// and the optional flags some commands register.

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// durationFlag is a vault-style duration: "90s", "5m", "1d" or a bare
// number of seconds.
type durationFlag time.Duration

func (d *durationFlag) String() string {
	if d == nil {
		return ""
	}
	return time.Duration(*d).String()
}

func (d *durationFlag) Set(s string) error {
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = durationFlag(v)
	return nil
}

// parseDuration accepts Go durations, a "d" (days) suffix, and bare
// integers as seconds.
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	if strings.HasSuffix(s, "d") {
		n, err := strconv.ParseInt(strings.TrimSuffix(s, "d"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	return d, nil
}

// sliceFlag is a repeatable string flag; with split it also splits each
// value on commas (-policy=a,b -policy=c, -versions=1,2).
type sliceFlag struct {
	values []string
	split  bool
}

func (s *sliceFlag) String() string {
	if s == nil {
		return ""
	}
	return strings.Join(s.values, ",")
}

func (s *sliceFlag) Set(v string) error {
	if !s.split {
		s.values = append(s.values, v)
		return nil
	}
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			s.values = append(s.values, p)
		}
	}
	return nil
}

// mapFlag is a repeatable k=v flag (-custom-metadata=k=v, -options=k=v).
type mapFlag map[string]string

func (m mapFlag) String() string {
	keys := make([]string, 0, len(m))
	for k, v := range m {
		keys = append(keys, k+"="+v)
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

func (m mapFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not key=value", v)
	}
	m[k] = val
	return nil
}

// httpFlags registers -wrap-ttl (default VAULT_WRAP_TTL, which the api
// client honours anyway).
func (f *commandFlags) httpFlags() {
	f.Var((*durationFlag)(&f.wrapTTL), "wrap-ttl",
		"wrap the response in a cubbyhole token with this TTL (e.g. 5m); also VAULT_WRAP_TTL")
}

// fieldFlag registers -field.
func (f *commandFlags) fieldFlag() *string {
	return f.String("field", "", "print only this field, raw (no trailing newline when piped)")
}

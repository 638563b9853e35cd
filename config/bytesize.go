package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// byteUnits are the suffixes ParseByteSize accepts, matched case-insensitively:
// IEC units are powers of 1024, SI units powers of 1000.
var byteUnits = []struct {
	suffix string
	mult   int64
}{
	// Longest suffixes first, so "KiB" is not read as "B".
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"b", 1},
}

// ParseByteSize reads a size in bytes: a plain non-negative integer ("1048576")
// or a number with a unit ("512MiB", "1GiB", "1.5GB", "64 KiB"). IEC units
// (KiB, MiB, GiB, TiB) count in 1024s, SI units (KB, MB, GB, TB) in 1000s.
func ParseByteSize(s string) (int64, error) {
	in := strings.TrimSpace(s)
	if n, err := strconv.ParseInt(in, 10, 64); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("byte size %q is negative", s)
		}
		return n, nil
	}
	lower := strings.ToLower(in)
	for _, u := range byteUnits {
		num, ok := strings.CutSuffix(lower, u.suffix)
		if !ok {
			continue
		}
		num = strings.TrimSpace(num)
		f, err := strconv.ParseFloat(num, 64)
		if err != nil || num == "" || strings.ContainsAny(num, "eEnN") {
			break
		}
		if f < 0 {
			return 0, fmt.Errorf("byte size %q is negative", s)
		}
		v := f * float64(u.mult)
		if v >= math.MaxInt64 {
			return 0, fmt.Errorf("byte size %q is too large", s)
		}
		if v != math.Trunc(v) {
			return 0, fmt.Errorf("byte size %q is not a whole number of bytes", s)
		}
		return int64(v), nil
	}
	return 0, fmt.Errorf("byte size %q: use a number of bytes or a number with a unit: B, KiB, MiB, GiB, TiB (1024s) or KB, MB, GB, TB (1000s), such as 512MiB", s)
}

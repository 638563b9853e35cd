package tokens

import (
	"fmt"
	"time"
)

// ttlRequest is what a TTL is computed from, at creation (Now equals
// Created, Increment 0) or at a renewal.
type ttlRequest struct {
	Now, Created   time.Time
	Increment      time.Duration // asked for at renewal; 0: the token's own TTL
	Base           time.Duration // the token's TTL (creation TTL; 0: system default)
	Period         time.Duration
	ExplicitMaxTTL time.Duration
}

// computeTTL applies Vault's lease rules (framework.CalculateTTL) to a
// token:
//
//   - A periodic token gets its period whatever the increment asked for,
//     bounded only by its explicit max TTL counted from creation.
//   - Otherwise the TTL is the increment, else the token's own TTL, else the
//     system default, bounded by the smaller of the system max TTL and the
//     explicit max TTL, counted from creation. A capped TTL comes with a
//     warning; a token already past its max cannot be extended.
func (o Options) computeTTL(r ttlRequest) (time.Duration, []string, error) {
	if r.Period > 0 {
		ttl := r.Period
		if r.ExplicitMaxTTL > 0 {
			left := r.Created.Add(r.ExplicitMaxTTL).Sub(r.Now)
			if left <= 0 {
				return 0, nil, fmt.Errorf("%w: the token is past its explicit max TTL of %s; create a new token", ErrPastMaxTTL, r.ExplicitMaxTTL)
			}
			if ttl > left {
				return left, []string{fmt.Sprintf("period of %s exceeded the explicit max TTL of %s; TTL value is capped accordingly", r.Period, r.ExplicitMaxTTL)}, nil
			}
		}
		return ttl, nil, nil
	}

	maxTTL := o.MaxTTL
	if r.ExplicitMaxTTL > 0 && r.ExplicitMaxTTL < maxTTL {
		maxTTL = r.ExplicitMaxTTL
	}
	var ttl time.Duration
	switch {
	case r.Increment > 0:
		ttl = r.Increment
	case r.Base > 0:
		ttl = r.Base
	default:
		ttl = o.DefaultTTL
	}
	left := r.Created.Add(maxTTL).Sub(r.Now)
	if left <= 0 {
		return 0, nil, fmt.Errorf("%w: the token is past its max TTL of %s; create a new token", ErrPastMaxTTL, maxTTL)
	}
	if ttl > left {
		return left, []string{fmt.Sprintf("TTL of %q exceeded the effective max_ttl of %q; TTL value is capped accordingly", ttl.String(), left.String())}, nil
	}
	return ttl, nil, nil
}

package tokenfields

import (
	"reflect"
	"slices"
	"time"

	"github.com/cofferhq/coffer/logical"
)

// Settings are the token fields of a user or role as stored. A method
// embeds Settings in its record, so the fields sit at the record's top
// level ("token_policies", "token_ttl_ns"...).
type Settings struct {
	// TokenPolicies are sanitized (see SanitizePolicies), without the
	// "default" that LoginPolicies adds.
	TokenPolicies []string `json:"token_policies"`
	// LegacyPolicies records that the policies were last set through the
	// deprecated "policies" field, which Data then echoes as Vault does.
	LegacyPolicies      bool          `json:"legacy_policies,omitempty"`
	TokenTTL            time.Duration `json:"token_ttl_ns"`
	TokenMaxTTL         time.Duration `json:"token_max_ttl_ns"`
	TokenExplicitMaxTTL time.Duration `json:"token_explicit_max_ttl_ns"`
	TokenPeriod         time.Duration `json:"token_period_ns"`
	// LegacyPeriod records that the period was last set through the
	// deprecated "period" field, which Data then echoes as Vault does.
	LegacyPeriod         bool     `json:"legacy_period,omitempty"`
	TokenNumUses         int      `json:"token_num_uses"`
	TokenNoDefaultPolicy bool     `json:"token_no_default_policy"`
	TokenType            string   `json:"token_type"`
	TokenBoundCIDRs      []string `json:"token_bound_cidrs"`
}

// Names are the current names of the token fields, for a method's set of
// accepted fields. The deprecated aliases (policies, ttl, max_ttl, period,
// bound_cidrs) are each method's choice to add.
var Names = []string{
	"token_policies", "token_ttl", "token_max_ttl", "token_explicit_max_ttl",
	"token_period", "token_num_uses", "token_no_default_policy", "token_type",
	"token_bound_cidrs",
}

// Update is a parsed write of the token fields: nil fields were not given
// and keep their stored value.
type Update struct {
	Policies       *[]string
	LegacyPolicies bool
	TTL            *time.Duration
	MaxTTL         *time.Duration
	ExplicitMaxTTL *time.Duration
	Period         *time.Duration
	LegacyPeriod   bool
	NumUses        *int
	NoDefault      *bool
	TokenType      *string
	CIDRs          *[]string
}

// Parse reads the token fields through get, which returns a field's raw
// value and whether it was given. get must return only the fields the
// endpoint accepts: an alias it never returns is not accepted.
func Parse(get func(string) (any, bool)) (*Update, error) {
	u := &Update{}
	var err error
	if u.Policies, u.LegacyPolicies, err = aliased(get, "token_policies", "policies", ParsePolicies); err != nil {
		return nil, err
	}
	if u.TTL, _, err = aliased(get, "token_ttl", "ttl", ParseTTL); err != nil {
		return nil, err
	}
	if u.MaxTTL, _, err = aliased(get, "token_max_ttl", "max_ttl", ParseTTL); err != nil {
		return nil, err
	}
	if u.CIDRs, _, err = aliased(get, "token_bound_cidrs", "bound_cidrs", ParseCIDRs); err != nil {
		return nil, err
	}
	if u.ExplicitMaxTTL, err = Optional(get, "token_explicit_max_ttl", ParseTTL); err != nil {
		return nil, err
	}
	if u.Period, u.LegacyPeriod, err = aliased(get, "token_period", "period", ParseTTL); err != nil {
		return nil, err
	}
	if u.NumUses, err = Optional(get, "token_num_uses", ParseNumUses); err != nil {
		return nil, err
	}
	if u.NoDefault, err = Optional(get, "token_no_default_policy", logical.ParseBool); err != nil {
		return nil, err
	}
	if u.TokenType, err = Optional(get, "token_type", ParseTokenType); err != nil {
		return nil, err
	}
	return u, nil
}

// Optional parses field with parse when get reports it given; nil when not.
func Optional[T any](get func(string) (any, bool), field string, parse func(string, any) (T, error)) (*T, error) {
	v, ok := get(field)
	if !ok {
		return nil, nil
	}
	t, err := parse(field, v)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// aliased parses a token field and its deprecated alias. Both may be given
// only with the same value. legacy reports that the alias was given.
func aliased[T any](get func(string) (any, bool), field, alias string, parse func(string, any) (T, error)) (val *T, legacy bool, err error) {
	cur, err := Optional(get, field, parse)
	if err != nil {
		return nil, false, err
	}
	old, err := Optional(get, alias, parse)
	if err != nil {
		return nil, false, err
	}
	switch {
	case old == nil:
		return cur, false, nil
	case cur == nil:
		return old, true, nil
	case !reflect.DeepEqual(*cur, *old):
		return nil, false, logical.InvalidRequest("%s and %s differ: give only %s (%s is its deprecated alias)", field, alias, field, alias)
	}
	return cur, true, nil
}

// Apply merges the update into stored settings.
func (up *Update) Apply(s *Settings) {
	if up.Policies != nil {
		s.TokenPolicies = *up.Policies
		s.LegacyPolicies = up.LegacyPolicies
	}
	set := func(dst *time.Duration, src *time.Duration) {
		if src != nil {
			*dst = *src
		}
	}
	set(&s.TokenTTL, up.TTL)
	set(&s.TokenMaxTTL, up.MaxTTL)
	set(&s.TokenExplicitMaxTTL, up.ExplicitMaxTTL)
	if up.Period != nil {
		s.TokenPeriod = *up.Period
		s.LegacyPeriod = up.LegacyPeriod
	}
	if up.NumUses != nil {
		s.TokenNumUses = *up.NumUses
	}
	if up.NoDefault != nil {
		s.TokenNoDefaultPolicy = *up.NoDefault
	}
	if up.TokenType != nil {
		s.TokenType = *up.TokenType
	}
	if up.CIDRs != nil {
		s.TokenBoundCIDRs = *up.CIDRs
	}
}

// Check validates the merged settings: token_ttl may not exceed a non-zero
// token_max_ttl.
func (s *Settings) Check() error {
	if s.TokenMaxTTL != 0 && s.TokenTTL > s.TokenMaxTTL {
		return logical.InvalidRequest("token_ttl (%s) is greater than token_max_ttl (%s): lower token_ttl or raise token_max_ttl", s.TokenTTL, s.TokenMaxTTL)
	}
	return nil
}

// Data is the read response of the token fields in Vault's shape:
// durations in seconds, lists never null, and the deprecated "policies" and
// "period" echoed when they were last set through those names.
func (s *Settings) Data() map[string]any {
	seconds := func(d time.Duration) int64 { return int64(d / time.Second) }
	policies := slices.Clone(s.TokenPolicies)
	if policies == nil {
		policies = []string{}
	}
	cidrs := slices.Clone(s.TokenBoundCIDRs)
	if cidrs == nil {
		cidrs = []string{}
	}
	tokenType := s.TokenType
	if tokenType == "" {
		tokenType = "default"
	}
	data := map[string]any{
		"token_policies":          policies,
		"token_ttl":               seconds(s.TokenTTL),
		"token_max_ttl":           seconds(s.TokenMaxTTL),
		"token_explicit_max_ttl":  seconds(s.TokenExplicitMaxTTL),
		"token_period":            seconds(s.TokenPeriod),
		"token_num_uses":          s.TokenNumUses,
		"token_no_default_policy": s.TokenNoDefaultPolicy,
		"token_type":              tokenType,
		"token_bound_cidrs":       cidrs,
	}
	if s.LegacyPolicies {
		data["policies"] = slices.Clone(policies)
	}
	if s.LegacyPeriod {
		data["period"] = seconds(s.TokenPeriod)
	}
	return data
}

// LoginPolicies are the policies plus "default", unless
// token_no_default_policy is set or they hold root (which stands alone, as
// in Vault).
func (s *Settings) LoginPolicies() []string {
	p := slices.Clone(s.TokenPolicies)
	if p == nil {
		p = []string{}
	}
	if !s.TokenNoDefaultPolicy && !slices.Contains(p, "root") && !slices.Contains(p, "default") {
		p = append(p, "default")
		slices.Sort(p)
	}
	return p
}

// ExplicitMaxTTL folds Vault's token_max_ttl (a cap on renewals that the
// Auth contract has no field for) into the explicit maximum: the smaller
// non-zero of the two. A periodic token keeps only token_explicit_max_ttl,
// since Vault lets a periodic token renew past token_max_ttl.
func (s *Settings) ExplicitMaxTTL() time.Duration {
	d := s.TokenExplicitMaxTTL
	if s.TokenPeriod > 0 {
		return d
	}
	if m := s.TokenMaxTTL; m > 0 && (d == 0 || m < d) {
		d = m
	}
	return d
}

// Auth is the logical.Auth of a successful login with these settings: the
// router creates a renewable service token from it.
func (s *Settings) Auth(metadata map[string]string, displayName string) *logical.Auth {
	policies := s.LoginPolicies()
	return &logical.Auth{
		Policies:       policies,
		TokenPolicies:  slices.Clone(policies),
		Metadata:       metadata,
		DisplayName:    displayName,
		TTL:            s.TokenTTL,
		ExplicitMaxTTL: s.ExplicitMaxTTL(),
		Period:         s.TokenPeriod,
		NumUses:        s.TokenNumUses,
		Renewable:      true,
		TokenType:      "service",
	}
}

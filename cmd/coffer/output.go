package main

// The vault CLI's output layouts: aligned columns and Key/Value tables,
// durations in human units, secrets and maps as a table or JSON (per
// -format), list responses, and the "=" section headers of kv get and put.

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// columns lays rows out like the vault CLI (columnize): cells trimmed,
// empty cells shown as "n/a", columns separated by four spaces, the last
// column unpadded.
func columns(rows [][]string) string {
	widths := []int{}
	norm := make([][]string, len(rows))
	for i, r := range rows {
		norm[i] = make([]string, len(r))
		for j, cell := range r {
			cell = strings.TrimSpace(cell)
			if cell == "" {
				cell = "n/a"
			}
			norm[i][j] = cell
			if j >= len(widths) {
				widths = append(widths, 0)
			}
			widths[j] = max(widths[j], len(cell))
		}
	}
	var b strings.Builder
	for _, r := range norm {
		var line strings.Builder
		for j, cell := range r {
			if j == len(r)-1 {
				line.WriteString(cell)
				break
			}
			line.WriteString(cell)
			line.WriteString(strings.Repeat(" ", widths[j]-len(cell)+4))
		}
		b.WriteString(strings.TrimRight(line.String(), " "))
		b.WriteByte('\n')
	}
	return b.String()
}

// table is columns with a header row underlined by dashes.
func table(header []string, rows [][]string) string {
	under := make([]string, len(header))
	for i, h := range header {
		under[i] = strings.Repeat("-", len(h))
	}
	return columns(append([][]string{header, under}, rows...))
}

// looksLikeDuration: keys whose integer values the vault CLI prints as
// durations.
func looksLikeDuration(k string) bool {
	return k == "period" || strings.HasSuffix(k, "_period") ||
		k == "ttl" || strings.HasSuffix(k, "_ttl") ||
		k == "duration" || strings.HasSuffix(k, "_duration") ||
		k == "lease_max" || k == "ttl_max"
}

// humanDuration prints d without the zero tails ("1h", "1h30s", "5m").
func humanDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if i := strings.Index(s, "h0m"); i > 0 {
		s = s[:i+1] + s[i+3:]
	}
	return s
}

// humanSeconds renders an integer number of seconds as a duration and
// leaves other values alone.
func humanSeconds(v any) any {
	switch v := v.(type) {
	case int:
		return humanDuration(time.Duration(v) * time.Second)
	case int64:
		return humanDuration(time.Duration(v) * time.Second)
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return humanDuration(time.Duration(n) * time.Second)
		}
	}
	return v
}

// mapRows is a map as sorted Key/Value rows.
func mapRows(m map[string]any) [][]string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	rows := make([][]string, 0, len(keys))
	for _, k := range keys {
		v := m[k]
		if looksLikeDuration(k) {
			v = humanSeconds(v)
		}
		rows = append(rows, []string{k, fmt.Sprintf("%v", v)})
	}
	return rows
}

// secretRows is the Key/Value table of a secret, as the vault CLI builds it:
// lease, auth, wrap info, then the data sorted by key.
func secretRows(s *api.Secret) [][]string {
	var rows [][]string
	add := func(k string, v any) { rows = append(rows, []string{k, fmt.Sprintf("%v", v)}) }
	if s.LeaseDuration > 0 {
		if s.LeaseID != "" {
			add("lease_id", s.LeaseID)
			add("lease_duration", humanSeconds(s.LeaseDuration))
			add("lease_renewable", s.Renewable)
		} else {
			add("refresh_interval", humanSeconds(s.LeaseDuration))
		}
	}
	if a := s.Auth; a != nil {
		add("token", a.ClientToken)
		add("token_accessor", a.Accessor)
		if a.LeaseDuration == 0 {
			add("token_duration", "∞")
		} else {
			add("token_duration", humanSeconds(a.LeaseDuration))
		}
		add("token_renewable", a.Renewable)
		add("token_policies", fmt.Sprintf("%q", a.TokenPolicies))
		add("identity_policies", fmt.Sprintf("%q", a.IdentityPolicies))
		add("policies", fmt.Sprintf("%q", a.Policies))
		metaKeys := make([]string, 0, len(a.Metadata))
		for k := range a.Metadata {
			metaKeys = append(metaKeys, k)
		}
		sort.Strings(metaKeys)
		for _, k := range metaKeys {
			add("token_meta_"+k, a.Metadata[k])
		}
	}
	if w := s.WrapInfo; w != nil {
		add("wrapping_token:", w.Token)
		add("wrapping_accessor:", w.Accessor)
		add("wrapping_token_ttl:", humanSeconds(w.TTL))
		add("wrapping_token_creation_time:", w.CreationTime.String())
		add("wrapping_token_creation_path:", w.CreationPath)
		if w.WrappedAccessor != "" {
			add("wrapped_accessor:", w.WrappedAccessor)
		}
	}
	return append(rows, mapRows(s.Data)...)
}

// printWarnings prints a secret's warnings to stderr (table format only).
func (f *commandFlags) printWarnings(s *api.Secret) {
	if s == nil || len(s.Warnings) == 0 {
		return
	}
	fmt.Fprintln(f.cli.stderr, "WARNING! The following warnings were returned from the server:")
	fmt.Fprintln(f.cli.stderr)
	for _, w := range s.Warnings {
		fmt.Fprintf(f.cli.stderr, "  * %s\n\n", w)
	}
}

// outputSecret prints a whole secret: its JSON, or the Key/Value table.
func (f *commandFlags) outputSecret(s *api.Secret) int {
	if f.format == "json" {
		return f.outputJSON(s)
	}
	if s == nil {
		return exitOK
	}
	f.printWarnings(s)
	rows := secretRows(s)
	if len(rows) > 0 {
		fmt.Fprint(f.cli.stdout, table([]string{"Key", "Value"}, rows))
	}
	return exitOK
}

// outputSecretField prints the secret, or only its field when field is set.
func (f *commandFlags) outputSecretField(s *api.Secret, field string) int {
	if field != "" {
		return f.printField(s, field)
	}
	return f.outputSecret(s)
}

// outputMap prints a map: its JSON, or the Key/Value table.
func (f *commandFlags) outputMap(m map[string]any) int {
	if f.format == "json" {
		return f.outputJSON(m)
	}
	if rows := mapRows(m); len(rows) > 0 {
		fmt.Fprint(f.cli.stdout, table([]string{"Key", "Value"}, rows))
	}
	return exitOK
}

func (f *commandFlags) outputJSON(v any) int {
	if err := printJSON(f.cli.stdout, v); err != nil {
		return f.cli.local("Error writing JSON output: %v", err)
	}
	return exitOK
}

// listKeys returns a list response's keys, ok false when it has none.
func listKeys(s *api.Secret) ([]string, bool) {
	if s == nil || s.Data == nil {
		return nil, false
	}
	raw, ok := s.Data["keys"].([]any)
	if !ok {
		return nil, false
	}
	keys := make([]string, 0, len(raw))
	for _, k := range raw {
		keys = append(keys, fmt.Sprint(k))
	}
	return keys, true
}

// outputList is the tail of `vault list` and `vault kv list`.
func (f *commandFlags) outputList(path string, s *api.Secret) int {
	if s != nil && s.WrapInfo != nil && s.WrapInfo.TTL != 0 {
		return f.outputSecret(s)
	}
	keys, ok := listKeys(s)
	if f.format == "json" {
		if !ok {
			f.outputJSON(map[string]any{})
			return exitRemote
		}
		return f.outputJSON(keys)
	}
	if s == nil || s.Data == nil {
		return f.cli.remote("No value found at %s", path)
	}
	if !ok {
		return f.cli.remote("No entries found at %s", path)
	}
	f.printWarnings(s)
	sort.Strings(keys)
	rows := make([][]string, len(keys))
	for i, k := range keys {
		rows[i] = []string{k}
	}
	fmt.Fprint(f.cli.stdout, table([]string{"Keys"}, rows))
	return exitOK
}

// equalsHeader centres title in "=" signs to width total, vault's section
// header ("== Secret Path ==", "======= Metadata =======").
func equalsHeader(title string, total int) string {
	n := total - (len(title) + 2)
	if n <= 0 {
		n = 4
	}
	if n%2 != 0 {
		n++
	}
	return strings.Repeat("=", n/2) + " " + title + " " + strings.Repeat("=", n/2)
}

// mapHeader is the section header above a Key/Value table of m.
func mapHeader(title string, m map[string]any) string {
	longest := 0
	for k := range m {
		longest = max(longest, len(k))
	}
	return equalsHeader(title, longest+4+5)
}

// printPath prints a path under an "=" header, as kv get and put do.
func (f *commandFlags) printPath(path, title string) {
	fmt.Fprintln(f.cli.stdout, equalsHeader(title, len(path)))
	fmt.Fprintln(f.cli.stdout, path)
	fmt.Fprintln(f.cli.stdout)
}

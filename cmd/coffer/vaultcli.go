package main

// Shared machinery of the vault-compatible commands (read, write, kv,
// secrets, auth, policy, token, login, audit): flag helpers, the k=v
// argument parser, the token file and the vault CLI's output layouts.
//
// Exit codes follow the vault CLI for these commands: 0 success, 1 a local
// error (bad flags or arguments, unreadable file), 2 a remote error (the
// server refused the request or could not be reached).

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// local prints a message to stderr and returns exitLocal.
func (c *cli) local(format string, args ...any) int {
	fmt.Fprintf(c.stderr, format+"\n", args...)
	return exitLocal
}

// remote prints a message to stderr and returns exitRemote.
func (c *cli) remote(format string, args ...any) int {
	fmt.Fprintf(c.stderr, format+"\n", args...)
	return exitRemote
}

// parseArgs parses args and checks that minArgs to maxArgs (-1: no limit)
// positional arguments remain. ok is false when the command must stop
// with code: 0 after -h, exitLocal after a bad flag, -format or count.
func (f *commandFlags) parseArgs(args []string, minArgs, maxArgs int) (code int, ok bool) {
	if code, ok := f.parse(args); !ok {
		return code, false
	}
	if !f.wantArgs(minArgs, maxArgs) {
		return exitLocal, false
	}
	return exitOK, true
}

// connect builds the API client, printing the error vault-style. client
// is nil when the command must stop with code.
func (f *commandFlags) connect() (client *api.Client, code int) {
	client, err := f.client()
	if err != nil {
		return nil, f.cli.remote("Error creating client: %v", err)
	}
	return client, exitOK
}

// open is the start of most commands: parseArgs, then connect. client is
// nil when the command must stop with code.
func (f *commandFlags) open(args []string, minArgs, maxArgs int) (client *api.Client, code int) {
	if code, ok := f.parseArgs(args, minArgs, maxArgs); !ok {
		return nil, code
	}
	return f.connect()
}

// outcome words the result of a request that writes or deletes at a path.
type outcome struct {
	failed  string // the error, formatted with the path and the error
	success string // the success line, formatted with the path
}

var (
	dataWritten = outcome{"Error writing data to %s: %v", "Success! Data written to: %s"}
	dataDeleted = outcome{"Error deleting %s: %v", "Success! Data deleted (if it existed) at: %s"}
)

// report prints the result of a write or a delete at path as the vault CLI
// does: on error the message (exit 2) and any secret sent with it; with no
// secret back the success line (table format only); else the secret, or
// only its field when field is set.
func (f *commandFlags) report(o outcome, path string, secret *api.Secret, err error, field string) int {
	if err != nil {
		return f.refused(secret, o.failed, path, err)
	}
	if secret == nil {
		if f.format == "table" {
			fmt.Fprintf(f.cli.stdout, o.success+"\n", path)
		}
		return exitOK
	}
	return f.outputSecretField(secret, field)
}

// refused prints the error of a request the server refused, then the
// secret it sent along if any, and returns exitRemote.
func (f *commandFlags) refused(secret *api.Secret, format string, args ...any) int {
	code := f.cli.remote(format, args...)
	if secret != nil {
		f.outputSecret(secret)
	}
	return code
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

// wantArgs checks the positional argument count as the vault CLI words it.
func (f *commandFlags) wantArgs(minArgs, maxArgs int) bool {
	n := f.NArg()
	expect := strconv.Itoa(minArgs)
	if maxArgs < 0 {
		expect = "at least " + expect
	} else if maxArgs != minArgs {
		expect = fmt.Sprintf("%d-%d", minArgs, maxArgs)
	}
	switch {
	case n < minArgs:
		fmt.Fprintf(f.cli.stderr, "Not enough arguments (expected %s, got %d)\n", expect, n)
		return false
	case maxArgs >= 0 && n > maxArgs:
		fmt.Fprintf(f.cli.stderr, "Too many arguments (expected %s, got %d)\n", expect, n)
		return false
	}
	return true
}

// subcommands returns a command that dispatches to table, like `operator`.
func subcommands(group string, table map[string]command) func(*cli, []string) int {
	return func(c *cli, args []string) int {
		if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
			w := c.stderr
			if len(args) > 0 {
				w = c.stdout
			}
			fmt.Fprintf(w, "Usage: coffer %s <subcommand> [args]\n\nSubcommands:\n", group)
			printCommands(w, table)
			if len(args) == 0 {
				return exitLocal
			}
			return exitOK
		}
		sub, ok := table[args[0]]
		if !ok {
			fmt.Fprintf(c.stderr, "Unknown %s subcommand %q: run `coffer %s -h` for the list\n", group, args[0], group)
			return exitLocal
		}
		return sub.run(c, args[1:])
	}
}

// ---------------------------------------------------------------- flags

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

// ------------------------------------------------------------ k=v data

// parseArgsData turns vault CLI data arguments into a request body:
//
//	k=v        a string value; a repeated key makes a list
//	k=@file    the file's contents
//	k=\@v      the literal "@v"
//	k=-        all of stdin
//	-          a JSON object read from stdin, merged in
//	@file      a JSON object read from the file, merged in
//
// stdin can be consumed only once.
func parseArgsData(stdin io.Reader, args []string) (map[string]any, error) {
	out := map[string]any{}
	stdinUsed := false
	useStdin := func() error {
		if stdin == nil {
			return errors.New("stdin is not supported")
		}
		if stdinUsed {
			return errors.New("stdin already consumed")
		}
		stdinUsed = true
		return nil
	}
	for _, arg := range args {
		if arg == "" {
			continue
		}
		key, value, hasEq := strings.Cut(arg, "=")
		if !hasEq {
			switch {
			case arg == "-":
				if err := useStdin(); err != nil {
					return nil, err
				}
				if err := mergeJSON(out, stdin); err != nil {
					return nil, fmt.Errorf("parse JSON from stdin: %w", err)
				}
				continue
			case arg[0] == '@':
				b, err := os.ReadFile(arg[1:])
				if err != nil {
					return nil, fmt.Errorf("error reading file: %w", err)
				}
				if err := mergeJSON(out, bytes.NewReader(b)); err != nil {
					return nil, fmt.Errorf("parse JSON from %s: %w", arg[1:], err)
				}
				continue
			}
			return nil, fmt.Errorf("format must be key=value: %q", arg)
		}
		switch {
		case strings.HasPrefix(value, "@"):
			b, err := os.ReadFile(value[1:])
			if err != nil {
				return nil, fmt.Errorf("error reading file: %w", err)
			}
			value = string(b)
		case strings.HasPrefix(value, `\@`):
			value = value[1:]
		case value == "-":
			if err := useStdin(); err != nil {
				return nil, err
			}
			b, err := io.ReadAll(stdin)
			if err != nil {
				return nil, fmt.Errorf("read stdin: %w", err)
			}
			value = string(b)
		}
		switch prev := out[key].(type) {
		case nil:
			out[key] = value
		case []any:
			out[key] = append(prev, value)
		default:
			out[key] = []any{prev, value}
		}
	}
	return out, nil
}

// mergeJSON decodes one JSON object from r into out, numbers as
// json.Number.
func mergeJSON(out map[string]any, r io.Reader) error {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return err
	}
	for k, v := range m {
		out[k] = v
	}
	return nil
}

// parseArgsStrings is parseArgsData with every value as a string (auth
// method and audit device options).
func parseArgsStrings(stdin io.Reader, args []string) (map[string]string, error) {
	raw, err := parseArgsData(stdin, args)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		switch v := v.(type) {
		case string:
			out[k] = v
		case []any:
			parts := make([]string, len(v))
			for i, p := range v {
				parts[i] = fmt.Sprint(p)
			}
			out[k] = strings.Join(parts, ",")
		default:
			out[k] = fmt.Sprint(v)
		}
	}
	return out, nil
}

// parseArgsLists is parseArgsData as query parameters (read, delete).
func parseArgsLists(stdin io.Reader, args []string) (map[string][]string, error) {
	raw, err := parseArgsData(stdin, args)
	if err != nil {
		return nil, err
	}
	if len(raw) == 0 {
		return nil, nil
	}
	out := make(map[string][]string, len(raw))
	for k, v := range raw {
		switch v := v.(type) {
		case []any:
			for _, p := range v {
				out[k] = append(out[k], fmt.Sprint(p))
			}
		default:
			out[k] = []string{fmt.Sprint(v)}
		}
	}
	return out, nil
}

// --------------------------------------------------------------- paths

// sanitizePath trims whitespace and leading and trailing slashes.
func sanitizePath(s string) string {
	return strings.Trim(strings.TrimSpace(s), "/")
}

// ensureTrailingSlash adds one "/" to a non-empty path that lacks it.
func ensureTrailingSlash(s string) string {
	s = strings.TrimSpace(s)
	if s == "" || strings.HasSuffix(s, "/") {
		return s
	}
	return s + "/"
}

// ---------------------------------------------------------- token file

// tokenFilePath is ~/.vault-token, where the vault CLI's default token
// helper keeps the token of the last `login`.
func tokenFilePath() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the home directory for ~/.vault-token: %w", err)
	}
	return filepath.Join(home, ".vault-token"), nil
}

// readTokenFile returns the stored token, "" when there is none.
func readTokenFile() (string, error) {
	p, err := tokenFilePath()
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read token file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// storeTokenFile replaces ~/.vault-token atomically, readable by the user
// only.
func storeTokenFile(token string) error {
	p, err := tokenFilePath()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".vault-token.tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.WriteString(token); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}

// -------------------------------------------------------------- output

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

// rawField picks -field from a secret as the vault CLI does: auth fields,
// wrap fields and lease fields by name, else the data key.
func rawField(s *api.Secret, field string) any {
	switch {
	case s.Auth != nil:
		switch field {
		case "token":
			return s.Auth.ClientToken
		case "token_accessor":
			return s.Auth.Accessor
		case "token_duration":
			return s.Auth.LeaseDuration
		case "token_renewable":
			return s.Auth.Renewable
		case "token_policies":
			return s.Auth.TokenPolicies
		case "identity_policies":
			return s.Auth.IdentityPolicies
		case "policies":
			return s.Auth.Policies
		}
	case s.WrapInfo != nil:
		switch field {
		case "wrapping_token":
			return s.WrapInfo.Token
		case "wrapping_accessor":
			return s.WrapInfo.Accessor
		case "wrapping_token_ttl":
			return s.WrapInfo.TTL
		case "wrapping_token_creation_time":
			return s.WrapInfo.CreationTime.Format(time.RFC3339Nano)
		case "wrapping_token_creation_path":
			return s.WrapInfo.CreationPath
		case "wrapped_accessor":
			return s.WrapInfo.WrappedAccessor
		}
	default:
		switch field {
		case "lease_duration", "refresh_interval":
			return s.LeaseDuration
		case "lease_id":
			return s.LeaseID
		case "request_id":
			return s.RequestID
		case "renewable":
			return s.Renewable
		case "data":
			if v, ok := s.Data["data"]; ok {
				return v
			}
			return s.Data
		}
	}
	return s.Data[field]
}

// printField prints one field: raw in table format (with no newline when
// stdout is not a terminal, so that $(coffer ... -field=x) is exact),
// JSON-encoded with -format=json. data is a *api.Secret or a map.
func (f *commandFlags) printField(data any, field string) int {
	var val any
	switch d := data.(type) {
	case *api.Secret:
		if d != nil {
			val = rawField(d, field)
		}
	case map[string]any:
		val = d[field]
	}
	if val == nil {
		return f.cli.local("Field %q not present in secret", field)
	}
	if f.format == "json" {
		b, err := json.MarshalIndent(val, "", "  ")
		if err != nil {
			return f.cli.local("Error formatting output: %v", err)
		}
		fmt.Fprintln(f.cli.stdout, string(b))
		return exitOK
	}
	s := fmt.Sprintf("%v", val)
	if isTerminal(f.cli.stdout) {
		fmt.Fprintln(f.cli.stdout, s)
	} else {
		fmt.Fprint(f.cli.stdout, s)
	}
	return exitOK
}

func isTerminal(w io.Writer) bool {
	file, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := file.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
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

// readLine prompts on stderr and reads one line of stdin. The terminal
// echoes it: pipe secrets in, or pass them as arguments.
func (c *cli) readLine(question string) (string, error) {
	fmt.Fprint(c.stderr, question)
	var b strings.Builder
	buf := make([]byte, 1)
	for {
		n, err := c.stdin.Read(buf)
		if n == 1 {
			if buf[0] == '\n' {
				break
			}
			b.WriteByte(buf[0])
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return "", err
		}
	}
	fmt.Fprintln(c.stderr)
	return strings.TrimSpace(b.String()), nil
}

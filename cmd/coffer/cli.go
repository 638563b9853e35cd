package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/vault/api"
)

// Exit codes, as the vault CLI uses them.
const (
	exitOK     = 0
	exitLocal  = 1 // bad flags or arguments, or a local failure
	exitRemote = 2 // the API call failed (server unreachable, request refused)
	exitSealed = 2 // `coffer status` on a sealed server
)

// cli carries the process's standard streams so that every command can be
// run, and tested, without touching the real ones.
type cli struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// commandFlags are the flags every API command takes, parsed vault-style:
// single-dash long names with the standard flag package.
type commandFlags struct {
	*flag.FlagSet
	cli     *cli
	address string
	format  string
	tlsSkip bool
	// wrapTTL is -wrap-ttl, registered by httpFlags on the commands that
	// read or write data; zero means no wrapping asked on the command line.
	wrapTTL time.Duration
	// mount is -mount, registered by kvFlags on the kv commands.
	mount string
}

// newFlags builds the flag set of one command with the shared flags.
// usage is the one-line synopsis shown above the flag list.
func (c *cli) newFlags(name, usage string) *commandFlags {
	f := &commandFlags{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), cli: c}
	f.SetOutput(c.stderr)
	f.StringVar(&f.address, "address", "", "address of the Coffer (or Vault) server; overrides VAULT_ADDR")
	defFormat := os.Getenv("VAULT_FORMAT")
	if defFormat == "" {
		defFormat = "table"
	}
	f.StringVar(&f.format, "format", defFormat, "output format: table or json; also VAULT_FORMAT")
	f.BoolVar(&f.tlsSkip, "tls-skip-verify", false, "do not verify the server's TLS certificate (insecure)")
	f.Usage = func() {
		fmt.Fprintf(c.stderr, "Usage: coffer %s\n\n", usage)
		f.PrintDefaults()
	}
	return f
}

// parse parses args. ok is false when the command must stop with code:
// 0 after -h, exitLocal after a bad flag or format.
func (f *commandFlags) parse(args []string) (code int, ok bool) {
	if err := f.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitLocal, false
	}
	f.format = strings.ToLower(f.format)
	if f.format != "table" && f.format != "json" {
		fmt.Fprintf(f.cli.stderr, "Invalid output format %q: use -format=table or -format=json\n", f.format)
		return exitLocal, false
	}
	return exitOK, true
}

// isSet reports whether the flag name was given on the command line.
func (f *commandFlags) isSet(name string) bool {
	set := false
	f.Visit(func(fl *flag.Flag) {
		if fl.Name == name {
			set = true
		}
	})
	return set
}

// client builds a vault/api client: VAULT_ADDR, VAULT_TOKEN and the other
// VAULT_* variables come from api.DefaultConfig and api.NewClient; -address
// overrides the address.
func (f *commandFlags) client() (*api.Client, error) {
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		return nil, fmt.Errorf("read VAULT_* environment: %w", cfg.Error)
	}
	if f.address != "" {
		cfg.Address = f.address
	}
	if f.tlsSkip {
		if err := cfg.ConfigureTLS(&api.TLSConfig{Insecure: true}); err != nil {
			return nil, fmt.Errorf("configure TLS: %w", err)
		}
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("create API client for %s: %w", cfg.Address, err)
	}
	// Like the vault CLI: VAULT_TOKEN first (api.NewClient read it), else
	// the token `coffer login` stored in ~/.vault-token.
	if c.Token() == "" {
		token, err := readTokenFile()
		if err != nil {
			return nil, err
		}
		if token != "" {
			c.SetToken(token)
		}
	}
	if f.wrapTTL > 0 {
		ttl := f.wrapTTL.String()
		c.SetWrappingLookupFunc(func(string, string) string { return ttl })
	}
	return c, nil
}

// row is one line of a Key/Value table.
type row struct {
	key   string
	value any
}

// printTable prints rows under a "Key Value" header, the vault CLI's layout.
func printTable(w io.Writer, rows []row) {
	tw := tabwriter.NewWriter(w, 0, 8, 4, ' ', 0)
	fmt.Fprintln(tw, "Key\tValue")
	fmt.Fprintln(tw, "---\t-----")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%v\n", r.key, r.value)
	}
	_ = tw.Flush()
}

// printJSON prints v indented, as `vault ... -format=json` does.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// output prints v as JSON or rows as a table, according to -format.
func (f *commandFlags) output(v any, rows []row) int {
	if f.format == "json" {
		if err := printJSON(f.cli.stdout, v); err != nil {
			return f.cli.remote("Error writing JSON output: %v", err)
		}
		return exitOK
	}
	printTable(f.cli.stdout, rows)
	return exitOK
}

// apiError renders an error from vault/api for a person: the server's
// errors[] when there are any, otherwise the transport error.
func apiError(err error) string {
	var re *api.ResponseError
	if errors.As(err, &re) {
		if len(re.Errors) == 0 {
			return fmt.Sprintf("%s %s: code %d", re.HTTPMethod, re.URL, re.StatusCode)
		}
		return fmt.Sprintf("%s %s: code %d: %s", re.HTTPMethod, re.URL, re.StatusCode, strings.Join(re.Errors, "; "))
	}
	return err.Error()
}

// sealStatusRows is the table `vault status` and `vault operator unseal` print.
func sealStatusRows(s *api.SealStatusResponse) []row {
	rows := []row{
		{"Seal Type", s.Type},
		{"Initialized", s.Initialized},
		{"Sealed", s.Sealed},
	}
	if s.RecoverySeal {
		rows = append(rows, row{"Total Recovery Shares", s.N}, row{"Threshold", s.T})
	} else {
		rows = append(rows, row{"Total Shares", s.N}, row{"Threshold", s.T})
	}
	if s.Sealed {
		nonce := s.Nonce
		if nonce == "" {
			nonce = "n/a"
		}
		rows = append(rows, row{"Unseal Progress", fmt.Sprintf("%d/%d", s.Progress, s.T)}, row{"Unseal Nonce", nonce})
	}
	rows = append(rows, row{"Version", s.Version})
	if s.BuildDate != "" {
		rows = append(rows, row{"Build Date", s.BuildDate})
	}
	rows = append(rows, row{"Storage Type", orNA(s.StorageType)})
	if s.ClusterName != "" || !s.Sealed {
		rows = append(rows, row{"Cluster Name", orNA(s.ClusterName)}, row{"Cluster ID", orNA(s.ClusterID)})
	}
	return rows
}

func orNA(s string) string {
	if s == "" {
		return "n/a"
	}
	return s
}

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// operatorCommands are the `coffer operator` subcommands.
var operatorCommands = map[string]command{
	"init":          {"Initialize a server: create the unseal (or recovery) key shares and the root token", (*cli).operatorInit},
	"unseal":        {"Submit one unseal key share, or -reset the unseal progress", (*cli).operatorUnseal},
	"seal":          {"Seal the server (needs a root token)", (*cli).operatorSeal},
	"step-down":     {"Make the active node of a cluster of nodes give up its lock (needs a root token)", (*cli).operatorStepDown},
	"rotate":        {"Rotate the barrier encryption key (needs a root token)", (*cli).operatorRotate},
	"key-status":    {"Print the barrier encryption key's term (needs a root token)", (*cli).operatorKeyStatus},
	"generate-root": {"Generate a new root token, or with -dr-token a DR operation token, from a threshold of key shares (-init, KEY, -status, -cancel, -decode)", (*cli).operatorGenerateRoot},
}

// openNoArgs is the start of the operator commands that take no
// positional arguments: parse, complain about any argument, connect.
// client is nil when the command must stop with code.
func (f *commandFlags) openNoArgs(args []string) (client *api.Client, code int) {
	if code, ok := f.parse(args); !ok {
		return nil, code
	}
	if f.NArg() > 0 {
		return nil, f.cli.local("Too many arguments (expected 0, got %d): %s", f.NArg(), strings.Join(f.Args(), " "))
	}
	return f.connect()
}

// initJSON is `operator init -format=json`, with the vault CLI's field names.
type initJSON struct {
	UnsealKeysB64     []string `json:"unseal_keys_b64"`
	UnsealKeysHex     []string `json:"unseal_keys_hex"`
	UnsealShares      int      `json:"unseal_shares"`
	UnsealThreshold   int      `json:"unseal_threshold"`
	RecoveryKeysB64   []string `json:"recovery_keys_b64"`
	RecoveryKeysHex   []string `json:"recovery_keys_hex"`
	RecoveryShares    int      `json:"recovery_keys_shares"`
	RecoveryThreshold int      `json:"recovery_keys_threshold"`
	RootToken         string   `json:"root_token"`
}

func (c *cli) operatorInit(args []string) int {
	f := c.newFlags("operator init", "operator init [-key-shares=5] [-key-threshold=3] [-recovery-shares=N] [-recovery-threshold=N] [-status] [-format=table|json]")
	shares := f.Int("key-shares", 5, "number of unseal key shares to create (shamir seal)")
	threshold := f.Int("key-threshold", 3, "number of shares needed to unseal")
	recShares := f.Int("recovery-shares", 5, "number of recovery key shares (auto-unseal seals such as static)")
	recThreshold := f.Int("recovery-threshold", 3, "number of recovery shares needed")
	statusOnly := f.Bool("status", false, "only report whether the server is initialized: exit 0 if it is, 2 if not")
	client, code := f.openNoArgs(args)
	if client == nil {
		return code
	}
	if *statusOnly {
		init, err := client.Sys().InitStatus()
		if err != nil {
			return c.remote("Error checking init status: %s", apiError(err))
		}
		if !init {
			fmt.Fprintln(c.stdout, "Coffer is not initialized")
			return exitLocal
		}
		fmt.Fprintln(c.stdout, "Coffer is initialized")
		return exitOK
	}

	req := &api.InitRequest{SecretShares: *shares, SecretThreshold: *threshold}
	// Send recovery settings only when asked: a shamir server refuses them,
	// and an auto-unseal server takes -key-shares as the recovery shares.
	if f.isSet("recovery-shares") || f.isSet("recovery-threshold") {
		req.RecoveryShares, req.RecoveryThreshold = *recShares, *recThreshold
	}
	resp, err := client.Sys().Init(req)
	if err != nil {
		return c.remote("Error initializing: %s", apiError(err))
	}
	// The seal status says which shares apply and with which threshold.
	st, err := client.Sys().SealStatus()
	if err != nil {
		return c.remote("Initialized, but could not read the seal status back (save the output above): %s", apiError(err))
	}
	out := initJSON{
		UnsealKeysB64: nonNil(resp.KeysB64), UnsealKeysHex: nonNil(resp.Keys),
		RecoveryKeysB64: nonNil(resp.RecoveryKeysB64), RecoveryKeysHex: nonNil(resp.RecoveryKeys),
		RootToken: resp.RootToken,
	}
	if st.RecoverySeal {
		out.RecoveryShares, out.RecoveryThreshold = st.N, st.T
	} else {
		out.UnsealShares, out.UnsealThreshold = st.N, st.T
	}
	if f.format == "json" {
		return f.output(out, nil)
	}
	printInit(c.stdout, out, st.RecoverySeal)
	return exitOK
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// printInit is the table form of `operator init`, line for line like vault's.
func printInit(w io.Writer, out initJSON, recovery bool) {
	for i, k := range out.UnsealKeysB64 {
		fmt.Fprintf(w, "Unseal Key %d: %s\n", i+1, k)
	}
	for i, k := range out.RecoveryKeysB64 {
		fmt.Fprintf(w, "Recovery Key %d: %s\n", i+1, k)
	}
	fmt.Fprintf(w, "\nInitial Root Token: %s\n\n", out.RootToken)
	if recovery {
		fmt.Fprintf(w, "Success! Coffer is initialized and unsealed by its seal.\n\n"+
			"Recovery key initialized with %d key shares and a key threshold of %d.\n"+
			"Store the recovery keys apart from each other: they authorize operations\n"+
			"such as generating a new root token, but cannot unseal the server.\n",
			out.RecoveryShares, out.RecoveryThreshold)
		return
	}
	fmt.Fprintf(w, "Coffer initialized with %d key shares and a key threshold of %d.\n"+
		"Distribute the key shares printed above to different people. Whenever\n"+
		"the server is sealed or restarted, %d of them must be given to\n"+
		"`coffer operator unseal` before it serves requests.\n\n"+
		"Coffer does not store the root key: without %d shares it stays sealed\n"+
		"for good.\n",
		out.UnsealShares, out.UnsealThreshold, out.UnsealThreshold, out.UnsealThreshold)
}

func (c *cli) operatorUnseal(args []string) int {
	f := c.newFlags("operator unseal", "operator unseal [-reset] [KEY]   (KEY is read from stdin when omitted)")
	reset := f.Bool("reset", false, "discard the shares submitted so far")
	if code, ok := f.parse(args); !ok {
		return code
	}
	if f.NArg() > 1 {
		return c.local("Too many arguments (expected at most 1 key share, got %d)", f.NArg())
	}
	client, code := f.connect()
	if client == nil {
		return code
	}
	var (
		st  *api.SealStatusResponse
		err error
	)
	if *reset {
		if st, err = client.Sys().ResetUnsealProcess(); err != nil {
			return c.remote("Error resetting unseal process: %s", apiError(err))
		}
	} else {
		key := f.Arg(0)
		if key == "" {
			if key, err = c.prompt("Unseal Key: "); err != nil {
				return c.remote("Error reading the unseal key from stdin: %v", err)
			}
		}
		if st, err = client.Sys().Unseal(key); err != nil {
			return c.remote("Error unsealing: %s", apiError(err))
		}
	}
	return f.output(st, sealStatusRows(st))
}

// prompt asks on stderr and reads one line from stdin. The line is echoed
// by the terminal: pipe the key in (or pass it as an argument) when that
// matters.
func (c *cli) prompt(question string) (string, error) {
	fmt.Fprint(c.stderr, question)
	line, err := bufio.NewReader(c.stdin).ReadString('\n')
	line = strings.TrimSpace(line)
	if line == "" {
		if err == nil || errors.Is(err, io.EOF) {
			return "", errors.New("no key given: pass it as an argument or on stdin")
		}
		return "", err
	}
	return line, nil
}

func (c *cli) operatorSeal(args []string) int {
	f := c.newFlags("operator seal", "operator seal   (with a root token in VAULT_TOKEN)")
	client, code := f.openNoArgs(args)
	if client == nil {
		return code
	}
	if err := client.Sys().Seal(); err != nil {
		return c.remote("Error sealing: %s", apiError(err))
	}
	fmt.Fprintln(c.stdout, "Success! Coffer is sealed.")
	return exitOK
}

func (c *cli) operatorStepDown(args []string) int {
	f := c.newFlags("operator step-down", "operator step-down   (with a root token in VAULT_TOKEN)")
	client, code := f.openNoArgs(args)
	if client == nil {
		return code
	}
	if err := client.Sys().StepDown(); err != nil {
		return c.remote("Error stepping down: %s", apiError(err))
	}
	fmt.Fprintln(c.stdout, "Success! Stepped down: another node of the cluster becomes active.")
	return exitOK
}

// keyStatusRows is the table of `operator key-status` and `operator rotate`.
func keyStatusRows(k *api.KeyStatus) []row {
	return []row{
		{"Key Term", k.Term},
		{"Install Time", k.InstallTime.UTC().Format(time.RFC822)},
		{"Encryption Count", k.Encryptions},
	}
}

func (c *cli) operatorRotate(args []string) int {
	f := c.newFlags("operator rotate", "operator rotate [-format=table|json]   (with a root token in VAULT_TOKEN)")
	client, code := f.openNoArgs(args)
	if client == nil {
		return code
	}
	if err := client.Sys().Rotate(); err != nil {
		return c.remote("Error rotating key: %s", apiError(err))
	}
	k, err := client.Sys().KeyStatus()
	if err != nil {
		return c.remote("Key rotated, but reading the key status failed: %s", apiError(err))
	}
	if f.format == "table" {
		fmt.Fprintln(c.stdout, "Success! Rotated key")
		fmt.Fprintln(c.stdout)
	}
	return f.output(k, keyStatusRows(k))
}

func (c *cli) operatorKeyStatus(args []string) int {
	f := c.newFlags("operator key-status", "operator key-status [-format=table|json]   (with a root token in VAULT_TOKEN)")
	client, code := f.openNoArgs(args)
	if client == nil {
		return code
	}
	k, err := client.Sys().KeyStatus()
	if err != nil {
		return c.remote("Error reading key status: %s", apiError(err))
	}
	return f.output(k, keyStatusRows(k))
}

package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/cofferhq/coffer/core"
)

func main() {
	c := &cli{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}
	os.Exit(c.run(os.Args[1:]))
}

// command is one CLI subcommand.
type command struct {
	synopsis string
	run      func(c *cli, args []string) int
}

// commands is the top-level command table. `server` is runServer in
// server.go; the rest speak the HTTP API.
var commands = map[string]command{
	"server":   {"Start a Coffer server", func(_ *cli, args []string) int { return runServer(args) }},
	"status":   {"Print seal and HA status", (*cli).status},
	"bench":    {"Measure replication: lag, catch-up, throughput, forwarded writes (docs/performance.md)", (*cli).bench},
	"operator": {"Perform operator-specific tasks (init, unseal, seal, step-down, rotate, key-status, generate-root)", subcommands("operator", operatorCommands)},
	"version":  {"Print the Coffer version", (*cli).version},
	// The vault-compatible commands (vaultcli.go and the files it names).
	"read":    {"Read data at a path (GET)", (*cli).read},
	"write":   {"Write data to a path (PUT)", (*cli).write},
	"patch":   {"Patch data at a path (JSON merge patch)", (*cli).patch},
	"list":    {"List the keys under a path (LIST)", (*cli).list},
	"delete":  {"Delete data at a path (DELETE)", (*cli).delete},
	"kv":      {"Work with key/value secrets (v1 and v2 mounts)", subcommands("kv", kvCommands)},
	"secrets": {"Enable, list, tune and disable secrets engines", subcommands("secrets", secretsCommands)},
	"auth":    {"Enable, list and disable auth methods", subcommands("auth", authCommands)},
	"audit":   {"Enable, list and disable audit devices", subcommands("audit", auditCommands)},
	"policy":  {"Write, read, list and delete ACL policies", subcommands("policy", policyCommands)},
	"token":   {"Create, look up, renew and revoke tokens", subcommands("token", tokenCommands)},
	"login":   {"Authenticate and store the token in ~/.vault-token", (*cli).login},

	"replication": {"Show performance replication status", subcommands("replication", replicationCommands)},
}

// run dispatches args (without the program name) and returns the exit code.
func (c *cli) run(args []string) int {
	if len(args) == 0 {
		c.usage(c.stderr)
		return exitLocal
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		c.usage(c.stdout)
		return exitOK
	case "-v", "-version", "--version":
		return c.version(nil)
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(c.stderr, "Unknown command %q.\n\n", args[0])
		c.usage(c.stderr)
		return exitLocal
	}
	return cmd.run(c, args[1:])
}

func (c *cli) usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: coffer <command> [args]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	printCommands(w, commands)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "The CLI reads VAULT_ADDR, VAULT_TOKEN and VAULT_FORMAT like the vault CLI.")
	fmt.Fprintln(w, "Run `coffer <command> -h` for a command's flags.")
}

// printCommands lists a command table, sorted, with aligned synopses.
func printCommands(w io.Writer, table map[string]command) {
	names := make([]string, 0, len(table))
	width := 0
	for n := range table {
		names = append(names, n)
		width = max(width, len(n))
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "    %s%s    %s\n", n, strings.Repeat(" ", width-len(n)), table[n].synopsis)
	}
}

func (c *cli) version(_ []string) int {
	fmt.Fprintf(c.stdout, "Coffer v%s\n", core.Version)
	return exitOK
}

package main

// Shared machinery of the vault-compatible commands (read, write, kv,
// secrets, auth, policy, token, login, audit): reporting errors, checking
// positional arguments, connecting, and reporting what a request did. The
// rest of it is by job: flags.go (flag types), args.go (k=v data arguments
// and paths), output.go and field.go (the vault CLI's output layouts) and
// tokenfile.go (~/.vault-token).
//
// Exit codes follow the vault CLI for these commands: 0 success, 1 a local
// error (bad flags or arguments, unreadable file), 2 a remote error (the
// server refused the request or could not be reached).

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

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

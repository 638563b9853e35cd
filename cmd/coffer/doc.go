// Command coffer is Coffer's one binary: the server (`coffer server`, in
// server.go) and a CLI that speaks Vault's HTTP API through
// github.com/hashicorp/vault/api.
//
// The CLI follows the vault CLI's conventions so that operators can switch
// between the two without relearning: single-dash long flags parsed by the
// standard flag package (-address, -format=json|table), VAULT_ADDR,
// VAULT_TOKEN and VAULT_FORMAT from the environment, the same output layout
// (a Key/Value table, or JSON) and the same exit codes (0 success, 1 bad usage or a local failure, 2 a
// failed API call; `coffer status` 1 on error and 2 when sealed).
//
// Files: main.go dispatches subcommands; cli.go holds the shared flags, the
// client and the output helpers every command uses; status.go and
// operator.go are the commands.
//
// The CLI must never hold state between runs, never write a key share or a
// token anywhere but its own stdout, and never talk to storage directly:
// everything goes through the HTTP API like any other Vault client.
package main

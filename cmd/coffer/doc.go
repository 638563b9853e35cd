// Command coffer is Coffer's one binary: the server (`coffer server`) and a
// CLI that speaks Vault's HTTP API through github.com/hashicorp/vault/api.
//
// Commands (the table is in main.go; `coffer <command> -h` prints flags):
//
//	server       -config=FILE, or -dev for a throwaway in-memory server
//	status       seal and HA status
//	operator     init, unseal, seal, step-down, rotate, key-status, generate-root
//	version      the Coffer version
//	read, write, patch, list, delete
//	             any API path, like the vault CLI's generic commands
//	kv           put, get, list, delete, undelete, destroy, patch,
//	             metadata get|put|delete (kv version 1 and 2 mounts)
//	secrets      enable, disable, list, tune
//	auth         enable, disable, list
//	audit        enable, disable, list
//	policy       write, read, list, delete
//	token        create, lookup, revoke, renew
//	login        with a token or userpass; stores the token in ~/.vault-token
//	replication  status (performance replication)
//
// The CLI follows the vault CLI's conventions so that operators can switch
// between the two without relearning: single-dash long flags parsed by the
// standard flag package (-address, -format=table|json, -field, -wrap-ttl),
// VAULT_ADDR, VAULT_TOKEN, VAULT_FORMAT, VAULT_WRAP_TTL and the other VAULT_*
// client variables from the environment, the token of the last `login` from
// ~/.vault-token when VAULT_TOKEN is not set, the same output layouts (a
// Key/Value table, or JSON) and the same exit codes: 0 success, 1 bad usage
// or a local failure, 2 a failed API call; `coffer status` exits 1 on error
// and 2 when sealed.
//
// Files:
//
//   - main.go: the command table and the dispatch;
//   - cli.go: the flags every command shares, the API client, exit codes and
//     the Key/Value table of the operator commands;
//   - vaultcli.go: what the vault-compatible commands share (argument
//     counts, connecting, reporting a write or a delete, subcommand tables);
//     flags.go, args.go, output.go, field.go and tokenfile.go: their flag
//     types, k=v data arguments and paths, output layouts, -field, and
//     ~/.vault-token;
//   - the commands: server.go, status.go, operator.go, generateroot.go
//     (operator generate-root, and with -dr-token a DR operation token),
//     logical.go (read, write, patch, list, delete), kv.go, mounts.go
//     (secrets, auth, audit), policy.go, token.go (token, login) and
//     replication.go.
//
// The CLI must never hold state between runs other than the token file that
// `login` writes (as the vault CLI's token helper does), never write a key
// share anywhere but its own stdout, and never talk to storage directly:
// everything goes through the HTTP API like any other Vault client.
package main

// Package consul is the storage backend on Consul's KV store, for clusters of
// several Coffer nodes sharing one storage: every key lives under one KV path
// ("coffer/" by default), and every Transaction is one Consul KV transaction
// (PUT /v1/txn), which Consul applies whole or not at all.
//
// It owns the keys under its path, their encoding into Consul keys (keys.go:
// the on-disk format) and the translation of Consul's errors into ones an
// operator can act on. It is configured as Vault's consul storage is:
//
//	storage "consul" {
//	  address     = "127.0.0.1:8500"
//	  path        = "coffer/"
//	  token       = "..."
//	  scheme      = "http"
//	  tls_ca_file = "/etc/coffer/consul-ca.pem"
//	}
//
// with CONSUL_HTTP_ADDR and CONSUL_HTTP_TOKEN (and the other CONSUL_* variables
// of github.com/hashicorp/consul/api) used for what the block does not set.
//
// It must never split a Transaction: Consul caps the operations of one
// transaction (MaxOps), and a Transaction over the cap is refused whole with
// ErrTooManyOps before anything is sent. It must never touch a Consul key
// outside its path, never report a write as done that Consul did not
// acknowledge, and never link anything of Consul but its MPL-2.0 api module
// (the agent is BSL: tests start it as a separate process, docs/consul.md).
//
// It also owns the HA lock (ha.go): a Consul session holding one key beside
// the data, whose holder's writes carry, inside each transaction, the check
// that the session still holds it; a backend with HA on and no lock held
// refuses every write (storage.ErrNotActive). It must never let a write
// through without that check while HA is on. Deciding when to take or give
// up the lock is package ha's job.
package consul

// Package logical owns the contract between Coffer's router and the secrets
// engines and auth methods behind it: the Request a mounted backend receives,
// the Response it returns, the errors it may return (each mapping to one HTTP
// status), and the Storage view confined to the backend's own prefix.
//
// Backends see plaintext through the barrier and nothing else: they must
// never import core, httpapi, the WAL or NATS, never see another mount's keys,
// and never see a client token's policies (the router authorizes before a
// backend is called).
package logical

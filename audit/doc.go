// Package audit owns Coffer's audit trail: the entry a request and its
// response become, the HMAC that hides secrets in it, the devices that write
// it (the "file" device: a file, stdout or discard), and the Broker that fans
// each entry out to every enabled device and tells core when auditing failed.
//
// # What it must never do
//
//   - Write a secret in clear unless the operator asked for it (log_raw=true).
//     Every string value of request and response data, every client token,
//     wrapping token and (unless hmac_accessor=false) accessor is replaced by
//     its HMAC before it reaches a device.
//   - Mutate the logical.Request, logical.Response or data maps it is given:
//     hashing builds copies.
//   - Decide whether a request is served. The Broker returns ErrAuditFailed
//     when no enabled device could log; refusing the request is core's call
//     (Vault's rule: with audit devices enabled, a request no device could log
//     is not served).
//   - Store anything: the salt, the audit table and the per-device options
//     live in core's storage; this package receives them.
//   - Import core, httpapi, the WAL or NATS, or start goroutines: every call
//     writes synchronously on the caller's goroutine.
//
// # How core uses it
//
//  1. At unseal, build each enabled device from the audit table with
//     NewFile(path, options, salt) and Register it on the Broker
//     (Broker.Register(path, device, local)).
//  2. For every request, after authentication and the ACL check, call
//     Broker.LogRequest with a LogInput holding the request, the Caller and the
//     error if the request was denied. On ErrAuditFailed, refuse the request.
//  3. After the backend answered (and after response wrapping), call
//     Broker.LogResponse with the same LogInput plus Response, Err and
//     WrapInfo. On ErrAuditFailed, answer with an error instead of the response.
//  4. On SIGHUP call Broker.Reload (log rotation); at seal or shutdown call
//     Broker.Close.
//  5. sys/audit-hash answers {"hash": Broker.Hash(path, input)}.
//
// # Log line format
//
// One JSON object per line, one line per request and one per response,
// optionally preceded by the device's prefix option:
//
//	<prefix>{"time":"<RFC3339Nano, UTC>","type":"request"|"response",
//	  "auth":{"client_token":"hmac-sha256:…","accessor":"hmac-sha256:…","display_name":…,
//	          "policies":[…],"token_policies":[…],"metadata":{…},"entity_id":…,
//	          "token_type":…,"token_ttl":<seconds>,"token_issue_time":<RFC3339>,"remaining_uses":…},
//	  "request":{"id":…,"operation":…,"mount_type":…,"mount_point":…,
//	             "client_token":"hmac-sha256:…","client_token_accessor":"hmac-sha256:…",
//	             "path":"<mount point + path>","data":{…},"data_omitted":"…","remote_address":…,
//	             "wrap_ttl":<seconds>,"headers":{"<lower-case name>":["…"]}},
//	  "response":{"mount_type":…,"mount_point":…,"auth":{… as above, for a login …},
//	              "data":{…},"wrap_info":{"token":"hmac-sha256:…","accessor":"hmac-sha256:…",
//	              "ttl":<seconds>,"creation_time":<RFC3339Nano>,"creation_path":…,
//	              "wrapped_accessor":"hmac-sha256:…"},"warnings":[…]},
//	  "error":"<error text>"}
//
// Empty fields are left out, as Vault does. Request data larger than
// MaxRequestDataValues values or MaxRequestDataKeyBytes bytes of keys is
// left out and "data_omitted" says so (limit.go): an audit line stays
// bounded whatever a client sends. "data_omitted" is Coffer's; Vault has no
// such field. The "response" object appears on
// response lines only. A hashed value is "hmac-sha256:" followed by the
// lower-case hex HMAC-SHA256 of the value keyed with the device's salt, so an
// operator who knows a value finds it in the log with sys/audit-hash.
//
// What is hashed follows Vault: in request and response data, string values
// at any depth of maps and slices (json.Number included, it is a string in
// Go); map keys, numbers, booleans and null are kept; a time.Time becomes its
// RFC3339Nano text, unhashed. Coffer also hashes a []byte value (Vault would
// log it base64-encoded, that is in clear) and renders any other type through
// its JSON form before hashing, so no value type reaches the log unhashed.
//
// # Durability
//
// A file device writes each line with one write(2) on a file opened with
// O_APPEND, under the device's mutex, before LogRequest/LogResponse return:
// lines never interleave, and once a request's audit line is acknowledged a
// crash of the process cannot lose it (the kernel holds it). It does not call
// fsync by default, like Vault: a power loss may lose the last lines the
// kernel had not yet written back. The Coffer-only option fsync=true syncs
// every line before returning, at the cost of one disk flush per line.
package audit

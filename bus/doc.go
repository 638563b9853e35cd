// Package bus is Coffer's only door to NATS: it runs an embedded nats-server
// with JetStream or connects to an external NATS cluster, provisions the
// streams and durable consumers that replication uses, and offers
// request/reply.
//
// What it owns:
//
//   - the NATS connection (reconnecting forever, also after refused
//     credentials) and, in embedded mode, the nats-server in this process
//     with its JetStream store;
//   - the embedded server's authentication and TLS (auth.go): outside dev
//     mode (NoAuth) it accepts only this process's in-memory nkey and the
//     client nkey it generates at first start in <store_dir>/auth/client.nk
//     (0600), which secondaries and tools copy; with a certificate it
//     requires TLS. The client half of Config (creds, nkey seed,
//     user/password, CA, client certificate) is how this process
//     authenticates to a NATS it does not run;
//   - stream provisioning (file storage, limits retention, discard old, a
//     2-minute duplicate window for Nats-Msg-Id) and idempotent publishing;
//     PublishAck says which stream answered and whether it took the message
//     as a duplicate, StreamMsg reads a message back, CheckStream and
//     RestoreStream find and undo what a stranger did to a stream (deleted,
//     settings changed, another stream on its subject): the bus is
//     untrusted, so callers check rather than assume;
//   - durable pull consumers delivered strictly in order, also across
//     redeliveries, in groups of up to MaxInFlight messages when behind,
//     from one goroutine per Consume call, of the whole stream or of one of
//     its subjects (ConsumeSubject; a stream may capture several: Also),
//     with the caller's per-message work (a signature check) started as each
//     message arrives while the consumer is behind, ahead of the handler, on
//     a prefetch goroutine and a worker per core (ConsumePrepared);
//   - request/reply: servers with bounded concurrency, subscribed plainly
//     (no queue group: a stranger who joins one takes requests away), and
//     RequestVerified, which waits past unauthenticated replies for the one
//     its check accepts (the first reply on an untrusted bus may be anyone's);
//   - every goroutine it starts: stop functions and Close wait for them.
//
// What it must never do: look inside a message. The bus is untrusted (see
// docs/replication.md): bytes go in and the same bytes come out. This package
// knows no replication key, no wire format and no subject naming scheme;
// callers (primary, secondary) seal, sign and name everything. NATS
// authentication narrows who is on the bus; it is not what keeps secrets
// safe. It never logs payloads, seeds or passwords.
//
// Typical use:
//
//	b, err := bus.Open(ctx, bus.Config{Embedded: true, Listen: "127.0.0.1:4222"}, logger)
//	defer b.Close()
//	b.EnsureStream(ctx, bus.StreamConfig{Name: "COFFER_WAL_c1", Subject: "coffer.c1.wal"})
//	seq, err := b.Publish(ctx, "coffer.c1.wal", sealed, "c1-1-10", nil)
//	stop, err := b.Consume(ctx, "COFFER_WAL_c1", "sec_dc2", 0, func(ctx context.Context, msgs []*bus.Msg) {
//		for _, m := range msgs {
//			if apply(m.Data) != nil { m.Nak(); return } // it and the rest come again
//			m.Ack()
//		}
//	})
//	defer stop()
package bus

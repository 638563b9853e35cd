// Package bustest starts embedded NATS servers (with JetStream) for tests,
// through package bus itself: a test gets the same *bus.Bus that coffer runs
// on, listening on a random loopback port with its store in t.TempDir(), and
// closed when the test ends. Its servers take no credentials, like a dev
// server's; the embedded server's authentication is tested in package bus.
//
// It is for tests only: import it from _test.go files, never from code that
// is built into the coffer binary.
package bustest

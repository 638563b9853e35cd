// Package enginetest holds the request helpers the tests of the engines
// (kv, userpass, approle, transit) share: sending a backend a request as the
// router would, checking that it succeeded, or failed with the status and
// message expected, comparing values as a client sees them, reading a record
// straight from storage, and checking which writes a backend serves on the
// cluster that receives them.
//
// It is for tests only: import it from _test.go files only, never from code
// that is built into the coffer binary (TestNotLinkedIntoCoffer checks the
// binary's dependencies).
package enginetest

// Package testutil holds helpers shared by the tests of every package of
// Coffer.
//
// It is for tests only: import it from _test.go files (or from other
// test-only helper packages), never from code that is built into the coffer
// binary.
package testutil

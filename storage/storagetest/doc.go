// Package storagetest owns the conformance suite every storage backend must
// pass: one Run that checks the contract written on storage.Backend and
// storage.Transactional against a real backend.
//
// A backend package calls it from its own tests with a factory that returns a
// fresh, empty backend and registers its cleanup:
//
//	func TestConformance(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) storage.Backend {
//			b, err := bolt.Open(bolt.Options{Path: filepath.Join(t.TempDir(), "coffer.db")})
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { _ = b.Close() })
//			return b
//		})
//	}
//
// Each subtest gets its own backend, so a failure names the one rule broken.
// Transaction subtests are skipped for a backend that is not
// storage.Transactional, and the Close subtest for one that is not an
// io.Closer.
//
// This package must never be imported outside tests, never depend on a
// particular backend, and never weaken a check to let one backend pass: fix the
// backend or change the contract in package storage, in the open.
package storagetest

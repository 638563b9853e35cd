// Package storage owns the physical storage contract of Coffer: the four-method
// Backend (Get, Put, Delete, List) and the optional Transactional capability
// that commits several operations atomically.
//
// Backends live in their own sub-packages (storage/bolt, storage/inmem) and
// every one of them must pass the exported conformance suite in
// storage/storagetest.
//
// Storage is untrusted: everything above the barrier reaches it as ciphertext.
// This package must never import anything above it (wal, barrier, core, bus)
// and never interpret the bytes it stores.
package storage

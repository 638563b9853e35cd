// Package storage owns the physical storage contract of Coffer: the four-method
// Backend (Get, Put, Delete, List) and the optional Transactional capability
// that commits several operations atomically.
//
// Backends live in their own sub-packages (storage/bolt, storage/inmem) and
// every one of them must pass the exported conformance suite in
// storage/storagetest.
//
// Walk (and WalkFolders) is the one recursive walk over List's one-level
// listings: every key under a prefix in byte order, resumable after a key,
// with folders optionally skipped whole. Layers that visit a key space use it
// rather than recursing over List themselves. It reads keys only, never values.
//
// Storage is untrusted: everything above the barrier reaches it as ciphertext.
// This package must never import anything above it (wal, barrier, core, bus)
// and never interpret the bytes it stores.
package storage

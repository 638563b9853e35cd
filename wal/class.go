package wal

import (
	"strconv"
	"strings"
)

// Class is the replication class of a key. The values are part of the entry
// format: do not change them.
type Class uint8

const (
	// Replicated keys are shipped by performance and DR replication.
	Replicated Class = 1
	// Local keys stay on their cluster for performance replication; DR ships them.
	Local Class = 2
	// Ignored keys are per-cluster replication state: written, never logged.
	Ignored Class = 3
)

// String names the class for logs and status output.
func (c Class) String() string {
	switch c {
	case Replicated:
		return "replicated"
	case Local:
		return "local"
	case Ignored:
		return "ignored"
	}
	return "class(" + strconv.Itoa(int(c)) + ")"
}

func (c Class) valid() bool { return c >= Replicated && c <= Ignored }

// DefaultClassify classifies by prefix alone: "wal/", "merkle/" and
// "core/replication/" are Ignored; "sys/token/" and "sys/expire/" are Local;
// everything else is Replicated. Core replaces it (SetClassifier) once the mount
// table knows which mounts are local.
func DefaultClassify(key string) Class {
	switch {
	case strings.HasPrefix(key, "wal/"),
		strings.HasPrefix(key, "merkle/"),
		strings.HasPrefix(key, "core/replication/"):
		return Ignored
	case strings.HasPrefix(key, "sys/token/"),
		strings.HasPrefix(key, "sys/expire/"):
		return Local
	}
	return Replicated
}

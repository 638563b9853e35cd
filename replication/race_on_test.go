//go:build race

package replication

// raceEnabled: the race detector drops a quarter of what sync.Pool is
// given, so allocation counts are not the program's.
const raceEnabled = true

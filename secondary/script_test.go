package secondary

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/script"
)

// The Machine's scripts, in etcd raft's datadriven style (internal/script):
// each file of testdata/*.txt is a sequence of blocks
//
//	# comments
//	command arg=value flag ...
//	----
//	expected output (the actions, one a line, then the state line)
//
// separated by blank lines. Each command delivers one event by hand to the
// file's machine; "new" replaces it with a fresh one (the next scenario).
// COFFER_REWRITE=1 go test -run TestMachineScriptFiles writes the actual
// output into the files instead of comparing (review the diff).
func TestMachineScriptFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, path := range files {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txt"), func(t *testing.T) {
			m := NewMachine()
			script.Run(t, path, func(t *testing.T, c script.Cmd) string {
				var acts []Action
				if c.Name == "new" { // a fresh machine: the next scenario
					m = NewMachine()
				} else {
					ev, err := parseEvent(c.Raw)
					if err != nil {
						t.Fatalf("%s:%d: %v", path, c.Line, err)
					}
					acts = m.Step(ev)
				}
				got := append(formatActions(acts), fmt.Sprintf("state=%s last=%d connected=%v", m.State(), m.LastRemoteWAL(), m.Connected()))
				return strings.Join(got, "\n")
			})
		})
	}
}

// args are a command's arguments: key=value (value quoted when it holds
// spaces) or a bare flag.
type args map[string]string

func splitCommand(line string) (string, args, error) {
	var toks []string
	for rest := strings.TrimSpace(line); rest != ""; rest = strings.TrimSpace(rest) {
		end := strings.IndexByte(rest, ' ')
		if q := strings.Index(rest, `="`); q >= 0 && (end < 0 || q < end) {
			n, err := strconv.QuotedPrefix(rest[q+1:])
			if err != nil {
				return "", nil, fmt.Errorf("bad quoting in %q", rest)
			}
			end = q + 1 + len(n)
		} else if end < 0 {
			end = len(rest)
		}
		toks, rest = append(toks, rest[:end]), rest[end:]
	}
	a := args{}
	for _, tok := range toks[1:] {
		k, v, _ := strings.Cut(tok, "=")
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		}
		a[k] = v
	}
	return toks[0], a, nil
}

// take removes and returns argument k ("" when absent); num parses it.
func (a args) take(k string) string { v := a[k]; delete(a, k); return v }
func (a args) flag(k string) bool   { _, ok := a[k]; delete(a, k); return ok }
func (a args) num(k string) uint64 {
	n, _ := strconv.ParseUint(a.take(k), 10, 64)
	return n
}
func (a args) err() error {
	if e := a.take("err"); e != "" {
		return errors.New(e)
	}
	return nil
}

var causes = map[string]Cause{}

func init() {
	for c := CauseTransient; c <= CauseUnreachable; c++ {
		causes[c.String()] = c
	}
}

// parseEvent turns a script command into the event it delivers.
func parseEvent(line string) (Event, error) {
	name, a, err := splitCommand(line)
	if err != nil {
		return nil, err
	}
	var ev Event
	switch name {
	case "start":
		ev = Started{LastRemoteWAL: a.num("last"), NeedSync: a.flag("need-sync"), Merkle: a.flag("merkle"), Generation: a.num("gen")}
	case "batch":
		ev = BatchArrived{First: a.num("first"), Last: a.num("last"), Gen: a.num("gen")}
	case "applied":
		ev = BatchApplied{Last: a.num("last"), Guard: a.flag("guard")}
	case "guard-mismatch":
		ev = GuardMismatch{Last: a.num("last")}
	case "rejected":
		ev = BatchRejected{First: a.num("first"), Last: a.num("last"), Err: a.err()}
	case "apply-failed":
		ev = ApplyFailed{Err: a.err()}
	case "attempt":
		ev = SyncAttempt{Index: a.flag("index")}
	case "diff-started":
		ev = DiffStarted{}
	case "diff-compared":
		ev = DiffCompared{RemoteApplied: a.num("remote-applied"), Keys: int(a.num("keys"))}
	case "diff-done":
		ev = DiffDone{Keys: int(a.num("keys"))}
	case "listing-started":
		ev = ListingStarted{}
	case "sync-failed":
		c, ok := causes[a.take("cause")]
		if !ok {
			return nil, fmt.Errorf("sync-failed needs cause=%v", causeNames)
		}
		ev = SyncFailed{Cause: c, Err: a.err()}
	case "sync-done":
		ev = SyncDone{WALIndex: a.num("wal"), GuardFrom: a.num("guard-from")}
	case "heartbeat-ok":
		ev = HeartbeatOK{PrimaryLastWAL: a.num("primary-wal"), Gen: a.num("gen")}
	case "heartbeat-failed":
		ev = HeartbeatFailed{Err: a.err()}
	case "filter-changed":
		ev = FilterChanged{}
	case "revoked":
		ev = Revoked{}
	case "stopped":
		ev = Stopped{}
	default:
		return nil, fmt.Errorf("unknown command %q", name)
	}
	if len(a) > 0 {
		return nil, fmt.Errorf("%s: unknown arguments %v", name, a)
	}
	return ev, nil
}

// formatActions prints actions one a line: the type, then its non-zero
// fields as key=value.
func formatActions(acts []Action) []string {
	var out []string
	for _, act := range acts {
		var kv []any
		switch a := act.(type) {
		case StartSync:
			kv = []any{"floor", a.Floor}
		case ApplyBatch:
			kv = []any{"after", a.After}
		case Ack:
			kv = []any{"reason", a.Reason}
		case Nak:
			kv = []any{"reason", a.Reason}
		case FetchDiff:
			kv = []any{"keys", a.Keys}
		case RunListing:
			kv = []any{"fallback", a.Fallback, "err", a.Err}
		case RetrySync:
			kv = []any{"attempt", a.Attempt, "err", a.Err}
		case CheckGuard:
			kv = []any{"last", a.Last}
		}
		line := fmt.Sprintf("%T", act)[len("secondary."):]
		for i := 0; i < len(kv); i += 2 {
			v := fmt.Sprint(kv[i+1])
			switch {
			case kv[i+1] == nil || v == "":
				continue
			case strings.ContainsAny(v, " \"="):
				v = strconv.Quote(v)
			}
			line += fmt.Sprintf(" %s=%s", kv[i], v)
		}
		out = append(out, line)
		if a, ok := act.(RunAside); ok {
			for _, l := range formatActions(a.Acts) {
				out = append(out, "  "+l)
			}
		}
	}
	return out
}

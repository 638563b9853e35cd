package secondary

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/script"
)

// The loop detector's scripts (testdata/loop/*.txt, internal/script):
//
//	new [threshold=N] [min=D] [max=D]   a fresh detector
//	sync at=D                           a resync starts D after the epoch
//	diff keys=a,b,c                     its diff found these keys
//	settled                             streaming settled
//	settles last=N guard-from=N [guard] [checked] [merkle]
//	                                    does this applied batch settle?
//
// Each prints the decision, then the status line. COFFER_REWRITE=1
// rewrites the expected output.
func TestLoopScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/loop/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	epoch := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, path := range files {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txt"), func(t *testing.T) {
			l := NewLoop(LoopConfig{})
			script.Run(t, path, func(t *testing.T, c script.Cmd) string {
				_, a, err := splitCommand(c.Raw)
				if err != nil {
					t.Fatal(err)
				}
				dur := func(k string) time.Duration {
					v := a.take(k)
					if v == "" {
						return 0
					}
					d, err := time.ParseDuration(v)
					if err != nil {
						t.Fatalf("%s:%d: %s=%q: %v", path, c.Line, k, v, err)
					}
					return d
				}
				var out []string
				switch c.Name {
				case "new":
					l = NewLoop(LoopConfig{Threshold: int(a.num("threshold")), BackoffMin: dur("min"), BackoffMax: dur("max")})
				case "sync":
					d := l.SyncStarted(epoch.Add(dur("at")))
					out = append(out, fmt.Sprintf("wait=%s report=%v", d.Wait, d.Report))
				case "diff":
					var keys []string
					if v := a.take("keys"); v != "" {
						keys = strings.Split(v, ",")
					}
					l.Differed(keys)
				case "settled":
					out = append(out, fmt.Sprintf("ended-loop=%d", l.Settled()))
				case "settles":
					ev := BatchApplied{Last: a.num("last"), Guard: a.flag("guard")}
					return fmt.Sprint(settles(ev, a.flag("checked"), a.flag("merkle"), a.num("guard-from")))
				default:
					t.Fatalf("%s:%d: unknown command %q", path, c.Line, c.Name)
				}
				if len(a) > 0 {
					t.Fatalf("%s:%d: unknown arguments %v", path, c.Line, a)
				}
				st := l.Status()
				since, until := "-", "-"
				if !st.Since.IsZero() {
					since = st.Since.Sub(epoch).String()
				}
				if !st.BackoffUntil.IsZero() {
					until = st.BackoffUntil.Sub(epoch).String()
				}
				out = append(out, fmt.Sprintf("consecutive=%d looping=%v kept=%v since=%s backoff-until=%s",
					st.Consecutive, st.Looping, st.KeysThatKeptDiffering, since, until))
				return strings.Join(out, "\n")
			})
		})
	}
}

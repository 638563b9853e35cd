package replmode

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/script"
)

// TestTransitions runs testdata/transitions.txt: each "do <op>" applies the
// table from the current mode and prints the step or the refusal; "reset"
// goes back to disabled.
func TestTransitions(t *testing.T) {
	mode := Disabled
	script.Run(t, "testdata/transitions.txt", func(t *testing.T, c script.Cmd) string {
		switch c.Name {
		case "reset":
			mode = Disabled
			return "mode: " + string(mode)
		case "do":
			if len(c.Args) != 1 {
				t.Fatalf("line %d: do takes one operation", c.Line)
			}
			st, err := Next(mode, Op(c.Args[0]))
			if err != nil {
				return fmt.Sprintf("refused: %s\nmode: %s", strings.TrimPrefix(err.Error(), "invalid request: "), mode)
			}
			mode = st.To
			return fmt.Sprintf("mode: %s\nwipe: %s", st.To, st.Wipe)
		}
		t.Fatalf("line %d: unknown command %q", c.Line, c.Name)
		return ""
	})
}

// Every allowed row of the table names the mode it moves to.
func TestTableRowsMove(t *testing.T) {
	for from, ops := range table {
		for op := range ops {
			if _, err := Next(from, op); err == nil && table[from][op].to == "" {
				t.Errorf("%s from %s moves to no mode", op, from)
			}
		}
	}
}

// TestDRTransitions runs testdata/dr_transitions.txt.
func TestDRTransitions(t *testing.T) {
	perf, dr := Disabled, Disabled
	script.Run(t, "testdata/dr_transitions.txt", func(t *testing.T, c script.Cmd) string {
		switch c.Name {
		case "reset":
			perf, dr = Disabled, Disabled
			return fmt.Sprintf("dr: %s\nperf: %s", dr, perf)
		case "perf":
			perf = Mode(c.Args[0])
			return "perf: " + string(perf)
		case "do":
			st, err := NextDR(perf, dr, Op(c.Args[0]))
			if err != nil {
				return fmt.Sprintf("refused: %s\ndr: %s\nperf: %s", strings.TrimPrefix(err.Error(), "invalid request: "), dr, perf)
			}
			perf, dr = st.PerfTo, st.To
			return fmt.Sprintf("dr: %s\nperf: %s\nwipe: %s", dr, perf, st.Wipe)
		}
		t.Fatalf("line %d: unknown command %q", c.Line, c.Name)
		return ""
	})
}

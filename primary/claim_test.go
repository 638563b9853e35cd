package primary

import (
	"strconv"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/script"
	"github.com/cofferhq/coffer/replication"
)

// TestClaimDecisions runs testdata/claim.txt: "decide" takes the view as
// key=value arguments (seen=<cluster>/<instance>/<gen>[/shipped[/released][/term<N>]],
// or none) and prints the verdict.
func TestClaimDecisions(t *testing.T) {
	script.Run(t, "testdata/claim.txt", func(t *testing.T, c script.Cmd) string {
		if c.Name != "decide" {
			t.Fatalf("line %d: unknown command %q", c.Line, c.Name)
		}
		v := claimView{Cluster: "A", Instance: "a1"}
		num := func(s string) uint64 {
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				t.Fatalf("line %d: %v", c.Line, err)
			}
			return n
		}
		for _, arg := range c.Args {
			k, val, _ := strings.Cut(arg, "=")
			switch k {
			case "stored":
				v.StoredGen = num(val)
			case "shipped":
				v.StoredShipped = num(val)
			case "stream":
				v.StreamLast = num(val)
			case "holding":
				v.Holding = val == "true"
			case "quiet":
				v.Quiet = val == "true"
			case "alive":
				v.Alive = val == "true"
			case "promote":
				v.Promote = val == "true"
			case "behind":
				v.Behind = val
			case "term":
				v.HATerm = num(val)

			case "seen":
				if val == "none" {
					continue
				}
				p := strings.Split(val, "/")
				s := &replication.Claim{Set: "A", ClusterID: p[0], Instance: p[1], Gen: num(p[2])}
				if len(p) > 3 {
					s.Shipped = num(p[3])
				}
				for _, extra := range p[min(len(p), 4):] {
					if t, ok := strings.CutPrefix(extra, "term"); ok {
						s.HATerm = num(t)
					}
					s.Released = s.Released || extra == "released"
				}
				v.Seen = s
			default:
				t.Fatalf("line %d: unknown argument %q", c.Line, k)
			}
		}
		return decideClaim(v).String()
	})
}

package replication

import "testing"

func TestNames(t *testing.T) {
	id := "8d3c-41aa"
	for got, want := range map[string]string{
		StreamName(id):              "COFFER_WAL_8d3c_41aa",
		WALSubject(id):              "coffer.8d3c-41aa.wal",
		RPCSubject(id, MethodSync):  "coffer.8d3c-41aa.rpc.sync",
		ConsumerName("dc-2"):        "sec_dc-2",
		ConsumerName("a.b*c>d e/f"): "sec_a_b_c_d_e_f",
		WALSubject("a.b"):           "coffer.a_b.wal",
		StreamName(""):              "COFFER_WAL__",
		RPCSubject("c", "x.y"):      "coffer.c.rpc.x_y",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	for _, ok := range []string{"dc2", "DC_2-a", "8d3c41aa-0000-1111-2222-333344445555"} {
		if err := ValidateID(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a.b", "a b", "é", string(make([]byte, MaxIDLen+1))} {
		if ValidateID(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

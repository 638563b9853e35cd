package main

import (
	"encoding/json"

	"github.com/hashicorp/vault/api"
)

// status is `coffer status`: the seal status and, when unsealed, the HA
// status. Like `vault status` it exits 0 when unsealed, 2 when sealed and 1
// on error.
func (c *cli) status(args []string) int {
	f := c.newFlags("status", "status [-address=ADDR] [-format=table|json]")
	if code, ok := f.parseArgs(args, 0, 0); !ok {
		return code
	}
	// Errors exit 1 (c.local), as vault status does: 2 means sealed.
	client, err := f.client()
	if err != nil {
		return c.local("Error creating client: %v", err)
	}
	seal, err := client.Sys().SealStatus()
	if err != nil {
		return c.local("Error checking seal status: %s", apiError(err))
	}
	// A sealed server cannot answer sys/leader; do not ask (and do not wait
	// for the client's retries on 503).
	var leader *api.LeaderResponse
	if !seal.Sealed {
		if leader, err = client.Sys().Leader(); err != nil {
			return c.local("Error checking leader status: %s", apiError(err))
		}
	}
	rows := sealStatusRows(seal)
	if leader == nil {
		rows = append(rows, row{"HA Enabled", "n/a"})
	} else {
		rows = append(rows, row{"HA Enabled", leader.HAEnabled})
		if leader.HAEnabled {
			mode := "standby"
			if leader.IsSelf {
				mode = "active"
			}
			rows = append(rows, row{"HA Mode", mode}, row{"Active Node Address", orNA(leader.LeaderAddress)})
		}
	}
	code := f.output(statusJSON(seal, leader), rows)
	if code != exitOK {
		return code
	}
	if seal.Sealed {
		return exitSealed
	}
	return exitOK
}

// statusJSON is `status -format=json`: the seal status fields with the HA
// fields next to them, as vault prints it.
func statusJSON(seal *api.SealStatusResponse, leader *api.LeaderResponse) map[string]any {
	out := map[string]any{}
	merge := func(v any) {
		b, err := json.Marshal(v)
		if err != nil {
			return
		}
		_ = json.Unmarshal(b, &out)
	}
	merge(seal)
	if leader != nil {
		merge(leader)
	} else {
		out["ha_enabled"] = false
	}
	return out
}

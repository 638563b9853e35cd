package main

// -field: printing one field of a secret or a map, raw (exactly its bytes when
// piped) or JSON-encoded, as the vault CLI does.

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hashicorp/vault/api"
)

// rawField picks -field from a secret as the vault CLI does: auth fields,
// wrap fields and lease fields by name, else the data key.
func rawField(s *api.Secret, field string) any {
	switch {
	case s.Auth != nil:
		switch field {
		case "token":
			return s.Auth.ClientToken
		case "token_accessor":
			return s.Auth.Accessor
		case "token_duration":
			return s.Auth.LeaseDuration
		case "token_renewable":
			return s.Auth.Renewable
		case "token_policies":
			return s.Auth.TokenPolicies
		case "identity_policies":
			return s.Auth.IdentityPolicies
		case "policies":
			return s.Auth.Policies
		}
	case s.WrapInfo != nil:
		switch field {
		case "wrapping_token":
			return s.WrapInfo.Token
		case "wrapping_accessor":
			return s.WrapInfo.Accessor
		case "wrapping_token_ttl":
			return s.WrapInfo.TTL
		case "wrapping_token_creation_time":
			return s.WrapInfo.CreationTime.Format(time.RFC3339Nano)
		case "wrapping_token_creation_path":
			return s.WrapInfo.CreationPath
		case "wrapped_accessor":
			return s.WrapInfo.WrappedAccessor
		}
	default:
		switch field {
		case "lease_duration", "refresh_interval":
			return s.LeaseDuration
		case "lease_id":
			return s.LeaseID
		case "request_id":
			return s.RequestID
		case "renewable":
			return s.Renewable
		case "data":
			if v, ok := s.Data["data"]; ok {
				return v
			}
			return s.Data
		}
	}
	return s.Data[field]
}

// printField prints one field: raw in table format (with no newline when
// stdout is not a terminal, so that $(coffer ... -field=x) is exact),
// JSON-encoded with -format=json. data is a *api.Secret or a map.
func (f *commandFlags) printField(data any, field string) int {
	var val any
	switch d := data.(type) {
	case *api.Secret:
		if d != nil {
			val = rawField(d, field)
		}
	case map[string]any:
		val = d[field]
	}
	if val == nil {
		return f.cli.local("Field %q not present in secret", field)
	}
	if f.format == "json" {
		b, err := json.MarshalIndent(val, "", "  ")
		if err != nil {
			return f.cli.local("Error formatting output: %v", err)
		}
		fmt.Fprintln(f.cli.stdout, string(b))
		return exitOK
	}
	s := fmt.Sprintf("%v", val)
	if isTerminal(f.cli.stdout) {
		fmt.Fprintln(f.cli.stdout, s)
	} else {
		fmt.Fprint(f.cli.stdout, s)
	}
	return exitOK
}

func isTerminal(w io.Writer) bool {
	file, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := file.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

package core

import (
	"time"

	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/telemetry"
)

// metricsResponse is sys/metrics for a token with read on it: the installed
// registry rendered in the format the query asks for (telemetry.Render).
func metricsResponse(req *logical.Request) (*logical.Response, error) {
	format, _ := req.Data["format"].(string)
	ct, body, err := telemetry.Render(telemetry.Default(), format)
	if err != nil {
		return nil, logical.Errorf(telemetry.StatusOf(err), "%s", err.Error())
	}
	return &logical.Response{RawBody: body, ContentType: ct}, nil
}

// measureRequest records a request's latency: vault.core.handle_request (or
// handle_login_request for a login), and vault.route.<op>.<mount> when its
// path is under a mount. The operation is the request's (a write is
// "update" even where it creates).
func (c *Core) measureRequest(start time.Time, req *Request) {
	if telemetry.Default() == nil {
		return
	}
	var mount string
	login := false
	if path, err := NormalizePath(req.Path, req.Operation); err == nil {
		if mb, rel := c.router.match(path); mb != nil {
			mount = mb.entry.RoutePath()
			login = mb.entry.Table == AuthTable && unauthenticated(mb, rel)
		}
	}
	name := telemetry.NameHandleRequest
	if login {
		name = telemetry.NameHandleLoginRequest
	}
	telemetry.MeasureSince(name, start)
	if mount != "" {
		telemetry.MeasureSince(telemetry.RouteName(string(req.Operation), mount), start)
	}
}

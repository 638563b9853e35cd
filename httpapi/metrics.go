package httpapi

import (
	"net/http"

	"github.com/cofferhq/coffer/telemetry"
)

// metricsRoutes adds sys/metrics to the sys table when the listener serves
// it without a token (Options.UnauthenticatedMetricsAccess). Otherwise the
// path is left to the logical handler: core checks the token's read on
// sys/metrics, audits the request and renders the same body.
func (h *handler) metricsRoutes(routes map[string]route) {
	if h.opts.UnauthenticatedMetricsAccess {
		routes["sys/metrics"] = route{http.MethodGet: h.metrics}
	}
}

// metrics is GET sys/metrics without a token: ?format=prometheus, or JSON.
func (h *handler) metrics(w http.ResponseWriter, r *http.Request) error {
	ct, body, err := telemetry.Render(telemetry.Default(), r.URL.Query().Get("format"))
	if err != nil {
		WriteError(w, r, telemetry.StatusOf(err), err.Error())
		return nil
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	return nil
}

package httpapi

import (
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cofferhq/coffer/core"
)

// sysRoutes is the sys table: every endpoint httpapi serves itself, by path
// after /v1/ and method. Everything else goes to Options.Logical.
func (h *handler) sysRoutes() map[string]route {
	routes := map[string]route{
		"sys/health":      {http.MethodGet: h.health, http.MethodHead: h.health},
		"sys/seal-status": {http.MethodGet: h.sealStatus},
		"sys/leader":      {http.MethodGet: h.leader},
		"sys/init":        {http.MethodGet: h.initStatus, http.MethodPut: h.initialize, http.MethodPost: h.initialize},
		"sys/unseal":      {http.MethodPut: h.unseal, http.MethodPost: h.unseal},
		"sys/seal":        {http.MethodPut: h.seal, http.MethodPost: h.seal},
		"sys/rotate":      {http.MethodPut: h.rotate, http.MethodPost: h.rotate},
		"sys/key-status":  {http.MethodGet: h.keyStatus},
		"sys/step-down":   {http.MethodPut: h.stepDown, http.MethodPost: h.stepDown},
	}
	h.generationRoutes(routes, "sys/generate-root", h.core.RootGeneration)
	// A DR secondary serves these while it refuses every other client
	// request: they are here, not behind Options.Logical.
	h.generationRoutes(routes, core.DROperationTokenPath, h.core.DROperationTokenGeneration)
	routes[drTokenDeletePath] = route{http.MethodPut: h.deleteDROperationToken, http.MethodPost: h.deleteDROperationToken}
	h.tokenless[drTokenDeletePath] = true
	h.metricsRoutes(routes)
	return routes
}

// Vault's default sys/health status codes.
const (
	codeActive      = http.StatusOK
	codeStandby     = http.StatusTooManyRequests // 429
	codeDRSecondary = 472
	codePerfStandby = 473
	codeUninit      = http.StatusNotImplemented     // 501
	codeSealed      = http.StatusServiceUnavailable // 503
)

// healthCodes holds the status codes sys/health answers with, after the
// query overrides.
type healthCodes struct {
	active, standby, drSecondary, perfStandby, uninit, sealed int
	standbyOK, perfStandbyOK                                  bool
}

// parseHealthQuery reads Vault's sys/health overrides: standbyok,
// perfstandbyok, activecode, standbycode, drsecondarycode,
// performancestandbycode, sealedcode, uninitcode. removedcode and
// haunhealthycode (sent by vault/api) are validated and otherwise unused:
// Coffer has neither state.
func parseHealthQuery(r *http.Request) (healthCodes, error) {
	q := r.URL.Query()
	c := healthCodes{
		active: codeActive, standby: codeStandby, drSecondary: codeDRSecondary,
		perfStandby: codePerfStandby, uninit: codeUninit, sealed: codeSealed,
	}
	var unused int
	codes := []struct {
		name string
		dst  *int
	}{
		{"activecode", &c.active}, {"standbycode", &c.standby},
		{"drsecondarycode", &c.drSecondary}, {"performancestandbycode", &c.perfStandby},
		{"uninitcode", &c.uninit}, {"sealedcode", &c.sealed},
		{"removedcode", &unused}, {"haunhealthycode", &unused},
	}
	for _, p := range codes {
		v, ok := q[p.name]
		if !ok || len(v) == 0 {
			continue
		}
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 100 || n > 599 {
			return c, badRequestf("bad code value %q for %s: give an HTTP status code between 100 and 599", v[0], p.name)
		}
		*p.dst = n
	}
	bools := []struct {
		name string
		dst  *bool
	}{{"standbyok", &c.standbyOK}, {"perfstandbyok", &c.perfStandbyOK}}
	for _, p := range bools {
		v, ok := q[p.name]
		if !ok || len(v) == 0 {
			continue
		}
		if v[0] == "" { // ?standbyok alone means true, as in Vault
			*p.dst = true
			continue
		}
		b, err := strconv.ParseBool(v[0])
		if err != nil {
			return c, badRequestf("bad value %q for %s: use true or false", v[0], p.name)
		}
		*p.dst = b
	}
	return c, nil
}

// healthCode picks the status code for a health report, in Vault's order:
// uninitialized, sealed, DR secondary, performance standby, standby, active.
func healthCode(s *core.HealthStatus, c healthCodes) int {
	switch {
	case !s.Initialized:
		return c.uninit
	case s.Sealed:
		return c.sealed
	case s.ReplicationDRMode == "secondary":
		return c.drSecondary
	case s.PerformanceStandby:
		if c.perfStandbyOK {
			return c.active
		}
		return c.perfStandby
	case s.Standby:
		if c.standbyOK {
			return c.active
		}
		return c.standby
	default:
		return c.active
	}
}

func (h *handler) health(w http.ResponseWriter, r *http.Request) error {
	codes, err := parseHealthQuery(r)
	if err != nil {
		return err
	}
	s := h.core.Health(r.Context())
	WriteJSON(w, r, healthCode(s, codes), s)
	return nil
}

func (h *handler) sealStatus(w http.ResponseWriter, r *http.Request) error {
	s, err := h.core.SealStatus(r.Context())
	if err != nil {
		return err
	}
	WriteJSON(w, r, http.StatusOK, s)
	return nil
}

func (h *handler) leader(w http.ResponseWriter, r *http.Request) error {
	l, err := h.core.Leader(r.Context())
	if err != nil {
		return err
	}
	WriteJSON(w, r, http.StatusOK, l)
	return nil
}

func (h *handler) initStatus(w http.ResponseWriter, r *http.Request) error {
	ok, err := h.core.Initialized(r.Context())
	if err != nil {
		return err
	}
	WriteJSON(w, r, http.StatusOK, map[string]bool{"initialized": ok})
	return nil
}

// initRequest is sys/init's body as vault/api sends it.
type initRequest struct {
	SecretShares      int      `json:"secret_shares"`
	SecretThreshold   int      `json:"secret_threshold"`
	StoredShares      int      `json:"stored_shares"`
	PGPKeys           []string `json:"pgp_keys"`
	RecoveryShares    int      `json:"recovery_shares"`
	RecoveryThreshold int      `json:"recovery_threshold"`
	RecoveryPGPKeys   []string `json:"recovery_pgp_keys"`
	RootTokenPGPKey   string   `json:"root_token_pgp_key"`
}

// initResponse is sys/init's answer: every share in hex and base64.
type initResponse struct {
	Keys               []string `json:"keys"`
	KeysBase64         []string `json:"keys_base64"`
	RecoveryKeys       []string `json:"recovery_keys,omitempty"`
	RecoveryKeysBase64 []string `json:"recovery_keys_base64,omitempty"`
	RootToken          string   `json:"root_token"`
}

func (h *handler) initialize(w http.ResponseWriter, r *http.Request) error {
	var req initRequest
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	if len(req.PGPKeys) > 0 || len(req.RecoveryPGPKeys) > 0 || req.RootTokenPGPKey != "" {
		return badRequestf("PGP encryption of key shares and of the root token is not supported by Coffer: omit pgp_keys, recovery_pgp_keys and root_token_pgp_key")
	}
	res, err := h.core.Initialize(r.Context(), core.InitRequest{
		SecretShares: req.SecretShares, SecretThreshold: req.SecretThreshold,
		RecoveryShares: req.RecoveryShares, RecoveryThreshold: req.RecoveryThreshold,
	})
	if err != nil {
		return err
	}
	out := initResponse{RootToken: res.RootToken}
	out.Keys, out.KeysBase64 = encodeShares(res.Keys)
	if len(res.RecoveryKeys) > 0 {
		out.RecoveryKeys, out.RecoveryKeysBase64 = encodeShares(res.RecoveryKeys)
	}
	WriteJSON(w, r, http.StatusOK, out)
	return nil
}

// encodeShares renders key shares in hex and base64; never nil, so the JSON
// says [] rather than null.
func encodeShares(shares [][]byte) (hexes, b64s []string) {
	hexes, b64s = make([]string, 0, len(shares)), make([]string, 0, len(shares))
	for _, s := range shares {
		hexes = append(hexes, hex.EncodeToString(s))
		b64s = append(b64s, base64.StdEncoding.EncodeToString(s))
	}
	return hexes, b64s
}

// unsealRequest is sys/unseal's body.
type unsealRequest struct {
	Key     string `json:"key"`
	Reset   bool   `json:"reset"`
	Migrate bool   `json:"migrate"`
}

// decodeShare accepts a share in hex or in standard base64, like Vault.
func decodeShare(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if b, err := hex.DecodeString(s); err == nil {
		return b, nil
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return nil, badRequestf("'key' must be a valid hex or base64 string: give one key share (unseal or recovery key) exactly as sys/init printed it")
}

func (h *handler) unseal(w http.ResponseWriter, r *http.Request) error {
	var req unsealRequest
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	if req.Migrate {
		return badRequestf("seal migration is not supported by Coffer: unseal without 'migrate'")
	}
	var (
		s   *core.SealStatus
		err error
	)
	switch {
	case req.Reset:
		s, err = h.core.ResetUnseal(r.Context())
	case req.Key == "":
		return badRequestf("'key' must be specified in request body as JSON, or 'reset' set to true")
	default:
		key, derr := decodeShare(req.Key)
		if derr != nil {
			return derr
		}
		s, err = h.core.Unseal(r.Context(), key)
	}
	if err != nil {
		return err
	}
	WriteJSON(w, r, http.StatusOK, s)
	return nil
}

func (h *handler) seal(w http.ResponseWriter, r *http.Request) error {
	if err := h.core.Seal(r.Context(), RequestToken(r)); err != nil {
		return err
	}
	WriteNoContent(w)
	return nil
}

// stepDown makes the active node of an HA cluster give its lock up (root).
func (h *handler) stepDown(w http.ResponseWriter, r *http.Request) error {
	if err := h.core.StepDown(r.Context(), RequestToken(r)); err != nil {
		return err
	}
	WriteNoContent(w)
	return nil
}

func (h *handler) rotate(w http.ResponseWriter, r *http.Request) error {
	if _, err := h.core.Rotate(r.Context(), RequestToken(r)); err != nil {
		return err
	}
	WriteNoContent(w)
	return nil
}

// keyStatusData is the data of sys/key-status, in Vault's field names.
func keyStatusData(k *core.KeyStatus) map[string]any {
	return map[string]any{
		"term":         k.Term,
		"install_time": k.InstallTime.Format(time.RFC3339Nano),
		"encryptions":  k.Encryptions,
	}
}

func (h *handler) keyStatus(w http.ResponseWriter, r *http.Request) error {
	k, err := h.core.KeyStatus(r.Context(), RequestToken(r))
	if err != nil {
		return err
	}
	// Vault answers sys/ reads with the logical envelope and, for clients
	// written against its older API, the same fields at the top level too.
	data := keyStatusData(k)
	body := map[string]any{}
	for key, v := range data {
		body[key] = v
	}
	env := NewEnvelope(data)
	body["request_id"] = env.RequestID
	body["lease_id"] = env.LeaseID
	body["renewable"] = env.Renewable
	body["lease_duration"] = env.LeaseDuration
	body["data"] = env.Data
	body["wrap_info"] = env.WrapInfo
	body["warnings"] = env.Warnings
	body["auth"] = env.Auth
	WriteJSON(w, r, http.StatusOK, body)
	return nil
}

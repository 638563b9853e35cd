package httpapi

import (
	"net/http"

	"github.com/cofferhq/coffer/core"
)

// generationRoutes adds the endpoints of one kind of token generation
// authorised by key shares, under base (Vault's shapes):
//
//	GET    <base>/attempt   the attempt's status
//	PUT    <base>/attempt   start one: {"otp": "", "pgp_key": ""}; the answer
//	                        carries the OTP the server drew when otp is empty
//	DELETE <base>/attempt   cancel it (204)
//	PUT    <base>/update    give one share: {"key": "<hex or base64>", "nonce": "..."}
//
// They need no token: the key shares authorise them. Every answer is a raw
// JSON object (core.GenerationStatus), as in Vault. sys/generate-root and
// the DR operation token (core.DROperationTokenPath) take these routes, each
// with its own core.TokenGeneration.
func (h *handler) generationRoutes(routes map[string]route, base string, gen func() *core.TokenGeneration) {
	g := generationHandler{gen: gen}
	routes[base+"/attempt"] = route{
		http.MethodGet: g.status, http.MethodPut: g.start, http.MethodPost: g.start, http.MethodDelete: g.cancel,
	}
	routes[base+"/update"] = route{http.MethodPut: g.update, http.MethodPost: g.update}
	h.tokenless[base+"/attempt"] = true
	h.tokenless[base+"/update"] = true
}

type generationHandler struct {
	gen func() *core.TokenGeneration
}

// generationStartRequest is the body vault/api's GenerateRootInit sends.
type generationStartRequest struct {
	OTP    string `json:"otp"`
	PGPKey string `json:"pgp_key"`
}

// generationUpdateRequest is the body vault/api's GenerateRootUpdate sends.
type generationUpdateRequest struct {
	Key   string `json:"key"`
	Nonce string `json:"nonce"`
}

func (g generationHandler) status(w http.ResponseWriter, r *http.Request) error {
	st, err := g.gen().Status(r.Context())
	if err != nil {
		return err
	}
	WriteJSON(w, r, http.StatusOK, st)
	return nil
}

func (g generationHandler) start(w http.ResponseWriter, r *http.Request) error {
	var req generationStartRequest
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	if req.PGPKey != "" {
		return badRequestf("PGP encryption of the generated token is not supported by Coffer: omit pgp_key. The token comes back XORed with a one-time password instead: leave otp empty and the server draws one and returns it once, in this answer")
	}
	st, err := g.gen().Start(r.Context(), req.OTP)
	if err != nil {
		return err
	}
	WriteJSON(w, r, http.StatusOK, st)
	return nil
}

func (g generationHandler) cancel(w http.ResponseWriter, r *http.Request) error {
	if err := g.gen().Cancel(r.Context()); err != nil {
		return err
	}
	WriteNoContent(w)
	return nil
}

func (g generationHandler) update(w http.ResponseWriter, r *http.Request) error {
	var req generationUpdateRequest
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	if req.Key == "" {
		return badRequestf("'key' must be specified in request body as JSON: one key share, in hex or base64")
	}
	if req.Nonce == "" {
		return badRequestf("'nonce' must be specified in request body as JSON: the nonce of the attempt you give your share to, as its status (GET on the attempt) shows it")
	}
	key, err := decodeShare(req.Key)
	if err != nil {
		return err
	}
	st, err := g.gen().Update(r.Context(), key, req.Nonce)
	if err != nil {
		return err
	}
	WriteJSON(w, r, http.StatusOK, st)
	return nil
}

// drTokenDeletePath deletes a DR operation token (Vault's shape):
//
//	PUT sys/replication/dr/secondary/operation-token/delete
//	    {"dr_operation_token": "<the token>"}   204
//
// The token authorises its own deletion: no client token is needed.
const drTokenDeletePath = "sys/replication/dr/secondary/operation-token/delete"

// drTokenDeleteRequest is the body of drTokenDeletePath.
type drTokenDeleteRequest struct {
	DROperationToken string `json:"dr_operation_token"`
}

func (h *handler) deleteDROperationToken(w http.ResponseWriter, r *http.Request) error {
	var req drTokenDeleteRequest
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	if req.DROperationToken == "" {
		return badRequestf("'dr_operation_token' must be specified in request body as JSON: the DR operation token to delete, as coffer operator generate-root -dr-token -decode printed it")
	}
	if err := h.core.RevokeDROperationToken(r.Context(), req.DROperationToken); err != nil {
		return err
	}
	WriteNoContent(w)
	return nil
}

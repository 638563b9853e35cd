package replmode

import (
	"fmt"

	"github.com/cofferhq/coffer/logical"
)

// Mode is a cluster's performance replication mode. It is stored (see
// state.go) and reported by the status endpoints.
type Mode string

// The modes.
const (
	Disabled  Mode = "disabled"
	Primary   Mode = "primary"
	Secondary Mode = "secondary"
)

// Op is an operator's replication request.
type Op string

// The operations.
const (
	OpEnablePrimary    Op = "enable-primary"
	OpDisablePrimary   Op = "disable-primary"
	OpSecondaryToken   Op = "secondary-token"
	OpRevokeSecondary  Op = "revoke-secondary"
	OpEnableSecondary  Op = "enable-secondary"
	OpDisableSecondary Op = "disable-secondary"
	OpPromote          Op = "promote"
	OpDemote           Op = "demote"
	OpUpdatePrimary    Op = "update-primary"
	// OpPathsFilter reads, writes or deletes a secondary's paths filter.
	OpPathsFilter Op = "paths-filter"
)

// Wipe says what a transition deletes from this cluster's storage.
type Wipe string

// What a transition wipes.
const (
	// WipeNothing: the data stays (disable keeps a former secondary's data,
	// writable as a standalone cluster).
	WipeNothing Wipe = "nothing"
	// WipeAllButWAL: everything but the WAL (wal/) goes before an activation:
	// the primary's keyring and data replace it, local mounts included (they
	// were encrypted under the old keyring). The cluster's identity is
	// rewritten afterwards under the new keyring.
	WipeAllButWAL Wipe = "all-but-wal"
)

// Step is the outcome of an allowed operation.
type Step struct {
	To   Mode
	Wipe Wipe
}

// rule is one row of the table: an operation from a mode either moves to a
// mode (wiping what it says) or is refused with a sentence for the operator.
type rule struct {
	to      Mode
	wipe    Wipe
	refusal string
}

// table is every transition. An operation missing from a mode's row is
// refused with defaultRefusal.
var table = map[Mode]map[Op]rule{
	Disabled: {
		OpPromote:          {refusal: "this cluster is not a performance secondary"},
		OpDemote:           {refusal: "this cluster is not a performance primary"},
		OpUpdatePrimary:    {refusal: "this cluster is not a performance secondary: activate it with sys/replication/performance/secondary/enable"},
		OpEnablePrimary:    {to: Primary, wipe: WipeNothing},
		OpEnableSecondary:  {to: Secondary, wipe: WipeAllButWAL},
		OpDisablePrimary:   {refusal: "this cluster is not a performance primary"},
		OpDisableSecondary: {refusal: "this cluster is not a performance secondary"},
	},
	Primary: {
		OpDemote:           {to: Secondary, wipe: WipeNothing},
		OpPromote:          {refusal: "this cluster is already a performance primary"},
		OpUpdatePrimary:    {refusal: "this cluster is a performance primary: demote it first (sys/replication/performance/primary/demote)"},
		OpEnablePrimary:    {refusal: "this cluster is already a performance primary"},
		OpDisablePrimary:   {to: Disabled, wipe: WipeNothing},
		OpSecondaryToken:   {to: Primary, wipe: WipeNothing},
		OpRevokeSecondary:  {to: Primary, wipe: WipeNothing},
		OpPathsFilter:      {to: Primary, wipe: WipeNothing},
		OpEnableSecondary:  {refusal: "this cluster is a performance primary: a cluster cannot be both; disable the primary first"},
		OpDisableSecondary: {refusal: "this cluster is not a performance secondary"},
	},
	Secondary: {
		OpPromote:          {to: Primary, wipe: WipeNothing},
		OpUpdatePrimary:    {to: Secondary, wipe: WipeNothing},
		OpDemote:           {refusal: "this cluster is not a performance primary"},
		OpEnablePrimary:    {refusal: "this cluster is a performance secondary: a replication set has exactly one primary; disable the secondary first"},
		OpDisablePrimary:   {refusal: "this cluster is not a performance primary"},
		OpEnableSecondary:  {refusal: "this cluster is already a performance secondary: disable it first to join another primary"},
		OpDisableSecondary: {to: Disabled, wipe: WipeNothing},
	},
}

// defaultRefusal explains an operation a mode has no row for.
func defaultRefusal(from Mode, op Op) string {
	switch op {
	case OpSecondaryToken, OpRevokeSecondary, OpPathsFilter:
		return "this cluster is not a performance primary: enable it with sys/replication/performance/primary/enable"
	}
	return fmt.Sprintf("%s is not possible on a cluster whose performance mode is %s", op, from)
}

// Next decides an operation from a mode: the step it takes, or an invalid
// request error that says why not. It does no I/O.
func Next(from Mode, op Op) (Step, error) {
	if from == "" {
		from = Disabled
	}
	r, ok := table[from][op]
	switch {
	case !ok:
		return Step{}, logical.InvalidRequest("%s", defaultRefusal(from, op))
	case r.refusal != "":
		return Step{}, logical.InvalidRequest("%s", r.refusal)
	}
	return Step{To: r.to, Wipe: r.wipe}, nil
}

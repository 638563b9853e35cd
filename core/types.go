package core

import (
	"errors"
	"time"
)

// InitRequest is the body of sys/init.
type InitRequest struct {
	SecretShares      int `json:"secret_shares"`
	SecretThreshold   int `json:"secret_threshold"`
	RecoveryShares    int `json:"recovery_shares"`
	RecoveryThreshold int `json:"recovery_threshold"`
	// RootTokenID, when set, is used as the root token (dev mode only).
	RootTokenID string `json:"-"`
}

// InitResult is what sys/init returns once: the key shares and the root token.
// Keys are the unseal key shares (shamir seal); RecoveryKeys the recovery key
// shares (static seal). Each is raw bytes; httpapi renders hex and base64.
type InitResult struct {
	Keys         [][]byte
	RecoveryKeys [][]byte
	RootToken    string
}

// SealStatus is the state sys/seal-status and sys/unseal report, with Vault's fields.
type SealStatus struct {
	Type         string `json:"type"`
	Initialized  bool   `json:"initialized"`
	Sealed       bool   `json:"sealed"`
	T            int    `json:"t"`
	N            int    `json:"n"`
	Progress     int    `json:"progress"`
	Nonce        string `json:"nonce"`
	Version      string `json:"version"`
	BuildDate    string `json:"build_date"`
	Migration    bool   `json:"migration"`
	ClusterName  string `json:"cluster_name,omitempty"`
	ClusterID    string `json:"cluster_id,omitempty"`
	RecoverySeal bool   `json:"recovery_seal"`
	StorageType  string `json:"storage_type,omitempty"`
}

// HealthStatus is the body of sys/health; httpapi picks the status code.
type HealthStatus struct {
	Initialized                bool   `json:"initialized"`
	Sealed                     bool   `json:"sealed"`
	Standby                    bool   `json:"standby"`
	PerformanceStandby         bool   `json:"performance_standby"`
	ReplicationPerformanceMode string `json:"replication_performance_mode"`
	ReplicationDRMode          string `json:"replication_dr_mode"`
	ServerTimeUTC              int64  `json:"server_time_utc"`
	Version                    string `json:"version"`
	ClusterName                string `json:"cluster_name,omitempty"`
	ClusterID                  string `json:"cluster_id,omitempty"`
}

// LeaderStatus is the body of sys/leader.
type LeaderStatus struct {
	HAEnabled            bool   `json:"ha_enabled"`
	IsSelf               bool   `json:"is_self"`
	ActiveTime           string `json:"active_time"`
	LeaderAddress        string `json:"leader_address"`
	LeaderClusterAddress string `json:"leader_cluster_address"`
	PerfStandby          bool   `json:"performance_standby"`
	PerfStandbyLastWAL   uint64 `json:"performance_standby_last_remote_wal"`
	LastWAL              uint64 `json:"last_wal,omitempty"`
}

// KeyStatus describes the barrier's active encryption key (sys/key-status, sys/rotate).
type KeyStatus struct {
	Term        uint32    `json:"term"`
	InstallTime time.Time `json:"install_time"`
	Encryptions uint64    `json:"encryptions"`
}

// Errors core returns; httpapi maps each to an HTTP status.
var (
	// ErrSealed: the barrier is sealed; unseal with sys/unseal first (503).
	ErrSealed = errors.New("server is sealed")
	// ErrNotInitialized: run sys/init first (400 on most endpoints, 501 on health).
	ErrNotInitialized = errors.New("server is not initialized")
	// ErrAlreadyInitialized: sys/init on an initialized server (400).
	ErrAlreadyInitialized = errors.New("server is already initialized")
	// ErrPermissionDenied: a missing, wrong or expired token, or one without the capability (403).
	ErrPermissionDenied = errors.New("permission denied")
	// ErrInvalidKey: an unseal share that does not combine into the key that opens the barrier (400).
	ErrInvalidKey = errors.New("invalid key")
	// ErrReplacing: an activation is replacing this cluster's data; init,
	// unseal and seal wait for it to end (503).
	ErrReplacing = errors.New("an activation is replacing this cluster's data: retry when it has finished (sys/replication/status shows its progress)")
	// ErrActivationPending: sys/init on a cluster whose data belongs to an
	// activation that has not completed (400).
	ErrActivationPending = errors.New("this cluster is being activated as a replication secondary and cannot be initialized: sys/replication/status shows the activation; finish it with sys/replication/performance/secondary/enable and a new token from the same primary")
)

// InvalidRequestError is a request the caller must correct (400).
type InvalidRequestError struct{ Msg string }

func (e *InvalidRequestError) Error() string { return e.Msg }

// Invalidf builds an InvalidRequestError.
func Invalidf(format string, args ...any) error {
	return &InvalidRequestError{Msg: sprintf(format, args...)}
}

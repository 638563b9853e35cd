package bus

// Authentication of the embedded nats-server.
//
// Outside dev mode (Config.NoAuth false) the embedded server accepts exactly
// two nkey users, both in its one (global) account:
//
//   - this process's own connection: a key pair generated in memory at every
//     start, never written anywhere, wiped on Close;
//   - the client user: a key pair generated at first start and kept in
//     StoreDir/auth/client.nk, with the cluster's JetStream state. Secondaries
//     and tools (the nats CLI: nats --nkey FILE) connect with a copy of it.
//     Deleting the file and restarting makes a new one: every copy then stops
//     working (that is how an operator locks a revoked secondary out).
//
// The client seed file, version 1 (written by writeSeedFile; read by any nkey
// reader, as nats.go and the nats CLI read it):
//
//	# coffer nkey seed v1
//	# <what the file is for; comment lines start with '#'>
//	# public key: U<55 base32 characters>
//	SU<56 base32 characters>
//
// The directory is created 0700 and the file 0600; a file or directory that
// others may read or write is refused with a message that says to chmod it.
// The file is written to a temporary name, fsynced, renamed, and the
// directory fsynced, so a crash leaves either no file or a whole one.

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nats-io/nkeys"
)

const (
	// AuthDirName is the directory inside StoreDir that holds the embedded
	// server's credentials.
	AuthDirName = "auth"
	// ClientSeedName is the client user's seed file inside AuthDirName.
	ClientSeedName = "client.nk"
	// seedHeader is the first line of a seed file, with its format version.
	seedHeader = "# coffer nkey seed v1"
)

// serverAuth is the embedded server's credentials.
type serverAuth struct {
	own        nkeys.KeyPair // this process's connection, in memory only
	ownPub     string
	clientPub  string
	clientFile string // StoreDir/auth/client.nk
}

// loadServerAuth reads the client seed under storeDir, creating it (and the
// auth directory) at first start, and generates the in-memory own key.
func loadServerAuth(storeDir string) (*serverAuth, error) {
	dir := filepath.Join(storeDir, AuthDirName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded NATS: create the credentials directory %q: %w (fix the store dir's permissions)", dir, err)
	}
	if err := checkPrivate(dir); err != nil {
		return nil, err
	}
	file := filepath.Join(dir, ClientSeedName)
	kp, err := readUserSeed(file)
	if errors.Is(err, fs.ErrNotExist) {
		kp, err = createClientSeed(file)
	}
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	if err := checkPrivate(file); err != nil {
		return nil, err
	}
	clientPub, err := kp.PublicKey()
	kp.Wipe()
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: client seed %q: %w", file, err)
	}
	own, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: generate this server's own nkey: %w", err)
	}
	ownPub, err := own.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: generate this server's own nkey: %w", err)
	}
	return &serverAuth{own: own, ownPub: ownPub, clientPub: clientPub, clientFile: file}, nil
}

// sign answers the server's nonce for this process's own connection.
func (a *serverAuth) sign(nonce []byte) ([]byte, error) { return a.own.Sign(nonce) }

// wipe erases the own key from memory.
func (a *serverAuth) wipe() { a.own.Wipe() }

// checkPrivate refuses a credentials file or directory that group or others
// may access.
func checkPrivate(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("embedded NATS: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		want := "600"
		if fi.IsDir() {
			want = "700"
		}
		return fmt.Errorf("embedded NATS: %q holds NATS credentials but has mode %#o, open to other users: run chmod %s %s (and check who read it)", path, perm, want, path)
	}
	return nil
}

// createClientSeed generates a user key pair and writes its seed to file.
func createClientSeed(file string) (nkeys.KeyPair, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("generate the client nkey: %w", err)
	}
	seed, err := kp.Seed()
	if err != nil {
		return nil, fmt.Errorf("generate the client nkey: %w", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("generate the client nkey: %w", err)
	}
	if err := writeSeedFile(file, seed, pub); err != nil {
		return nil, err
	}
	return kp, nil
}

// writeSeedFile writes a version 1 seed file atomically with mode 0600.
func writeSeedFile(file string, seed []byte, pub string) error {
	var b bytes.Buffer
	b.WriteString(seedHeader + "\n")
	b.WriteString("# The NATS user that secondaries and tools use to connect to this coffer server's\n")
	b.WriteString("# embedded NATS (bus { nkey_seed_file = ... } on a secondary, nats --nkey FILE).\n")
	b.WriteString("# Keep it secret. Delete it and restart coffer to replace it.\n")
	b.WriteString("# public key: " + pub + "\n")
	b.Write(seed)
	b.WriteString("\n")
	defer wipeBytes(b.Bytes())

	dir := filepath.Dir(file)
	tmp, err := os.CreateTemp(dir, ClientSeedName+".tmp-*")
	if err != nil {
		return fmt.Errorf("write the client seed in %q: %w (fix the directory's permissions)", dir, err)
	}
	name := tmp.Name()
	fail := func(err error) error {
		_ = tmp.Close()
		_ = os.Remove(name)
		return fmt.Errorf("write the client seed %q: %w", file, err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		return fail(err)
	}
	if _, err := tmp.Write(b.Bytes()); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(name, file); err != nil {
		_ = os.Remove(name)
		return fmt.Errorf("write the client seed %q: %w", file, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %q: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %q: %w", dir, err)
	}
	return nil
}

// readUserSeed reads an nkey user seed file (a coffer seed file, a file
// holding just the seed, or a creds file). Errors name the file, never its
// contents.
func readUserSeed(file string) (nkeys.KeyPair, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read nkey seed file %q: %w", file, err)
	}
	defer wipeBytes(data)
	kp, err := parseUserSeed(data)
	if err != nil {
		return nil, fmt.Errorf("nkey seed file %q: %w", file, err)
	}
	return kp, nil
}

// errNotUserSeed: the file holds no nkey user seed.
var errNotUserSeed = errors.New("holds no nkey user seed (a line starting with SU, as written by coffer in <store_dir>/auth/client.nk or by nk -gen user): check that you copied the right file")

// parseUserSeed finds the user seed in the contents of a seed or creds file.
func parseUserSeed(data []byte) (nkeys.KeyPair, error) {
	kp, err := nkeys.ParseDecoratedNKey(data)
	if err != nil {
		return nil, errNotUserSeed
	}
	pub, err := kp.PublicKey()
	if err != nil || !nkeys.IsValidPublicUserKey(pub) {
		kp.Wipe()
		return nil, errNotUserSeed
	}
	return kp, nil
}

func wipeBytes(b []byte) {
	for i := range b {
		b[i] = 'x'
	}
}

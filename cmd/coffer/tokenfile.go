package main

// The token file: ~/.vault-token, where `coffer login` stores its token and
// every command finds it when VAULT_TOKEN is not set, as with the vault CLI's
// default token helper.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// tokenFilePath is ~/.vault-token, where the vault CLI's default token
// helper keeps the token of the last `login`.
func tokenFilePath() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the home directory for ~/.vault-token: %w", err)
	}
	return filepath.Join(home, ".vault-token"), nil
}

// readTokenFile returns the stored token, "" when there is none.
func readTokenFile() (string, error) {
	p, err := tokenFilePath()
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read token file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// storeTokenFile replaces ~/.vault-token atomically, readable by the user
// only.
func storeTokenFile(token string) error {
	p, err := tokenFilePath()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".vault-token.tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.WriteString(token); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}

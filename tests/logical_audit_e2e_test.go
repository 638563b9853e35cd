package tests

// The acceptance suite of the Vault-compatible logical layer, audit devices:
// driven through github.com/hashicorp/vault/api against real coffer processes.
// Expectations are Vault's (checked against Vault 1.21's source) unless a
// comment says Coffer decided otherwise.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"
)

// auditLine is the part of an audit log line the tests look at.
type auditLine struct {
	Type    string `json:"type"`
	Request struct {
		ID        string `json:"id"`
		Operation string `json:"operation"`
		Path      string `json:"path"`
	} `json:"request"`
	Error string `json:"error"`
}

func readAuditLog(t *testing.T, path string) ([]auditLine, string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read audit log: %v", err)
	}
	var lines []auditLine
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var l auditLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("audit line is not JSON: %v: %q", err, sc.Text())
		}
		lines = append(lines, l)
	}
	return lines, string(b)
}

func TestLogicalAudit(t *testing.T) {
	t.Parallel()
	_, root := devServer(t)
	ctx := context.Background()
	sys := root.Sys()
	logPath := filepath.Join(t.TempDir(), "audit.log")

	if err := sys.EnableAuditWithOptions("file", &api.EnableAuditOptions{
		Type: "file", Description: "acceptance", Options: map[string]string{"file_path": logPath},
	}); err != nil {
		t.Fatalf("enable file audit: %v", err)
	}
	refused(t, "enable the same audit path twice", sys.EnableAuditWithOptions("file", &api.EnableAuditOptions{
		Type: "file", Options: map[string]string{"file_path": logPath},
	}), 400, "")
	devs, err := sys.ListAudit()
	if err != nil || devs["file/"] == nil || devs["file/"].Type != "file" || devs["file/"].Options["file_path"] != logPath || devs["file/"].Description != "acceptance" {
		t.Fatalf("ListAudit: %v, %v; want file/ with file_path %s", devs, err, logPath)
	}

	plaintext := fmt.Sprintf("plaintext-S3cr3t-%x", randomBytes(t, 8))
	if _, err := root.KVv2("secret").Put(ctx, "audited", map[string]any{"password": plaintext}); err != nil {
		t.Fatalf("put audited: %v", err)
	}
	if s, err := root.KVv2("secret").Get(ctx, "audited"); err != nil || s.Data["password"] != plaintext {
		t.Fatalf("get audited: %+v, %v", s, err)
	}
	if _, err := withToken(t, root, "not-a-token").Logical().Read("secret/data/audited"); statusOf(err) != 403 {
		t.Fatalf("read with a bogus token: %v; want 403", err)
	}
	if _, err := root.Auth().Token().LookupSelf(); err != nil {
		t.Fatalf("lookup-self: %v", err)
	}
	hash, err := sys.AuditHash("file", plaintext)
	if err != nil || !strings.HasPrefix(hash, "hmac-sha256:") {
		t.Fatalf("sys/audit-hash: %q, %v; want hmac-sha256:...", hash, err)
	}

	lines, text := readAuditLog(t, logPath)
	if strings.Contains(text, plaintext) {
		t.Fatalf("the audit log holds the secret in clear:\n%s", text)
	}
	if strings.Contains(text, `"root"`) && strings.Contains(text, `"client_token":"root"`) {
		t.Fatalf("the audit log holds the root token in clear")
	}
	if !strings.Contains(text, hash) {
		t.Fatalf("the audit log lacks the secret's hash %s", hash)
	}
	reqs, resps := map[string]auditLine{}, map[string]auditLine{}
	for _, l := range lines {
		if l.Request.ID == "" {
			t.Fatalf("audit line without request.id: %+v", l)
		}
		switch l.Type {
		case "request":
			reqs[l.Request.ID] = l
		case "response":
			resps[l.Request.ID] = l
		default:
			t.Fatalf("audit line of type %q", l.Type)
		}
	}
	for id, l := range reqs {
		// Vault's enable-time test message is a lone request line on
		// sys/audit/test.
		if _, ok := resps[id]; !ok && l.Request.Path != "sys/audit/test" {
			t.Fatalf("request %s (%s %s) has no response line", id, l.Request.Operation, l.Request.Path)
		}
	}
	for id, l := range resps {
		// The enable's own request was logged before the device existed; its
		// response is the device's first line, as in Vault.
		if _, ok := reqs[id]; !ok && l.Request.Path != "sys/audit/file" {
			t.Fatalf("response %s (%s %s) has no request line", id, l.Request.Operation, l.Request.Path)
		}
	}
	find := func(op, path string) auditLine {
		t.Helper()
		for id, l := range reqs {
			if l.Request.Path == path && l.Request.Operation == op {
				if _, ok := resps[id]; ok {
					return resps[id]
				}
			}
		}
		t.Fatalf("no request and response lines for %s %s in:\n%s", op, path, text)
		return auditLine{}
	}
	find("create", "secret/data/audited")
	find("read", "secret/data/audited")
	find("read", "auth/token/lookup-self")
	// Two reads of secret/data/audited: one served, one denied with its error.
	served, denied := 0, 0
	for id, l := range resps {
		if rq := reqs[id].Request; rq.Path != "secret/data/audited" || rq.Operation != "read" {
			continue
		}
		switch {
		case l.Error == "":
			served++
		case strings.Contains(l.Error, "permission denied"):
			denied++
		}
	}
	if served != 1 || denied != 1 {
		t.Fatalf("reads of secret/data/audited in the audit log: %d served, %d denied; want 1 and 1:\n%s", served, denied, text)
	}

	if err := sys.DisableAudit("file"); err != nil {
		t.Fatalf("disable audit: %v", err)
	}
	if devs, err := sys.ListAudit(); err != nil || len(devs) != 0 {
		t.Fatalf("ListAudit after disable: %v, %v", devs, err)
	}
	fi, err := os.Stat(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := root.KVv2("secret").Get(ctx, "audited"); err != nil {
		t.Fatalf("get after disable: %v", err)
	}
	if fi2, err := os.Stat(logPath); err != nil || fi2.Size() != fi.Size() {
		t.Fatalf("the audit log grew after the device was disabled: %d -> %d (%v)", fi.Size(), fi2.Size(), err)
	}
	_, err = sys.AuditHash("file", plaintext)
	refused(t, "audit-hash of a disabled device", err, 400, "")
}

// TestLogicalAuditEnableTestsDevice: Vault writes a test message when an
// audit device is enabled and refuses the enable (400 "audit backend failed
// test message") if it cannot be written; the device is then not enabled and
// requests go on being served.
func TestLogicalAuditEnableTestsDevice(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skipf("no /dev/full here: %v", err)
	}
	_, root := devServer(t)
	err := root.Sys().EnableAuditWithOptions("full", &api.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": "/dev/full"}})
	refused(t, "enable an audit device on /dev/full", err, 400, "")
	if devs, err := root.Sys().ListAudit(); err != nil || len(devs) != 0 {
		t.Fatalf("ListAudit after the refused enable: %v, %v; want no device and the request served", devs, err)
	}
}

// TestLogicalAuditFullDiskRefuses: with audit devices enabled and none able to
// log, requests are refused and change nothing.
//
// The device's file_path is a symlink in the test's directory. It points at
// a regular file while the device is enabled (Vault refuses to enable a
// device it cannot write, see TestLogicalAuditEnableTestsDevice), then, with
// the server stopped, at /dev/full: every write to it fails with ENOSPC, a
// real full disk. The server restarts with the device persisted and must
// refuse requests. To prove the refused write left nothing behind, the server
// is stopped again, the symlink pointed at a new regular file (the disk was
// freed) and the server restarted: the device logs again, requests are
// served, and the value written during the outage is absent.
func TestLogicalAuditFullDiskRefuses(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skipf("no /dev/full here: %v", err)
	}
	n, p, rootTok := staticServer(t)
	ctx := context.Background()
	root := client(t, n.addr, rootTok)
	logDir := t.TempDir()
	link := filepath.Join(logDir, "audit.log")
	repoint := func(target string) {
		t.Helper()
		_ = os.Remove(link)
		if err := os.Symlink(target, link); err != nil {
			t.Fatalf("symlink %s -> %s: %v", link, target, err)
		}
	}
	repoint(filepath.Join(logDir, "before.log"))
	if _, err := root.KVv2("secret").Put(ctx, "before", map[string]any{"v": "1"}); err != nil {
		t.Fatalf("put before: %v", err)
	}
	if err := root.Sys().EnableAuditWithOptions("file", &api.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": link}}); err != nil {
		t.Fatalf("enable audit: %v", err)
	}
	if _, err := root.KVv2("secret").Get(ctx, "before"); err != nil {
		t.Fatalf("get with the audit device working: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(logDir, "before.log")); err != nil || fi.Size() == 0 {
		t.Fatalf("the audit device wrote nothing while working: %v", err)
	}

	// The disk fills up.
	if code := p.stop(); code != 0 {
		t.Fatalf("exit %d on SIGTERM", code)
	}
	repoint("/dev/full")
	p = n.start()
	waitHealthCode(t, n.addr, 200)
	// Vault answers 500 "internal error" when no device could log a request.
	_, err := root.KVv2("secret").Put(ctx, "during", map[string]any{"v": "lost"})
	refused(t, "kv put while no audit device can log", err, 500, "internal error")
	_, err = root.Logical().Write("secret/data/before", map[string]any{"data": map[string]any{"v": "changed"}})
	refused(t, "overwrite while no audit device can log", err, 500, "internal error")
	_, err = root.KVv2("secret").Get(ctx, "before")
	refused(t, "kv get while no audit device can log", err, 500, "internal error")
	_, err = root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"default"}})
	refused(t, "token create while no audit device can log", err, 500, "internal error")
	refused(t, "disabling the device while it cannot log", root.Sys().DisableAudit("file"), 500, "internal error")

	// The disk is freed: the device logs again after a restart.
	if code := p.stop(); code != 0 {
		t.Fatalf("exit %d on SIGTERM", code)
	}
	after := filepath.Join(logDir, "after.log")
	repoint(after)
	n.start()
	waitHealthCode(t, n.addr, 200)
	if s, err := root.KVv2("secret").Get(ctx, "during"); !errors.Is(err, api.ErrSecretNotFound) {
		t.Fatalf("the value put during the outage: %+v, %v; want absent", s, err)
	}
	if s, err := root.KVv2("secret").Get(ctx, "before"); err != nil || s.Data["v"] != "1" || s.VersionMetadata.Version != 1 {
		t.Fatalf("secret/before after the outage: %+v, %v; want v=1 at version 1", s, err)
	}
	if _, err := root.Auth().Token().LookupSelf(); err != nil {
		t.Fatalf("lookup-self after the outage: %v", err)
	}
	lines, _ := readAuditLog(t, after)
	if len(lines) == 0 {
		t.Fatal("the audit device wrote nothing after the disk was freed")
	}
	for _, l := range lines {
		if l.Request.Path == "secret/data/during" && l.Type == "request" && l.Request.Operation != "read" {
			t.Fatalf("a write of secret/data/during appears after the outage: %+v", l)
		}
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/vault/api"
)

// kvCommands are the `coffer kv` subcommands. Like the vault CLI, each
// first asks sys/internal/ui/mounts/<path> for the mount and its KV
// version, then uses data/, metadata/, delete/, undelete/ and destroy/
// paths on a v2 mount and the plain path on a v1 mount.
var kvCommands = map[string]command{
	"put":      {"Create or replace a secret (a new version on KV v2)", (*cli).kvPut},
	"get":      {"Read a secret (-version=N on KV v2)", (*cli).kvGet},
	"list":     {"List the keys under a path", (*cli).kvList},
	"delete":   {"Delete the latest version, or -versions=1,2 (KV v2: soft delete)", (*cli).kvDelete},
	"undelete": {"Restore soft-deleted -versions (KV v2)", (*cli).kvUndelete},
	"destroy":  {"Permanently remove -versions (KV v2)", (*cli).kvDestroy},
	"patch":    {"Update some keys of the latest version (KV v2)", (*cli).kvPatch},
	"metadata": {"Read, write or delete a secret's metadata and all its versions (KV v2)", subcommands("kv metadata", kvMetadataCommands)},
}

var kvMetadataCommands = map[string]command{
	"get":    {"Read the metadata and the version list", (*cli).kvMetadataGet},
	"put":    {"Set max-versions, cas-required, delete-version-after, custom-metadata", (*cli).kvMetadataPut},
	"delete": {"Delete the metadata and every version", (*cli).kvMetadataDelete},
}

// kvTarget is a kv command's path resolved against its mount.
type kvTarget struct {
	partial  string // the path as given, joined to the mount with -mount
	mount    string // the mount path the server reported ("secret/")
	v2       bool
	useMount bool // -mount was given
}

// apiPath is the request path: <mount>/<prefix>/<rest> on v2, the path
// itself on v1.
func (t kvTarget) apiPath(prefix string) string {
	if t.v2 {
		return kvAPIPath(t.partial, t.mount, prefix)
	}
	if t.useMount {
		return path.Join(t.mount, t.partial)
	}
	return t.partial
}

// kvAPIPath inserts prefix (data, metadata, ...) after the mount path.
func kvAPIPath(p, mount, prefix string) string {
	if p == mount || p == strings.TrimSuffix(mount, "/") {
		return path.Join(mount, prefix)
	}
	return path.Join(mount, prefix, strings.TrimPrefix(p, mount))
}

// kvPreflight asks the server which mount serves p and its KV version,
// without wrapping. A 404 means no such mount information: KV v1 rules.
func kvPreflight(client *api.Client, p string) (mount string, v2 bool, err error) {
	saved := client.CurrentWrappingLookupFunc()
	client.SetWrappingLookupFunc(func(string, string) string { return "" })
	defer client.SetWrappingLookupFunc(saved)

	secret, err := client.Logical().Read("sys/internal/ui/mounts/" + p)
	if err != nil {
		return "", false, err
	}
	if secret == nil {
		return "", false, nil
	}
	if secret.Data == nil {
		return "", false, errors.New("nil response from pre-flight request")
	}
	mount, _ = secret.Data["path"].(string)
	options, _ := secret.Data["options"].(map[string]any)
	version, _ := options["version"].(string)
	return mount, version == "2", nil
}

// kvResolve runs the preflight for arg (or for -mount when given).
func (f *commandFlags) kvResolve(client *api.Client, arg string) (kvTarget, bool) {
	t := kvTarget{partial: sanitizePath(arg), useMount: f.mount != ""}
	var err error
	if t.useMount {
		t.mount, t.v2, err = kvPreflight(client, sanitizePath(f.mount))
		if err == nil && t.mount == "" {
			t.mount = sanitizePath(f.mount)
		}
		if t.v2 {
			t.partial = path.Join(t.mount, t.partial)
		}
	} else {
		t.mount, t.v2, err = kvPreflight(client, t.partial)
	}
	if err != nil {
		fmt.Fprintln(f.cli.stderr, err.Error())
		return t, false
	}
	return t, true
}

// kvFlags builds the flag set of `kv <name>`, with -wrap-ttl and -mount.
func (c *cli) kvFlags(name, usage string) *commandFlags {
	f := c.newFlags("kv "+name, "kv "+name+" "+usage)
	f.httpFlags()
	f.StringVar(&f.mount, "mount", "", "the KV mount path (then PATH is relative to it)")
	return f
}

// kvConnect builds the client and resolves arg against its mount. client
// is nil when the command must stop with code.
func (f *commandFlags) kvConnect(arg string) (client *api.Client, t kvTarget, code int) {
	if client, code = f.connect(); client == nil {
		return nil, t, code
	}
	t, ok := f.kvResolve(client, arg)
	if !ok {
		return nil, t, exitRemote
	}
	return client, t, exitOK
}

// kvOpen is the start of the kv commands that take exactly one PATH:
// parse, then kvConnect.
func (f *commandFlags) kvOpen(args []string) (client *api.Client, t kvTarget, code int) {
	if code, ok := f.parseArgs(args, 1, 1); !ok {
		return nil, t, code
	}
	return f.kvConnect(f.Arg(0))
}

// kvMetadataOpen is the start of the kv metadata commands: kvOpen on a
// KV v2 mount, and the metadata path of PATH.
func (f *commandFlags) kvMetadataOpen(args []string) (client *api.Client, full string, code int) {
	client, t, code := f.kvOpen(args)
	if client == nil {
		return nil, "", code
	}
	if !t.v2 {
		return nil, "", f.cli.local("Metadata not supported on KV Version 1")
	}
	return client, t.apiPath("metadata"), exitOK
}

func (c *cli) kvPut(args []string) int {
	f := c.kvFlags("put", "[-mount=M] [-cas=N] [-field=NAME] PATH k=v [k=@file | k=- | - ...]")
	cas := f.Int("cas", -1, "check-and-set: write only if the current version is N (0: only if none exists); KV v2")
	field := f.fieldFlag()
	if code, ok := f.parseArgs(args, 1, -1); !ok {
		return code
	}
	if f.NArg() == 1 {
		return c.local("Must supply data")
	}
	data, err := parseArgsData(c.stdin, f.Args()[1:])
	if err != nil {
		return c.local("Failed to parse K=V data: %v", err)
	}
	client, t, code := f.kvConnect(f.Arg(0))
	if client == nil {
		return code
	}
	full := t.apiPath("data")
	body := map[string]any(data)
	if t.v2 {
		options := map[string]any{}
		if *cas > -1 {
			options["cas"] = *cas
		}
		body = map[string]any{"data": data, "options": options}
	}
	secret, err := client.Logical().Write(full, body)
	return f.kvWriteResult(full, secret, err, *field)
}

// kvWriteResult prints a kv put or patch result: the new version's
// metadata under the secret path.
func (f *commandFlags) kvWriteResult(full string, secret *api.Secret, err error, field string) int {
	if err != nil || secret == nil || field != "" ||
		(secret.WrapInfo != nil && secret.WrapInfo.TTL != 0) || f.format != "table" {
		return f.report(dataWritten, full, secret, err, field)
	}
	f.printWarnings(secret)
	f.printPath(full, "Secret Path")
	fmt.Fprintln(f.cli.stdout, mapHeader("Metadata", secret.Data))
	return f.outputMap(secret.Data)
}

func (c *cli) kvGet(args []string) int {
	f := c.kvFlags("get", "[-mount=M] [-version=N] [-field=NAME] [-format=table|json] PATH")
	version := f.Int("version", 0, "the version to read (KV v2; default the latest)")
	field := f.fieldFlag()
	client, t, code := f.kvOpen(args)
	if client == nil {
		return code
	}
	full := t.apiPath("data")
	var params map[string][]string
	if t.v2 && *version > 0 {
		params = map[string][]string{"version": {strconv.Itoa(*version)}}
	}
	secret, err := client.Logical().ReadWithData(full, params)
	if err != nil {
		return f.refused(secret, "Error reading %s: %v", full, err)
	}
	if secret == nil {
		return c.remote("No value found at %s", full)
	}

	if *field != "" {
		if !t.v2 {
			return f.printField(secret, *field)
		}
		data, ok := secret.Data["data"].(map[string]any)
		if !ok || data == nil {
			return c.remote("No data found at %s", full)
		}
		if *field == "data" {
			if _, nested := data["data"]; !nested {
				return f.printField(secret, *field)
			}
		}
		return f.printField(data, *field)
	}
	if secret.WrapInfo != nil || f.format != "table" {
		return f.outputSecret(secret)
	}

	f.printWarnings(secret)
	if t.v2 {
		f.printPath(full, "Secret Path")
	}
	if metadata, ok := secret.Data["metadata"].(map[string]any); ok && metadata != nil {
		fmt.Fprintln(c.stdout, mapHeader("Metadata", metadata))
		f.outputMap(metadata)
		fmt.Fprintln(c.stdout)
	}
	data := secret.Data
	if t.v2 {
		data, _ = secret.Data["data"].(map[string]any)
	}
	if data != nil {
		fmt.Fprintln(c.stdout, mapHeader("Data", data))
		f.outputMap(data)
	}
	return exitOK
}

func (c *cli) kvList(args []string) int {
	f := c.kvFlags("list", "[-mount=M] [-format=table|json] PATH")
	if code, ok := f.parse(args); !ok {
		return code
	}
	// PATH may be left out when -mount names the mount.
	if f.NArg() == 0 && f.mount == "" || f.NArg() > 1 {
		f.wantArgs(1, 1)
		return exitLocal
	}
	client, t, code := f.kvConnect(f.Arg(0))
	if client == nil {
		return code
	}
	full := t.apiPath("metadata")
	secret, err := client.Logical().List(full)
	if err != nil {
		return c.remote("Error listing %s: %v", full, err)
	}
	return f.outputList(full, secret)
}

func (c *cli) kvDelete(args []string) int {
	f := c.kvFlags("delete", "[-mount=M] [-versions=1,2] PATH")
	versions := &sliceFlag{split: true}
	f.Var(versions, "versions", "versions to soft-delete, comma-separated or repeated (KV v2; default the latest)")
	client, t, code := f.kvOpen(args)
	if client == nil {
		return code
	}
	if t.v2 && len(versions.values) > 0 {
		full := t.apiPath("delete")
		secret, err := client.Logical().Write(full, map[string]any{"versions": versions.values})
		return f.report(dataDeleted, full, secret, err, "")
	}
	full := t.apiPath("data")
	secret, err := client.Logical().Delete(full)
	return f.report(dataDeleted, full, secret, err, "")
}

func (c *cli) kvUndelete(args []string) int {
	return c.kvVersionsOp("undelete", args)
}

func (c *cli) kvDestroy(args []string) int {
	return c.kvVersionsOp("destroy", args)
}

// kvVersionsOp is kv undelete and kv destroy: a write of the version list
// to <mount>/<op>/<path>.
func (c *cli) kvVersionsOp(op string, args []string) int {
	f := c.kvFlags(op, "[-mount=M] -versions=1,2 PATH")
	versions := &sliceFlag{split: true}
	f.Var(versions, "versions", "the versions, comma-separated or repeated (required)")
	if code, ok := f.parseArgs(args, 1, 1); !ok {
		return code
	}
	if len(versions.values) == 0 {
		return c.local("No versions provided, use the \"-versions\" flag to specify the version to %s.", op)
	}
	client, t, code := f.kvConnect(f.Arg(0))
	if client == nil {
		return code
	}
	if !t.v2 {
		return c.local("%s not supported on KV Version 1", strings.ToUpper(op[:1])+op[1:])
	}
	full := t.apiPath(op)
	secret, err := client.Logical().Write(full, map[string]any{"versions": versions.values})
	return f.report(dataWritten, full, secret, err, "")
}

func (c *cli) kvPatch(args []string) int {
	f := c.kvFlags("patch", "[-mount=M] [-cas=N] [-method=patch|rw] [-remove-data=K] [-field=NAME] PATH [k=v ...]")
	cas := f.Int("cas", 0, "check-and-set version (0: none)")
	method := f.String("method", "", "patch (HTTP PATCH) or rw (read, then write with cas); default patch, falling back to rw")
	remove := &sliceFlag{}
	f.Var(remove, "remove-data", "a key to remove (repeatable)")
	field := f.fieldFlag()
	if code, ok := f.parseArgs(args, 1, -1); !ok {
		return code
	}
	if f.NArg() == 1 && len(remove.values) == 0 {
		return c.local("Must supply data")
	}
	data, err := parseArgsData(c.stdin, f.Args()[1:])
	if err != nil {
		return c.local("Failed to parse K=V data: %v", err)
	}
	for _, k := range remove.values {
		data[k] = nil
	}
	switch *method {
	case "", "patch", "rw":
	default:
		return c.local("Unsupported method provided to -method flag: %s", *method)
	}
	client, t, code := f.kvConnect(f.Arg(0))
	if client == nil {
		return code
	}
	if !t.v2 {
		return c.remote("KV engine mount must be version 2 for patch support")
	}
	full := t.apiPath("data")

	if *method == "rw" {
		return f.kvReadThenWrite(client, full, data, *field)
	}
	options := map[string]any{}
	if *cas > 0 {
		options["cas"] = *cas
	}
	secret, err := client.Logical().JSONMergePatch(context.Background(), full, map[string]any{"data": data, "options": options})
	var re *api.ResponseError
	if *method == "" && errors.As(err, &re) && (re.StatusCode == 405 || re.StatusCode == 403) {
		if re.StatusCode == 403 {
			fmt.Fprintf(c.stderr, "The token may not PATCH %s (no \"patch\" capability); falling back to read and write.\n", full)
		}
		return f.kvReadThenWrite(client, full, data, *field)
	}
	return f.kvWriteResult(full, secret, err, *field)
}

// kvReadThenWrite is patch -method=rw: read the latest version, merge, and
// write it back with cas set to the version read.
func (f *commandFlags) kvReadThenWrite(client *api.Client, full string, patch map[string]any, field string) int {
	secret, err := client.Logical().Read(full)
	if err != nil {
		return f.cli.remote("Error doing pre-read at %s: %v", full, err)
	}
	if secret == nil || secret.Data == nil {
		return f.cli.remote("No value found at %s", full)
	}
	meta, ok := secret.Data["metadata"].(map[string]any)
	if !ok || meta == nil {
		return f.cli.remote("No metadata found at %s; patch only works on existing data", full)
	}
	data, ok := secret.Data["data"].(map[string]any)
	if !ok || data == nil {
		return f.cli.remote("No data found at %s; patch only works on existing data", full)
	}
	for k, v := range patch {
		if v == nil {
			delete(data, k)
			continue
		}
		data[k] = v
	}
	secret, err = client.Logical().Write(full, map[string]any{
		"data":    data,
		"options": map[string]any{"cas": meta["version"]},
	})
	return f.kvWriteResult(full, secret, err, field)
}

func (c *cli) kvMetadataGet(args []string) int {
	f := c.kvFlags("metadata get", "[-mount=M] [-field=NAME] [-format=table|json] PATH")
	field := f.fieldFlag()
	client, full, code := f.kvMetadataOpen(args)
	if client == nil {
		return code
	}
	secret, err := client.Logical().Read(full)
	if err != nil {
		return c.remote("Error reading %s: %v", full, err)
	}
	if secret == nil {
		return c.remote("No value found at %s", full)
	}
	if *field != "" {
		return f.printField(secret, *field)
	}
	if secret.WrapInfo != nil || f.format != "table" {
		return f.outputSecret(secret)
	}
	versions, ok := secret.Data["versions"].(map[string]any)
	if !ok {
		return f.refused(secret, "No value found at %s", full)
	}
	delete(secret.Data, "versions")

	f.printPath(full, "Metadata Path")
	fmt.Fprintln(c.stdout, mapHeader("Metadata", secret.Data))
	f.outputSecret(secret)

	nums := make([]int, 0, len(versions))
	for k := range versions {
		n, err := strconv.Atoi(k)
		if err != nil {
			return c.remote("Error parsing version %s", k)
		}
		nums = append(nums, n)
	}
	sort.Ints(nums)
	for _, n := range nums {
		v, ok := versions[strconv.Itoa(n)].(map[string]any)
		if !ok {
			return c.remote("Error parsing version %d: version is not a map", n)
		}
		fmt.Fprintln(c.stdout)
		fmt.Fprintln(c.stdout, mapHeader(fmt.Sprintf("Version %d", n), v))
		f.outputMap(v)
	}
	return exitOK
}

func (c *cli) kvMetadataPut(args []string) int {
	f := c.kvFlags("metadata put", "[-mount=M] [-max-versions=N] [-cas-required] [-delete-version-after=D] [-custom-metadata=k=v ...] PATH")
	maxVersions := f.Int("max-versions", -1, "versions to keep (0: the mount's setting)")
	casRequired := f.Bool("cas-required", false, "require -cas on every write")
	var deleteAfter durationFlag = -1
	f.Var(&deleteAfter, "delete-version-after", "delete versions this long after they are written (0s: never)")
	custom := mapFlag{}
	f.Var(custom, "custom-metadata", "a k=v pair of custom metadata (repeatable)")
	client, full, code := f.kvMetadataOpen(args)
	if client == nil {
		return code
	}
	data := map[string]any{}
	if *maxVersions >= 0 {
		data["max_versions"] = *maxVersions
	}
	if deleteAfter >= 0 {
		data["delete_version_after"] = deleteAfter.String()
	}
	if f.isSet("cas-required") {
		data["cas_required"] = *casRequired
	}
	if len(custom) > 0 {
		data["custom_metadata"] = map[string]string(custom)
	}
	secret, err := client.Logical().Write(full, data)
	return f.report(dataWritten, full, secret, err, "")
}

func (c *cli) kvMetadataDelete(args []string) int {
	f := c.kvFlags("metadata delete", "[-mount=M] PATH")
	client, full, code := f.kvMetadataOpen(args)
	if client == nil {
		return code
	}
	if secret, err := client.Logical().Delete(full); err != nil {
		return f.refused(secret, "Error deleting %s: %v", full, err)
	}
	fmt.Fprintf(c.stdout, "Success! Data deleted (if it existed) at: %s\n", full)
	return exitOK
}

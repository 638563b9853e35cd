package main

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/vault/api"
)

var secretsCommands = map[string]command{
	"enable":  {"Enable a secrets engine at a path", (*cli).secretsEnable},
	"disable": {"Disable a secrets engine and delete its data", (*cli).secretsDisable},
	"list":    {"List the enabled secrets engines", (*cli).secretsList},
	"tune":    {"Change a secrets engine's TTLs or description", (*cli).secretsTune},
	"move":    {"Move a secrets engine to another path, with its data", (*cli).secretsMove},
}

var authCommands = map[string]command{
	"enable":  {"Enable an auth method at a path", (*cli).authEnable},
	"disable": {"Disable an auth method and revoke its tokens", (*cli).authDisable},
	"list":    {"List the enabled auth methods", (*cli).authList},
	"move":    {"Move an auth method to another path (its tokens are revoked)", (*cli).authMove},
}

var auditCommands = map[string]command{
	"enable":  {"Enable an audit device at a path", (*cli).auditEnable},
	"disable": {"Disable an audit device", (*cli).auditDisable},
	"list":    {"List the enabled audit devices", (*cli).auditList},
}

func (c *cli) secretsEnable(args []string) int {
	f := c.newFlags("secrets enable", "secrets enable [-path=P] [-local] [-version=2] [-description=D] [-default-lease-ttl=D] [-max-lease-ttl=D] [-options=k=v ...] TYPE")
	mountPath := f.String("path", "", "where to mount the engine (default: its type)")
	description := f.String("description", "", "a human-readable description")
	local := f.Bool("local", false, "do not replicate the mount or its data to other clusters")
	version := f.Int("version", 0, "the KV version (shorthand for -options=version=N)")
	var defTTL, maxTTL durationFlag
	f.Var(&defTTL, "default-lease-ttl", "default lease TTL (default: the system's)")
	f.Var(&maxTTL, "max-lease-ttl", "maximum lease TTL (default: the system's)")
	options := mapFlag{}
	f.Var(options, "options", "an engine option as k=v (repeatable)")
	sealWrap := f.Bool("seal-wrap", false, "seal-wrap the engine's critical values")
	forceNoCache := f.Bool("force-no-cache", false, "never cache the engine's data")
	client, code := f.open(args, 1, 1)
	if client == nil {
		return code
	}
	engine := strings.TrimSpace(f.Arg(0))
	p := pathOrType(*mountPath, engine)
	if *version > 0 {
		options["version"] = strconv.Itoa(*version)
	}
	input := &api.MountInput{
		Type:        engine,
		Description: *description,
		Local:       *local,
		SealWrap:    *sealWrap,
		Config: api.MountConfigInput{
			DefaultLeaseTTL: defTTL.String(),
			MaxLeaseTTL:     maxTTL.String(),
			ForceNoCache:    *forceNoCache,
		},
	}
	if len(options) > 0 {
		input.Options = options
	}
	if err := client.Sys().Mount(p, input); err != nil {
		return c.remote("Error enabling: %v", err)
	}
	fmt.Fprintf(c.stdout, "Success! Enabled the %s secrets engine at: %s\n", engine, p)
	return exitOK
}

func (c *cli) secretsDisable(args []string) int {
	f := c.newFlags("secrets disable", "secrets disable PATH")
	client, code := f.open(args, 1, 1)
	if client == nil {
		return code
	}
	p := ensureTrailingSlash(sanitizePath(f.Arg(0)))
	if err := client.Sys().Unmount(p); err != nil {
		return c.remote("Error disabling secrets engine at %s: %v", p, err)
	}
	fmt.Fprintf(c.stdout, "Success! Disabled the secrets engine (if it existed) at: %s\n", p)
	return exitOK
}

func (c *cli) secretsMove(args []string) int {
	return c.move(args, "secrets", "secrets engine", "")
}

func (c *cli) authMove(args []string) int {
	return c.move(args, "auth", "auth method", "auth/")
}

// move is `secrets move` and `auth move` SOURCE DESTINATION, as the vault
// CLI: sys/remount, then its status.
func (c *cli) move(args []string, cmd, noun, prefix string) int {
	f := c.newFlags(cmd+" move", cmd+" move SOURCE DESTINATION")
	client, code := f.open(args, 2, 2)
	if client == nil {
		return code
	}
	src := ensureTrailingSlash(sanitizePath(f.Arg(0)))
	dst := ensureTrailingSlash(sanitizePath(f.Arg(1)))
	out, err := client.Sys().StartRemount(prefix+src, prefix+dst)
	if err != nil {
		return c.remote("Error moving %s %s to %s: %v", noun, src, dst, err)
	}
	fmt.Fprintf(c.stdout, "Started moving %s %s to %s, with migration ID %s\n", noun, src, dst, out.MigrationID)
	st, err := client.Sys().RemountStatus(out.MigrationID)
	if err != nil {
		return c.remote("Error reading the status of migration %s: %v", out.MigrationID, err)
	}
	if st.MigrationInfo == nil || st.MigrationInfo.MigrationStatus != "success" {
		return c.remote("Error moving %s %s to %s: migration %s did not succeed", noun, src, dst, out.MigrationID)
	}
	fmt.Fprintf(c.stdout, "Success! Finished moving %s %s to %s, with migration ID %s\n", noun, src, dst, out.MigrationID)
	return exitOK
}

func (c *cli) secretsTune(args []string) int {
	f := c.newFlags("secrets tune", "secrets tune [-default-lease-ttl=D] [-max-lease-ttl=D] [-description=D] [-options=k=v ...] PATH")
	var defTTL, maxTTL durationFlag
	f.Var(&defTTL, "default-lease-ttl", "default lease TTL; -1 or \"system\" resets it to the system's")
	f.Var(&maxTTL, "max-lease-ttl", "maximum lease TTL; -1 or \"system\" resets it to the system's")
	description := f.String("description", "", "a human-readable description")
	version := f.Int("version", 0, "upgrade a KV mount to this version")
	options := mapFlag{}
	f.Var(options, "options", "an engine option as k=v (repeatable)")
	client, code := f.open(normalizeSystemTTL(args), 1, 1)
	if client == nil {
		return code
	}
	if *version > 0 {
		options["version"] = strconv.Itoa(*version)
	}
	p := ensureTrailingSlash(sanitizePath(f.Arg(0)))
	// Send only what was given: an absent field leaves the setting alone.
	var in api.TuneMountConfigInput
	if defTTL != 0 {
		v := ttlToAPI(defTTL)
		in.DefaultLeaseTTL = &v
	}
	if maxTTL != 0 {
		v := ttlToAPI(maxTTL)
		in.MaxLeaseTTL = &v
	}
	if len(options) > 0 {
		m := map[string]string(options)
		in.Options = &m
	}
	if f.isSet("description") {
		in.Description = description
	}
	if err := client.Sys().TuneMountAllowNil(p, in); err != nil {
		return c.remote("Error tuning secrets engine %s: %v", p, err)
	}
	fmt.Fprintf(c.stdout, "Success! Tuned the secrets engine at: %s\n", p)
	return exitOK
}

// normalizeSystemTTL turns -default-lease-ttl=system (vault's spelling of
// "reset to the system default") into -1.
func normalizeSystemTTL(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		for _, name := range []string{"default-lease-ttl", "max-lease-ttl"} {
			for _, dash := range []string{"-", "--"} {
				if a == dash+name+"=system" {
					a = dash + name + "=-1"
				}
			}
		}
		out[i] = a
	}
	return out
}

// ttlToAPI: zero is "unchanged" (empty), negative is "system".
func ttlToAPI(d durationFlag) string {
	switch {
	case d == 0:
		return ""
	case d < 0:
		return "system"
	}
	return d.String()
}

// pathOrType is where enable mounts a TYPE: -path, or else the type, with
// a trailing slash.
func pathOrType(path, typ string) string {
	if path == "" {
		path = typ
	}
	return ensureTrailingSlash(path)
}

// replication is the Replication column of the -detailed lists.
func replication(local bool) string {
	if local {
		return "local"
	}
	return "replicated"
}

// mountTTL is a TTL column of `secrets list -detailed`.
func mountTTL(typ string, ttl int) string {
	switch {
	case typ == "system" || typ == "cubbyhole":
		return ""
	case ttl != 0:
		return strconv.Itoa(ttl)
	}
	return "system"
}

func (c *cli) secretsList(args []string) int {
	f := c.newFlags("secrets list", "secrets list [-detailed] [-format=table|json]")
	detailed := f.Bool("detailed", false, "print more columns")
	client, code := f.open(args, 0, 0)
	if client == nil {
		return code
	}
	mounts, err := client.Sys().ListMounts()
	if err != nil {
		return c.remote("Error listing secrets engines: %v", err)
	}
	if f.format == "json" {
		return f.outputJSON(mounts)
	}
	paths := slices.Sorted(maps.Keys(mounts))
	var rows [][]string
	if !*detailed {
		for _, p := range paths {
			m := mounts[p]
			rows = append(rows, []string{p, m.Type, m.Accessor, m.Description})
		}
		fmt.Fprint(c.stdout, table([]string{"Path", "Type", "Accessor", "Description"}, rows))
		return exitOK
	}
	for _, p := range paths {
		m := mounts[p]
		rows = append(rows, []string{
			p, m.Type, m.Accessor,
			mountTTL(m.Type, m.Config.DefaultLeaseTTL), mountTTL(m.Type, m.Config.MaxLeaseTTL),
			strconv.FormatBool(m.Config.ForceNoCache), replication(m.Local), strconv.FormatBool(m.SealWrap),
			strconv.FormatBool(m.ExternalEntropyAccess), fmt.Sprint(m.Options), m.Description, m.UUID,
			m.PluginVersion, m.RunningVersion, m.RunningSha256, m.DeprecationStatus,
		})
	}
	fmt.Fprint(c.stdout, table([]string{"Path", "Plugin", "Accessor", "Default TTL", "Max TTL",
		"Force No Cache", "Replication", "Seal Wrap", "External Entropy Access", "Options",
		"Description", "UUID", "Version", "Running Version", "Running SHA256", "Deprecation Status"}, rows))
	return exitOK
}

func (c *cli) authEnable(args []string) int {
	f := c.newFlags("auth enable", "auth enable [-path=P] [-local] [-description=D] [-default-lease-ttl=D] [-max-lease-ttl=D] TYPE")
	authPath := f.String("path", "", "where to mount the method under auth/ (default: its type)")
	description := f.String("description", "", "a human-readable description")
	local := f.Bool("local", false, "do not replicate the method's configuration to other clusters")
	var defTTL, maxTTL durationFlag
	f.Var(&defTTL, "default-lease-ttl", "default token TTL (default: the system's)")
	f.Var(&maxTTL, "max-lease-ttl", "maximum token TTL (default: the system's)")
	options := mapFlag{}
	f.Var(options, "options", "a method option as k=v (repeatable)")
	client, code := f.open(args, 1, 1)
	if client == nil {
		return code
	}
	method := strings.TrimSpace(f.Arg(0))
	p := pathOrType(*authPath, method)
	opts := &api.EnableAuthOptions{
		Type:        method,
		Description: *description,
		Local:       *local,
		Config: api.AuthConfigInput{
			DefaultLeaseTTL: defTTL.String(),
			MaxLeaseTTL:     maxTTL.String(),
		},
	}
	if len(options) > 0 {
		opts.Options = options
	}
	if err := client.Sys().EnableAuthWithOptions(p, opts); err != nil {
		return c.remote("Error enabling %s auth: %v", method, err)
	}
	fmt.Fprintf(c.stdout, "Success! Enabled %s auth method at: %s\n", method, p)
	return exitOK
}

func (c *cli) authDisable(args []string) int {
	f := c.newFlags("auth disable", "auth disable PATH")
	client, code := f.open(args, 1, 1)
	if client == nil {
		return code
	}
	p := ensureTrailingSlash(sanitizePath(f.Arg(0)))
	if err := client.Sys().DisableAuth(p); err != nil {
		return c.remote("Error disabling auth method at %s: %v", p, err)
	}
	fmt.Fprintf(c.stdout, "Success! Disabled the auth method (if it existed) at: %s\n", p)
	return exitOK
}

func (c *cli) authList(args []string) int {
	f := c.newFlags("auth list", "auth list [-detailed] [-format=table|json]")
	detailed := f.Bool("detailed", false, "print more columns")
	client, code := f.open(args, 0, 0)
	if client == nil {
		return code
	}
	auths, err := client.Sys().ListAuth()
	if err != nil {
		return c.remote("Error listing enabled authentications: %v", err)
	}
	if f.format == "json" {
		return f.outputJSON(auths)
	}
	paths := slices.Sorted(maps.Keys(auths))
	var rows [][]string
	if !*detailed {
		for _, p := range paths {
			m := auths[p]
			rows = append(rows, []string{p, m.Type, m.Accessor, m.Description, m.PluginVersion})
		}
		fmt.Fprint(c.stdout, table([]string{"Path", "Type", "Accessor", "Description", "Version"}, rows))
		return exitOK
	}
	for _, p := range paths {
		m := auths[p]
		rows = append(rows, []string{
			p, m.Type, m.Accessor,
			mountTTL(m.Type, m.Config.DefaultLeaseTTL), mountTTL(m.Type, m.Config.MaxLeaseTTL),
			m.Config.TokenType, replication(m.Local), strconv.FormatBool(m.SealWrap),
			strconv.FormatBool(m.ExternalEntropyAccess), fmt.Sprint(m.Options), m.Description, m.UUID,
			m.PluginVersion, m.RunningVersion, m.RunningSha256, m.DeprecationStatus,
		})
	}
	fmt.Fprint(c.stdout, table([]string{"Path", "Plugin", "Accessor", "Default TTL", "Max TTL",
		"Token Type", "Replication", "Seal Wrap", "External Entropy Access", "Options",
		"Description", "UUID", "Version", "Running Version", "Running SHA256", "Deprecation Status"}, rows))
	return exitOK
}

func (c *cli) auditEnable(args []string) int {
	f := c.newFlags("audit enable", "audit enable [-path=P] [-local] [-description=D] TYPE [k=v ...]")
	auditPath := f.String("path", "", "where to enable the device (default: its type)")
	description := f.String("description", "", "a human-readable description")
	local := f.Bool("local", false, "do not replicate the device to other clusters")
	if code, ok := f.parse(args); !ok {
		return code
	}
	if f.NArg() < 1 {
		return c.local("Error enabling audit device: audit type missing. Valid types include 'file', 'socket' and 'syslog'.")
	}
	typ := strings.TrimSpace(f.Arg(0))
	p := pathOrType(*auditPath, typ)
	options, err := parseArgsStrings(c.stdin, f.Args()[1:])
	if err != nil {
		return c.local("Failed to parse K=V data: %v", err)
	}
	client, code := f.connect()
	if client == nil {
		return code
	}
	if err := client.Sys().EnableAuditWithOptions(p, &api.EnableAuditOptions{
		Type: typ, Description: *description, Options: options, Local: *local,
	}); err != nil {
		return c.remote("Error enabling audit device: %v", err)
	}
	fmt.Fprintf(c.stdout, "Success! Enabled the %s audit device at: %s\n", typ, p)
	return exitOK
}

func (c *cli) auditDisable(args []string) int {
	f := c.newFlags("audit disable", "audit disable PATH")
	client, code := f.open(args, 1, 1)
	if client == nil {
		return code
	}
	p := ensureTrailingSlash(sanitizePath(f.Arg(0)))
	if err := client.Sys().DisableAudit(p); err != nil {
		return c.remote("Error disabling audit device: %v", err)
	}
	fmt.Fprintf(c.stdout, "Success! Disabled audit device (if it was enabled) at: %s\n", p)
	return exitOK
}

func (c *cli) auditList(args []string) int {
	f := c.newFlags("audit list", "audit list [-detailed] [-format=table|json]")
	detailed := f.Bool("detailed", false, "print replication and options too")
	client, code := f.open(args, 0, 0)
	if client == nil {
		return code
	}
	audits, err := client.Sys().ListAudit()
	if err != nil {
		return c.remote("Error listing audits: %v", err)
	}
	if f.format == "json" {
		return f.outputJSON(audits)
	}
	if len(audits) == 0 {
		fmt.Fprintln(c.stdout, "No audit devices are enabled.")
		return exitRemote // as the vault CLI does
	}
	paths := slices.Sorted(maps.Keys(audits))
	var rows [][]string
	for _, p := range paths {
		a := audits[p]
		if !*detailed {
			rows = append(rows, []string{a.Path, a.Type, a.Description})
			continue
		}
		opts := make([]string, 0, len(a.Options))
		for k, v := range a.Options {
			opts = append(opts, k+"="+v)
		}
		sort.Strings(opts)
		rows = append(rows, []string{p, a.Type, a.Description, replication(a.Local), strings.Join(opts, " ")})
	}
	if *detailed {
		fmt.Fprint(c.stdout, table([]string{"Path", "Type", "Description", "Replication", "Options"}, rows))
	} else {
		fmt.Fprint(c.stdout, table([]string{"Path", "Type", "Description"}, rows))
	}
	return exitOK
}

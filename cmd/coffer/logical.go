package main

import (
	"context"

	"github.com/hashicorp/vault/api"
)

// read is `coffer read PATH [k=v ...]`: GET /v1/PATH, the k=v pairs as
// query parameters.
func (c *cli) read(args []string) int {
	f := c.newFlags("read", "read [-format=table|json] [-field=NAME] [-wrap-ttl=D] PATH [k=v ...]")
	f.httpFlags()
	field := f.fieldFlag()
	client, path, params, code := f.openPathParams(args, "K=V")
	if client == nil {
		return code
	}
	secret, err := client.Logical().ReadWithData(path, params)
	if err != nil {
		return c.remote("Error reading %s: %v", path, err)
	}
	if secret == nil {
		return c.remote("No value found at %s", path)
	}
	return f.outputSecretField(secret, *field)
}

// openPathParams is the start of read and delete: PATH [k=v ...], the
// pairs sent as query parameters; what names the pairs in a parse error.
// client is nil when the command must stop with code.
func (f *commandFlags) openPathParams(args []string, what string) (client *api.Client, path string, params map[string][]string, code int) {
	if code, ok := f.parseArgs(args, 1, -1); !ok {
		return nil, "", nil, code
	}
	path = sanitizePath(f.Arg(0))
	params, err := parseArgsLists(f.cli.stdin, f.Args()[1:])
	if err != nil {
		return nil, "", nil, f.cli.local("Failed to parse %s data: %v", what, err)
	}
	client, code = f.connect()
	return client, path, params, code
}

// write is `coffer write [-f] PATH [k=v ...]`: PUT /v1/PATH with the data.
func (c *cli) write(args []string) int {
	return c.writeOrPatch("write", args)
}

// patch is `coffer patch [-f] PATH [k=v ...]`: a JSON merge patch.
func (c *cli) patch(args []string) int {
	return c.writeOrPatch("patch", args)
}

func (c *cli) writeOrPatch(name string, args []string) int {
	f := c.newFlags(name, name+" [-f] [-format=table|json] [-field=NAME] [-wrap-ttl=D] PATH [k=v | k=@file | k=- | - ...]")
	f.httpFlags()
	field := f.fieldFlag()
	force := f.Bool("force", false, "allow no key=value pairs (for paths that need no data)")
	f.BoolVar(force, "f", false, "short for -force")
	if code, ok := f.parseArgs(args, 1, -1); !ok {
		return code
	}
	if f.NArg() == 1 && !*force {
		return c.local("Must supply data or use -force")
	}
	path := sanitizePath(f.Arg(0))
	data, err := parseArgsData(c.stdin, f.Args()[1:])
	if err != nil {
		return c.local("Failed to parse K=V data: %v", err)
	}
	client, code := f.connect()
	if client == nil {
		return code
	}
	var secret *api.Secret
	if name == "patch" {
		secret, err = client.Logical().JSONMergePatch(context.Background(), path, data)
	} else {
		secret, err = client.Logical().Write(path, data)
	}
	if err == nil && secret == nil && *field != "" {
		return exitOK // vault write prints no success line under -field
	}
	return f.report(dataWritten, path, secret, err, *field)
}

// list is `coffer list PATH`: LIST /v1/PATH.
func (c *cli) list(args []string) int {
	f := c.newFlags("list", "list [-format=table|json] [-wrap-ttl=D] PATH")
	f.httpFlags()
	client, code := f.open(args, 1, 1)
	if client == nil {
		return code
	}
	path := sanitizePath(f.Arg(0))
	secret, err := client.Logical().List(path)
	if err != nil {
		return c.remote("Error listing %s: %v", path, err)
	}
	return f.outputList(path, secret)
}

// delete is `coffer delete PATH [k=v ...]`: DELETE /v1/PATH.
func (c *cli) delete(args []string) int {
	f := c.newFlags("delete", "delete [-format=table|json] [-field=NAME] PATH [k=v ...]")
	f.httpFlags()
	field := f.fieldFlag()
	client, path, params, code := f.openPathParams(args, "string list")
	if client == nil {
		return code
	}
	secret, err := client.Logical().DeleteWithData(path, params)
	return f.report(dataDeleted, path, secret, err, *field)
}

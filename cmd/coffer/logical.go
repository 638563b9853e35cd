package main

import (
	"context"
	"fmt"

	"github.com/hashicorp/vault/api"
)

// read is `coffer read PATH [k=v ...]`: GET /v1/PATH, the k=v pairs as
// query parameters.
func (c *cli) read(args []string) int {
	f := c.newFlags("read", "read [-format=table|json] [-field=NAME] [-wrap-ttl=D] PATH [k=v ...]")
	f.httpFlags()
	field := f.fieldFlag()
	if code, ok := f.vparse(args); !ok {
		return code
	}
	if !f.wantArgs(1, -1) {
		return exitLocal
	}
	path := sanitizePath(f.Arg(0))
	params, err := parseArgsLists(c.stdin, f.Args()[1:])
	if err != nil {
		return c.local("Failed to parse K=V data: %v", err)
	}
	client, code := f.vclient()
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
	if *field != "" {
		return f.printField(secret, *field)
	}
	return f.outputSecret(secret)
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
	if code, ok := f.vparse(args); !ok {
		return code
	}
	if !f.wantArgs(1, -1) {
		return exitLocal
	}
	if f.NArg() == 1 && !*force {
		return c.local("Must supply data or use -force")
	}
	path := sanitizePath(f.Arg(0))
	data, err := parseArgsData(c.stdin, f.Args()[1:])
	if err != nil {
		return c.local("Failed to parse K=V data: %v", err)
	}
	client, code := f.vclient()
	if client == nil {
		return code
	}
	var secret *api.Secret
	if name == "patch" {
		secret, err = client.Logical().JSONMergePatch(context.Background(), path, data)
	} else {
		secret, err = client.Logical().Write(path, data)
	}
	return f.writeResult(path, secret, err, *field)
}

// writeResult prints the outcome of a write as `vault write` does.
func (f *commandFlags) writeResult(path string, secret *api.Secret, err error, field string) int {
	if err != nil {
		code := f.cli.remote("Error writing data to %s: %v", path, err)
		if secret != nil {
			f.outputSecret(secret)
		}
		return code
	}
	if secret == nil {
		if field == "" && f.format == "table" {
			fmt.Fprintf(f.cli.stdout, "Success! Data written to: %s\n", path)
		}
		return exitOK
	}
	if field != "" {
		return f.printField(secret, field)
	}
	return f.outputSecret(secret)
}

// list is `coffer list PATH`: LIST /v1/PATH.
func (c *cli) list(args []string) int {
	f := c.newFlags("list", "list [-format=table|json] [-wrap-ttl=D] PATH")
	f.httpFlags()
	if code, ok := f.vparse(args); !ok {
		return code
	}
	if !f.wantArgs(1, 1) {
		return exitLocal
	}
	client, code := f.vclient()
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
	if code, ok := f.vparse(args); !ok {
		return code
	}
	if !f.wantArgs(1, -1) {
		return exitLocal
	}
	path := sanitizePath(f.Arg(0))
	params, err := parseArgsLists(c.stdin, f.Args()[1:])
	if err != nil {
		return c.local("Failed to parse string list data: %v", err)
	}
	client, code := f.vclient()
	if client == nil {
		return code
	}
	secret, err := client.Logical().DeleteWithData(path, params)
	if err != nil {
		code := c.remote("Error deleting %s: %v", path, err)
		if secret != nil {
			f.outputSecret(secret)
		}
		return code
	}
	if secret == nil {
		if f.format == "table" {
			fmt.Fprintf(c.stdout, "Success! Data deleted (if it existed) at: %s\n", path)
		}
		return exitOK
	}
	if *field != "" {
		return f.printField(secret, *field)
	}
	return f.outputSecret(secret)
}

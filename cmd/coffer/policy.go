package main

import (
	"fmt"
	"io"
	"os"
	"strings"
)

var policyCommands = map[string]command{
	"write":  {"Upload an ACL policy from a file or stdin (-)", (*cli).policyWrite},
	"read":   {"Print an ACL policy", (*cli).policyRead},
	"list":   {"List the ACL policies", (*cli).policyList},
	"delete": {"Delete an ACL policy", (*cli).policyDelete},
}

func (c *cli) policyWrite(args []string) int {
	f := c.newFlags("policy write", "policy write NAME FILE|-")
	if code, ok := f.parseArgs(args, 2, 2); !ok {
		return code
	}
	given := f.Arg(0)
	name := policyName(given)
	src := strings.TrimSpace(f.Arg(1))
	var (
		rules []byte
		err   error
	)
	if src == "-" {
		rules, err = io.ReadAll(c.stdin)
	} else {
		rules, err = os.ReadFile(src)
	}
	if err != nil {
		// The vault CLI exits 2 here too.
		return c.remote("Error reading policy: %v", err)
	}
	client, code := f.connect()
	if client == nil {
		return code
	}
	if err := client.Sys().PutPolicy(name, string(rules)); err != nil {
		return c.remote("Error uploading policy: %v", err)
	}
	if given != name {
		fmt.Fprintf(c.stderr, "Policy name was converted from \"%s\" to \"%s\"\n", given, name)
	}
	fmt.Fprintf(c.stdout, "Success! Uploaded policy: %s\n", name)
	return exitOK
}

func (c *cli) policyRead(args []string) int {
	f := c.newFlags("policy read", "policy read [-format=table|json] NAME")
	client, code := f.open(args, 1, 1)
	if client == nil {
		return code
	}
	name := policyName(f.Arg(0))
	rules, err := client.Sys().GetPolicy(name)
	if err != nil {
		return c.remote("Error reading policy named %s: %v", name, err)
	}
	if rules == "" {
		return c.remote("No policy named: %s", name)
	}
	if f.format == "json" {
		return f.outputJSON(map[string]string{"policy": rules})
	}
	fmt.Fprintln(c.stdout, strings.TrimSpace(rules))
	return exitOK
}

func (c *cli) policyList(args []string) int {
	f := c.newFlags("policy list", "policy list [-format=table|json]")
	client, code := f.open(args, 0, 0)
	if client == nil {
		return code
	}
	policies, err := client.Sys().ListPolicies()
	if err != nil {
		return c.remote("Error listing policies: %v", err)
	}
	if f.format == "json" {
		return f.outputJSON(policies)
	}
	for _, p := range policies {
		fmt.Fprintln(c.stdout, p)
	}
	return exitOK
}

func (c *cli) policyDelete(args []string) int {
	f := c.newFlags("policy delete", "policy delete NAME")
	client, code := f.open(args, 1, 1)
	if client == nil {
		return code
	}
	name := policyName(f.Arg(0))
	if err := client.Sys().DeletePolicy(name); err != nil {
		return c.remote("Error deleting %s: %v", name, err)
	}
	fmt.Fprintf(c.stdout, "Success! Deleted policy: %s\n", name)
	return exitOK
}

// policyName is NAME as the server stores it: trimmed, lower case.
func policyName(name string) string {
	return strings.ToLower(strings.TrimSpace(name))
}

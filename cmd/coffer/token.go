package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/vault/api"
)

var tokenCommands = map[string]command{
	"create": {"Create a token (a child of the current one, or -orphan)", (*cli).tokenCreate},
	"lookup": {"Print a token's properties (the current token by default)", (*cli).tokenLookup},
	"revoke": {"Revoke a token and its children (-mode=orphan: not its children)", (*cli).tokenRevoke},
	"renew":  {"Renew a token's lease (the current token by default)", (*cli).tokenRenew},
}

func (c *cli) tokenCreate(args []string) int {
	f := c.newFlags("token create", "token create [-policy=P ...] [-ttl=D] [-explicit-max-ttl=D] [-period=D] [-use-limit=N] [-orphan] [-display-name=N] [-no-default-policy] [-renewable=false] [-metadata=k=v ...] [-field=NAME]")
	f.httpFlags()
	field := f.fieldFlag()
	policies := &sliceFlag{split: true}
	f.Var(policies, "policy", "a policy of the token (repeatable, or comma-separated)")
	var ttl, explicitMax, period durationFlag
	f.Var(&ttl, "ttl", "initial TTL (renewable up to the max TTL)")
	f.Var(&explicitMax, "explicit-max-ttl", "hard maximum lifetime, renewals included")
	f.Var(&period, "period", "make a periodic token, renewable by this much forever")
	useLimit := f.Int("use-limit", 0, "number of uses (0: unlimited)")
	orphan := f.Bool("orphan", false, "create the token with no parent (needs sudo)")
	displayName := f.String("display-name", "", "name to attach to the token")
	noDefault := f.Bool("no-default-policy", false, "do not attach the default policy")
	renewable := f.Bool("renewable", true, "allow the token to be renewed")
	id := f.String("id", "", "the token's value (root only)")
	role := f.String("role", "", "create the token against this token role")
	typ := f.String("type", "service", "service or batch")
	meta := mapFlag{}
	f.Var(meta, "metadata", "k=v metadata (repeatable)")
	client, code := f.open(args, 0, 0)
	if client == nil {
		return code
	}
	if *typ == "batch" {
		*renewable = false
	}
	req := &api.TokenCreateRequest{
		ID:              *id,
		Policies:        policies.values,
		TTL:             ttl.String(),
		NoParent:        *orphan,
		NoDefaultPolicy: *noDefault,
		DisplayName:     *displayName,
		NumUses:         *useLimit,
		Renewable:       renewable,
		ExplicitMaxTTL:  explicitMax.String(),
		Period:          period.String(),
		Type:            *typ,
	}
	if len(meta) > 0 {
		req.Metadata = meta
	}
	var (
		secret *api.Secret
		err    error
	)
	if *role != "" {
		secret, err = client.Auth().Token().CreateWithRole(req, *role)
	} else {
		secret, err = client.Auth().Token().Create(req)
	}
	if err != nil {
		return c.remote("Error creating token: %v", err)
	}
	return f.outputSecretField(secret, *field)
}

func (c *cli) tokenLookup(args []string) int {
	f := c.newFlags("token lookup", "token lookup [-accessor] [-format=table|json] [TOKEN | ACCESSOR]")
	f.httpFlags()
	accessor := f.Bool("accessor", false, "the argument is an accessor, not a token")
	if code, ok := f.parse(args); !ok {
		return code
	}
	if *accessor && f.NArg() != 1 {
		return c.local("Expected exactly one accessor with -accessor (got %d arguments)", f.NArg())
	}
	if !f.wantArgs(0, 1) {
		return exitLocal
	}
	token := strings.TrimSpace(f.Arg(0))
	client, code := f.connect()
	if client == nil {
		return code
	}
	var (
		secret *api.Secret
		err    error
	)
	switch {
	case token == "":
		secret, err = client.Auth().Token().LookupSelf()
	case *accessor:
		secret, err = client.Auth().Token().LookupAccessor(token)
	default:
		secret, err = client.Auth().Token().Lookup(token)
	}
	if err != nil {
		return c.remote("Error looking up token: %v", err)
	}
	return f.outputSecret(secret)
}

func (c *cli) tokenRevoke(args []string) int {
	f := c.newFlags("token revoke", "token revoke [-self | -accessor | -mode=orphan|path] [TOKEN | ACCESSOR | PREFIX]")
	self := f.Bool("self", false, "revoke the token in use")
	accessor := f.Bool("accessor", false, "the argument is an accessor")
	mode := f.String("mode", "", "orphan: keep the children (they become orphans); path: revoke every token created under a login path prefix")
	if code, ok := f.parse(args); !ok {
		return code
	}
	switch *mode {
	case "", "orphan", "path":
	default:
		return c.local("Invalid mode: %s", *mode)
	}
	n := f.NArg()
	switch {
	case *self && n > 0:
		return c.local("Too many arguments with -self (expected 0, got %d)", n)
	case !*self && n > 1:
		return c.local("Too many arguments (expected 1 or -self, got %d)", n)
	case !*self && n < 1:
		return c.local("Not enough arguments (expected 1 or -self, got %d)", n)
	case *self && *accessor:
		return c.local("Cannot use -self with -accessor!")
	case *self && *mode != "":
		return c.local("Cannot use -self with -mode!")
	case *accessor && *mode != "":
		return c.local("Cannot use -accessor with -mode=%s!", *mode)
	}
	client, code := f.connect()
	if client == nil {
		return code
	}
	token := strings.TrimSpace(f.Arg(0))
	var revoke func(string) error
	switch {
	case *self:
		revoke = client.Auth().Token().RevokeSelf
	case *accessor:
		revoke = client.Auth().Token().RevokeAccessor
	case *mode == "orphan":
		revoke = client.Auth().Token().RevokeOrphan
	case *mode == "path":
		revoke = client.Sys().RevokePrefix
	default:
		revoke = client.Auth().Token().RevokeTree
	}
	if err := revoke(token); err != nil {
		return c.remote("Error revoking token: %v", err)
	}
	fmt.Fprintln(c.stdout, "Success! Revoked token (if it existed)")
	return exitOK
}

func (c *cli) tokenRenew(args []string) int {
	f := c.newFlags("token renew", "token renew [-increment=D] [-accessor] [TOKEN | ACCESSOR]")
	f.httpFlags()
	var increment durationFlag
	f.Var(&increment, "increment", "requested new TTL, counted from now (the server may cap it)")
	f.Var(&increment, "i", "short for -increment")
	accessor := f.Bool("accessor", false, "the argument is an accessor")
	client, code := f.open(args, 0, 1)
	if client == nil {
		return code
	}
	token := strings.TrimSpace(f.Arg(0))
	inc := int(increment.seconds())
	var (
		secret *api.Secret
		err    error
	)
	switch {
	case token == "":
		secret, err = client.Auth().Token().RenewSelf(inc)
	case *accessor:
		secret, err = client.Auth().Token().RenewAccessor(token, inc)
	default:
		secret, err = client.Auth().Token().Renew(token, inc)
	}
	if err != nil {
		return c.remote("Error renewing token: %v", err)
	}
	return f.outputSecret(secret)
}

// seconds truncates to whole seconds (0 below one second).
func (d durationFlag) seconds() int64 {
	if d < durationFlag(1e9) {
		return 0
	}
	return int64(d) / 1e9
}

func (c *cli) login(args []string) int {
	f := c.newFlags("login", "login [-method=token|userpass] [-path=P] [-no-store] [-no-print] [-token-only] [-field=NAME] [TOKEN | username=U [password=P]]")
	method := f.String("method", "token", "auth method: token or userpass")
	authPath := f.String("path", "", "where the method is mounted under auth/ (default: its name)")
	noStore := f.Bool("no-store", false, "do not store the token in ~/.vault-token")
	noPrint := f.Bool("no-print", false, "print nothing on success")
	tokenOnly := f.Bool("token-only", false, "print only the token; implies -no-store")
	field := f.fieldFlag()
	if code, ok := f.parse(args); !ok {
		return code
	}
	if *tokenOnly {
		*noStore = true
		*field = "token"
	}
	if *noStore && *noPrint {
		return c.local("-no-store and -no-print cannot be used together")
	}
	m := sanitizePath(*method)
	if m == "" {
		m = "token"
	}
	if m != "token" && m != "userpass" {
		return c.local("Unknown auth method: %s. Coffer's CLI logs in with token or userpass; use `coffer write auth/<path>/login` for the others.", m)
	}
	mount := sanitizePath(*authPath)
	if mount == "" {
		mount = m
	}
	rest := f.Args()
	if m == "token" && len(rest) > 0 && !strings.Contains(rest[0], "=") {
		rest = append([]string{"token=" + rest[0]}, rest[1:]...)
	}
	config, err := parseArgsStrings(c.stdin, rest)
	if err != nil {
		return c.local("Error parsing configuration: %v", err)
	}
	client, code := f.connect()
	if client == nil {
		return code
	}
	var secret *api.Secret
	if m == "token" {
		secret, err = c.loginToken(client, config)
	} else {
		client.SetToken("")
		secret, err = c.loginUserpass(client, mount, config)
	}
	if err != nil {
		return c.remote("Error authenticating: %v", err)
	}
	if secret.WrapInfo != nil && secret.Auth == nil {
		if *tokenOnly {
			return f.printField(secret, "wrapping_token")
		}
		if *noStore {
			return f.outputSecret(secret)
		}
		client.SetWrappingLookupFunc(func(string, string) string { return "" })
		if secret, err = client.Logical().Unwrap(secret.WrapInfo.Token); err != nil {
			return c.remote("Error unwrapping the login response: %v", err)
		}
	}
	if secret == nil || secret.Auth == nil {
		return c.remote("The server returned a secret with no authentication information")
	}

	if !*noStore {
		if err := storeTokenFile(secret.Auth.ClientToken); err != nil {
			code := c.remote("Error storing token: %v\nAuthentication was successful, but the token was not persisted. The token is shown below.\n", err)
			f.outputSecret(secret)
			return code
		}
	} else if !*tokenOnly {
		fmt.Fprintln(c.stderr, "The token was not stored in ~/.vault-token. Set VAULT_TOKEN to the token below, or pass it with each request.")
		fmt.Fprintln(c.stderr)
	}
	if *noPrint {
		return exitOK
	}
	if *field != "" {
		return f.printField(secret, *field)
	}
	if f.format == "table" {
		fmt.Fprintln(c.stdout, "Success! You are now authenticated. The token information displayed below")
		fmt.Fprintln(c.stdout, "is already stored in ~/.vault-token. You do NOT need to run \"coffer login\"")
		fmt.Fprintln(c.stdout, "again. Future requests will automatically use this token.")
		fmt.Fprintln(c.stdout)
	}
	return f.outputSecret(secret)
}

// loginToken checks a token with lookup-self and turns the answer into an
// auth secret, as the vault CLI's token method does.
func (c *cli) loginToken(client *api.Client, config map[string]string) (*api.Secret, error) {
	token, ok := config["token"]
	if !ok {
		var err error
		if token, err = c.readLine("Token: "); err != nil {
			return nil, err
		}
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return nil, errors.New("a token must be given, as an argument or on stdin")
	}
	client.SetToken(token)
	client.SetWrappingLookupFunc(func(string, string) string { return "" })
	s, err := client.Auth().Token().LookupSelf()
	if err != nil {
		return nil, fmt.Errorf("error looking up token: %w", err)
	}
	if s == nil {
		return nil, errors.New("empty response from lookup-self")
	}
	id, err := s.TokenID()
	if err != nil {
		return nil, err
	}
	accessor, err := s.TokenAccessor()
	if err != nil {
		return nil, err
	}
	// TokenPolicies also fills s.Auth with the token and identity policies.
	if _, err := s.TokenPolicies(); err != nil {
		return nil, err
	}
	meta, err := s.TokenMetadata()
	if err != nil {
		return nil, err
	}
	ttl, err := s.TokenTTL()
	if err != nil {
		return nil, err
	}
	renewable, err := s.TokenIsRenewable()
	if err != nil {
		return nil, err
	}
	return &api.Secret{Auth: &api.SecretAuth{
		ClientToken:      id,
		Accessor:         accessor,
		Policies:         s.Auth.Policies,
		TokenPolicies:    s.Auth.TokenPolicies,
		IdentityPolicies: s.Auth.IdentityPolicies,
		Metadata:         meta,
		LeaseDuration:    int(ttl.Seconds()),
		Renewable:        renewable,
	}}, nil
}

// loginUserpass writes the password to auth/<mount>/login/<username>,
// prompting for the password when it is not given.
func (c *cli) loginUserpass(client *api.Client, mount string, config map[string]string) (*api.Secret, error) {
	username := config["username"]
	if username == "" {
		return nil, errors.New("'username' must be specified")
	}
	password := config["password"]
	if password == "" {
		var err error
		if password, err = c.readLine("Password: "); err != nil {
			return nil, err
		}
		if password == "" {
			return nil, errors.New("no password given")
		}
	}
	if m := sanitizePath(config["mount"]); m != "" {
		mount = m
	}
	secret, err := client.Logical().Write(fmt.Sprintf("auth/%s/login/%s", mount, username), map[string]any{"password": password})
	if err != nil {
		return nil, err
	}
	if secret == nil {
		return nil, errors.New("empty response from credential provider")
	}
	return secret, nil
}

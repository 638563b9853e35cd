package main

import (
	"crypto/rand"
	"fmt"
	"io"
	"strings"

	"github.com/cofferhq/coffer/core/rootgen"
	"github.com/hashicorp/vault/api"
)

// generateRootFlags are `operator generate-root`'s own flags, the vault CLI's.
type generateRootFlags struct {
	init, status, cancel, generateOTP, drToken *bool
	otp, nonce, decode                         *string
}

// generation is one kind of token generation as the command drives it:
// sys/generate-root, or with -dr-token a DR secondary's
// sys/replication/dr/secondary/generate-operation-token. Both take the same
// shapes, through vault/api's own methods.
type generation struct {
	what   string // "root token generation"
	cmd    string // "coffer operator generate-root", with -dr-token when it is one
	status func() (*api.GenerateRootStatusResponse, error)
	init   func(otp string) (*api.GenerateRootStatusResponse, error)
	update func(key, nonce string) (*api.GenerateRootStatusResponse, error)
	cancel func() error
}

// newGeneration picks the kind of generation; client may be nil for
// -decode, which asks no server.
func newGeneration(client *api.Client, dr bool) generation {
	if dr {
		g := generation{what: "DR operation token generation", cmd: "coffer operator generate-root -dr-token"}
		if client != nil {
			sys := client.Sys()
			g.status, g.update, g.cancel = sys.GenerateDROperationTokenStatus, sys.GenerateDROperationTokenUpdate, sys.GenerateDROperationTokenCancel
			g.init = func(otp string) (*api.GenerateRootStatusResponse, error) {
				return sys.GenerateDROperationTokenInit(otp, "")
			}
		}
		return g
	}
	g := generation{what: "root token generation", cmd: "coffer operator generate-root"}
	if client != nil {
		sys := client.Sys()
		g.status, g.update, g.cancel = sys.GenerateRootStatus, sys.GenerateRootUpdate, sys.GenerateRootCancel
		g.init = func(otp string) (*api.GenerateRootStatusResponse, error) { return sys.GenerateRootInit(otp, "") }
	}
	return g
}

// operatorGenerateRoot is `operator generate-root`, as the vault CLI's (1.12
// and later, without PGP): -init starts an attempt (the server draws the OTP
// unless -otp gives one), a key share given as an argument, on stdin ("-")
// or at the prompt moves it on, -status, -cancel, -generate-otp, and
// -decode=ENCODED -otp=OTP turns the encoded token of the last share into
// the token, without asking the server. -dr-token does the same for a DR
// secondary's DR operation token.
func (c *cli) operatorGenerateRoot(args []string) int {
	f := c.newFlags("operator generate-root", "operator generate-root [-dr-token] [-init [-otp=OTP]] [-status] [-cancel] [-generate-otp] [-decode=ENCODED|- -otp=OTP] [-nonce=NONCE] [KEY | -]\n\n"+
		"  KEY is one unseal key share (recovery key share under an auto-unseal seal), in hex or base64;\n"+
		"  \"-\" reads it from stdin, and both need -nonce; without KEY it is asked for on stdin, after\n"+
		"  printing the attempt's nonce to check. With -dr-token every step acts on the DR operation\n"+
		"  token generation of a DR secondary (sys/replication/dr/secondary/generate-operation-token)")
	g := generateRootFlags{
		init:        f.Bool("init", false, "start a token generation (a root token, or with -dr-token a DR operation token); the server draws the OTP unless -otp gives one"),
		status:      f.Bool("status", false, "print the status of the attempt in progress"),
		cancel:      f.Bool("cancel", false, "cancel the attempt in progress, discarding the key shares given"),
		generateOTP: f.Bool("generate-otp", false, "draw an OTP of the length the server asks for, to pass to -init -otp"),
		otp:         f.String("otp", "", "with -init: the OTP to encode the new token with; with -decode: the OTP to decode it with"),
		nonce:       f.String("nonce", "", "the nonce of the attempt a KEY is for (required with KEY and \"-\")"),
		decode:      f.String("decode", "", "decode this encoded token (\"-\": read it from stdin) with -otp, and print the token"),
		drToken:     f.Bool("dr-token", false, "generate a DR operation token on a DR secondary instead of a root token (it authorises promote and update-primary there, and lives 1h)"),
	}
	if code, ok := f.parse(args); !ok {
		return code
	}
	if code, ok := g.check(f); !ok {
		return code
	}
	if *g.decode != "" {
		return c.generateRootDecode(f, newGeneration(nil, *g.drToken), *g.decode, *g.otp)
	}
	client, code := f.connect()
	if client == nil {
		return code
	}
	gen := newGeneration(client, *g.drToken)
	switch {
	case *g.generateOTP:
		return c.generateRootOTP(gen)
	case *g.init:
		st, err := gen.init(*g.otp)
		if err != nil {
			return c.remote("Error initializing %s: %s", gen.what, apiError(err))
		}
		return c.printGenerateRoot(f, gen, st)
	case *g.status:
		st, err := gen.status()
		if err != nil {
			return c.remote("Error getting %s status: %s", gen.what, apiError(err))
		}
		return c.printGenerateRoot(f, gen, st)
	case *g.cancel:
		if err := gen.cancel(); err != nil {
			return c.remote("Error canceling %s: %s", gen.what, apiError(err))
		}
		fmt.Fprintf(c.stdout, "Success! %s canceled (if it was started)\n", capitalize(gen.what))
		return exitOK
	}
	return c.generateRootProvide(f, gen, f.Arg(0), *g.nonce)
}

// capitalize upper-cases the first letter of an ASCII phrase.
func capitalize(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// check refuses flags that do not go together; ok is false when the
// command must stop with code.
func (g generateRootFlags) check(f *commandFlags) (code int, ok bool) {
	modes := 0
	for _, on := range []bool{*g.init, *g.status, *g.cancel, *g.generateOTP, *g.decode != ""} {
		if on {
			modes++
		}
	}
	switch {
	case modes > 1:
		return f.cli.local("Only one of -init, -status, -cancel, -generate-otp and -decode may be given at once"), false
	case modes == 1 && f.NArg() > 0:
		return f.cli.local("A key share goes alone, without -init, -status, -cancel, -generate-otp or -decode (got %q)", strings.Join(f.Args(), " ")), false
	case f.NArg() > 1:
		return f.cli.local("Too many arguments (expected at most 1 key share, got %d)", f.NArg()), false
	case f.isSet("otp") && !*g.init && *g.decode == "":
		return f.cli.local("-otp goes with -init (the OTP to encode the new token with) or -decode (the OTP to decode it with)"), false
	}
	return exitOK, true
}

// generateRootProvide gives one key share to the attempt in progress.
func (c *cli) generateRootProvide(f *commandFlags, gen generation, key, nonce string) int {
	st, err := gen.status()
	if err != nil {
		return c.remote("Error getting %s status: %s", gen.what, apiError(err))
	}
	if !st.Started {
		return c.local("No %s is in progress: start one with `%s -init` "+
			"(an OTP of your own, given with -otp, must be %d characters long)", gen.what, gen.cmd, st.OTPLength)
	}
	switch key {
	case "-":
		b, err := io.ReadAll(io.LimitReader(c.stdin, 64<<10))
		if err != nil {
			return c.local("Error reading the key share from stdin: %v", err)
		}
		key = string(b)
	case "":
		// As the vault CLI at its prompt: show the nonce to check, and use
		// it unless -nonce names one.
		fmt.Fprintf(c.stderr, "Operation nonce: %s\n", st.Nonce)
		if nonce == "" {
			nonce = st.Nonce
		}
		if key, err = c.prompt("Unseal Key: "); err != nil {
			return c.local("Error reading the key share from stdin: %v", err)
		}
	}
	key = strings.TrimSpace(key)
	if key == "" {
		return c.local("No key share given: pass it as an argument, or \"-\" to read it from stdin")
	}
	if nonce == "" {
		return c.local("Missing nonce: give the attempt's nonce with -nonce (`%s -status` shows it), "+
			"after checking with whoever started the attempt that it is theirs", gen.cmd)
	}
	st, err = gen.update(key, nonce)
	if err != nil {
		return c.remote("Error posting unseal key: %s", apiError(err))
	}
	return c.printGenerateRoot(f, gen, st)
}

// generateRootOTP draws an OTP as long as the server's tokens.
func (c *cli) generateRootOTP(gen generation) int {
	st, err := gen.status()
	if err != nil {
		return c.remote("Error getting %s status: %s", gen.what, apiError(err))
	}
	if st.OTPLength <= 0 {
		return c.remote("The server reports no otp_length: it expects an OTP of another kind than this CLI draws")
	}
	otp, err := rootgen.NewOTP(rand.Reader, st.OTPLength)
	if err != nil {
		return c.local("Error generating an OTP: %v", err)
	}
	fmt.Fprintln(c.stdout, otp)
	return exitOK
}

// generateRootDecode prints the token an encoded token and its OTP hold.
func (c *cli) generateRootDecode(f *commandFlags, gen generation, encoded, otp string) int {
	if encoded == "-" {
		b, err := io.ReadAll(io.LimitReader(c.stdin, 64<<10))
		if err != nil {
			return c.local("Error reading the encoded token from stdin: %v", err)
		}
		encoded = strings.TrimSpace(string(b))
	}
	if otp == "" {
		return c.local("Missing -otp: give the OTP that `%s -init` printed (or the one you gave it)", gen.cmd)
	}
	token, err := rootgen.Decode(encoded, otp)
	if err != nil {
		return c.local("Error decoding the token: %v", err)
	}
	if f.format == "json" {
		return f.output(map[string]string{"token": token}, nil)
	}
	fmt.Fprintln(c.stdout, token)
	return exitOK
}

// printGenerateRoot prints an attempt's status as the vault CLI does, with
// a word on stderr about what to keep and what to do next.
func (c *cli) printGenerateRoot(f *commandFlags, gen generation, s *api.GenerateRootStatusResponse) int {
	rows := []row{
		{"Nonce", s.Nonce},
		{"Started", s.Started},
		{"Progress", fmt.Sprintf("%d/%d", s.Progress, s.Required)},
		{"Complete", s.Complete},
	}
	switch {
	case s.EncodedToken != "":
		rows = append(rows, row{"Encoded Token", s.EncodedToken})
	case s.EncodedRootToken != "":
		rows = append(rows, row{"Encoded Root Token", s.EncodedRootToken})
	}
	if s.OTP != "" {
		rows = append(rows, row{"OTP", s.OTP})
	}
	if s.OTPLength != 0 {
		rows = append(rows, row{"OTP Length", s.OTPLength})
	}
	if f.format == "table" {
		switch {
		case s.OTP != "":
			fmt.Fprintln(c.stderr, "A one-time password (OTP) has been generated for you and is shown in the OTP field. "+
				"You will need it to decode the new token: keep it safe, and to yourself.")
		case s.Complete:
			fmt.Fprintf(c.stderr, "Decode the token with: %s -decode=<Encoded Token> -otp=<the OTP of -init>\n", gen.cmd)
		}
	}
	return f.output(s, rows)
}

package acl

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/hashicorp/hcl/hcl/ast"
	hclparser "github.com/hashicorp/hcl/hcl/parser"
	"github.com/hashicorp/hcl/hcl/token"
	jsonparser "github.com/hashicorp/hcl/json/parser"
)

// Sentinel errors. Test with errors.Is.
var (
	// ErrInvalidPolicy is wrapped by every error of Parse: the policy text
	// cannot be accepted as written (HTTP 400).
	ErrInvalidPolicy = errors.New("invalid policy")
	// ErrReservedName is wrapped when a policy would replace a built-in one
	// that cannot be modified (root, response-wrapping).
	ErrReservedName = errors.New("reserved policy name")
)

// Policy is one named, parsed policy. Paths keeps the blocks in the order
// written; two blocks naming the same path are merged by NewACL, as are the
// same paths in different policies.
type Policy struct {
	Name  string
	Raw   string // the text as given to Parse, for reading the policy back
	Paths []PathRule
}

// PathRule is one path block.
type PathRule struct {
	// Path is the pattern, normalized (no leading "/"), with its trailing "*"
	// if it is a glob.
	Path string
	// Capabilities granted; exactly Deny if the block denies.
	Capabilities Capability
	// Line of the block in Raw (1-based).
	Line int
}

// ParseError locates a problem in a policy's text. It wraps ErrInvalidPolicy
// (and ErrReservedName for a reserved name).
type ParseError struct {
	Policy string // the policy's name
	Line   int    // 1-based; 0 when the problem has no place in the text
	Column int    // 1-based; 0 when unknown
	Msg    string // what is wrong and what to write instead
	err    error
}

func (e *ParseError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "policy %q: ", e.Policy)
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ", column %d", e.Column)
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the sentinel errors the error matches.
func (e *ParseError) Unwrap() []error {
	if e.err != nil {
		return []error{ErrInvalidPolicy, e.err}
	}
	return []error{ErrInvalidPolicy}
}

// NormalizeName returns the canonical form of a policy name: trimmed and lower
// case, as Vault stores names. Parse applies it; a policy store should apply
// it to names in requests before looking them up.
func NormalizeName(name string) string {
	return strings.ToLower(strings.TrimSpace(name))
}

// Keys of a path block that Vault accepts and Coffer does not (yet) enforce.
// They are refused rather than ignored: silently dropping a restriction such
// as denied_parameters would grant more than the author wrote.
var unsupportedKeys = map[string]string{
	"allowed_parameters":    "parameter constraints are not enforced by Coffer",
	"denied_parameters":     "parameter constraints are not enforced by Coffer",
	"required_parameters":   "parameter constraints are not enforced by Coffer",
	"min_wrapping_ttl":      "wrapping TTL bounds are not enforced by Coffer",
	"max_wrapping_ttl":      "wrapping TTL bounds are not enforced by Coffer",
	"mfa_methods":           "Coffer has no MFA",
	"control_group":         "Coffer has no control groups",
	"subscribe_event_types": "Coffer has no event subscriptions",
}

// oldStyle maps Vault's pre-0.9 `policy = "..."` shorthand to capabilities.
var oldStyle = map[string]Capability{
	"deny":  Deny,
	"read":  Read | List,
	"write": Create | Read | Update | Delete | List,
	"sudo":  Create | Read | Update | Delete | List | Sudo,
}

// Parse parses a policy in Vault's language, HCL or JSON (the same document
// either way):
//
//	# comment
//	path "secret/data/*" {
//	  capabilities = ["create", "read"]
//	}
//
//	{"path": {"secret/data/*": {"capabilities": ["create", "read"]}}}
//
// Besides capabilities a block may hold `comment` (ignored) and Vault's old
// `policy = "read"` shorthand (deny, read, write or sudo). A top-level `name`
// is accepted and ignored: the name argument names the policy. Parameter
// constraints, wrapping TTL bounds, MFA, control groups and event types are
// refused with ErrInvalidPolicy (see unsupportedKeys), as are unknown keys,
// unknown capabilities, a block granting nothing, and paths outside the
// pattern grammar of pattern.go. Every error says where (line, and column
// when the parser knows it) and what to write instead.
//
// name is normalized with NormalizeName; root and response-wrapping are
// refused (ErrReservedName). "default" may be parsed: it is replaceable.
func Parse(name, text string) (*Policy, error) {
	name = NormalizeName(name)
	fail := func(pos token.Pos, format string, args ...any) (*Policy, error) {
		return nil, &ParseError{Policy: name, Line: pos.Line, Column: pos.Column, Msg: fmt.Sprintf(format, args...)}
	}
	if name == "" {
		return fail(token.Pos{}, "the policy has no name; give it one")
	}
	if IsImmutable(name) {
		return nil, &ParseError{Policy: name, err: ErrReservedName,
			Msg: "this name belongs to a built-in policy that cannot be replaced; choose another name"}
	}
	return parse(name, text)
}

// parse is Parse without the name checks, for the built-in policies.
func parse(name, text string) (*Policy, error) {
	fail := func(pos token.Pos, format string, args ...any) (*Policy, error) {
		return nil, &ParseError{Policy: name, Line: pos.Line, Column: pos.Column, Msg: fmt.Sprintf(format, args...)}
	}
	if strings.TrimSpace(text) == "" {
		return fail(token.Pos{}, "the policy text is empty; write at least one path block, for example path \"secret/data/app\" { capabilities = [\"read\"] }")
	}
	file, jsonLines, err := parseSyntax(text)
	if err != nil {
		var pe *hclparser.PosError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &pe):
			return fail(pe.Pos, "syntax error: %v", pe.Err)
		case errors.As(err, &se):
			line, col := lineCol(text, int(se.Offset))
			return fail(token.Pos{Line: line, Column: col}, "JSON syntax error: %v", se)
		}
		return fail(token.Pos{}, "syntax error: %v", err)
	}
	list, ok := file.Node.(*ast.ObjectList)
	if !ok {
		return fail(token.Pos{}, "the policy must be a list of path blocks")
	}
	p := &Policy{Name: name, Raw: text}
	ps := &policyParser{p: p, jsonLines: jsonLines}
	for _, item := range list.Items {
		key := item.Keys[0].Token
		switch keyText(key) {
		case "name":
			continue
		case "path":
			if err := ps.parsePath(item, item.Keys[1:]); err != nil {
				return nil, err
			}
		default:
			return fail(key.Pos, "unknown top-level key %q; a policy holds path blocks: path \"secret/*\" { capabilities = [\"read\"] }", keyText(key))
		}
	}
	return p, nil
}

// keyText returns an identifier's text or a string key's unquoted value.
func keyText(t token.Token) string {
	if t.Type == token.STRING {
		if s, ok := t.Value().(string); ok {
			return s
		}
	}
	return t.Text
}

// policyParser carries what the walk over one policy's syntax tree needs.
type policyParser struct {
	p *Policy
	// jsonLines gives the line of each path key of a JSON policy: the JSON
	// parser of hcl keeps no positions.
	jsonLines map[string]int
}

// parsePath parses the block item, whose keys after "path" are keys.
func (ps *policyParser) parsePath(item *ast.ObjectItem, keys []*ast.ObjectKey) error {
	p := ps.p
	var jsonLine int
	if len(keys) == 1 {
		jsonLine = ps.jsonLines[keyText(keys[0].Token)]
	}
	fail := func(pos token.Pos, format string, args ...any) error {
		if pos.Line == 0 {
			pos = token.Pos{Line: jsonLine}
		}
		return &ParseError{Policy: p.Name, Line: pos.Line, Column: pos.Column, Msg: fmt.Sprintf(format, args...)}
	}
	pos := item.Pos()
	obj, isObj := item.Val.(*ast.ObjectType)
	switch {
	case len(keys) == 0 && isObj && allBlocks(obj):
		// The JSON form {"path": {"a": {...}, "b": {...}}} when the parser did
		// not flatten it: each inner item is one path block.
		for _, inner := range obj.List.Items {
			if err := ps.parsePath(inner, inner.Keys); err != nil {
				return err
			}
		}
		return nil
	case len(keys) != 1:
		return fail(pos, "a path block needs exactly one quoted path: path \"secret/*\" { capabilities = [\"read\"] }")
	case !isObj:
		return fail(pos, "path %q must be followed by a block: { capabilities = [\"read\"] }", keyText(keys[0].Token))
	}
	raw := keyText(keys[0].Token)
	pattern, err := normalizePattern(raw)
	if err != nil {
		return fail(keys[0].Token.Pos, "%v", err)
	}
	var caps Capability
	seen := map[string]bool{}
	for _, attr := range obj.List.Items {
		at := attr.Keys[0].Token
		k := keyText(at)
		if len(attr.Keys) != 1 {
			return fail(at.Pos, "path %q: %q must be an attribute (%s = ...), not a block", pattern, k, k)
		}
		if seen[k] {
			return fail(at.Pos, "path %q: %q is set twice; set it once", pattern, k)
		}
		seen[k] = true
		switch k {
		case "comment":
		case "capabilities":
			c, err := parseCapabilities(pattern, attr.Val, fail)
			if err != nil {
				return err
			}
			caps |= c
		case "policy":
			var c Capability
			known := false
			if lit, ok := attr.Val.(*ast.LiteralType); ok && lit.Token.Type == token.STRING {
				s, _ := lit.Token.Value().(string)
				c, known = oldStyle[s]
			}
			if !known {
				return fail(attr.Val.Pos(), "path %q: policy must be one of \"deny\", \"read\", \"write\", \"sudo\"; better, use capabilities = [...]", pattern)
			}
			caps |= c
		default:
			if why, ok := unsupportedKeys[k]; ok {
				return fail(at.Pos, "path %q: %s is not supported (%s); remove it, or express the restriction with narrower paths", pattern, k, why)
			}
			return fail(at.Pos, "path %q: unknown key %q; a path block holds capabilities = [...]", pattern, k)
		}
	}
	if caps == 0 {
		return fail(pos, "path %q has no capabilities; add capabilities = [\"read\"] (or [\"deny\"] to refuse access)", pattern)
	}
	if caps&Deny != 0 {
		caps = Deny
	}
	line := pos.Line
	if line == 0 {
		line = jsonLine
	}
	p.Paths = append(p.Paths, PathRule{Path: pattern, Capabilities: caps, Line: line})
	return nil
}

// allBlocks reports whether every item of obj is keyed and holds an object,
// as the paths of an unflattened JSON "path" object do.
func allBlocks(obj *ast.ObjectType) bool {
	for _, it := range obj.List.Items {
		if _, ok := it.Val.(*ast.ObjectType); !ok || len(it.Keys) != 1 {
			return false
		}
	}
	return len(obj.List.Items) > 0
}

// parseSyntax parses text as JSON if it starts with "{" (as hcl decides) and
// as HCL otherwise. JSON is first checked with encoding/json, which is strict
// and locates errors, and scanned for the lines of its path keys. Duplicate
// attributes are left to parsePath, which reports them with their position.
func parseSyntax(text string) (*ast.File, map[string]int, error) {
	if !strings.HasPrefix(strings.TrimLeftFunc(text, unicode.IsSpace), "{") {
		f, err := hclparser.ParseDontErrorOnDuplicateKeys([]byte(text))
		return f, nil, err
	}
	var v any
	if err := json.Unmarshal([]byte(text), &v); err != nil {
		return nil, nil, err
	}
	f, err := jsonparser.Parse([]byte(text))
	if err != nil {
		return nil, nil, err
	}
	return f, jsonPathLines(text), nil
}

// jsonPathLines maps each path of a JSON policy to the line of its key: the
// keys of the object that is the value of the top-level "path" key (or of the
// objects in an array there).
func jsonPathLines(text string) map[string]int {
	type frame struct {
		object bool
		paths  bool // the container holds path keys (or, for an array, path objects)
		key    string
		isKey  bool // the next token of this object is a key
	}
	lines := map[string]int{}
	dec := json.NewDecoder(strings.NewReader(text))
	var stack []frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return lines
		}
		var top *frame
		if len(stack) > 0 {
			top = &stack[len(stack)-1]
		}
		if top != nil && top.object && top.isKey {
			if k, ok := tok.(string); ok {
				top.key, top.isKey = k, false
				if top.paths {
					if _, seen := lines[k]; !seen {
						lines[k], _ = lineCol(text, int(dec.InputOffset()))
					}
				}
				continue
			}
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			paths := top != nil && ((len(stack) == 1 && top.object && top.key == "path") || (!top.object && top.paths))
			stack = append(stack, frame{object: tok == json.Delim('{'), paths: paths, isKey: true})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 {
			stack[len(stack)-1].isKey = true // a value ended: a key comes next
		}
	}
}

// lineCol turns a byte offset of text into a 1-based line and column.
func lineCol(text string, off int) (line, col int) {
	off = min(max(off, 0), len(text))
	before := text[:off]
	line = strings.Count(before, "\n") + 1
	col = off - strings.LastIndexByte(before, '\n')
	return line, col
}

// parseCapabilities parses the list value of a capabilities attribute.
func parseCapabilities(pattern string, val ast.Node, fail func(token.Pos, string, ...any) error) (Capability, error) {
	list, ok := val.(*ast.ListType)
	if !ok {
		return 0, fail(val.Pos(), "path %q: capabilities must be a list of strings, for example [\"read\", \"list\"]", pattern)
	}
	var caps Capability
	for _, elem := range list.List {
		lit, ok := elem.(*ast.LiteralType)
		if !ok || lit.Token.Type != token.STRING {
			return 0, fail(elem.Pos(), "path %q: capabilities must be a list of strings, for example [\"read\", \"list\"]", pattern)
		}
		s, _ := lit.Token.Value().(string)
		c, known := ParseCapability(s)
		if !known {
			return 0, fail(lit.Token.Pos, "path %q: unknown capability %q; valid capabilities are %s", pattern, s, validCapabilities)
		}
		caps |= c
	}
	return caps, nil
}

package config

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/knadh/koanf/maps"
	"github.com/knadh/koanf/parsers/hcl"
	"github.com/knadh/koanf/parsers/json"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/env"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
)

// EnvPrefix starts every environment variable Load reads.
const EnvPrefix = "COFFER_"

// Load reads the configuration file at path over base (nil means Defaults()),
// then the COFFER_* environment over that, and returns a new Config; base is
// not modified. An empty path reads the environment only.
//
// The file format follows the extension: .yaml and .yml are YAML, .json is
// JSON, anything else is HCL. Only the keys present in the file override base,
// except that a storage, listener or seal block naming a type other than
// base's replaces base's block whole (a bolt path means nothing to inmem).
//
// Load reports unknown keys and values of the wrong type as errors. It does
// not call Validate: apply command-line flags to the result, then Validate.
func Load(path string, base *Config) (*Config, error) {
	k, err := baseKoanf(base)
	if err != nil {
		return nil, err
	}
	if path != "" {
		if err := loadFile(k, path); err != nil {
			return nil, err
		}
	}
	return finish(k)
}

// LoadEnvOnly applies the COFFER_* environment over base (nil means
// Defaults()) when no file is given.
func LoadEnvOnly(base *Config) (*Config, error) {
	return Load("", base)
}

// EnvVar names the environment variable that sets a key, such as
// "listener.address" -> "COFFER_LISTENER_ADDRESS".
func EnvVar(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// Keys lists every setting's key in its flattened form ("storage.path"),
// sorted. Storage options are not listed: any key of the storage block is one.
func Keys() []string {
	out := make([]string, 0, len(fields))
	for _, f := range fields {
		out = append(out, f.key)
	}
	sort.Strings(out)
	return out
}

func baseKoanf(base *Config) (*koanf.Koanf, error) {
	if base == nil {
		base = Defaults()
	}
	k := koanf.New(".")
	if err := k.Load(mapProvider(flatten(base)), nil); err != nil {
		return nil, fmt.Errorf("load defaults: %w", err)
	}
	return k, nil
}

func loadFile(k *koanf.Koanf, path string) error {
	var parser koanf.Parser
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml":
		parser = yaml.Parser()
	case ".json":
		parser = json.Parser()
	default:
		parser = hcl.Parser(true)
	}
	fk := koanf.New(".")
	if err := fk.Load(file.Provider(path), parser); err != nil {
		return fmt.Errorf("read config file %s: %w", path, err)
	}
	raw, err := normalize(fk.Raw())
	if err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	// A block of another type replaces base's block whole.
	for _, block := range typedBlocks {
		m, ok := raw[block].(map[string]any)
		if !ok {
			continue
		}
		if t, ok := m["type"]; ok && fmt.Sprint(t) != k.String(block+".type") {
			k.Delete(block)
		}
	}
	if err := k.Load(mapProvider(raw), nil); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// finish applies the environment and decodes the merged keys into a Config.
func finish(k *koanf.Koanf) (*Config, error) {
	var unknownEnv []string
	ep := env.ProviderWithValue(EnvPrefix, ".", func(name, value string) (string, any) {
		f, ok := fieldsByEnv[name]
		if !ok {
			unknownEnv = append(unknownEnv, name)
			return "", nil
		}
		if value == "" {
			return "", nil
		}
		return f.key, value
	})
	if err := k.Load(ep, nil); err != nil {
		return nil, fmt.Errorf("read %s* environment: %w", EnvPrefix, err)
	}
	c, err := decode(k.All())
	if err != nil {
		return nil, err
	}
	sort.Strings(unknownEnv)
	for _, name := range unknownEnv {
		c.Warnings = append(c.Warnings, fmt.Sprintf("environment variable %s names no setting and was ignored; "+
			"settings are %s + the key upper-cased with _ for . (such as COFFER_LISTENER_ADDRESS)", name, EnvPrefix))
	}
	return c, nil
}

// typedBlocks are the blocks whose HCL label is their type.
var typedBlocks = []string{"storage", "listener", "seal"}

// normalize turns a parsed file into the YAML/JSON shape and rejects unknown keys:
// HCL's storage "bolt" { path = "x" } arrives as {storage: {bolt: {path: x}}}
// and becomes {storage: {type: bolt, path: x}}.
func normalize(raw map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(raw))
	var unknown []string
	for key, v := range raw {
		kind, ok := topLevel[key]
		if !ok {
			unknown = append(unknown, key)
			continue
		}
		if v == nil {
			continue // an empty YAML key: nothing to override
		}
		switch kind {
		case topScalar:
			out[key] = v
		case topBlock, topTypedBlock:
			m, err := blockMap(key, v)
			if err != nil {
				return nil, err
			}
			if kind == topTypedBlock {
				if m, err = unlabel(key, m); err != nil {
					return nil, err
				}
			}
			if err := checkBlockKeys(key, m); err != nil {
				return nil, err
			}
			out[key] = m
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		valid := make([]string, 0, len(topLevel))
		for k := range topLevel {
			valid = append(valid, k)
		}
		sort.Strings(valid)
		return nil, fmt.Errorf("unknown key(s) %s: valid top-level keys are %s",
			quoteAll(unknown), strings.Join(valid, ", "))
	}
	return out, nil
}

// blockMap accepts one block: a map, or HCL's list holding one map.
func blockMap(key string, v any) (map[string]any, error) {
	switch b := v.(type) {
	case map[string]any:
		return b, nil
	case []map[string]any:
		if len(b) == 1 {
			return b[0], nil
		}
		return nil, fmt.Errorf("%d %s blocks: only one is allowed", len(b), key)
	case []any:
		if len(b) == 1 {
			if m, ok := b[0].(map[string]any); ok {
				return m, nil
			}
		}
		return nil, fmt.Errorf("%s must be one block, not a list of %d", key, len(b))
	}
	return nil, fmt.Errorf("%s must be a block (a map of settings), not %T %v", key, v, v)
}

// unlabel turns {bolt: {path: x}} into {type: bolt, path: x}. A block that
// already has a type (the YAML/JSON shape, or HCL without a label) is kept.
func unlabel(key string, m map[string]any) (map[string]any, error) {
	if _, ok := m["type"]; ok {
		return m, nil
	}
	if len(m) != 1 {
		return m, nil
	}
	for label, v := range m {
		inner, err := blockMap(key+" "+strconv.Quote(label), v)
		if err != nil {
			return m, nil // a single plain setting such as {path: x}: not a label
		}
		if _, ok := inner["type"]; ok {
			return nil, fmt.Errorf("%s %q: the type is the block label; remove the type key", key, label)
		}
		out := make(map[string]any, len(inner)+1)
		for k, v := range inner {
			out[k] = v
		}
		out["type"] = label
		return out, nil
	}
	return m, nil
}

func checkBlockKeys(block string, m map[string]any) error {
	if block == "storage" {
		// Every key besides type and path is a backend option; Validate checks them per backend.
		for k, v := range m {
			switch v.(type) {
			case map[string]any, []any, []map[string]any:
				return fmt.Errorf("storage option %q must be a single value, not a block or list", k)
			}
		}
		return nil
	}
	known := blockKeys[block]
	if nk, ok := nestedKeys[block]; ok {
		known = nk
	}
	var unknown []string
	for k, v := range m {
		if !known[k] {
			unknown = append(unknown, k)
			continue
		}
		if _, nested := nestedKeys[block+"."+k]; nested {
			inner, err := blockMap(block+" "+k, v)
			if err != nil {
				return err
			}
			if err := checkBlockKeys(block+"."+k, inner); err != nil {
				return err
			}
			m[k] = inner
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	valid := make([]string, 0, len(known))
	for k := range known {
		valid = append(valid, k)
	}
	sort.Strings(valid)
	return fmt.Errorf("unknown key(s) %s in the %s block: valid keys are %s", quoteAll(unknown), block, strings.Join(valid, ", "))
}

func quoteAll(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = strconv.Quote(v)
	}
	return strings.Join(q, ", ")
}

// --- the table of settings, built from Config's koanf tags ---

type kind int

const (
	kindString kind = iota
	kindBool
	kindInt
	kindBytes
	kindDuration
)

type field struct {
	key   string // flattened koanf key, "listener.address"
	env   string // COFFER_LISTENER_ADDRESS
	kind  kind
	index []int // reflect index path from Config
}

type topKind int

const (
	topScalar topKind = iota
	topBlock
	topTypedBlock
)

var (
	fields      []field
	fieldsByKey = map[string]field{}
	fieldsByEnv = map[string]field{}
	topLevel    = map[string]topKind{}
	blockKeys   = map[string]map[string]bool{}
	// nestedKeys are the keys of the blocks inside a block, by "block.nested".
	nestedKeys = map[string]map[string]bool{}
)

var durationType = reflect.TypeFor[time.Duration]()

func init() {
	ct := reflect.TypeFor[Config]()
	for i := range ct.NumField() {
		sf := ct.Field(i)
		name := sf.Tag.Get("koanf")
		if name == "" || name == "-" {
			continue
		}
		t := sf.Type
		if t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || t == durationType {
			topLevel[name] = topScalar
			addField(name, sf, []int{i})
			continue
		}
		topLevel[name] = topBlock
		blockKeys[name] = map[string]bool{}
		for j := range t.NumField() {
			sub := t.Field(j)
			subName := sub.Tag.Get("koanf")
			if subName == "" || subName == "-" {
				continue
			}
			if subName == "type" {
				topLevel[name] = topTypedBlock
			}
			blockKeys[name][subName] = true
			if sub.Type.Kind() == reflect.Struct && sub.Type != durationType {
				addNested(name+"."+subName, sub.Type, []int{i, j})
				continue
			}
			addField(name+"."+subName, sub, []int{i, j})
		}
	}
}

// addNested adds the settings of a block inside a block, such as the
// listener's telemetry block.
func addNested(key string, t reflect.Type, index []int) {
	nestedKeys[key] = map[string]bool{}
	for k := range t.NumField() {
		sf := t.Field(k)
		name := sf.Tag.Get("koanf")
		if name == "" || name == "-" {
			continue
		}
		nestedKeys[key][name] = true
		addField(key+"."+name, sf, append(slices.Clone(index), k))
	}
}

func addField(key string, sf reflect.StructField, index []int) {
	f := field{key: key, env: EnvVar(key), index: index}
	switch {
	case sf.Type == durationType:
		f.kind = kindDuration
	case sf.Type.Kind() == reflect.String:
		f.kind = kindString
	case sf.Type.Kind() == reflect.Bool:
		f.kind = kindBool
	case sf.Type.Kind() == reflect.Int64 && sf.Tag.Get("unit") == "bytes":
		f.kind = kindBytes
	case sf.Type.Kind() == reflect.Int64:
		f.kind = kindInt
	default:
		panic(fmt.Sprintf("config: field %s has unsupported type %s", key, sf.Type))
	}
	if other, dup := fieldsByEnv[f.env]; dup {
		panic(fmt.Sprintf("config: keys %s and %s share environment variable %s", other.key, key, f.env))
	}
	fields = append(fields, f)
	fieldsByKey[key] = f
	fieldsByEnv[f.env] = f
}

// flatten turns a Config into the nested map koanf loads, with typed values.
func flatten(c *Config) map[string]any {
	flat := map[string]any{}
	v := reflect.ValueOf(c).Elem()
	for _, f := range fields {
		fv, ok := fieldValue(v, f.index, false)
		if !ok {
			continue // a nil *Seal: no seal block
		}
		flat[f.key] = fv.Interface()
	}
	for k, o := range c.Storage.Options {
		flat["storage."+k] = o
	}
	return maps.Unflatten(flat, ".")
}

// fieldValue walks index from v, allocating nil pointers when alloc is set.
func fieldValue(v reflect.Value, index []int, alloc bool) (reflect.Value, bool) {
	for i, x := range index {
		v = v.Field(x)
		if v.Kind() == reflect.Pointer && i < len(index)-1 {
			if v.IsNil() {
				if !alloc {
					return reflect.Value{}, false
				}
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
	}
	return v, true
}

// decode sets a fresh Config from koanf's flattened keys.
func decode(all map[string]any) (*Config, error) {
	c := &Config{}
	v := reflect.ValueOf(c).Elem()
	var errs []error
	keys := make([]string, 0, len(all))
	for k := range all {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		raw := all[key]
		f, ok := fieldsByKey[key]
		if !ok {
			if opt, isOpt := strings.CutPrefix(key, "storage."); isOpt && !strings.Contains(opt, ".") {
				s, err := scalarString(raw)
				if err != nil {
					errs = append(errs, fmt.Errorf("storage option %s: %w", opt, err))
					continue
				}
				if c.Storage.Options == nil {
					c.Storage.Options = map[string]string{}
				}
				c.Storage.Options[opt] = s
				continue
			}
			if m, isMap := raw.(map[string]any); isMap && len(m) == 0 {
				continue // an empty block, such as bus {}
			}
			errs = append(errs, fmt.Errorf("unknown key %q", key))
			continue
		}
		fv, _ := fieldValue(v, f.index, true)
		if err := set(fv, f, raw); err != nil {
			errs = append(errs, fmt.Errorf("%s (%s): %w", f.key, f.env, err))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("config: %w", errors.Join(errs...))
	}
	return c, nil
}

func set(fv reflect.Value, f field, raw any) error {
	switch f.kind {
	case kindString:
		s, err := scalarString(raw)
		if err != nil {
			return err
		}
		fv.SetString(s)
	case kindBool:
		b, err := toBool(raw)
		if err != nil {
			return err
		}
		fv.SetBool(b)
	case kindInt:
		n, err := toInt(raw)
		if err != nil {
			return err
		}
		fv.SetInt(n)
	case kindBytes:
		n, err := toBytes(raw)
		if err != nil {
			return err
		}
		fv.SetInt(n)
	case kindDuration:
		d, err := ParseDuration(raw)
		if err != nil {
			return err
		}
		fv.SetInt(int64(d))
	}
	return nil
}

func scalarString(raw any) (string, error) {
	switch x := raw.(type) {
	case string:
		return x, nil
	case bool, int, int64, float64, uint64:
		return fmt.Sprint(x), nil
	}
	return "", fmt.Errorf("want a single value, got %T", raw)
}

func toBool(raw any) (bool, error) {
	switch x := raw.(type) {
	case bool:
		return x, nil
	case string:
		b, err := strconv.ParseBool(strings.TrimSpace(x))
		if err != nil {
			return false, fmt.Errorf("%q is not a boolean: use true or false", x)
		}
		return b, nil
	case int, int64, float64:
		n, err := toInt(x)
		if err == nil && (n == 0 || n == 1) {
			return n == 1, nil
		}
	}
	return false, fmt.Errorf("%v is not a boolean: use true or false", raw)
}

func toInt(raw any) (int64, error) {
	switch x := raw.(type) {
	case int:
		return int64(x), nil
	case int64:
		return x, nil
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x), nil
		}
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x), nil
		}
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		if err == nil {
			return n, nil
		}
		return 0, fmt.Errorf("%q is not a whole number", x)
	}
	return 0, fmt.Errorf("%v is not a whole number", raw)
}

func toBytes(raw any) (int64, error) {
	if s, ok := raw.(string); ok {
		return ParseByteSize(s)
	}
	n, err := toInt(raw)
	if err != nil {
		return 0, fmt.Errorf("%v is not a byte size: use a number of bytes or a string such as \"512MiB\"", raw)
	}
	if n < 0 {
		return 0, fmt.Errorf("byte size %d is negative", n)
	}
	return n, nil
}

// ParseDuration reads a duration the way Vault's configuration does: a Go
// duration string ("24h", "1h30m", "500ms"), or a whole number of seconds as
// a number or a string ("3600"). A time.Duration value is taken as is.
func ParseDuration(raw any) (time.Duration, error) {
	switch x := raw.(type) {
	case time.Duration:
		return x, nil
	case string:
		s := strings.TrimSpace(x)
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return secondsDuration(n)
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration: use a number and a unit such as 24h, 90m, 2s or 500ms, or whole seconds", x)
		}
		return d, nil
	default:
		n, err := toInt(raw)
		if err != nil {
			return 0, fmt.Errorf("%v is not a duration: use a string such as \"24h\" or whole seconds", raw)
		}
		return secondsDuration(n)
	}
}

func secondsDuration(n int64) (time.Duration, error) {
	if n > math.MaxInt64/int64(time.Second) || n < math.MinInt64/int64(time.Second) {
		return 0, fmt.Errorf("%d seconds is out of range", n)
	}
	return time.Duration(n) * time.Second, nil
}

// mapProvider is a koanf.Provider over a nested map already in hand.
type mapProvider map[string]any

func (m mapProvider) ReadBytes() ([]byte, error) {
	return nil, errors.New("config: map provider has no bytes")
}

func (m mapProvider) Read() (map[string]any, error) { return maps.Copy(m), nil }

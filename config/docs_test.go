package config

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// The operator's reference must name every setting and its examples must load.
func TestDocsMatchTheCode(t *testing.T) {
	clearEnv(t)
	doc, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatalf("read docs/configuration.md: %v", err)
	}
	text := string(doc)
	for _, key := range Keys() {
		if !strings.Contains(text, "`"+EnvVar(key)+"`") {
			t.Errorf("docs/configuration.md does not name %s (%s)", key, EnvVar(key))
		}
	}

	block := func(lang string) string {
		_, rest, ok := strings.Cut(text, "```"+lang+"\n")
		if !ok {
			t.Fatalf("docs/configuration.md has no %s example", lang)
		}
		body, _, _ := strings.Cut(rest, "```")
		return body
	}
	fromHCL := load(t, writeFile(t, "doc.hcl", block("hcl")), nil)
	fromYAML := load(t, writeFile(t, "doc.yaml", block("yaml")), nil)
	if !reflect.DeepEqual(fromHCL, fromYAML) {
		t.Fatalf("the HCL and YAML examples differ:\nHCL  %+v\nYAML %+v", fromHCL, fromYAML)
	}
	if err := fromHCL.Validate(); err != nil {
		t.Fatalf("the documented example does not validate: %v", err)
	}
}

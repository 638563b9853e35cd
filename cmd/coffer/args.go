package main

// Positional arguments of the vault-compatible commands: k=v data (with
// @file, - for stdin and JSON objects merged in) and API paths.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// parseArgsData turns vault CLI data arguments into a request body:
//
//	k=v        a string value; a repeated key makes a list
//	k=@file    the file's contents
//	k=\@v      the literal "@v"
//	k=-        all of stdin
//	-          a JSON object read from stdin, merged in
//	@file      a JSON object read from the file, merged in
//
// stdin can be consumed only once.
func parseArgsData(stdin io.Reader, args []string) (map[string]any, error) {
	out := map[string]any{}
	stdinUsed := false
	useStdin := func() error {
		if stdin == nil {
			return errors.New("stdin is not supported")
		}
		if stdinUsed {
			return errors.New("stdin already consumed")
		}
		stdinUsed = true
		return nil
	}
	for _, arg := range args {
		if arg == "" {
			continue
		}
		key, value, hasEq := strings.Cut(arg, "=")
		if !hasEq {
			switch {
			case arg == "-":
				if err := useStdin(); err != nil {
					return nil, err
				}
				if err := mergeJSON(out, stdin); err != nil {
					return nil, fmt.Errorf("parse JSON from stdin: %w", err)
				}
				continue
			case arg[0] == '@':
				b, err := os.ReadFile(arg[1:])
				if err != nil {
					return nil, fmt.Errorf("error reading file: %w", err)
				}
				if err := mergeJSON(out, bytes.NewReader(b)); err != nil {
					return nil, fmt.Errorf("parse JSON from %s: %w", arg[1:], err)
				}
				continue
			}
			return nil, fmt.Errorf("format must be key=value: %q", arg)
		}
		switch {
		case strings.HasPrefix(value, "@"):
			b, err := os.ReadFile(value[1:])
			if err != nil {
				return nil, fmt.Errorf("error reading file: %w", err)
			}
			value = string(b)
		case strings.HasPrefix(value, `\@`):
			value = value[1:]
		case value == "-":
			if err := useStdin(); err != nil {
				return nil, err
			}
			b, err := io.ReadAll(stdin)
			if err != nil {
				return nil, fmt.Errorf("read stdin: %w", err)
			}
			value = string(b)
		}
		switch prev := out[key].(type) {
		case nil:
			out[key] = value
		case []any:
			out[key] = append(prev, value)
		default:
			out[key] = []any{prev, value}
		}
	}
	return out, nil
}

// mergeJSON decodes one JSON object from r into out, numbers as
// json.Number.
func mergeJSON(out map[string]any, r io.Reader) error {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return err
	}
	for k, v := range m {
		out[k] = v
	}
	return nil
}

// parseArgsStrings is parseArgsData with every value as a string (auth
// method and audit device options).
func parseArgsStrings(stdin io.Reader, args []string) (map[string]string, error) {
	raw, err := parseArgsData(stdin, args)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		switch v := v.(type) {
		case string:
			out[k] = v
		case []any:
			parts := make([]string, len(v))
			for i, p := range v {
				parts[i] = fmt.Sprint(p)
			}
			out[k] = strings.Join(parts, ",")
		default:
			out[k] = fmt.Sprint(v)
		}
	}
	return out, nil
}

// parseArgsLists is parseArgsData as query parameters (read, delete).
func parseArgsLists(stdin io.Reader, args []string) (map[string][]string, error) {
	raw, err := parseArgsData(stdin, args)
	if err != nil {
		return nil, err
	}
	if len(raw) == 0 {
		return nil, nil
	}
	out := make(map[string][]string, len(raw))
	for k, v := range raw {
		switch v := v.(type) {
		case []any:
			for _, p := range v {
				out[k] = append(out[k], fmt.Sprint(p))
			}
		default:
			out[k] = []string{fmt.Sprint(v)}
		}
	}
	return out, nil
}

// sanitizePath trims whitespace and leading and trailing slashes.
func sanitizePath(s string) string {
	return strings.Trim(strings.TrimSpace(s), "/")
}

// ensureTrailingSlash adds one "/" to a non-empty path that lacks it.
func ensureTrailingSlash(s string) string {
	s = strings.TrimSpace(s)
	if s == "" || strings.HasSuffix(s, "/") {
		return s
	}
	return s + "/"
}

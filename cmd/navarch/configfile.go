package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// applyConfigFile sets the flags of fs from a YAML file whose keys are flag names
// (`consul-address: 127.0.0.1:8500`, `join: [a:7946, b:7946]`, `dev: true`). Flags
// given on the command line win: they were parsed before, and the file does not
// touch them. A list sets a repeatable flag once per element and any other flag to
// its elements joined by commas. Keys ignore reports true for are skipped (nil: none);
// any other unknown key is an error. path "" does nothing.
func applyConfigFile(fs *flag.FlagSet, path string, ignore func(key string) bool) error {
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading the config file: %w", err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(b, &values); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if ignore != nil && ignore(k) {
			continue
		}
		if k == "config" || fs.Lookup(k) == nil {
			return fmt.Errorf("%s: unknown key %q (keys are the flags of %s, without dashes)", path, k, fs.Name())
		}
		if onCommandLine[k] {
			continue
		}
		if list, ok := values[k].([]any); ok {
			if _, ok := fs.Lookup(k).Value.(repeatable); ok {
				for _, e := range list {
					v, err := flagValue(e)
					if err == nil {
						err = fs.Set(k, v)
					}
					if err != nil {
						return fmt.Errorf("%s: %s: %w", path, k, err)
					}
				}
				continue
			}
		}
		v, err := flagValue(values[k])
		if err != nil {
			return fmt.Errorf("%s: %s: %w", path, k, err)
		}
		if err := fs.Set(k, v); err != nil {
			return fmt.Errorf("%s: %s: %w", path, k, err)
		}
	}
	return nil
}

// flagValue turns a YAML value into a flag's text: lists become comma-separated.
func flagValue(v any) (string, error) {
	switch v := v.(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case bool, float64, json.Number:
		return fmt.Sprint(v), nil
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			s, err := flagValue(e)
			if err != nil {
				return "", err
			}
			if _, nested := e.([]any); nested {
				return "", fmt.Errorf("lists of lists are not flag values")
			}
			parts[i] = s
		}
		return strings.Join(parts, ","), nil
	}
	return "", fmt.Errorf("must be a string, number, boolean or list, got %T", v)
}

// repeatable is a flag given once per value (--label a=1 --label b=2), set from a
// config file's list once per element.
type repeatable func(string) error

func (f repeatable) String() string     { return "" }
func (f repeatable) Set(v string) error { return f(v) }

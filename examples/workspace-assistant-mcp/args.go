package main

// Tool arguments: decoded with numbers kept exact, checked against the names the
// tool's schema declares, and read with accessors that say what is wrong in a
// sentence a model can act on.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/google/jsonschema-go/jsonschema"
)

// arguments are a tool call's arguments, decoded with numbers kept exact.
type arguments map[string]any

// parseArguments checks the arguments are an object with no properties the
// schema does not name; the tool's accessors then check types and presence.
func parseArguments(raw json.RawMessage, inputSchema *jsonschema.Schema) (arguments, error) {
	args := arguments{}
	if len(raw) == 0 || string(raw) == "null" {
		return args, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("arguments are not valid JSON: %v", err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("arguments must be a JSON object")
	}
	var unknown []string
	for key := range obj {
		if _, known := inputSchema.Properties[key]; !known {
			unknown = append(unknown, key)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("unexpected argument(s): %s", strings.Join(unknown, ", "))
	}
	return arguments(obj), nil
}

func (a arguments) str(name string) (string, error) {
	v, ok := a[name]
	if !ok || v == nil {
		return "", fmt.Errorf("missing required argument %q (a string)", name)
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("argument %q must be a string, got %s", name, jsonType(v))
	}
	return s, nil
}

func (a arguments) optionalStr(name string) (string, error) {
	if v, ok := a[name]; !ok || v == nil {
		return "", nil
	}
	return a.str(name)
}

func (a arguments) number(name string) (json.Number, error) {
	v, ok := a[name]
	if !ok || v == nil {
		return "", fmt.Errorf("missing required argument %q (a number)", name)
	}
	n, ok := v.(json.Number)
	if !ok {
		return "", fmt.Errorf("argument %q must be a number, got %s", name, jsonType(v))
	}
	return n, nil
}

func (a arguments) strList(name string) ([]string, error) {
	v, ok := a[name]
	if !ok || v == nil {
		return nil, fmt.Errorf("missing required argument %q (an array of strings)", name)
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("argument %q must be an array of strings, got %s", name, jsonType(v))
	}
	out := make([]string, 0, len(list))
	for i, item := range list {
		s, ok := item.(string)
		if !ok {
			return nil, fmt.Errorf("argument %q item %d must be a string, got %s", name, i, jsonType(item))
		}
		out = append(out, s)
	}
	return out, nil
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

package main

// The seven tools, their JSON Schemas and the argument checks. A bad argument
// is a tool-level failure (a result with isError: true) so the model can read
// the message and retry; only an unknown tool is a protocol error.

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// schema is a JSON Schema object, kept as a map so it marshals exactly as written.
type schema = map[string]interface{}

type toolDef struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	InputSchema schema `json:"inputSchema"`
	run         func(args arguments) (string, error)
}

type content struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type callResult struct {
	Content []content `json:"content"`
	IsError bool      `json:"isError"`
}

// toolbox holds the tools by name and lists them in a stable order.
type toolbox struct {
	byName map[string]*toolDef
	order  []string
	now    func() time.Time
}

func newToolbox() *toolbox {
	tb := &toolbox{byName: map[string]*toolDef{}, now: time.Now}
	for _, t := range tb.definitions() {
		t := t
		tb.byName[t.Name] = &t
		tb.order = append(tb.order, t.Name)
	}
	sort.Strings(tb.order)
	return tb
}

func (tb *toolbox) list() []*toolDef {
	out := make([]*toolDef, 0, len(tb.order))
	for _, name := range tb.order {
		out = append(out, tb.byName[name])
	}
	return out
}

// call runs a tool; found is false for an unknown tool name.
func (tb *toolbox) call(name string, rawArgs json.RawMessage) (result callResult, found bool) {
	tool, ok := tb.byName[name]
	if !ok {
		return callResult{}, false
	}
	args, err := parseArguments(rawArgs, tool.InputSchema)
	if err == nil {
		var text string
		text, err = tool.run(args)
		if err == nil {
			return callResult{Content: []content{{Type: "text", Text: text}}}, true
		}
	}
	return callResult{Content: []content{{Type: "text", Text: err.Error()}}, IsError: true}, true
}

func stringProp(description string) schema {
	return schema{"type": "string", "description": description}
}

func objectSchema(props schema, required ...string) schema {
	if required == nil {
		required = []string{}
	}
	return schema{"type": "object", "properties": props, "required": required, "additionalProperties": false}
}

func (tb *toolbox) definitions() []toolDef {
	textOnly := objectSchema(schema{"text": stringProp("The text to transform.")}, "text")
	return []toolDef{
		{
			Name: "echo", Description: "Return the given text unchanged.",
			InputSchema: objectSchema(schema{"text": stringProp("The text to echo back.")}, "text"),
			run:         func(a arguments) (string, error) { return a.str("text") },
		},
		{
			Name: "add", Description: "Add two numbers and return the sum.",
			InputSchema: objectSchema(schema{
				"a": schema{"type": "number", "description": "The first number."},
				"b": schema{"type": "number", "description": "The second number."},
			}, "a", "b"),
			run: runAdd,
		},
		{
			Name: "upper", Description: "Convert text to upper case.", InputSchema: textOnly,
			run: func(a arguments) (string, error) {
				s, err := a.str("text")
				return strings.ToUpper(s), err
			},
		},
		{
			Name: "lower", Description: "Convert text to lower case.", InputSchema: textOnly,
			run: func(a arguments) (string, error) {
				s, err := a.str("text")
				return strings.ToLower(s), err
			},
		},
		{
			Name: "slugify", Description: "Turn text into a URL slug: lower case, words joined by hyphens.",
			InputSchema: objectSchema(schema{"text": stringProp("The text to turn into a slug.")}, "text"),
			run: func(a arguments) (string, error) {
				s, err := a.str("text")
				return slugify(s), err
			},
		},
		{
			Name: "create_task", Description: "Create a workspace task and return it as JSON (with its new id).",
			InputSchema: objectSchema(schema{
				"title":       schema{"type": "string", "description": "What needs doing.", "minLength": 1},
				"description": stringProp("Optional details."),
				"assignee":    stringProp("Optional person responsible."),
				"priority": schema{
					"type": "string", "enum": []string{"low", "medium", "high"}, "default": "medium",
					"description": "How urgent the task is.",
				},
			}, "title"),
			run: tb.runCreateTask,
		},
		{
			Name:        "draft_release_note",
			Description: "Draft a Markdown release note from a version and a list of changes.",
			InputSchema: objectSchema(schema{
				"version": schema{"type": "string", "description": "The release version, e.g. 1.4.0.", "minLength": 1},
				"items": schema{
					"type": "array", "items": schema{"type": "string"},
					"description": "The changes in this release, one per entry.",
				},
				"title": stringProp("Optional headline for the release."),
			}, "version", "items"),
			run: runDraftReleaseNote,
		},
	}
}

func runAdd(a arguments) (string, error) {
	x, err := a.number("a")
	if err != nil {
		return "", err
	}
	y, err := a.number("b")
	if err != nil {
		return "", err
	}
	return addNumbers(x, y)
}

// addNumbers adds exactly when both are integers (no float rounding of big ids),
// else in float64, and prints whole results without a decimal point (2+3 is "5").
func addNumbers(x, y json.Number) (string, error) {
	bx, okx := new(big.Int).SetString(x.String(), 10)
	by, oky := new(big.Int).SetString(y.String(), 10)
	if okx && oky {
		return new(big.Int).Add(bx, by).String(), nil
	}
	fx, err := x.Float64()
	if err != nil {
		return "", fmt.Errorf("argument \"a\" is out of range: %s", x)
	}
	fy, err := y.Float64()
	if err != nil {
		return "", fmt.Errorf("argument \"b\" is out of range: %s", y)
	}
	sum := fx + fy
	if math.IsInf(sum, 0) {
		return "", fmt.Errorf("the sum of %s and %s is out of range", x, y)
	}
	return formatFloat(sum), nil
}

func formatFloat(f float64) string {
	return strconv.FormatFloat(f, 'g', -1, 64)
}

type task struct {
	ID          string `json:"id"`
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
	Assignee    string `json:"assignee,omitempty"`
	Priority    string `json:"priority"`
	Status      string `json:"status"`
	CreatedAt   string `json:"created_at"`
}

func (tb *toolbox) runCreateTask(a arguments) (string, error) {
	title, err := a.str("title")
	if err != nil {
		return "", err
	}
	title = strings.TrimSpace(title)
	if title == "" {
		return "", fmt.Errorf("argument \"title\" must not be empty")
	}
	t := task{ID: "task-" + randomHex(6), Title: title, Status: "open", Priority: "medium",
		CreatedAt: tb.now().UTC().Format(time.RFC3339)}
	if t.Description, err = a.optionalStr("description"); err != nil {
		return "", err
	}
	if t.Assignee, err = a.optionalStr("assignee"); err != nil {
		return "", err
	}
	priority, err := a.optionalStr("priority")
	if err != nil {
		return "", err
	}
	if priority != "" {
		if priority != "low" && priority != "medium" && priority != "high" {
			return "", fmt.Errorf("argument \"priority\" must be one of low, medium, high (got %q)", priority)
		}
		t.Priority = priority
	}
	out, err := json.Marshal(t)
	return string(out), err
}

func runDraftReleaseNote(a arguments) (string, error) {
	version, err := a.str("version")
	if err != nil {
		return "", err
	}
	version = strings.TrimSpace(version)
	if version == "" {
		return "", fmt.Errorf("argument \"version\" must not be empty")
	}
	items, err := a.strList("items")
	if err != nil {
		return "", err
	}
	title, err := a.optionalStr("title")
	if err != nil {
		return "", err
	}
	return releaseNote(version, strings.TrimSpace(title), items), nil
}

// releaseNote renders "## Release <version>", an optional headline, and one bullet per non-blank item.
func releaseNote(version, title string, items []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Release %s\n\n", version)
	if title != "" {
		fmt.Fprintf(&b, "%s\n\n", title)
	}
	b.WriteString("### Changes\n\n")
	wrote := false
	for _, item := range items {
		item = strings.Join(strings.Fields(item), " ")
		if item == "" {
			continue
		}
		fmt.Fprintf(&b, "- %s\n", item)
		wrote = true
	}
	if !wrote {
		b.WriteString("- No notable changes.\n")
	}
	return b.String()
}

// slugify lower-cases text and joins its runs of letters and digits with single
// hyphens: "Hello World!" -> "hello-world". Letters outside ASCII are kept.
func slugify(text string) string {
	var b strings.Builder
	pendingHyphen := false
	for _, r := range strings.ToLower(text) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			if pendingHyphen && b.Len() > 0 {
				b.WriteByte('-')
			}
			pendingHyphen = false
			b.WriteRune(r)
			continue
		}
		pendingHyphen = true
	}
	return b.String()
}

func randomHex(n int) string {
	buf := make([]byte, n)
	if _, err := rand.Read(buf); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return hex.EncodeToString(buf)
}

// arguments are a tool call's arguments, decoded with numbers kept exact.
type arguments map[string]interface{}

// parseArguments checks the arguments are an object with no properties the
// schema does not name; the tool's accessors then check types and presence.
func parseArguments(raw json.RawMessage, inputSchema schema) (arguments, error) {
	args := arguments{}
	if len(raw) == 0 || string(raw) == "null" {
		return args, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v interface{}
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("arguments are not valid JSON: %v", err)
	}
	obj, ok := v.(map[string]interface{})
	if !ok {
		return nil, fmt.Errorf("arguments must be a JSON object")
	}
	props, _ := inputSchema["properties"].(schema)
	var unknown []string
	for key := range obj {
		if _, known := props[key]; !known {
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
	list, ok := v.([]interface{})
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

func jsonType(v interface{}) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []interface{}:
		return "an array"
	case map[string]interface{}:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

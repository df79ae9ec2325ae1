package main

// The seven tools: their definitions for tools/list (JSON Schemas and hints) and
// what they do. A bad argument is a tool-level failure (a result with
// isError: true) so the model can read the message and retry; an unknown tool
// is the SDK's protocol error.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// toolDef is one tool: what tools/list shows and the function that answers a call.
type toolDef struct {
	tool *mcp.Tool
	run  func(args arguments) (string, error)
}

// toolbox builds the tools; now is time.Now outside tests.
type toolbox struct {
	now func() time.Time
}

func newToolbox() *toolbox {
	return &toolbox{now: time.Now}
}

// register adds every tool to the server.
func (tb *toolbox) register(server *mcp.Server) {
	for _, def := range tb.definitions() {
		server.AddTool(def.tool, def.handler())
	}
}

// handler adapts a tool to the SDK: the arguments are checked against the
// property names the schema declares, then the tool reads and checks them.
func (d toolDef) handler() mcp.ToolHandler {
	schema := d.tool.InputSchema.(*jsonschema.Schema)
	return func(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return d.call(schema, req.Params.Arguments), nil
	}
}

func (d toolDef) call(schema *jsonschema.Schema, raw json.RawMessage) *mcp.CallToolResult {
	args, err := parseArguments(raw, schema)
	if err == nil {
		var text string
		if text, err = d.run(args); err == nil {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}
		}
	}
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: err.Error()}}, IsError: true}
}

func stringProp(description string) *jsonschema.Schema {
	return &jsonschema.Schema{Type: "string", Description: description}
}

func nonEmptyString(description string) *jsonschema.Schema {
	return &jsonschema.Schema{Type: "string", Description: description, MinLength: jsonschema.Ptr(1)}
}

// objectSchema is a closed object: additionalProperties false.
func objectSchema(props map[string]*jsonschema.Schema, required ...string) *jsonschema.Schema {
	return &jsonschema.Schema{Type: "object", Properties: props, Required: required,
		AdditionalProperties: &jsonschema.Schema{Not: &jsonschema.Schema{}}}
}

// pure marks a tool that only computes an answer from its arguments.
var pure = &mcp.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: jsonschema.Ptr(false)}

// writes marks a tool that stands for a change in the workspace (a new task),
// so the platform's `server init` names it for review.
var writes = &mcp.ToolAnnotations{ReadOnlyHint: false, DestructiveHint: jsonschema.Ptr(false),
	OpenWorldHint: jsonschema.Ptr(false)}

func (tb *toolbox) definitions() []toolDef {
	text := func(description string) *jsonschema.Schema {
		return objectSchema(map[string]*jsonschema.Schema{"text": stringProp(description)}, "text")
	}
	return []toolDef{
		{
			tool: &mcp.Tool{Name: "echo", Description: "Return the given text unchanged.",
				InputSchema: text("The text to echo back."), Annotations: pure},
			run: func(a arguments) (string, error) { return a.str("text") },
		},
		{
			tool: &mcp.Tool{Name: "add", Description: "Add two numbers and return the sum.",
				InputSchema: objectSchema(map[string]*jsonschema.Schema{
					"a": {Type: "number", Description: "The first number."},
					"b": {Type: "number", Description: "The second number."},
				}, "a", "b"), Annotations: pure},
			run: runAdd,
		},
		{
			tool: &mcp.Tool{Name: "upper", Description: "Convert text to upper case.",
				InputSchema: text("The text to transform."), Annotations: pure},
			run: func(a arguments) (string, error) {
				s, err := a.str("text")
				return strings.ToUpper(s), err
			},
		},
		{
			tool: &mcp.Tool{Name: "lower", Description: "Convert text to lower case.",
				InputSchema: text("The text to transform."), Annotations: pure},
			run: func(a arguments) (string, error) {
				s, err := a.str("text")
				return strings.ToLower(s), err
			},
		},
		{
			tool: &mcp.Tool{Name: "slugify",
				Description: "Turn text into a URL slug: lower case, words joined by hyphens.",
				InputSchema: text("The text to turn into a slug."), Annotations: pure},
			run: func(a arguments) (string, error) {
				s, err := a.str("text")
				return slugify(s), err
			},
		},
		{
			tool: &mcp.Tool{Name: "create_task",
				Description: "Create a workspace task and return it as JSON (with its new id).",
				InputSchema: objectSchema(map[string]*jsonschema.Schema{
					"title":       nonEmptyString("What needs doing."),
					"description": stringProp("Optional details."),
					"assignee":    stringProp("Optional person responsible."),
					"priority": {Type: "string", Enum: []any{"low", "medium", "high"},
						Default: json.RawMessage(`"medium"`), Description: "How urgent the task is."},
				}, "title"), Annotations: writes},
			run: tb.runCreateTask,
		},
		{
			tool: &mcp.Tool{Name: "draft_release_note",
				Description: "Draft a Markdown release note from a version and a list of changes.",
				InputSchema: objectSchema(map[string]*jsonschema.Schema{
					"version": nonEmptyString("The release version, e.g. 1.4.0."),
					"items": {Type: "array", Items: &jsonschema.Schema{Type: "string"},
						Description: "The changes in this release, one per entry."},
					"title": stringProp("Optional headline for the release."),
				}, "version", "items"), Annotations: pure},
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

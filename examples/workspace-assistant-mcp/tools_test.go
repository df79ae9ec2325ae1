package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// callTool runs a tool the way the SDK handler does and returns its one text and isError.
func callTool(t *testing.T, tb *toolbox, name, args string) (string, bool) {
	t.Helper()
	for _, def := range tb.definitions() {
		if def.tool.Name != name {
			continue
		}
		result := def.call(def.tool.InputSchema.(*jsonschema.Schema), json.RawMessage(args))
		if len(result.Content) != 1 {
			t.Fatalf("%s: want one content, got %d", name, len(result.Content))
		}
		text, ok := result.Content[0].(*mcp.TextContent)
		if !ok {
			t.Fatalf("%s: want text content, got %T", name, result.Content[0])
		}
		return text.Text, result.IsError
	}
	t.Fatalf("tool %q not found", name)
	return "", false
}

func TestToolsAnswer(t *testing.T) {
	tb := newToolbox()
	cases := []struct{ name, args, want string }{
		{"echo", `{"text":"hi there"}`, "hi there"},
		{"add", `{"a":2,"b":3}`, "5"},
		{"add", `{"a":2.5,"b":-1}`, "1.5"},
		{"add", `{"a":2.0,"b":3}`, "5"},
		{"add", `{"a":9007199254740993,"b":1}`, "9007199254740994"},
		{"upper", `{"text":"café ok"}`, "CAFÉ OK"},
		{"lower", `{"text":"MiXeD"}`, "mixed"},
		{"slugify", `{"text":"Hello World!"}`, "hello-world"},
		{"slugify", `{"text":"  --Release 2.0: the   BIG one--  "}`, "release-2-0-the-big-one"},
		{"slugify", `{"text":"Crème brûlée"}`, "crème-brûlée"},
		{"slugify", `{"text":"!!!"}`, ""},
	}
	for _, c := range cases {
		got, isError := callTool(t, tb, c.name, c.args)
		if isError || got != c.want {
			t.Errorf("%s %s = %q (isError %v), want %q", c.name, c.args, got, isError, c.want)
		}
	}
}

func TestBadArgumentsAreToolErrors(t *testing.T) {
	tb := newToolbox()
	cases := []struct{ name, args, wantInMessage string }{
		{"echo", `{}`, `missing required argument "text"`},
		{"echo", `null`, `missing required argument "text"`},
		{"echo", `{"text":5}`, `"text" must be a string, got a number`},
		{"add", `{"a":1}`, `missing required argument "b"`},
		{"add", `{"a":"1","b":2}`, `"a" must be a number, got a string`},
		{"add", `{"a":1e308,"b":1e308}`, "out of range"},
		{"upper", `{"text":"x","extra":1}`, "unexpected argument(s): extra"},
		{"lower", `[1,2]`, "arguments must be a JSON object"},
		{"create_task", `{"title":"   "}`, `"title" must not be empty`},
		{"create_task", `{"title":"t","priority":"urgent"}`, "must be one of low, medium, high"},
		{"draft_release_note", `{"version":"1.0"}`, `missing required argument "items"`},
		{"draft_release_note", `{"version":"1.0","items":["ok",3]}`, `item 1 must be a string`},
		{"draft_release_note", `{"version":"","items":[]}`, `"version" must not be empty`},
	}
	for _, c := range cases {
		got, isError := callTool(t, tb, c.name, c.args)
		if !isError || !strings.Contains(got, c.wantInMessage) {
			t.Errorf("%s %s = %q (isError %v), want an error containing %q",
				c.name, c.args, got, isError, c.wantInMessage)
		}
	}
}

func TestCreateTaskReturnsJSONWithIDAndTitle(t *testing.T) {
	tb := newToolbox()
	tb.now = func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
	args := `{"title":" Write docs ","priority":"high","assignee":"ana"}`
	first, _ := callTool(t, tb, "create_task", args)
	second, _ := callTool(t, tb, "create_task", args)
	var a, b task
	if err := json.Unmarshal([]byte(first), &a); err != nil {
		t.Fatalf("create_task text is not JSON: %v", err)
	}
	if err := json.Unmarshal([]byte(second), &b); err != nil {
		t.Fatalf("create_task text is not JSON: %v", err)
	}
	if !strings.HasPrefix(a.ID, "task-") || a.ID == b.ID {
		t.Errorf("want distinct task-... ids, got %q and %q", a.ID, b.ID)
	}
	want := task{ID: a.ID, Title: "Write docs", Priority: "high", Assignee: "ana", Status: "open",
		CreatedAt: "2026-01-02T03:04:05Z"}
	if a != want {
		t.Errorf("task = %+v, want %+v", a, want)
	}
}

func TestDraftReleaseNote(t *testing.T) {
	tb := newToolbox()
	got, _ := callTool(t, tb, "draft_release_note",
		`{"version":"1.4.0","title":"Faster search","items":["Add  slugify tool","","Fix add overflow"]}`)
	want := "## Release 1.4.0\n\nFaster search\n\n### Changes\n\n- Add slugify tool\n- Fix add overflow\n"
	if got != want {
		t.Errorf("release note =\n%s\nwant\n%s", got, want)
	}
	empty, _ := callTool(t, tb, "draft_release_note", `{"version":"2.0.0","items":[]}`)
	if !strings.Contains(empty, "- No notable changes.") {
		t.Errorf("empty release note = %q", empty)
	}
}

func TestEveryToolHasAClosedObjectSchemaNamingItsRequiredProperties(t *testing.T) {
	for _, def := range newToolbox().definitions() {
		raw, err := json.Marshal(def.tool.InputSchema)
		if err != nil {
			t.Fatal(err)
		}
		var s struct {
			Type                 string                     `json:"type"`
			Properties           map[string]json.RawMessage `json:"properties"`
			Required             []string                   `json:"required"`
			AdditionalProperties *bool                      `json:"additionalProperties"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatal(err)
		}
		if s.Type != "object" || s.AdditionalProperties == nil || *s.AdditionalProperties {
			t.Errorf("%s: schema %s is not a closed object", def.tool.Name, raw)
		}
		for _, req := range s.Required {
			if _, ok := s.Properties[req]; !ok {
				t.Errorf("%s: required %q is not a property", def.tool.Name, req)
			}
		}
		if def.tool.Description == "" || def.tool.Annotations == nil {
			t.Errorf("%s has no description or no annotations", def.tool.Name)
		}
	}
}

package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func callTool(t *testing.T, tb *toolbox, name, args string) callResult {
	t.Helper()
	result, found := tb.call(name, json.RawMessage(args))
	if !found {
		t.Fatalf("tool %q not found", name)
	}
	if len(result.Content) != 1 || result.Content[0].Type != "text" {
		t.Fatalf("%s: want one text content, got %+v", name, result.Content)
	}
	return result
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
		got := callTool(t, tb, c.name, c.args)
		if got.IsError || got.Content[0].Text != c.want {
			t.Errorf("%s %s = %q (isError %v), want %q", c.name, c.args, got.Content[0].Text, got.IsError, c.want)
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
		got := callTool(t, tb, c.name, c.args)
		if !got.IsError || !strings.Contains(got.Content[0].Text, c.wantInMessage) {
			t.Errorf("%s %s = %q (isError %v), want an error containing %q",
				c.name, c.args, got.Content[0].Text, got.IsError, c.wantInMessage)
		}
	}
}

func TestUnknownToolIsNotFound(t *testing.T) {
	if _, found := newToolbox().call("nope", nil); found {
		t.Fatal("an unknown tool was found")
	}
}

func TestCreateTaskReturnsJSONWithIDAndTitle(t *testing.T) {
	tb := newToolbox()
	tb.now = func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
	args := `{"title":" Write docs ","priority":"high","assignee":"ana"}`
	first := callTool(t, tb, "create_task", args)
	second := callTool(t, tb, "create_task", args)
	var a, b task
	if err := json.Unmarshal([]byte(first.Content[0].Text), &a); err != nil {
		t.Fatalf("create_task text is not JSON: %v", err)
	}
	if err := json.Unmarshal([]byte(second.Content[0].Text), &b); err != nil {
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
	got := callTool(t, tb, "draft_release_note",
		`{"version":"1.4.0","title":"Faster search","items":["Add  slugify tool","","Fix add overflow"]}`)
	want := "## Release 1.4.0\n\nFaster search\n\n### Changes\n\n- Add slugify tool\n- Fix add overflow\n"
	if got.Content[0].Text != want {
		t.Errorf("release note =\n%s\nwant\n%s", got.Content[0].Text, want)
	}
	empty := callTool(t, tb, "draft_release_note", `{"version":"2.0.0","items":[]}`)
	if !strings.Contains(empty.Content[0].Text, "- No notable changes.") {
		t.Errorf("empty release note = %q", empty.Content[0].Text)
	}
}

func TestEveryToolHasAnObjectSchemaNamingItsRequiredProperties(t *testing.T) {
	tools := newToolbox().list()
	var names []string
	for _, tool := range tools {
		names = append(names, tool.Name)
		s := tool.InputSchema
		if s["type"] != "object" || s["additionalProperties"] != false {
			t.Errorf("%s: schema %v is not a closed object", tool.Name, s)
		}
		props := s["properties"].(schema)
		for _, req := range s["required"].([]string) {
			if _, ok := props[req]; !ok {
				t.Errorf("%s: required %q is not a property", tool.Name, req)
			}
		}
		if tool.Description == "" {
			t.Errorf("%s has no description", tool.Name)
		}
	}
	want := "add,create_task,draft_release_note,echo,lower,slugify,upper"
	if got := strings.Join(names, ","); got != want {
		t.Errorf("tools = %s, want %s", got, want)
	}
}

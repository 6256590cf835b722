package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// cli runs `conveyor task args...` against a server and returns the exit
// code, stdout and stderr.
type cli struct {
	t       *testing.T
	environ []string
	stdin   string
}

func (c cli) run(args ...string) (int, string, string) {
	c.t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := &taskCommand{stdout: &stdout, stderr: &stderr, stdin: strings.NewReader(c.stdin), environ: func() []string { return c.environ }}
	ctx, cancel := context.WithTimeout(context.Background(), waitBudget)
	defer cancel()
	code := codeOf(cmd.Run(ctx, args), &stderr)
	return code, stdout.String(), stderr.String()
}

// ok runs a command that must succeed and returns its stdout.
func (c cli) ok(args ...string) string {
	c.t.Helper()
	code, out, errs := c.run(args...)
	if code != 0 {
		c.t.Fatalf("conveyor task %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// task runs a command with -o json and decodes the task it prints.
func (c cli) task(args ...string) map[string]any {
	c.t.Helper()
	var m map[string]any
	out := c.ok(append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		c.t.Fatalf("conveyor task %s -o json printed %q: %v", strings.Join(args, " "), out, err)
	}
	return m
}

// await polls `task show` until the task has status.
func (c cli) await(id, status string) map[string]any {
	c.t.Helper()
	deadline := time.Now().Add(waitBudget)
	for {
		m := c.task("show", id)
		if m["status"] == status {
			return m
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("task %s is %v, never %s", id, m["status"], status)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestTask_commands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServe(t, nil, "--addr", "127.0.0.1:0", "--db", filepath.Join(dir, "c.db"), "--sandbox", "--token", "s3cret")
	c := cli{t: t, environ: []string{"CONVEYOR_SERVER=" + s.url, "CONVEYOR_TOKEN=s3cret", "USER=alice"}}

	t.Run("submit, show, list", func(t *testing.T) {
		c := c
		c.t = t
		out := c.ok("submit", "liqpay-hold", "--ref", "r1", "--data", fmt.Sprintf(input, "o1", "4242424242424242"))
		if !strings.HasPrefix(out, "created task ") || !strings.Contains(out, "424242******4242") {
			t.Errorf("submit printed:\n%s", out)
		}
		id := strings.Fields(out)[2]
		c.await(id, "succeeded")

		out = c.ok("submit", "liqpay-hold", "--ref", "r1", "--data", fmt.Sprintf(input, "o1", "4242424242424242"))
		if !strings.Contains(out, "already has this ref and data") {
			t.Errorf("second submit printed:\n%s", out)
		}
		code, _, errs := c.run("submit", "liqpay-hold", "--ref", "r1", "--data", fmt.Sprintf(input, "o2", "4242424242424242"))
		if code != 1 || !strings.Contains(errs, "(conflict)") {
			t.Errorf("conflicting submit: exit %d, %s", code, errs)
		}

		out = c.ok("show", id)
		for _, want := range []string{"Status", "succeeded", "History:", "submit", "alice", "Data:", "424242******4242"} {
			if !strings.Contains(out, want) {
				t.Errorf("show lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "4242424242424242") {
			t.Error("show prints the card number")
		}

		out = c.ok("list", "--status", "succeeded", "--process", "liqpay-hold")
		if !strings.Contains(out, "ID") || !strings.Contains(out, id) {
			t.Errorf("list printed:\n%s", out)
		}
		var page struct {
			Tasks      []map[string]any `json:"tasks"`
			NextCursor string           `json:"next_cursor"`
		}
		if err := json.Unmarshal([]byte(c.ok("list", "-o", "json", "--limit", "1", "--older-than", "1ns")), &page); err != nil {
			t.Fatal(err)
		}
		if len(page.Tasks) != 1 || page.Tasks[0]["id"] != id {
			t.Errorf("list -o json: %+v", page)
		}
		if out := c.ok("list", "--error-code", "nothing-like-it"); !strings.Contains(out, "(no tasks)") {
			t.Errorf("empty list printed:\n%s", out)
		}
	})

	t.Run("retry, edit, move, cancel", func(t *testing.T) {
		c := c
		c.t = t
		data := filepath.Join(t.TempDir(), "data.json")
		if err := os.WriteFile(data, []byte(fmt.Sprintf(input, "o3", "4000000000000002")), 0o600); err != nil {
			t.Fatal(err)
		}
		id := c.task("submit", "liqpay-hold", "--ref", "r3", "--data", "@"+data)["id"].(string)
		task := c.await(id, "escalated")
		if e := task["error"].(map[string]any); e["code"] != "limit" {
			t.Errorf("error %v", e)
		}
		if out := c.ok("list", "--status", "escalated"); !strings.Contains(out, "limit") {
			t.Errorf("list does not show the error code:\n%s", out)
		}
		c.ok("retry", id, "--reason", "card topped up")
		c.await(id, "escalated")

		c.stdin = `{"order_id":"o3b","card":"4242424242424242","card_cvv":"321"}`
		c.ok("edit", id, "--data", "@-", "--reason", "new card")
		c.stdin = ""
		c.await(id, "succeeded")

		code, _, errs := c.run("retry", id)
		if code != 1 || !strings.Contains(errs, "only escalated tasks can be retried") {
			t.Errorf("retry of a finished task: exit %d, %s", code, errs)
		}
		code, _, errs = c.run("cancel", id)
		if code != 1 || !strings.Contains(errs, "(conflict)") {
			t.Errorf("cancel of a finished task: exit %d, %s", code, errs)
		}
		code, _, errs = c.run("move", id, "--to", "held")
		if code != 1 || !strings.Contains(errs, "(conflict)") {
			t.Errorf("move of a finished task: exit %d, %s", code, errs)
		}

		id = c.task("submit", "liqpay-hold", "--ref", "r4", "--data", fmt.Sprintf(input, "o4", "4000000000000002"))["id"].(string)
		c.await(id, "escalated")
		moved := c.task("move", id, "--to", "failed", "--reason", "give up")
		if moved["node"] != "failed" || moved["status"] != "failed" {
			t.Errorf("moved task %v", moved)
		}
		history := c.task("show", id)["history"].([]any)
		last := history[len(history)-1].(map[string]any)
		if last["event"] != "operator_move" || last["actor"] != "token:alice" || last["reason"] != "give up" {
			t.Errorf("last history entry %v", last)
		}

		id = c.task("submit", "liqpay-hold", "--ref", "r5", "--data", fmt.Sprintf(input, "o5", "4000000000000002"))["id"].(string)
		c.await(id, "escalated")
		if out := c.ok("cancel", id, "--reason", "customer left"); !strings.Contains(out, "canceled") {
			t.Errorf("cancel printed:\n%s", out)
		}
	})

	t.Run("server errors exit 1 with the message", func(t *testing.T) {
		c := c
		c.t = t
		cases := []struct {
			args []string
			want string
		}{
			{[]string{"show", "01900000-0000-7000-8000-000000000000"}, "not found (not_found)"},
			{[]string{"show", "nope"}, "task id must be a UUID (invalid)"},
			{[]string{"submit", "nope", "--data", "{}"}, `process "nope" does not exist (not_found)`},
			{[]string{"submit", "liqpay-hold", "--data", `{"amount":"x"}`}, "card_cvv: is required"},
			{[]string{"show", "nope", "--token", "wrong"}, "(unauthorized)"},
			{[]string{"list", "--server", "http://127.0.0.1:1"}, "cannot reach the server"},
		}
		for _, tc := range cases {
			code, out, errs := c.run(tc.args...)
			if code != 1 || !strings.Contains(errs, tc.want) || out != "" {
				t.Errorf("conveyor task %s: exit %d, stdout %q, stderr %q; want exit 1 and %q",
					strings.Join(tc.args, " "), code, out, errs, tc.want)
			}
		}
	})
}

func TestTask_usage(t *testing.T) {
	t.Parallel()
	c := cli{t: t, environ: []string{"CONVEYOR_SERVER=http://127.0.0.1:1"}}
	cases := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "Subcommands:"},
		{[]string{"--help"}, 0, ""},
		{[]string{"frobnicate"}, 2, `unknown subcommand "frobnicate"`},
		{[]string{"submit"}, 2, "missing PROCESS"},
		{[]string{"submit", "p"}, 2, "missing --data"},
		{[]string{"submit", "p", "--data", "[1]"}, 2, "--data must be a JSON object"},
		{[]string{"submit", "p", "--data", "{} {}"}, 2, "more after the JSON object"},
		{[]string{"submit", "p", "--data", "@/no/such/file"}, 2, "--data:"},
		{[]string{"submit", "p", "q", "--data", "{}"}, 2, `unexpected argument "q"`},
		{[]string{"submit", "--help"}, 0, "Usage: conveyor task submit"},
		{[]string{"show"}, 2, "missing ID"},
		{[]string{"show", "a", "b"}, 2, `unexpected argument "b"`},
		{[]string{"show", "a", "-o", "yaml"}, 2, "-o must be table or json"},
		{[]string{"list", "x"}, 2, `unexpected argument "x"`},
		{[]string{"list", "--older-than", "soon"}, 2, "invalid value"},
		{[]string{"list", "--help"}, 0, "-older-than"},
		{[]string{"retry"}, 2, "missing ID"},
		{[]string{"cancel", "--help"}, 0, "-reason"},
		{[]string{"move", "id"}, 2, "missing --to"},
		{[]string{"move", "--help"}, 0, "-to"},
		{[]string{"edit", "id"}, 2, "missing --data"},
		{[]string{"edit", "--help"}, 0, "-data"},
		{[]string{"show", "--bogus"}, 2, "flag provided but not defined"},
	}
	for _, tc := range cases {
		code, _, errs := c.run(tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("conveyor task %s: exit %d, want %d; stderr:\n%s", strings.Join(tc.args, " "), code, tc.code, errs)
		}
	}

	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"task"}, &stdout, &stderr); code != 2 {
		t.Errorf("run task: exit %d", code)
	}
	for _, name := range []string{"serve", "task", "sandbox"} {
		stdout.Reset()
		stderr.Reset()
		if code := run(context.Background(), []string{name, "--help"}, &stdout, &stderr); code != 0 || stdout.Len()+stderr.Len() == 0 {
			t.Errorf("conveyor %s --help: exit %d, no help", name, code)
		}
	}
}

func TestParseInterleaved(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args []string
		pos  string
		ref  string
	}{
		{[]string{"p", "--ref", "r"}, "p", "r"},
		{[]string{"--ref", "r", "p"}, "p", "r"},
		{[]string{"p", "--ref", "r", "q"}, "p,q", "r"},
		{[]string{"--ref", "r", "--", "-p", "--ref"}, "-p,--ref", "r"},
		{nil, "", ""},
	}
	for _, c := range cases {
		var stderr bytes.Buffer
		fs := newFlags("x", "", &stderr)
		ref := fs.String("ref", "", "")
		pos, err := parseInterleaved(fs, c.args)
		if err != nil || strings.Join(pos, ",") != c.pos || *ref != c.ref {
			t.Errorf("parseInterleaved(%q) = %q, ref %q, %v", c.args, pos, *ref, err)
		}
	}
}

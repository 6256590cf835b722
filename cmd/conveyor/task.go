package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	conveyor "github.com/conveyor-dev/conveyor"
	"github.com/conveyor-dev/conveyor/client"
)

// taskCommand is the operator CLI over the API: submit, show, list and act
// on tasks of a running server.
type taskCommand struct {
	stdout, stderr io.Writer
	// stdin feeds --data @- (os.Stdin when nil).
	stdin io.Reader
	// environ is the environment (os.Environ when nil).
	environ func() []string
}

// taskSubcommands lists the subcommands with their arguments and summary.
var taskSubcommands = []struct{ name, args, summary string }{
	{"submit", "PROCESS --ref REF --data JSON|@FILE|@-", "create a task"},
	{"show", "ID", "show a task with its history"},
	{"list", "[--process P] [--node N] [--status S] [--error-code C] [--older-than D] [--limit N]", "list tasks, newest first"},
	{"retry", "ID [--reason R]", "re-run the failed node of an escalated task"},
	{"cancel", "ID [--reason R]", "end an unfinished task where it stands"},
	{"move", "ID --to NODE [--reason R]", "send an unfinished task to another node"},
	{"edit", "ID --data JSON|@FILE|@- [--reason R]", "change an escalated task's data, then retry it"},
}

func (c *taskCommand) usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: conveyor task <subcommand> [flags] [args]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Talks to the server at --server (default $"+envServer+", else "+defaultServer+")")
	fmt.Fprintln(w, "with the token --token (default $"+envToken+"). -o json prints JSON for scripts.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Subcommands:")
	for _, s := range taskSubcommands {
		fmt.Fprintf(w, "  %-7s %s\n", s.name, s.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'conveyor task <subcommand> --help' for its flags.")
}

// Run implements command.
func (c *taskCommand) Run(ctx context.Context, args []string) error {
	sub, err := pickSubcommand("task", args, taskSubcommands, c.usage, c.stdout, c.stderr)
	if err != nil {
		return err
	}
	t := &taskRun{cmd: c, fs: newFlags("task "+sub.name, sub.args, c.stderr)}
	t.addCommonFlags()
	switch sub.name {
	case "submit":
		return t.submit(ctx, args[1:])
	case "show":
		return t.show(ctx, args[1:])
	case "list":
		return t.list(ctx, args[1:])
	case "retry", "cancel":
		return t.simpleAction(ctx, sub.name, args[1:])
	case "move":
		return t.move(ctx, args[1:])
	default:
		return t.edit(ctx, args[1:])
	}
}

// taskRun is one run of a task subcommand: its flags and the client.
type taskRun struct {
	cmd                   *taskCommand
	fs                    *flag.FlagSet
	server, token, output string
	actor                 string
}

func (t *taskRun) addCommonFlags() {
	t.fs.StringVar(&t.server, "server", "", "server base `URL` (default $"+envServer+", else "+defaultServer+")")
	t.fs.StringVar(&t.token, "token", "", "bearer token (default $"+envToken+")")
	t.fs.StringVar(&t.output, "o", "table", "output: table (for people) or json (for scripts)")
	t.fs.StringVar(&t.actor, "actor", "", "who acts, recorded in the task's history (default $USER)")
}

// parse parses the flags and checks the number of positional arguments.
func (t *taskRun) parse(args []string, want int, what string) ([]string, error) {
	pos, err := parseInterleaved(t.fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) != want {
		if len(pos) < want {
			return nil, usageError(t.fs, "missing %s", what)
		}
		return nil, usageError(t.fs, "unexpected argument %q", pos[want])
	}
	if t.output != "table" && t.output != "json" {
		return nil, usageError(t.fs, "-o must be table or json, not %q", t.output)
	}
	return pos, nil
}

// client returns a client of the server the flags and environment name.
func (t *taskRun) client() *client.Client {
	environ := os.Environ()
	if t.cmd.environ != nil {
		environ = t.cmd.environ()
	}
	server, token, actor := t.server, t.token, t.actor
	if server == "" {
		server = lookup(environ, envServer)
	}
	if server == "" {
		server = defaultServer
	}
	if token == "" {
		token = lookup(environ, envToken)
	}
	if actor == "" {
		actor = lookup(environ, "USER")
	}
	cl := client.New(server, token, nil)
	cl.Actor = actor
	return cl
}

func (t *taskRun) submit(ctx context.Context, args []string) error {
	ref := t.fs.String("ref", "", "the caller's reference: submitting the same ref and data again returns the same task")
	raw := t.fs.String("data", "", "the task's data: a JSON object, @FILE or @- (stdin)")
	pos, err := t.parse(args, 1, "PROCESS")
	if err != nil {
		return err
	}
	if *raw == "" {
		return usageError(t.fs, "missing --data")
	}
	data, err := t.readData(*raw)
	if err != nil {
		return err
	}
	task, created, err := t.client().Submit(ctx, pos[0], *ref, data)
	if err != nil {
		return explain(err)
	}
	if t.output == "json" {
		return t.printJSON(task)
	}
	if created {
		fmt.Fprintf(t.cmd.stdout, "created task %s\n\n", task.ID)
	} else {
		fmt.Fprintf(t.cmd.stdout, "task %s already has this ref and data; nothing new was created\n\n", task.ID)
	}
	return t.printTask(task)
}

func (t *taskRun) show(ctx context.Context, args []string) error {
	pos, err := t.parse(args, 1, "ID")
	if err != nil {
		return err
	}
	task, err := t.client().Task(ctx, pos[0])
	if err != nil {
		return explain(err)
	}
	if t.output == "json" {
		return t.printJSON(task)
	}
	return t.printTask(task)
}

func (t *taskRun) list(ctx context.Context, args []string) error {
	var o client.ListOptions
	t.fs.StringVar(&o.Process, "process", "", "only tasks of this process")
	t.fs.StringVar(&o.Node, "node", "", "only tasks standing in this node")
	t.fs.StringVar(&o.Status, "status", "", "only tasks in this status: active, waiting, escalated, succeeded, failed, canceled")
	t.fs.StringVar(&o.Ref, "ref", "", "only the task with this ref")
	t.fs.StringVar(&o.ErrorCode, "error-code", "", "only escalated tasks with this error code")
	t.fs.DurationVar(&o.OlderThan, "older-than", 0, "only tasks that entered their node longer ago than this, e.g. 10m")
	t.fs.IntVar(&o.Limit, "limit", 0, "page size, 1 to 1000 (default 50)")
	t.fs.StringVar(&o.Cursor, "cursor", "", "continue after a previous page")
	if _, err := t.parse(args, 0, ""); err != nil {
		return err
	}
	page, err := t.client().List(ctx, o)
	if err != nil {
		return explain(err)
	}
	if t.output == "json" {
		return t.printJSON(page)
	}
	tw := tabwriter.NewWriter(t.cmd.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tREF\tPROCESS\tNODE\tSTATUS\tERROR\tIN NODE FOR")
	for _, task := range page.Tasks {
		errCode := ""
		if task.Error != nil {
			errCode = task.Error.Code
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", task.ID, dash(task.Ref), task.Process, task.Node, task.Status,
			dash(errCode), time.Since(task.Entered).Round(time.Second))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(page.Tasks) == 0 {
		fmt.Fprintln(t.cmd.stdout, "(no tasks)")
	}
	if page.NextCursor != "" {
		fmt.Fprintf(t.cmd.stdout, "\nmore: conveyor task list --cursor %s (with the same filters)\n", page.NextCursor)
	}
	return nil
}

func (t *taskRun) simpleAction(ctx context.Context, action string, args []string) error {
	reason := t.fs.String("reason", "", "why, for the task's history")
	pos, err := t.parse(args, 1, "ID")
	if err != nil {
		return err
	}
	cl := t.client()
	do := cl.Retry
	if action == "cancel" {
		do = cl.Cancel
	}
	task, err := do(ctx, pos[0], *reason)
	return t.acted(task, err)
}

func (t *taskRun) move(ctx context.Context, args []string) error {
	to := t.fs.String("to", "", "the node to send the task to")
	reason := t.fs.String("reason", "", "why, for the task's history")
	pos, err := t.parse(args, 1, "ID")
	if err != nil {
		return err
	}
	if *to == "" {
		return usageError(t.fs, "missing --to")
	}
	task, err := t.client().Move(ctx, pos[0], *to, *reason)
	return t.acted(task, err)
}

func (t *taskRun) edit(ctx context.Context, args []string) error {
	raw := t.fs.String("data", "", "the fields to change, a JSON object (null removes a field), @FILE or @- (stdin)")
	reason := t.fs.String("reason", "", "why, for the task's history")
	pos, err := t.parse(args, 1, "ID")
	if err != nil {
		return err
	}
	if *raw == "" {
		return usageError(t.fs, "missing --data")
	}
	data, err := t.readData(*raw)
	if err != nil {
		return err
	}
	task, err := t.client().Edit(ctx, pos[0], data, *reason)
	return t.acted(task, err)
}

// acted prints the task after an operator action.
func (t *taskRun) acted(task *client.Task, err error) error {
	if err != nil {
		return explain(err)
	}
	if t.output == "json" {
		return t.printJSON(task)
	}
	return t.printTask(task)
}

// readData reads --data: inline JSON, @FILE or @- for stdin. Numbers stay
// exact. A bad value is a usage error.
func (t *taskRun) readData(raw string) (map[string]any, error) {
	b := []byte(raw)
	if name, ok := strings.CutPrefix(raw, "@"); ok {
		var err error
		if name == "-" {
			in := t.cmd.stdin
			if in == nil {
				in = os.Stdin
			}
			b, err = io.ReadAll(in)
		} else {
			b, err = os.ReadFile(name)
		}
		if err != nil {
			return nil, usageError(t.fs, "--data: %v", err)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var data map[string]any
	if err := dec.Decode(&data); err != nil || data == nil {
		return nil, usageError(t.fs, "--data must be a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, usageError(t.fs, "--data has more after the JSON object")
	}
	return data, nil
}

func (t *taskRun) printJSON(v any) error {
	enc := json.NewEncoder(t.cmd.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printTask prints a task for people: its fields, data and history.
func (t *taskRun) printTask(task *client.Task) error {
	tw := tabwriter.NewWriter(t.cmd.stdout, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	row("ID", task.ID)
	row("Ref", task.Ref)
	row("Process", task.Process+" (version "+task.Version+")")
	row("Node", task.Node)
	row("Status", task.Status)
	if e := task.Error; e != nil {
		row("Error", fmt.Sprintf("%s: %s (node %s)", e.Code, e.Description, e.Node))
	}
	if task.Attempt > 0 {
		row("Attempt", fmt.Sprint(task.Attempt))
	}
	row("Created", stamp(&task.Created))
	row("Entered", stamp(&task.Entered))
	row("Updated", stamp(&task.Updated))
	row("Timer", stamp(task.TimerAt))
	row("Finished", stamp(task.Finished))
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(task.Data) > 0 {
		fmt.Fprintln(t.cmd.stdout, "\nData:")
		keys := make([]string, 0, len(task.Data))
		for k := range task.Data {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			fmt.Fprintf(tw, "  %s\t%s\n", k, value(task.Data[k]))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(task.History) > 0 {
		fmt.Fprintln(t.cmd.stdout, "\nHistory:")
		fmt.Fprintln(tw, "  SEQ\tAT\tFROM\tTO\tEVENT\tACTOR\tREASON\tDETAIL")
		for _, h := range task.History {
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.Seq, h.At.Format(time.RFC3339), dash(h.From), h.To,
				h.Event, dash(h.Actor), dash(h.Reason), dash(h.Detail))
		}
		return tw.Flush()
	}
	return nil
}

// value formats a data value on one line, long ones cut.
func value(v any) string {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	default:
		b, _ := json.Marshal(x)
		s = string(b)
	}
	if r := []rune(s); len(r) > 100 {
		s = string(r[:100]) + "..."
	}
	return s
}

func stamp(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.Local().Format(time.RFC3339)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// explain turns a server error into a message for people: what failed, the
// code, and each field an invalid input names.
func explain(err error) error {
	var e *conveyor.Error
	if !errors.As(err, &e) {
		return err
	}
	var fields client.FieldErrors
	if !errors.As(err, &fields) {
		return fmt.Errorf("%s (%s)", e.Message, e.Code)
	}
	msg := "the data fails the process's input schema (" + e.Code + "):"
	for _, f := range fields {
		msg += "\n  " + f.Field + ": " + f.Message
	}
	return errors.New(msg)
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/conveyor-dev/conveyor/client"
)

// bulkCommand runs bulk actions on a server: a dry run, a job with a
// progress bar, and the jobs' lists and results.
type bulkCommand struct {
	stdout, stderr io.Writer
	// environ is the environment (os.Environ when nil).
	environ func() []string
	// tty reports whether stdout is a terminal (detected when nil).
	tty func() bool
	// poll is how often a job is read while waiting (default 500ms).
	poll time.Duration
}

// bulkSubcommands lists the subcommands with their arguments and summary.
var bulkSubcommands = []struct{ name, args, summary string }{
	{"retry", "--process P [filters] [--reason R] [--rate N] [--dry-run] [--wait]", "re-run the failed node of the escalated tasks a filter selects"},
	{"move", "--process P [filters] --to NODE [--reason R] [--rate N] [--dry-run] [--wait]", "send the tasks a filter selects to another node"},
	{"cancel", "--process P [filters] [--reason R] [--rate N] [--dry-run] [--wait]", "end the tasks a filter selects where they stand"},
	{"show", "ID [--limit N] [--cursor C]", "show a job with its progress and results"},
	{"list", "[--limit N]", "list the jobs, newest first"},
	{"stop", "ID", "cancel a job that has not finished (the tasks done stay done)"},
}

func (c *bulkCommand) usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: conveyor bulk <subcommand> [flags] [args]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Acts on many tasks of a server at once. retry, move and cancel select tasks with")
	fmt.Fprintln(w, "--process (required), --node, --status, --error-code and --older-than; --dry-run")
	fmt.Fprintln(w, "counts them and shows a sample. Otherwise a job starts on the server: it acts on")
	fmt.Fprintln(w, "every selected task at --rate per second, survives restarts, and records a result")
	fmt.Fprintln(w, "per task. On a terminal (or with --wait) the command follows it with a progress bar;")
	fmt.Fprintln(w, "it exits 1 when the job ends canceled or failed.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Talks to the server at --server (default $"+envServer+", else "+defaultServer+")")
	fmt.Fprintln(w, "with the token --token (default $"+envToken+"). -o json prints JSON for scripts.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Subcommands:")
	for _, s := range bulkSubcommands {
		fmt.Fprintf(w, "  %-7s %s\n", s.name, s.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'conveyor bulk <subcommand> --help' for its flags.")
}

// Run implements command.
func (c *bulkCommand) Run(ctx context.Context, args []string) error {
	sub, err := pickSubcommand("bulk", args, bulkSubcommands, c.usage, c.stdout, c.stderr)
	if err != nil {
		return err
	}
	t := &taskRun{cmd: &taskCommand{stdout: c.stdout, stderr: c.stderr, environ: c.environ}, fs: newFlags("bulk "+sub.name, sub.args, c.stderr)}
	t.addCommonFlags()
	b := &bulkRun{bulkCommand: c, taskRun: t}
	switch sub.name {
	case "show":
		return b.show(ctx, args[1:])
	case "list":
		return b.list(ctx, args[1:])
	case "stop":
		return b.stop(ctx, args[1:])
	default:
		return b.start(ctx, sub.name, args[1:])
	}
}

// bulkRun is one run of a bulk subcommand.
type bulkRun struct {
	*bulkCommand
	*taskRun
}

func (b *bulkRun) start(ctx context.Context, action string, args []string) error {
	req := client.BulkRequest{Action: action}
	b.fs.StringVar(&req.Filter.Process, "process", "", "the process whose tasks to act on (required)")
	b.fs.StringVar(&req.Filter.Node, "node", "", "only tasks standing in this node")
	b.fs.StringVar(&req.Filter.Status, "status", "", "only tasks in this status: active, waiting or escalated")
	b.fs.StringVar(&req.Filter.ErrorCode, "error-code", "", "only escalated tasks with this error code")
	b.fs.DurationVar(&req.Filter.OlderThan, "older-than", 0, "only tasks that entered their node longer ago than this, e.g. 10m")
	if action == "move" {
		b.fs.StringVar(&req.To, "to", "", "the node to send the tasks to")
	}
	b.fs.StringVar(&req.Reason, "reason", "", "why, for each task's history and the audit log")
	b.fs.IntVar(&req.Rate, "rate", 0, "at most this many tasks per second (default: the server's, 50)")
	dry := b.fs.Bool("dry-run", false, "only count the tasks and show some; change nothing")
	wait := b.fs.Bool("wait", false, "follow the job until it ends (the default on a terminal)")
	if _, err := b.parse(args, 0, ""); err != nil {
		return err
	}
	switch {
	case req.Filter.Process == "":
		return usageError(b.fs, "missing --process")
	case action == "move" && req.To == "":
		return usageError(b.fs, "missing --to")
	case req.Rate < 0:
		return usageError(b.fs, "--rate must not be negative")
	}
	cl := b.client()
	if *dry {
		out, err := cl.BulkDryRun(ctx, req)
		if err != nil {
			return explain(err)
		}
		if b.output == "json" {
			return b.printJSON(out)
		}
		return b.printDryRun(action, out)
	}
	job, err := cl.StartBulk(ctx, req)
	if err != nil {
		return explain(err)
	}
	tty := b.isTTY()
	if !*wait && !tty {
		if b.output == "json" {
			return b.printJSON(job)
		}
		fmt.Fprintf(b.stdout, "started bulk %s job %s: %d tasks at %d per second\n", job.Action, job.ID, job.Total, job.Rate)
		fmt.Fprintf(b.stdout, "follow it: conveyor bulk show %s\n", job.ID)
		return nil
	}
	if b.output == "table" {
		fmt.Fprintf(b.stdout, "started bulk %s job %s: %d tasks at %d per second\n", job.Action, job.ID, job.Total, job.Rate)
	}
	job, err = b.follow(ctx, cl, job, tty && b.output == "table")
	if err != nil {
		return err
	}
	if b.output == "json" {
		if err := b.printJSON(job); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(b.stdout, "job %s is %s: %d of %d done, %d succeeded, %d failed\n", job.ID, job.Status, job.Done, job.Total, job.Succeeded, job.Failed)
		if job.Failed > 0 {
			fmt.Fprintf(b.stdout, "the failures: conveyor bulk show %s\n", job.ID)
		}
	}
	if job.Status != "done" {
		msg := "the job was " + job.Status
		if job.Error != "" {
			msg += ": " + job.Error
		}
		return errors.New(msg)
	}
	return nil
}

// isTTY reports whether stdout is a terminal.
func (b *bulkRun) isTTY() bool {
	if b.tty != nil {
		return b.tty()
	}
	f, ok := b.stdout.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// follow reads the job until it ends, drawing a progress bar on stdout when
// bar is set. Interrupted, it says how to follow the job (which goes on on
// the server) and returns the error.
func (b *bulkRun) follow(ctx context.Context, cl *client.Client, job *client.Job, bar bool) (*client.Job, error) {
	poll := b.poll
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	for {
		if bar {
			fmt.Fprint(b.stdout, "\r"+progress(job, 30))
		}
		if job.Final() {
			if bar {
				fmt.Fprintln(b.stdout)
			}
			return job, nil
		}
		select {
		case <-ctx.Done():
			if bar {
				fmt.Fprintln(b.stdout)
			}
			return nil, fmt.Errorf("stopped following; the job goes on on the server: conveyor bulk show %s", job.ID)
		case <-time.After(poll):
		}
		next, err := cl.Job(ctx, job.ID)
		if err != nil {
			if ctx.Err() != nil {
				continue
			}
			return nil, explain(err)
		}
		job = next
	}
}

// progress draws a job's progress bar of width cells: succeeded tasks as #,
// failed as x, then the counts.
func progress(j *client.Job, width int) string {
	total := max(j.Total, j.Done, 1)
	ok := j.Succeeded * width / total
	bad := min(width-ok, j.Failed*width/total)
	if j.Failed > 0 && bad == 0 && ok < width {
		bad = 1
	}
	bar := strings.Repeat("#", ok) + strings.Repeat("x", bad) + strings.Repeat(" ", width-ok-bad)
	return fmt.Sprintf("[%s] %d/%d %3d%%  ok %d  failed %d  %s", bar, j.Done, j.Total, j.Done*100/total, j.Succeeded, j.Failed, j.Status)
}

// printDryRun prints a dry run for people.
func (b *bulkRun) printDryRun(action string, out *client.DryRun) error {
	if out.Count == 0 {
		fmt.Fprintf(b.stdout, "no task matches: nothing to %s\n", action)
		return nil
	}
	fmt.Fprintf(b.stdout, "%d tasks match; bulk %s would act on each\n\n", out.Count, action)
	tw := tabwriter.NewWriter(b.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tREF\tNODE\tSTATUS\tERROR\tIN NODE FOR")
	for _, task := range out.Sample {
		code := ""
		if task.Error != nil {
			code = task.Error.Code
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", task.ID, dash(task.Ref), task.Node, task.Status, dash(code),
			time.Since(task.Entered).Round(time.Second))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(out.Sample) < out.Count {
		fmt.Fprintf(b.stdout, "(showing the newest %d of %d)\n", len(out.Sample), out.Count)
	}
	return nil
}

func (b *bulkRun) show(ctx context.Context, args []string) error {
	limit := b.fs.Int("limit", 100, "results per page, 1 to 1000")
	cursor := b.fs.String("cursor", "", "continue the results after a previous page")
	pos, err := b.parse(args, 1, "ID")
	if err != nil {
		return err
	}
	cl := b.client()
	job, err := cl.Job(ctx, pos[0])
	if err != nil {
		return explain(err)
	}
	page, err := cl.JobResults(ctx, job.ID, *cursor, *limit)
	if err != nil {
		return explain(err)
	}
	if b.output == "json" {
		return b.printJSON(struct {
			*client.Job
			Results    []client.JobResult `json:"results"`
			NextCursor string             `json:"next_cursor"`
		}{job, page.Results, page.NextCursor})
	}
	tw := tabwriter.NewWriter(b.stdout, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	f := job.Filter
	row("ID", job.ID)
	row("Action", actionString(job))
	row("Status", job.Status)
	row("Error", job.Error)
	row("Progress", progress(job, 30))
	row("Filter", filterString(f))
	row("Frozen at", stamp(&f.EnteredBefore))
	row("Rate", fmt.Sprintf("%d per second", job.Rate))
	row("Actor", job.Actor)
	row("Reason", job.Reason)
	row("Created", stamp(&job.Created))
	row("Started", stamp(job.Started))
	row("Updated", stamp(&job.Updated))
	row("Finished", stamp(job.Finished))
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(page.Results) == 0 {
		fmt.Fprintln(b.stdout, "\n(no results yet)")
		return nil
	}
	fmt.Fprintln(b.stdout, "\nResults:")
	fmt.Fprintln(tw, "  TASK\tOK\tAT\tERROR")
	for _, r := range page.Results {
		outcome := "ok"
		if !r.OK {
			outcome = "failed"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", r.TaskID, outcome, r.At.Local().Format(time.RFC3339), dash(r.Error))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if page.NextCursor != "" {
		fmt.Fprintf(b.stdout, "\nmore: conveyor bulk show %s --cursor %s\n", job.ID, page.NextCursor)
	}
	return nil
}

// actionString names a job's action, with the node a move goes to.
func actionString(j *client.Job) string {
	if j.To != "" {
		return j.Action + " to " + j.To
	}
	return j.Action
}

// filterString prints a job's filter as its flags.
func filterString(f client.JobFilter) string {
	var parts []string
	for _, kv := range [][2]string{{"process", f.Process}, {"node", f.Node}, {"status", f.Status}, {"error-code", f.ErrorCode}, {"older-than", f.OlderThan}} {
		if kv[1] != "" {
			parts = append(parts, "--"+kv[0]+" "+kv[1])
		}
	}
	return strings.Join(parts, " ")
}

func (b *bulkRun) list(ctx context.Context, args []string) error {
	limit := b.fs.Int("limit", 0, "how many jobs, 1 to 1000 (default 50)")
	if _, err := b.parse(args, 0, ""); err != nil {
		return err
	}
	jobs, err := b.client().Jobs(ctx, *limit)
	if err != nil {
		return explain(err)
	}
	if b.output == "json" {
		return b.printJSON(struct {
			Jobs []*client.Job `json:"jobs"`
		}{jobs})
	}
	if len(jobs) == 0 {
		fmt.Fprintln(b.stdout, "(no jobs)")
		return nil
	}
	tw := tabwriter.NewWriter(b.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tACTION\tFILTER\tSTATUS\tDONE\tOK\tFAILED\tACTOR\tCREATED")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%d\t%d\t%s\t%s\n", j.ID, actionString(j), filterString(j.Filter), j.Status, j.Done, j.Total,
			j.Succeeded, j.Failed, j.Actor, stamp(&j.Created))
	}
	return tw.Flush()
}

func (b *bulkRun) stop(ctx context.Context, args []string) error {
	pos, err := b.parse(args, 1, "ID")
	if err != nil {
		return err
	}
	job, err := b.client().CancelBulk(ctx, pos[0])
	if err != nil {
		return explain(err)
	}
	if b.output == "json" {
		return b.printJSON(job)
	}
	fmt.Fprintf(b.stdout, "job %s canceled with %d of %d done; the tasks done stay done\n", job.ID, job.Done, job.Total)
	return nil
}

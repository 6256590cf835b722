package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/conveyor-dev/conveyor/client"
)

// auditCommand prints the audit log of a server: every operator action,
// single or bulk, newest first.
type auditCommand struct {
	stdout, stderr io.Writer
	// environ is the environment (os.Environ when nil).
	environ func() []string
}

// Run implements command.
func (c *auditCommand) Run(ctx context.Context, args []string) error {
	t := &taskRun{cmd: &taskCommand{stdout: c.stdout, stderr: c.stderr, environ: c.environ},
		fs: newFlags("audit", "[--task ID] [--actor A] [--process P] [--since D] [--limit N] [--cursor C]", c.stderr)}
	// The common flags but --actor, which filters here.
	t.fs.StringVar(&t.server, "server", "", "server base `URL` (default $"+envServer+", else "+defaultServer+")")
	t.fs.StringVar(&t.token, "token", "", "bearer token (default $"+envToken+")")
	t.fs.StringVar(&t.output, "o", "table", "output: table (for people) or json (for scripts)")
	var o client.AuditOptions
	t.fs.StringVar(&o.Task, "task", "", "only the actions on this task")
	t.fs.StringVar(&o.Actor, "actor", "", "only the actions of this actor, as recorded (e.g. token:alice)")
	t.fs.StringVar(&o.Process, "process", "", "only the actions on tasks of this process")
	since := t.fs.Duration("since", 0, "only the actions of the last while, e.g. 24h")
	t.fs.IntVar(&o.Limit, "limit", 0, "page size, 1 to 1000 (default 50)")
	t.fs.StringVar(&o.Cursor, "cursor", "", "continue after a previous page")
	if _, err := t.parse(args, 0, ""); err != nil {
		return err
	}
	if *since > 0 {
		o.Since = time.Now().Add(-*since)
	}
	page, err := t.client().Audit(ctx, o)
	if err != nil {
		return explain(err)
	}
	if t.output == "json" {
		return t.printJSON(page)
	}
	if len(page.Entries) == 0 {
		fmt.Fprintln(c.stdout, "(no operator actions)")
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AT\tACTOR\tACTION\tTASK\tPROCESS\tCHANGE\tREASON\tDETAIL\tJOB")
	for _, e := range page.Entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s -> %s\t%s\t%s\t%s\n", e.At.Local().Format(time.RFC3339), e.Actor, e.Action, e.TaskID,
			e.Process, dash(e.From), dash(e.To), dash(e.Reason), dash(e.Detail), dash(e.JobID))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if page.NextCursor != "" {
		fmt.Fprintf(c.stdout, "\nmore: conveyor audit --cursor %s (with the same filters)\n", page.NextCursor)
	}
	return nil
}

package main

import (
	"context"
	"fmt"
	"io"

	"github.com/conveyor-dev/conveyor/nodes"
	"github.com/conveyor-dev/conveyor/processes"
)

// graphCommand prints a flow as a graph.
type graphCommand struct {
	stdout, stderr io.Writer
}

// Run implements command.
func (c *graphCommand) Run(_ context.Context, args []string) error {
	fs := newFlags("graph", "FILE", c.stderr)
	format := fs.String("format", processes.FormatMermaid, "output format: mermaid or dot")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(c.stderr, "conveyor graph: name one flow file")
		fs.Usage()
		return errUsage
	}
	l := &processes.Loader{Kinds: nodes.Kinds()}
	defs, err := l.LoadFiles(fs.Args())
	if err != nil {
		fmt.Fprintln(c.stdout, err.Error())
		return fmt.Errorf("the flow has problems")
	}
	out, err := defs[0].Graph(*format)
	if err != nil {
		return err
	}
	fmt.Fprint(c.stdout, out)
	return nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/conveyor-dev/conveyor/nodes"
	"github.com/conveyor-dev/conveyor/processes"
)

// validateCommand checks flow files: exit 0 when all are good, 1 with every
// problem printed as file:line:col: message otherwise.
type validateCommand struct {
	stdout, stderr io.Writer
}

// Run implements command.
func (c *validateCommand) Run(_ context.Context, args []string) error {
	fs := newFlags("validate", "FILE...", c.stderr)
	quiet := fs.Bool("q", false, "print nothing for good flows")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(c.stderr, "conveyor validate: name at least one flow file")
		fs.Usage()
		return errUsage
	}
	l := &processes.Loader{Kinds: nodes.Kinds()}
	defs, err := l.LoadFiles(fs.Args())
	var probs processes.Problems
	if errors.As(err, &probs) {
		for _, p := range probs {
			fmt.Fprintln(c.stdout, p.String())
		}
		return fmt.Errorf("%d problem(s)", len(probs))
	}
	if err != nil {
		return err
	}
	if !*quiet {
		for _, d := range defs {
			fmt.Fprintf(c.stdout, "%s: ok (process %s, version %s, %d nodes)\n", d.File, d.Name, d.Version, len(d.Nodes))
		}
	}
	return nil
}

package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/conveyor-dev/conveyor/store/postgres"
)

// migrateCommand applies the PostgreSQL schema's migrations by hand, for
// operators who migrate before they deploy (serve applies them too, when it
// opens the database).
type migrateCommand struct {
	stdout, stderr io.Writer
	// environ is the environment (os.Environ when nil).
	environ func() []string
}

// Run implements command.
func (c *migrateCommand) Run(ctx context.Context, args []string) error {
	fs := newFlags("migrate", "", c.stderr)
	url := fs.String("store", "", "PostgreSQL `URL` to migrate (default $"+envStore+")")
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, `Usage: conveyor migrate --store URL

Applies the schema migrations the PostgreSQL database lacks, in one
transaction under an advisory lock (nodes starting meanwhile wait), and
prints each one applied. A bbolt file needs none.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(fs, "unexpected argument %q", fs.Arg(0))
	}
	environ := os.Environ()
	if c.environ != nil {
		environ = c.environ()
	}
	if *url == "" {
		*url = lookup(environ, envStore)
	}
	if *url == "" {
		return usageError(fs, "give --store URL (or set %s): only PostgreSQL has migrations", envStore)
	}
	applied, err := postgres.Migrate(ctx, *url)
	if err != nil {
		return err
	}
	for _, name := range applied {
		fmt.Fprintf(c.stdout, "applied %s\n", name)
	}
	if len(applied) == 0 {
		fmt.Fprintln(c.stdout, "the schema is up to date")
	}
	return nil
}

// Command conveyor is Conveyor's one binary: the server, the operator CLI, the
// flow tools and the demo. Each subcommand is a type with its own flag set
// and a Run method; `conveyor help` lists them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"slices"
	"syscall"
)

// errUsage marks a usage error: the command exits 2.
var errUsage = errors.New("usage")

// command is one subcommand.
type command interface {
	Run(ctx context.Context, args []string) error
}

// commands maps subcommand names to constructors and one-line summaries.
var commands = []struct {
	name, summary string
	new           func(stdout, stderr io.Writer) command
}{
	{"demo", "run a LiqPay card hold end to end on a private server (sandbox, temporary database)", func(o, e io.Writer) command { return &demoCommand{stdout: o, stderr: e} }},
	{"validate", "check flow files and print every problem as file:line:col", func(o, e io.Writer) command { return &validateCommand{stdout: o, stderr: e} }},
	{"graph", "print a flow as a Mermaid or DOT graph", func(o, e io.Writer) command { return &graphCommand{stdout: o, stderr: e} }},
	{"serve", "run the service: the HTTP API over the engine (--sandbox mounts the LiqPay simulator)", func(o, e io.Writer) command { return &serveCommand{stdout: o, stderr: e} }},
	{"task", "submit, show, list, retry, move, cancel and edit tasks on a server", func(o, e io.Writer) command { return &taskCommand{stdout: o, stderr: e} }},
	{"bulk", "retry, move or cancel the tasks a filter selects, as a job on the server (dry run, rate, progress)", func(o, e io.Writer) command { return &bulkCommand{stdout: o, stderr: e} }},
	{"audit", "list the operator actions on a server, single and bulk, newest first", func(o, e io.Writer) command { return &auditCommand{stdout: o, stderr: e} }},
	{"sandbox", "run a payment provider simulator alone (liqpay)", func(o, e io.Writer) command { return &sandboxCommand{stdout: o, stderr: e} }},
	{"migrate", "apply the PostgreSQL schema's migrations by hand (serve applies them too)", func(o, e io.Writer) command { return &migrateCommand{stdout: o, stderr: e} }},
	{"export", "write a store's tasks, their history, process versions and jobs to stdout as JSON lines", func(o, e io.Writer) command { return &exportCommand{stdout: o, stderr: e} }},
	{"import", "read a dump of conveyor export from stdin into a store (bbolt or PostgreSQL)", func(o, e io.Writer) command { return &importCommand{stdout: o, stderr: e} }},
	{"bench", "measure the service on this machine (real server, store with fsync, simulators) and print a table", func(o, e io.Writer) command { return &benchCommand{stdout: o, stderr: e} }},
}

func main() {
	// The engine allocates per event and keeps little: a higher GC target
	// trades a few MiB of heap for ~20% more throughput (BENCHMARKS.md).
	// GOGC in the environment still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	runtime.GOMAXPROCS(procs(os.Getenv("GOMAXPROCS"), runtime.GOMAXPROCS(0)))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches to a subcommand and turns its error into an exit code: 0 ok,
// 2 usage, 1 anything else.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return 0
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		err := c.new(stdout, stderr).Run(ctx, args[1:])
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		}
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(stderr, "conveyor "+args[0]+": "+msg)
		}
		return 1
	}
	fmt.Fprintf(stderr, "conveyor: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Conveyor is a durable process engine for payment flows.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: conveyor <command> [flags] [args]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'conveyor <command> --help' for a command's flags.")
}

// newFlags returns a flag set that reports usage errors instead of exiting.
func newFlags(name, args string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("conveyor "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: conveyor %s [flags] %s\n\nFlags:\n", name, args)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags, mapping a bad flag to errUsage.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
}

// subcommand is one entry of a command group's table (task, bulk).
type subcommand = struct{ name, args, summary string }

// pickSubcommand finds args[0] in a group's table. No name, or an unknown
// one, prints the group's usage and is a usage error; help prints it and
// is flag.ErrHelp.
func pickSubcommand(group string, args []string, subs []subcommand, usage func(io.Writer), stdout, stderr io.Writer) (subcommand, error) {
	if len(args) == 0 {
		usage(stderr)
		return subcommand{}, errUsage
	}
	switch args[0] {
	case "-h", "--help", "-help", "help":
		usage(stdout)
		return subcommand{}, flag.ErrHelp
	}
	i := slices.IndexFunc(subs, func(s subcommand) bool { return s.name == args[0] })
	if i < 0 {
		fmt.Fprintf(stderr, "conveyor %s: unknown subcommand %q\n\n", group, args[0])
		usage(stderr)
		return subcommand{}, errUsage
	}
	return subs[i], nil
}

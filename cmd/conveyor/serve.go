package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/conveyor-dev/conveyor/engine"
	"github.com/conveyor-dev/conveyor/processes"
)

// shutdownTimeout bounds how long serve waits for requests in flight when
// it is told to stop.
const shutdownTimeout = 10 * time.Second

// serveCommand runs the service: the HTTP API over the engine and a bolt
// store, or a PostgreSQL store shared with other nodes, optionally with the
// LiqPay sandbox mounted.
type serveCommand struct {
	stdout, stderr io.Writer
	// environ is the environment (os.Environ when nil).
	environ func() []string
}

// Run implements command. It returns when ctx ends (SIGINT, SIGTERM), after
// a graceful shutdown.
func (c *serveCommand) Run(ctx context.Context, args []string) error {
	fs := newFlags("serve", "", c.stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address; port 0 picks a free one. Not loopback: a token is required")
	where := addStoreFlags(fs)
	wal := fs.Bool("wal", true, "with --db: a write-ahead log (FILE.wal) in front of the bbolt file. A commit is acknowledged once appended to the log and synced, and the file catches up behind it: a burst of commits (timeouts due together) is acknowledged faster, for up to 256 MiB of memory holding what the file does not have yet; lists and counts wait for the file. --wal=false writes every commit to the file itself")
	keyFile := fs.String("key", "", "data key `FILE` (32 bytes, mode 0600, created when absent) that seals sensitive fields (default <db>.key with --db, ./"+defaultPostgresKey+" with --store); every node of a cluster must have the same key")
	node := fs.String("node", "", "this node's `NAME` in a cluster (default: host-pid-random); a stable name frees the node's leases at once when it restarts. Two running nodes must never share one")
	lease := fs.Duration("lease", 30*time.Second, "with --store: how long the work of a node that died waits before another node takes it over")
	dir := fs.String("processes", "", "load every *.yaml and *.yml flow in `DIR` (default: the shipped flows)")
	sandbox := fs.Bool("sandbox", false, "mount the LiqPay and VIA simulators under /sandbox/liqpay and /sandbox/via and point the flows' env (LIQPAY_URL, VIA_URL) and secrets at them")
	token := fs.String("token", "", "bearer token of the API (default $"+envToken+"); empty: no authentication")
	base := fs.String("base-url", "", "public base URL of the service, for callback URLs (default: from the listen address)")
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	inflight := fs.Int("max-inflight", 0, "submits and callbacks handled at once before the server answers 429 (default 4096)")
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, `Usage: conveyor serve [flags]

Runs the service. Flow variables and secrets come from the environment:
  %s<NAME>=value     sets env.NAME (e.g. %sLIQPAY_URL)
  %s<NAME>=value  sets the secret <name> (lower case; e.g.
                                %sLIQPAY_PRIVATE_KEY -> liqpay_private_key)
  %s                the bearer token, when --token is not given

Flags:
`, envPrefixEnv, envPrefixEnv, envPrefixSecret, envPrefixSecret, envToken)
		fs.PrintDefaults()
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(fs, "unexpected argument %q", fs.Arg(0))
	}
	if *lease < 3*time.Millisecond {
		return usageError(fs, "--lease must be at least 3ms")
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return usageError(fs, "bad --log-level %q", *level)
	}
	environ := os.Environ()
	if c.environ != nil {
		environ = c.environ()
	}
	if *token == "" {
		*token = lookup(environ, envToken)
	}
	db, url, err := where.resolve(environ)
	if err != nil {
		return err
	}
	if url != "" {
		if flagGiven(fs, "wal") && *wal {
			return usageError(fs, "--wal is for a bolt file (--db), not --store")
		}
		*wal = false
	}
	local, err := loopback(*addr)
	if err != nil {
		return usageError(fs, "%v", err)
	}
	if !local && *token == "" {
		return fmt.Errorf("refusing to listen on %s without a token: anyone who reaches it could submit and change tasks. Set --token or %s, or listen on 127.0.0.1", *addr, envToken)
	}
	log := slog.New(slog.NewJSONHandler(c.stderr, &slog.HandlerOptions{Level: lvl}))
	if url != "" && *sandbox {
		log.Warn("--sandbox with --store: each node mounts simulators of its own, which the other nodes do not see; run `conveyor sandbox liqpay` once for a cluster")
	}
	svc, err := startService(ctx, serviceConfig{Addr: *addr, DB: db, WAL: *wal, Store: url, Key: *keyFile, Dir: *dir, Sandbox: *sandbox, Token: *token,
		BaseURL: *base, Environ: environ, Log: log, Stderr: c.stderr,
		Engine: func(ec *engine.Config) { ec.MaxInflight, ec.Owner, ec.Lease = *inflight, *node, *lease }})
	if err != nil {
		return err
	}
	if !local && *base == "" {
		log.Warn("callback URLs use the listen address; set --base-url to the address providers reach", "base_url", svc.URL)
	}
	fmt.Fprintf(c.stdout, "conveyor: listening on %s\n", svc.URL)
	err = svc.wait(ctx)
	log.Info("stopped")
	return err
}

// loadFlows loads the shipped flows, or every *.yaml and *.yml file in dir;
// problems are printed one a line.
func loadFlows(l *processes.Loader, dir string, stderr io.Writer) ([]*processes.Definition, error) {
	var defs []*processes.Definition
	var err error
	if dir == "" {
		defs, err = l.LoadFS(processes.Shipped(), ".")
	} else {
		var files []string
		for _, pat := range []string{"*.yaml", "*.yml"} {
			m, _ := filepath.Glob(filepath.Join(dir, pat))
			files = append(files, m...)
		}
		slices.Sort(files)
		if len(files) == 0 {
			return nil, fmt.Errorf("no flows (*.yaml, *.yml) in %s", dir)
		}
		defs, err = l.LoadFiles(files)
	}
	var probs processes.Problems
	if errors.As(err, &probs) {
		for _, p := range probs {
			fmt.Fprintln(stderr, p.String())
		}
		return nil, fmt.Errorf("the flows have %d problem(s)", len(probs))
	}
	if err != nil {
		return nil, err
	}
	return defs, nil
}

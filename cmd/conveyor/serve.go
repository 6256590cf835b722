package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/conveyor-dev/conveyor/api"
	"github.com/conveyor-dev/conveyor/engine"
	"github.com/conveyor-dev/conveyor/nodes"
	"github.com/conveyor-dev/conveyor/processes"
	"github.com/conveyor-dev/conveyor/sandbox/liqpay"
	"github.com/conveyor-dev/conveyor/store/bolt"
)

// shutdownTimeout bounds how long serve waits for requests in flight when
// it is told to stop.
const shutdownTimeout = 10 * time.Second

// serveCommand runs the service: the HTTP API over the engine and a bolt
// store, optionally with the LiqPay sandbox mounted.
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
	db := fs.String("db", "./conveyor.db", "database file; the data key is kept beside it in <db>.key (mode 0600)")
	dir := fs.String("processes", "", "load every *.yaml and *.yml flow in `DIR` (default: the shipped flows)")
	sandbox := fs.Bool("sandbox", false, "mount the LiqPay simulator under /sandbox/liqpay and point env.LIQPAY_URL and the liqpay secrets at it")
	token := fs.String("token", "", "bearer token of the API (default $"+envToken+"); empty: no authentication")
	base := fs.String("base-url", "", "public base URL of the service, for callback URLs (default: from the listen address)")
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
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
	local, err := loopback(*addr)
	if err != nil {
		return usageError(fs, "%v", err)
	}
	if !local && *token == "" {
		return fmt.Errorf("refusing to listen on %s without a token: anyone who reaches it could submit and change tasks. Set --token or %s, or listen on 127.0.0.1", *addr, envToken)
	}
	log := slog.New(slog.NewJSONHandler(c.stderr, &slog.HandlerOptions{Level: lvl}))
	defer log.Info("stopped") // after the engine and the store, deferred below

	loader := &processes.Loader{Kinds: nodes.Kinds()}
	defs, err := loadFlows(loader, *dir, c.stderr)
	if err != nil {
		return err
	}
	key, err := loadKey(*db+".key", *db)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	url := baseURL(ln.Addr())
	if *base == "" {
		*base = url
		if !local {
			log.Warn("callback URLs use the listen address; set --base-url to the address providers reach", "base_url", url)
		}
	}

	env, secrets := flowConfig(environ)
	var sb *liqpay.Server
	if *sandbox {
		sb = liqpay.New(liqpay.Config{Logger: log})
		defer sb.Close()
		env["LIQPAY_URL"] = *base + "/sandbox/liqpay"
		secrets["liqpay_public_key"] = liqpay.DefaultPublicKey
		secrets["liqpay_private_key"] = liqpay.DefaultPrivateKey
	}
	for _, d := range defs {
		for _, s := range d.Secrets {
			if secrets[s] == "" {
				log.Warn("a flow names a secret that is not configured", "process", d.Name, "secret", s, "env", envPrefixSecret+strings.ToUpper(s))
			}
		}
	}

	st, err := bolt.Open(*db, bolt.Options{Logger: log})
	if err != nil {
		return err
	}
	defer st.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	eng, err := engine.New(ctx, engine.Config{
		Store: st, Definitions: defs, Loader: loader, Key: key, BaseURL: *base,
		Env: env, Secrets: secrets, Logger: log, Metrics: api.NewMetrics(reg),
	})
	if err != nil {
		return fmt.Errorf("%w (set %s<NAME> for every env.NAME a flow reads, or use --sandbox)", err, envPrefixEnv)
	}
	if err := eng.Start(ctx); err != nil {
		return err
	}
	defer eng.Stop()

	cfg := api.Config{Engine: eng, Token: *token, Logger: log, Registry: reg}
	if sb != nil {
		cfg.SandboxLiqPay = sb
	}
	srv := &http.Server{
		Handler:           api.New(cfg),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	names := make([]string, len(defs))
	for i, d := range defs {
		names[i] = d.Name
	}
	log.Info("listening", "url", url, "base_url", *base, "processes", names, "sandbox", *sandbox, "auth", *token != "")
	fmt.Fprintf(c.stdout, "conveyor: listening on %s\n", url)

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("requests still in flight at shutdown", "err", err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("server", "err", err)
	}
	return nil
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

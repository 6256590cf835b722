package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/conveyor-dev/conveyor/api"
	"github.com/conveyor-dev/conveyor/engine"
	"github.com/conveyor-dev/conveyor/nodes"
	"github.com/conveyor-dev/conveyor/processes"
	"github.com/conveyor-dev/conveyor/sandbox/liqpay"
	"github.com/conveyor-dev/conveyor/sandbox/via"
	"github.com/conveyor-dev/conveyor/store"
	"github.com/conveyor-dev/conveyor/store/bolt"
	"github.com/conveyor-dev/conveyor/store/postgres"
	"github.com/conveyor-dev/conveyor/web"
)

// serviceConfig is what a running service is built from; serve fills it
// from flags, demo from its defaults.
type serviceConfig struct {
	Addr    string // listen address
	DB      string // bolt file, when Store is ""
	WAL     bool   // a write-ahead log in front of the bolt file (bolt.Options.Log)
	Store   string // PostgreSQL URL shared by the nodes of a cluster; "" for the bolt file DB
	Key     string // data key file; "" for DB + ".key" (bolt) or defaultPostgresKey
	Dir     string // flows directory; "" for the shipped flows
	Sandbox bool   // mount the simulators and point the flows at them
	Token   string // API bearer token; "" for none
	BaseURL string // callback base URL; "" for the listen address
	Environ []string
	Log     *slog.Logger
	Stderr  io.Writer // where flow problems are printed
	// Engine adjusts the engine's configuration before it is built.
	Engine func(*engine.Config)
	// SandboxTransport carries the simulators' callbacks and webhooks;
	// nil for a pooled transport (sandboxTransport).
	SandboxTransport http.RoundTripper
	// StoreCommits observes the bolt store's group commits (bench).
	StoreCommits bolt.CommitObserver
}

// walMemoryLimit is the soft memory limit of a service with the write-ahead
// log (--wal), unless GOMEMLIMIT sets one. The log's buffer holds up to
// 256 MiB of writes the file has not applied yet, and bbolt's transaction
// applying them as much again; the GC target that main sets (GOGC 400)
// would let the heap grow to five times that. The limit makes the GC work
// harder instead, past 1 GiB, well above what the buffer keeps alive, so
// that it does not run all the time.
const walMemoryLimit = 1 << 30

// sandboxTransport is the simulators' default transport: Go's default
// keeps two idle connections per host, so a simulator calling back hundreds
// of tasks at once would open (and leave in TIME_WAIT) a connection for
// almost every callback.
func sandboxTransport() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 256
	return t
}

// service is a running Conveyor: store, engine, simulators and HTTP server.
type service struct {
	URL     string
	log     *slog.Logger
	ln      net.Listener
	st      store.Store
	eng     *engine.Engine
	srv     *http.Server
	served  chan error
	closers []func()
	// idle holds what closes the idle client connections that lead back
	// to this server (the simulators' callbacks, through their client; the
	// engine's calls to the sandbox are closed through the engine), called
	// before a shutdown:
	// http.Server.Shutdown waits five seconds for a connection that was
	// opened and never used.
	idle []func()
}

// startService opens everything and starts serving; shutdown undoes it.
func startService(ctx context.Context, cfg serviceConfig) (_ *service, err error) {
	if cfg.WAL && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(walMemoryLimit)
	}
	s := &service{log: cfg.Log, served: make(chan error, 1)}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	loader := &processes.Loader{Kinds: nodes.Kinds()}
	defs, err := loadFlows(loader, cfg.Dir, cfg.Stderr)
	if err != nil {
		return nil, err
	}
	apiCfg := api.Config{Token: cfg.Token, Logger: cfg.Log, Registry: prometheus.NewRegistry()}
	metrics := api.NewMetrics(apiCfg.Registry)
	// With the write-ahead log the logger's groups (answered commits) and
	// the writer's transactions (its applies of the log, the backlog's
	// moves) are observed from two goroutines; only the writer knows the
	// history backlog, so a logged group reports the writer's last count.
	var backlog atomic.Int64
	st, key, err := openData(ctx, cfg, func(g bolt.GroupCommit) {
		if g.Logged {
			g.Backlog = int(backlog.Load())
		} else {
			backlog.Store(int64(g.Backlog))
		}
		metrics.GroupCommit(g.Requests, g.Took, g.Write, g.Pages, g.Backlog)
	})
	if err != nil {
		return nil, err
	}
	s.st = st
	s.closers = append(s.closers, func() { st.Close() })
	if s.ln, err = net.Listen("tcp", cfg.Addr); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { s.ln.Close() })
	s.URL = baseURL(s.ln.Addr())
	if cfg.BaseURL == "" {
		cfg.BaseURL = s.URL
	}
	env, secrets := flowConfig(cfg.Environ)
	if cfg.Sandbox {
		s.sandboxes(cfg, &apiCfg, env, secrets)
	}
	apiCfg.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ecfg := engine.Config{Store: st, Definitions: defs, Loader: loader, Key: key, BaseURL: cfg.BaseURL,
		Env: env, Secrets: secrets, Logger: cfg.Log, Metrics: metrics}
	if cfg.Engine != nil {
		cfg.Engine(&ecfg)
	}
	if s.eng, err = engine.New(ctx, ecfg); err != nil {
		return nil, fmt.Errorf("%w (set %s<NAME> for every env.NAME and %s<NAME> for every secret a flow uses, or try --sandbox)", err, envPrefixEnv, envPrefixSecret)
	}
	if err := s.eng.Start(ctx); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, s.eng.Stop)
	apiCfg.Engine = s.eng
	s.srv = &http.Server{
		Handler:           web.Protect(api.New(apiCfg)), // cross-origin browser writes refused (403)
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(cfg.Log.Handler(), slog.LevelWarn),
	}
	go func() { s.served <- s.srv.Serve(s.ln) }()
	names := make([]string, len(defs))
	for i, d := range defs {
		names[i] = d.Name
	}
	cfg.Log.Info("listening", "url", s.URL, "base_url", cfg.BaseURL, "processes", strings.Join(names, ","), "sandbox", cfg.Sandbox,
		"auth", cfg.Token != "", "store", storeKind(cfg.Store), "node", s.eng.Owner())
	return s, nil
}

// envStore names the PostgreSQL URL serve, export, import and migrate use
// when --store is not given.
const envStore = "CONVEYOR_STORE"

// defaultPostgresKey is the data key file of a node on PostgreSQL: the
// database is shared, the key is a file every node has a copy of.
const defaultPostgresKey = "conveyor.key"

// storeKind names the backend for logs; a URL is never logged, it may hold
// a password.
func storeKind(url string) string {
	if url == "" {
		return "bolt"
	}
	return "postgres"
}

// storeFlags are the flags that choose a store: --db for a bolt file (the
// default), --store (or $CONVEYOR_STORE) for PostgreSQL.
type storeFlags struct {
	fs      *flag.FlagSet
	db, url *string
}

// addStoreFlags adds --db and --store to fs.
func addStoreFlags(fs *flag.FlagSet) *storeFlags {
	return &storeFlags{
		fs:  fs,
		db:  fs.String("db", "./conveyor.db", "bbolt database `FILE`"),
		url: fs.String("store", "", "PostgreSQL `URL` (postgres://user:password@host:port/db?sslmode=...; a search_path parameter picks a schema) instead of --db, shared by the nodes of a cluster (default $"+envStore+")"),
	}
}

// flagGiven reports whether the command line gave the flag name.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(fl *flag.Flag) { given = given || fl.Name == name })
	return given
}

// resolve returns the bolt file or the PostgreSQL URL to open (the other
// one ""): --store, else --db when given, else $CONVEYOR_STORE, else the
// default --db. Both flags at once are a usage error.
func (f *storeFlags) resolve(environ []string) (db, url string, err error) {
	switch {
	case flagGiven(f.fs, "db") && flagGiven(f.fs, "store"):
		return "", "", usageError(f.fs, "give --db or --store, not both")
	case flagGiven(f.fs, "store") && *f.url == "":
		return "", "", usageError(f.fs, "--store needs a URL")
	case flagGiven(f.fs, "store"):
		return "", *f.url, nil
	case flagGiven(f.fs, "db"):
		return *f.db, "", nil
	}
	if u := lookup(environ, envStore); u != "" {
		return "", u, nil
	}
	return *f.db, "", nil
}

// openStore opens the PostgreSQL database at url (applying the migrations it
// lacks), or the bolt file db when url is "".
func openStore(ctx context.Context, db, url string, log *slog.Logger) (store.Store, error) {
	if url != "" {
		st, err := postgres.Open(ctx, url, postgres.Options{Logger: log})
		if err != nil {
			return nil, err
		}
		return st, nil
	}
	return openBolt(db, bolt.Options{Logger: log})
}

// openBolt opens the bolt file DB, saying so when it cannot be written.
func openBolt(db string, opts bolt.Options) (store.Store, error) {
	st, err := bolt.Open(db, opts)
	if errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
		return nil, fmt.Errorf("the database %s cannot be opened for writing (read-only file system or permissions): %w; nothing was changed", db, err)
	}
	if err != nil {
		return nil, err
	}
	return st, nil
}

// openData opens the store and reads (or creates) the data key. bolt's key
// is read first, since a new database file gets a new key; PostgreSQL's
// after the database is open, since a key is made only for a database
// without tasks (a new key could not open the sealed fields of the others).
// groups observes the bolt store's group commits (the metrics).
func openData(ctx context.Context, cfg serviceConfig, groups bolt.CommitObserver) (store.Store, []byte, error) {
	path := cfg.Key
	if cfg.Store == "" {
		if path == "" {
			path = cfg.DB + ".key"
		}
		key, err := loadKey(path, cfg.DB)
		if err != nil {
			return nil, nil, err
		}
		observe := groups
		if bench := cfg.StoreCommits; bench != nil {
			observe = func(g bolt.GroupCommit) {
				if groups != nil {
					groups(g)
				}
				bench(g)
			}
		}
		st, err := openBolt(cfg.DB, bolt.Options{Logger: cfg.Log, Metrics: observe, Log: cfg.WAL})
		return st, key, err
	}
	if path == "" {
		path = defaultPostgresKey
	}
	st, err := openStore(ctx, "", cfg.Store, cfg.Log)
	if err != nil {
		return nil, nil, err
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		page, err := st.List(ctx, store.Filter{Limit: 1})
		if err == nil && len(page.Tasks) > 0 {
			err = fmt.Errorf("the database holds tasks but the key file %s does not exist: copy the key the other nodes use (--key); a new key could not open their sealed fields", path)
		}
		if err != nil {
			st.Close()
			return nil, nil, err
		}
	}
	key, err := loadKey(path, "")
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return st, key, nil
}

// sandboxes mounts the LiqPay and VIA simulators and points the flows'
// variables and secrets at them.
func (s *service) sandboxes(cfg serviceConfig, apiCfg *api.Config, env, secrets map[string]string) {
	tr := cfg.SandboxTransport
	if tr == nil {
		tr = sandboxTransport()
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: tr}
	s.idle = append(s.idle, client.CloseIdleConnections)
	lp := liqpay.New(liqpay.Config{Logger: cfg.Log, HTTPClient: client})
	vs := via.New(via.Config{Logger: cfg.Log, HTTPClient: client})
	s.closers = append(s.closers, func() { lp.Close(); vs.Close() })
	apiCfg.SandboxLiqPay, apiCfg.SandboxVIA = lp, vs
	env["LIQPAY_URL"] = cfg.BaseURL + "/sandbox/liqpay"
	secrets["liqpay_public_key"] = liqpay.DefaultPublicKey
	secrets["liqpay_private_key"] = liqpay.DefaultPrivateKey
	env["VIA_URL"] = cfg.BaseURL + "/sandbox/via"
	secrets["via_client_id"] = via.DefaultClientID
	secrets["via_client_secret"] = via.DefaultClientSecret
}

// wait blocks until ctx ends or the server fails, then shuts down.
func (s *service) wait(ctx context.Context) error {
	var err error
	select {
	case err = <-s.served:
		err = fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.shutdown()
	return err
}

// shutdown stops taking requests (waiting for those in flight), then stops
// the engine, the simulators and the store.
func (s *service) shutdown() {
	if s.srv != nil {
		s.log.Info("shutting down")
		if s.eng != nil {
			s.eng.CloseIdleConnections()
		}
		for _, closeIdle := range s.idle {
			closeIdle()
		}
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := s.srv.Shutdown(sctx); err != nil {
			s.log.Warn("requests still in flight at shutdown", "err", err)
		}
		if err := <-s.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Warn("server", "err", err)
		}
		s.srv = nil
	}
	s.close()
}

func (s *service) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

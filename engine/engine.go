// Package engine runs tasks through compiled processes. A task advances on
// three kinds of event only — the reply of an outbound call, a callback, a
// timer — plus the operator actions. Each event is applied by loading the
// task, moving it through the process's FSM, and committing the new state, its
// history, its timer and (through the store) every index in one transaction,
// before anyone is told. Outbound calls happen after the commit that decided
// them.
//
// Runnable work (a task in an api, set, condition or final node) goes to a
// pool of workers; waiting work (callback, delay, escalation) is parked with a
// durable timer that a timer service fires. The engine knows the store only
// through store.Store.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/google/uuid"

	conveyor "github.com/conveyor-dev/conveyor"
	"github.com/conveyor-dev/conveyor/processes"
	"github.com/conveyor-dev/conveyor/store"
)

// Config configures an Engine. Zero values take the defaults documented on
// each field.
type Config struct {
	// Store keeps the tasks. Required.
	Store store.Store
	// Definitions are the current process versions. Required.
	Definitions []*processes.Definition
	// Loader compiles stored versions that tasks still run on. Required.
	Loader *processes.Loader
	// Key is the 32-byte AES key that seals sensitive fields. Required.
	Key []byte
	// BaseURL is the service's public base URL; callback URLs are built on it
	// (BaseURL + "/callbacks/" + token).
	BaseURL string
	// Env holds the configuration variables flows read as env.NAME.
	Env map[string]string
	// Secrets holds the secret values flows name.
	Secrets map[string]string
	// Clock defaults to the system clock.
	Clock Clock
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// HTTPClient sends outbound calls; defaults to a client that does not
	// follow redirects to another host.
	HTTPClient *http.Client
	// Workers is the number of goroutines running instant nodes (default 8).
	Workers int
	// MaxCalls bounds concurrent outbound calls (default 1024).
	MaxCalls int
	// LoopLimit is how many nodes a task may pass without waiting before it is
	// escalated (default 100).
	LoopLimit int
	// MaxTaskSize caps a task's encoded data in bytes (default 128 KiB).
	MaxTaskSize int
	// MaxInflight bounds the submits and callbacks handled at once (default
	// 4096); beyond it they are refused with "too_many" (HTTP 429) instead of
	// queueing without bound.
	MaxInflight int
	// TimerBatch is how many due timers are fired per round (default 256);
	// catch-up after downtime proceeds in such rounds.
	TimerBatch int
	// TimerPoll is the longest the timer service sleeps without looking
	// (default 1s).
	TimerPoll time.Duration
	// Retention is how long finished tasks (and their refs and history) are
	// kept before the purge service deletes them (default 30 days). A retried
	// submit with the same ref returns the finished task while it is kept.
	Retention time.Duration
	// PurgeInterval is how often the purge service runs (default 1 minute).
	PurgeInterval time.Duration
	// Metrics receives measurements; nil discards them.
	Metrics Metrics
	// OnCommit, when set, is called with every task the engine commits,
	// after the commit. Tests and the benchmark wait on it instead of
	// sleeping. The task is the engine's own, not a copy (a copy of each
	// was 3 % of the CPU of a timer burst): read it during the call, copy
	// what outlives it, and never change it.
	OnCommit func(t *store.Task)
	// Owner names this engine among the engines sharing a Store that leases
	// tasks (cluster mode, see cluster.go); a Store that does not is used by
	// one engine and both fields below are ignored. Default: host name,
	// process id and a random suffix. A stable name per node (its host name)
	// lets a restarted node free its previous run's leases at once instead
	// of waiting for them to expire; two running engines must never share one.
	Owner string
	// Lease is how long a task's lease lasts without renewal (default 30s):
	// how long the work of an engine that died waits before another takes it
	// over. Leases are renewed every Lease/3, so a node that stalls for longer
	// than Lease may see its calls repeated (same idempotency key) by another.
	Lease time.Duration
}

// Engine runs tasks. Create it with New, then Start it.
type Engine struct {
	cfg    Config
	st     store.Store
	clock  Clock
	log    *slog.Logger
	seal   *sealer
	client *http.Client
	m      Metrics

	mu       sync.RWMutex
	current  map[string]*processes.Definition // by name
	versions map[string]*processes.Definition // by name@version

	locks taskLocks
	work  chan uuid.UUID
	calls chan struct{}
	admit chan struct{}
	wake  chan struct{}
	stop  chan struct{}
	// fireCPU bounds the timer fires that compute at once (see fire).
	fireCPU chan struct{}
	wg      sync.WaitGroup
	started bool
	// cl is the engine's share of a cluster; nil for a single engine.
	cl *cluster
	// bulk runs the bulk jobs (bulk.go); alarm watches the queue alarms
	// (alarm.go).
	bulk  *bulkService
	alarm *alarmService
}

// New checks cfg and returns an engine. It records every current version in
// the store.
func New(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.Store == nil || cfg.Loader == nil {
		return nil, errors.New("engine: Store and Loader are required")
	}
	s, err := newSealer(cfg.Key)
	if err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = defaultClient()
	}
	cfg.Workers = orDefault(cfg.Workers, 8)
	cfg.MaxCalls = orDefault(cfg.MaxCalls, 1024)
	cfg.LoopLimit = orDefault(cfg.LoopLimit, 100)
	cfg.MaxTaskSize = orDefault(cfg.MaxTaskSize, 128<<10)
	cfg.TimerBatch = orDefault(cfg.TimerBatch, 256)
	cfg.MaxInflight = orDefault(cfg.MaxInflight, 4096)
	if cfg.TimerPoll <= 0 {
		cfg.TimerPoll = time.Second
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 30 * 24 * time.Hour
	}
	if cfg.PurgeInterval <= 0 {
		cfg.PurgeInterval = time.Minute
	}
	if cfg.Metrics == nil {
		cfg.Metrics = nopMetrics{}
	}
	e := &Engine{cfg: cfg, st: cfg.Store, clock: cfg.Clock, log: cfg.Logger, seal: s, client: cfg.HTTPClient,
		m: cfg.Metrics, current: map[string]*processes.Definition{}, versions: map[string]*processes.Definition{},
		work: make(chan uuid.UUID, 4096), calls: make(chan struct{}, cfg.MaxCalls), admit: make(chan struct{}, cfg.MaxInflight),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), fireCPU: make(chan struct{}, runtime.GOMAXPROCS(0))}
	for _, d := range cfg.Definitions {
		for _, name := range d.EnvRefs {
			if cfg.Env[name] == "" {
				return nil, fmt.Errorf("engine: process %s reads env.%s, which is not configured", d.Name, name)
			}
		}
		for _, name := range d.Secrets {
			if cfg.Secrets[name] == "" {
				return nil, fmt.Errorf("engine: process %s needs the secret %s, which is not configured", d.Name, name)
			}
		}
		e.current[d.Name] = d
		e.versions[d.Name+"@"+d.Version] = d
		err := e.st.PutVersion(ctx, store.Version{Process: d.Name, Version: d.Version, File: d.File, Source: d.Source, Loaded: e.clock.Now()})
		if err != nil {
			return nil, fmt.Errorf("engine: record version of %s: %w", d.Name, err)
		}
	}
	e.bulk, e.alarm = newBulkService(), newAlarmService()
	if err := e.checkAlarms(); err != nil {
		return nil, err
	}
	e.cl = newCluster(e)
	return e, nil
}

func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// defaultClient refuses redirects to another host: a flow's URL decides where
// requests go, never a reply.
func defaultClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			if req.URL.Host != via[0].URL.Host {
				return fmt.Errorf("redirect to another host (%s) refused", req.URL.Host)
			}
			return nil
		},
	}
}

// Start launches the workers and the timer service, and queues every task a
// previous run left runnable; in a cluster it starts the claimer instead,
// which takes over what no live engine works on. Stop ends them.
func (e *Engine) Start(ctx context.Context) error {
	if e.started {
		return errors.New("engine: already started")
	}
	e.started = true
	for range e.cfg.Workers {
		e.wg.Go(e.worker)
	}
	e.wg.Go(e.timers)
	e.wg.Go(e.purger)
	e.wg.Go(e.bulkRunner)
	e.wg.Go(e.alarmWatcher)
	if e.cl != nil {
		return e.cl.start(ctx)
	}
	return e.recover(ctx)
}

// Stop stops taking work and waits for the workers, the timer service and
// in-flight calls to finish their current step. Tasks they did not finish
// stay runnable in the store and resume on the next Start.
// CloseIdleConnections closes the idle connections of the client that sends
// outbound calls. A server shutting down calls it first: an idle
// connection to a provider it serves itself (the sandbox) would otherwise
// hold http.Server.Shutdown for five seconds.
func (e *Engine) CloseIdleConnections() { e.client.CloseIdleConnections() }

func (e *Engine) Stop() {
	if !e.started {
		return
	}
	close(e.stop)
	e.wg.Wait()
	e.cl.stop()
	e.started = false
}

// recover queues every runnable task, in the background so that a large
// backlog does not delay start-up.
func (e *Engine) recover(ctx context.Context) error {
	ids, err := e.st.Runnable(ctx, uuid.Nil, 1000)
	if err != nil {
		return fmt.Errorf("engine: scan runnable tasks: %w", err)
	}
	e.wg.Go(func() {
		for len(ids) > 0 {
			for _, id := range ids {
				select {
				case e.work <- id:
				case <-e.stop:
					return
				}
			}
			next, err := e.st.Runnable(context.Background(), ids[len(ids)-1], 1000)
			if err != nil {
				e.log.Error("scan runnable tasks", "err", err)
				return
			}
			ids = next
		}
	})
	return nil
}

// Definition returns the current version of a process.
func (e *Engine) Definition(name string) (*processes.Definition, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	d, ok := e.current[name]
	return d, ok
}

// Definitions returns the current version of every process.
func (e *Engine) Definitions() []*processes.Definition {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make([]*processes.Definition, 0, len(e.current))
	for _, d := range e.cfg.Definitions {
		out = append(out, e.current[d.Name])
	}
	return out
}

// definition returns the version a task runs on, compiling it from the store
// when it is not current.
func (e *Engine) definition(ctx context.Context, name, version string) (*processes.Definition, error) {
	key := name + "@" + version
	e.mu.RLock()
	d := e.versions[key]
	e.mu.RUnlock()
	if d != nil {
		return d, nil
	}
	v, err := e.st.Version(ctx, name, version)
	if err != nil {
		return nil, fmt.Errorf("engine: version %s: %w", key, err)
	}
	d, err = e.cfg.Loader.Load(v.File, v.Source)
	if err != nil {
		return nil, fmt.Errorf("engine: compile stored version %s: %w", key, err)
	}
	e.mu.Lock()
	e.versions[key] = d
	e.mu.Unlock()
	return d, nil
}

// lock serialises event handling for one task within this process; the
// store's revision check protects against everyone else.
func (e *Engine) lock(id uuid.UUID) func() { return e.locks.lock(id) }

// dispatch queues a runnable task for a worker without blocking the caller;
// when the queue is full a goroutine waits for room.
func (e *Engine) dispatch(id uuid.UUID) {
	select {
	case e.work <- id:
	default:
		e.wg.Go(func() {
			select {
			case e.work <- id:
			case <-e.stop:
			}
		})
	}
}

// kick wakes the timer service early (a nearer timer was committed).
func (e *Engine) kick() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *Engine) worker() {
	for {
		select {
		case <-e.stop:
			return
		case id := <-e.work:
			e.runTask(id)
		}
	}
}

// notFound maps a store miss to the API's error.
func notFound(err error, format string, args ...any) error {
	if errors.Is(err, store.ErrNotFound) {
		return conveyor.Errorf(conveyor.ENotFound, format, args...)
	}
	return err
}

// admitOne admits one submit or callback, or refuses it when MaxInflight are
// already being handled: load is shed, never queued without bound.
func (e *Engine) admitOne() (release func(), err error) {
	select {
	case e.admit <- struct{}{}:
		return func() { <-e.admit }, nil
	default:
		return nil, conveyor.Errorf(conveyor.ETooMany, "the engine is at capacity (%d requests in progress); retry shortly", e.cfg.MaxInflight)
	}
}

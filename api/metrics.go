package api

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/conveyor-dev/conveyor/engine"
)

// Metric names, the contract with dashboards and alerts.
const (
	MetricTasks          = "conveyor_tasks"
	MetricTasksArrived   = "conveyor_tasks_arrived_total"
	MetricTransitions    = "conveyor_transitions_total"
	MetricCallDuration   = "conveyor_api_call_duration_seconds"
	MetricCallbacks      = "conveyor_callbacks_total"
	MetricTimerLag       = "conveyor_timer_lag_seconds"
	MetricCommitDuration = "conveyor_store_commit_duration_seconds"
	MetricCommitErrors   = "conveyor_store_commit_errors_total"
	// The bolt store's group commits: each is one transaction (two
	// fsyncs) that writes the commits queued while the previous one ran.
	MetricGroupCommitDuration = "conveyor_store_group_commit_duration_seconds"
	MetricGroupCommitRequests = "conveyor_store_group_commit_requests"
	MetricGroupCommitWrite    = "conveyor_store_group_commit_write_seconds"
	MetricGroupCommitPages    = "conveyor_store_group_commit_pages"
	// The bolt store's history backlog: entries that large group commits
	// left for the idle writer to move into history.
	MetricHistoryBacklog = "conveyor_store_history_backlog"
	MetricHTTPRequests   = "conveyor_http_requests_total"
	MetricHTTPDuration   = "conveyor_http_request_duration_seconds"
	MetricQueueAlarm     = "conveyor_queue_alarm"
)

// groupCommitSeconds are the buckets of the group commits' durations and
// of their disk part: from half a millisecond (a small group on a fast
// disk) to a second (a burst's transaction on a slow one).
var groupCommitSeconds = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}

// countsTimeout bounds the store read of a scrape.
const countsTimeout = 5 * time.Second

// Metrics implements engine.Metrics with Prometheus collectors. Create it
// with NewMetrics on the registry that Config.Registry names, and pass it to
// engine.Config.Metrics.
type Metrics struct {
	transitions  *prometheus.CounterVec
	calls        *prometheus.HistogramVec
	callbacks    *prometheus.CounterVec
	timerLag     prometheus.Histogram
	commits      prometheus.Histogram
	commitErrors prometheus.Counter
	alarms       *prometheus.GaugeVec
	groups       prometheus.Histogram
	groupSizes   prometheus.Histogram
	groupWrites  prometheus.Histogram
	groupPages   prometheus.Histogram
	backlog      prometheus.Gauge
}

var _ engine.Metrics = (*Metrics)(nil)

// NewMetrics creates the engine's collectors and registers them with reg.
// Registering twice on one registry reuses the collectors already there.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	return &Metrics{
		transitions: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricTransitions, Help: "Moves of tasks from node to node, by process, source and target node and event.",
		}, []string{"process", "from", "to", "event"})),
		calls: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: MetricCallDuration, Help: "Latency of outbound API call attempts, by process, node and outcome (ok, 5xx, timeout, ...).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"process", "node", "outcome"})),
		callbacks: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricCallbacks, Help: "Callback answers: accepted, duplicate, not_waiting, unknown, refused.",
		}, []string{"result"})),
		timerLag: register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: MetricTimerLag, Help: "How late timers fired: fire time minus due time.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900},
		})),
		commits: register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: MetricCommitDuration, Help: "Latency of the engine's store commits, fsync included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		})),
		commitErrors: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: MetricCommitErrors, Help: "Store commits that failed.",
		})),
		alarms: register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: MetricQueueAlarm, Help: "Queue alarms of nodes: 1 while the tasks in the node are at or above its alarm threshold, else 0.",
		}, []string{"process", "node"})),
		groups: register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    MetricGroupCommitDuration,
			Help:    "Duration of the bolt store's group-commit transactions, fsync included. The rate of the sum is the share of time its single writer is busy: near 1 it is the bottleneck.",
			Buckets: groupCommitSeconds,
		})),
		groupSizes: register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    MetricGroupCommitRequests,
			Help:    "Requests (engine commits, purges) written by each of the bolt store's group commits.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 13), // 1 .. 4096, the store's largest group
		})),
		groupWrites: register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    MetricGroupCommitWrite,
			Help:    "Part of each group commit spent writing its dirty pages and syncing them (two fsyncs). The rest of the duration is the writer's work in memory.",
			Buckets: groupCommitSeconds,
		})),
		groupPages: register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    MetricGroupCommitPages,
			Help:    "Pages (4 KiB) each group commit of the bolt store wrote: scattered writes, one per B-tree leaf or branch its commits touched.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 15), // 1 .. 16384
		})),
		backlog: register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: MetricHistoryBacklog, Help: "History entries in the bolt store's backlog: appended by large group commits (a burst of timeouts, a bulk action) and moved into history by the writer when it idles. Non-zero for long means a writer that never idles.",
		})),
	}
}

// GroupCommit observes one transaction of the bolt store's writer: how many
// requests it wrote (0 for a move of the history backlog, which counts in
// every histogram but that of requests), how long it took, how much of that
// went to writing and syncing pages, how many pages it wrote, and how many
// history entries wait in the backlog after it. Other stores have no group
// commits and leave the four histograms empty and the gauge at 0.
func (m *Metrics) GroupCommit(requests int, took, write time.Duration, pages, backlog int) {
	m.groups.Observe(took.Seconds())
	if requests > 0 {
		m.groupSizes.Observe(float64(requests))
	}
	m.groupWrites.Observe(write.Seconds())
	m.groupPages.Observe(float64(pages))
	m.backlog.Set(float64(backlog))
}

// Transition implements engine.Metrics.
func (m *Metrics) Transition(process, from, to, event string) {
	m.transitions.WithLabelValues(process, from, to, event).Inc()
}

// Call implements engine.Metrics.
func (m *Metrics) Call(process, node, outcome string, d time.Duration) {
	m.calls.WithLabelValues(process, node, outcome).Observe(d.Seconds())
}

// Callback implements engine.Metrics.
func (m *Metrics) Callback(result string) { m.callbacks.WithLabelValues(result).Inc() }

// TimerLag implements engine.Metrics.
func (m *Metrics) TimerLag(d time.Duration) { m.timerLag.Observe(max(d, 0).Seconds()) }

// Commit implements engine.Metrics.
func (m *Metrics) Commit(d time.Duration, err error) {
	m.commits.Observe(d.Seconds())
	if err != nil {
		m.commitErrors.Inc()
	}
}

// Alarm implements engine.Metrics.
func (m *Metrics) Alarm(process, node string, on bool) {
	v := 0.0
	if on {
		v = 1
	}
	m.alarms.WithLabelValues(process, node).Set(v)
}

// httpMetrics counts the API's requests by route pattern and status.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec

	// series caches each route and status's collectors: the vectors'
	// lookups validate and hash the labels (and format the status) on
	// every request otherwise. Routes are patterns, so there are few.
	mu     sync.RWMutex
	series map[httpSeries]httpObservers
}

type httpSeries struct {
	route  string
	status int
}

type httpObservers struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	return &httpMetrics{
		requests: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricHTTPRequests, Help: "HTTP requests by route pattern and status.",
		}, []string{"route", "status"})),
		duration: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: MetricHTTPDuration, Help: "HTTP request latency by route pattern.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"})),
		series: map[httpSeries]httpObservers{},
	}
}

func (m *httpMetrics) observe(route string, status int, d time.Duration) {
	key := httpSeries{route, status}
	m.mu.RLock()
	o, ok := m.series[key]
	m.mu.RUnlock()
	if !ok {
		o = httpObservers{m.requests.WithLabelValues(route, strconv.Itoa(status)), m.duration.WithLabelValues(route)}
		m.mu.Lock()
		m.series[key] = o
		m.mu.Unlock()
	}
	o.requests.Inc()
	o.duration.Observe(d.Seconds())
}

// taskCollector exports the engine's node counters at scrape time, so the
// gauges are as exact as the store and cost nothing between scrapes.
type taskCollector struct {
	eng *engine.Engine
}

var (
	descTasks = prometheus.NewDesc(MetricTasks,
		"Tasks standing in a node now, by status (read from the store at scrape time).",
		[]string{"process", "node", "status"}, nil)
	descTasksArrived = prometheus.NewDesc(MetricTasksArrived,
		"Tasks that ever arrived in a final node (survives purges).",
		[]string{"process", "node"}, nil)
)

// Describe implements prometheus.Collector.
func (c *taskCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descTasks
	ch <- descTasksArrived
}

// Collect implements prometheus.Collector.
func (c *taskCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), countsTimeout)
	defer cancel()
	counts, err := c.eng.Counts(ctx, "")
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descTasks, err)
		return
	}
	for _, nc := range counts {
		for status, n := range nc.Now {
			ch <- prometheus.MustNewConstMetric(descTasks, prometheus.GaugeValue, float64(n), nc.Process, nc.Node, string(status))
		}
		if nc.Total > 0 {
			ch <- prometheus.MustNewConstMetric(descTasksArrived, prometheus.CounterValue, float64(nc.Total), nc.Process, nc.Node)
		}
	}
}

// register registers c with reg, or returns the equal collector already
// registered.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}

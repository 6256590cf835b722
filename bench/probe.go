package bench

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conveyor-dev/conveyor/engine"
	"github.com/conveyor-dev/conveyor/store"
	"github.com/conveyor-dev/conveyor/store/bolt"
)

// probe watches a service from inside its engine: it counts commits and
// moves, keeps timer lags, and tells the client waiting on a task (by ref)
// about each commit of it, so that end-to-end latency is measured where the
// final state becomes durable instead of by polling.
type probe struct {
	next engine.Metrics // the service's own metrics, still fed

	commits     atomic.Int64
	transitions atomic.Int64

	// commitLat keeps the latency of every engine commit, queueing in the
	// group commit and fsync included.
	commitMu  sync.Mutex
	commitLat []time.Duration

	lagMu sync.Mutex
	lags  []time.Duration

	// groups keeps the store's group commits and when each ended.
	groupMu sync.Mutex
	groups  []groupCommit

	// finished counts the tasks that reached a final status; lastFinish is
	// when the latest did (Unix nanoseconds).
	finished   atomic.Int64
	lastFinish atomic.Int64

	waiters waiters
}

var _ engine.Metrics = (*probe)(nil)

func newProbe() *probe { return &probe{waiters: waiters{m: map[string]chan event{}}} }

// configure installs the probe in an engine configuration.
func (p *probe) configure(c *engine.Config) {
	p.next = c.Metrics
	c.Metrics = p
	prev := c.OnCommit
	c.OnCommit = func(t *store.Task) {
		if prev != nil {
			prev(t)
		}
		if t.Status.Final() {
			p.finished.Add(1)
			storeMax(&p.lastFinish, time.Now().UnixNano())
		}
		if t.Ref != "" {
			p.waiters.notify(t.Ref, event{Node: t.Node, Status: t.Status, At: time.Now()})
		}
	}
}

// storeMax sets v to n unless it already holds more.
func storeMax(v *atomic.Int64, n int64) {
	for old := v.Load(); old < n && !v.CompareAndSwap(old, n); old = v.Load() {
	}
}

// Transition implements engine.Metrics.
func (p *probe) Transition(process, from, to, ev string) {
	p.transitions.Add(1)
	if p.next != nil {
		p.next.Transition(process, from, to, ev)
	}
}

// Call implements engine.Metrics.
func (p *probe) Call(process, node, outcome string, d time.Duration) {
	if p.next != nil {
		p.next.Call(process, node, outcome, d)
	}
}

// Callback implements engine.Metrics.
func (p *probe) Callback(result string) {
	if p.next != nil {
		p.next.Callback(result)
	}
}

// TimerLag implements engine.Metrics.
func (p *probe) TimerLag(d time.Duration) {
	p.lagMu.Lock()
	p.lags = append(p.lags, d)
	p.lagMu.Unlock()
	if p.next != nil {
		p.next.TimerLag(d)
	}
}

// Commit implements engine.Metrics.
func (p *probe) Commit(d time.Duration, err error) {
	if err == nil {
		p.commits.Add(1)
		p.commitMu.Lock()
		p.commitLat = append(p.commitLat, d)
		p.commitMu.Unlock()
	}
	if p.next != nil {
		p.next.Commit(d, err)
	}
}

// Alarm implements engine.Metrics.
func (p *probe) Alarm(process, node string, on bool) {
	if p.next != nil {
		p.next.Alarm(process, node, on)
	}
}

// groupCommit is one transaction of the store's writer.
type groupCommit struct {
	end time.Time
	bolt.GroupCommit
}

// storeCommit is the store's commit observer (ServiceOptions.StoreCommits).
func (p *probe) storeCommit(g bolt.GroupCommit) {
	p.groupMu.Lock()
	p.groups = append(p.groups, groupCommit{end: time.Now(), GroupCommit: g})
	p.groupMu.Unlock()
}

// groupStats sums up the group commits that ended between from and to, and
// the moves of the history backlog among them.
type groupStats struct {
	perSecond, requests, busy float64 // groups/s, commits per group, share of the time the writer was in a transaction (moves included)
	pages                     float64 // pages written per group
	took, write               time.Duration
	moves                     int           // moves of the history backlog
	moveTook                  time.Duration // per move
	// logged: the groups were answered by the write-ahead log, each one
	// record appended and synced; applies, applied and applyTook are the
	// writer's transactions that applied the log to the file meanwhile.
	logged    bool
	applies   int
	applied   int
	applyTook time.Duration
}

func (p *probe) groupsBetween(from, to time.Time) (groupStats, bool) {
	p.groupMu.Lock()
	defer p.groupMu.Unlock()
	var n, requests, pages, moves, applies, applied int
	var took, write, moveTook, applyTook time.Duration
	logged := false
	for _, g := range p.groups {
		switch {
		case !g.end.After(from) || g.end.After(to):
		case g.Applied > 0: // bbolt catching up with the write-ahead log: no commit answered
			applies, applied, applyTook = applies+1, applied+g.Applied, applyTook+g.Took
		case g.Requests == 0:
			moves, moveTook = moves+1, moveTook+g.Took
		default:
			n, requests, pages = n+1, requests+g.Requests, pages+g.Pages
			took, write = took+g.Took, write+g.Write
			logged = logged || g.Logged
		}
	}
	span := to.Sub(from).Seconds()
	if n == 0 || span <= 0 {
		return groupStats{}, false
	}
	g := groupStats{perSecond: float64(n) / span, requests: float64(requests) / float64(n),
		busy: (took + moveTook).Seconds() / span, pages: float64(pages) / float64(n),
		took: took / time.Duration(n), write: write / time.Duration(n), moves: moves,
		logged: logged, applies: applies, applied: applied, applyTook: applyTook}
	if moves > 0 {
		g.moveTook = moveTook / time.Duration(moves)
	}
	return g, true
}

func (g groupStats) String() string {
	if g.logged {
		s := fmt.Sprintf("the store's logger ran %.0f group commits/s of %.1f commits each, %.2f ms per group, "+
			"of which %.2f ms appending its record to the write-ahead log and syncing it, busy %.0f %% of the time",
			g.perSecond, g.requests, ms(g.took), ms(g.write), 100*g.perSecond*g.took.Seconds())
		if g.applies > 0 {
			s += fmt.Sprintf("; the writer applied %d logged writes to the file in %d transactions (%.0f ms in all)", g.applied, g.applies, ms(g.applyTook))
		} else {
			s += "; the file applied none of it meanwhile"
		}
		return s
	}
	s := fmt.Sprintf("the store's writer ran %.0f group commits/s of %.1f commits each, %.2f ms per transaction, "+
		"of which %.2f ms writing %.0f pages (%.1f per commit) and syncing them, in a transaction %.0f %% of the time",
		g.perSecond, g.requests, ms(g.took), ms(g.write), g.pages, g.pages/g.requests, 100*g.busy)
	if g.moves > 0 {
		s += fmt.Sprintf(" (history backlog moves: %d, %.2f ms each)", g.moves, ms(g.moveTook))
	}
	return s
}

// commitLatencies returns the commit latencies observed so far and forgets
// them.
func (p *probe) commitLatencies() []time.Duration {
	p.commitMu.Lock()
	defer p.commitMu.Unlock()
	out := p.commitLat
	p.commitLat = nil
	return out
}

// timerLags returns the lags observed so far.
func (p *probe) timerLags() []time.Duration {
	p.lagMu.Lock()
	defer p.lagMu.Unlock()
	return slices.Clone(p.lags)
}

// event is one commit of a task a client waits on.
type event struct {
	Node   string
	Status store.Status
	At     time.Time
}

// settled reports whether the task will not move without someone acting.
func (e event) settled() bool {
	return e.Status.Final() || e.Status == store.StatusEscalated
}

// waiters routes commit events to the clients waiting on them, by key.
type waiters struct {
	mu sync.Mutex
	m  map[string]chan event
}

// expect registers a waiter for key before the request that creates it is
// sent, so no commit can be missed.
func (w *waiters) expect(key string) chan event {
	ch := make(chan event, 64)
	w.mu.Lock()
	w.m[key] = ch
	w.mu.Unlock()
	return ch
}

func (w *waiters) forget(key string) {
	w.mu.Lock()
	delete(w.m, key)
	w.mu.Unlock()
}

// notify never blocks the committing goroutine: a waiter that fell 64
// events behind loses the newest (and times out, which is reported).
func (w *waiters) notify(key string, ev event) {
	w.mu.Lock()
	ch := w.m[key]
	w.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case ch <- ev:
	default:
	}
}

// await reads events until one satisfies ok, or the limit passes.
func await(ch chan event, limit time.Duration, ok func(event) bool) (event, bool) {
	t := time.NewTimer(limit)
	defer t.Stop()
	for {
		select {
		case ev := <-ch:
			if ok(ev) {
				return ev, true
			}
		case <-t.C:
			return event{}, false
		}
	}
}

// ackRecorder keeps the latency of every callback POST (to a path under
// /callbacks/) from the moment the sender sent it to its 2xx answer.
type ackRecorder struct {
	mu      sync.Mutex
	samples []sample
	refused atomic.Int64
}

type sample struct {
	at time.Time
	d  time.Duration
}

func (a *ackRecorder) record(at time.Time, d time.Duration) {
	a.mu.Lock()
	a.samples = append(a.samples, sample{at, d})
	a.mu.Unlock()
}

// between returns the latencies of the callbacks sent in [from, to).
func (a *ackRecorder) between(from, to time.Time) []time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []time.Duration
	for _, s := range a.samples {
		if !s.at.Before(from) && s.at.Before(to) {
			out = append(out, s.d)
		}
	}
	return out
}

func (a *ackRecorder) reset() {
	a.mu.Lock()
	a.samples = nil
	a.mu.Unlock()
	a.refused.Store(0)
}

// timingTransport times the callback POSTs that go through it.
type timingTransport struct {
	next http.RoundTripper
	acks *ackRecorder
}

func (t timingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.HasPrefix(req.URL.Path, "/callbacks/") {
		return t.next.RoundTrip(req)
	}
	start := time.Now()
	resp, err := t.next.RoundTrip(req)
	if err == nil && resp.StatusCode >= 200 && resp.StatusCode < 300 {
		t.acks.record(start, time.Since(start))
	} else {
		t.acks.refused.Add(1)
	}
	return resp, err
}

// newCallbackTransport returns the transport the simulators send their
// callbacks on during a run (the service's and the ceiling's alike), timing
// each callback on the sender's side, and a function that closes its idle
// connections. Like the service's default sandbox transport it keeps many
// idle connections (as many as the busiest scenario has callers): with Go's
// default two, a simulator calling back at thousands per second would
// measure TCP handshakes and TIME_WAIT, not the service.
func newCallbackTransport(acks *ackRecorder) (http.RoundTripper, func()) {
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = 512
	return timingTransport{next: base, acks: acks}, base.CloseIdleConnections
}

// CloseIdleConnections closes the idle connections of the transport it
// wraps, so that http.Client.CloseIdleConnections reaches them: a server
// shutting down closes the callbacks' idle connections through its client.
func (t timingTransport) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// quantile returns the q-quantile (0..1) of ds, 0 when empty.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s)-1) + 0.5)
	return s[min(i, len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

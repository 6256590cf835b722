package engine

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/conveyor-dev/conveyor/store"
)

// Cluster mode. When Config.Store can lease tasks (store/postgres can),
// several engines share it and the work, each under its own Config.Owner:
//
//   - Correctness does not depend on leases: every commit names the revision
//     it was decided on, so when two engines move one task, one commit wins
//     and the other reloads or drops its step.
//   - Leases keep work from being done twice, chiefly outbound calls. An
//     engine sends a call only while it holds the task's lease: it takes it
//     after the commit that decided the call (TryLease: free, expired, or its
//     own), renews it while the call is in flight, and gives it back after
//     the commit that applied the reply. An engine that cannot take the lease
//     does not send: the holder loads the task afresh when it is done with
//     it, and whatever is still owed then is found by a claimer.
//   - The claimer of every engine (on a wake-up, at most every wakeGap, and
//     every Lease/3) frees the leases of engines that died (RescueExpired)
//     and claims active tasks that nobody has committed for claimGrace
//     (ClaimIdle): work a dead engine left, or work whose engine could not
//     lease it. The grace keeps a fresh task with the engine that committed
//     it, which leases it itself moments later.
//   - Timers are claimed too (ClaimDue), so each fires on one engine.
//   - Wake-ups come over LISTEN/NOTIFY: commits that make work notify, and
//     idle engines do not poll hard.
//
// An engine that stalls for longer than a lease (a long GC pause, a network
// partition) may find that another engine took over its work: the calls it
// then finishes may be sent twice, always with the same idempotency key.

// leaser is what a store offers engines that share it (store/postgres).
type leaser interface {
	// Channel is the channel commits notify when they make work.
	Channel() string
	// Listen returns a channel that receives a value after notifications on
	// channel; it is closed when ctx ends or the store closes.
	Listen(ctx context.Context, channel string) (<-chan struct{}, error)
	// TryLease leases one task to owner when its lease is free, expired or
	// owner's, and reports whether owner holds it.
	TryLease(ctx context.Context, owner string, id uuid.UUID, now time.Time, lease time.Duration) (bool, error)
	// ClaimIdle leases active tasks without a timer, free or expired, that
	// were not committed for idle.
	ClaimIdle(ctx context.Context, owner string, now time.Time, idle, lease time.Duration, limit int) ([]uuid.UUID, error)
	// ClaimDue leases tasks whose timer is due, free or expired.
	ClaimDue(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]store.Timer, error)
	// RenewLease extends owner's leases on ids and returns those it renewed.
	RenewLease(ctx context.Context, owner string, ids []uuid.UUID, lease time.Duration) ([]uuid.UUID, error)
	// ReleaseLease frees owner's leases on ids.
	ReleaseLease(ctx context.Context, owner string, ids []uuid.UUID) error
	// ReleaseOwner frees every lease owner holds.
	ReleaseOwner(ctx context.Context, owner string) (int, error)
	// RescueExpired frees every lease that expired at or before now.
	RescueExpired(ctx context.Context, now time.Time) (int, error)
}

const (
	// wakeGap is the least time between two rounds that wake-ups start: a
	// busy cluster notifies on every submit, and a claim per notification
	// would cost more than the work.
	wakeGap = 100 * time.Millisecond
	// maxGrace caps claimGrace.
	maxGrace = 2 * time.Second
)

// acquireBackoff is how long an engine waits between its tries to lease a
// task it owes a call: the holder is usually about to give it back (it has
// just committed the step that made the task wait).
var acquireBackoff = []time.Duration{0, 20 * time.Millisecond, 100 * time.Millisecond, 400 * time.Millisecond}

// cluster is an engine's share of a cluster: its owner name, the leases it
// holds, and the claimer, listener and renewer services.
type cluster struct {
	e     *Engine
	st    leaser
	owner string
	lease time.Duration
	// grace is how long a task must be left alone before another engine
	// claims it: min(Lease/3, maxGrace).
	grace time.Duration

	// locks serialise taking and giving back one task's lease, so that a
	// release and a new acquire of one task reach the store in order.
	locks [64]sync.Mutex
	mu    sync.Mutex
	// held counts, per task this engine leases, the pieces of work in
	// progress on it (a call, a claimed step, a timer); the lease is given
	// back when the count falls to 0.
	held map[uuid.UUID]int

	wake   chan struct{} // wakes the claimer
	claims chan struct{} // bounds the claimed tasks run at once
	cancel context.CancelFunc
	quit   chan struct{} // stops the renewer, after the engine's work ended
	done   chan struct{} // closed when the renewer returned
}

// newCluster returns the engine's cluster share, or nil when its store
// cannot lease (a single engine: nothing changes).
func newCluster(e *Engine) *cluster {
	st, ok := e.st.(leaser)
	if !ok {
		return nil
	}
	owner := e.cfg.Owner
	if owner == "" {
		owner = defaultOwner()
	}
	lease := e.cfg.Lease
	if lease <= 0 {
		lease = 30 * time.Second
	}
	return &cluster{e: e, st: st, owner: owner, lease: lease, grace: min(lease/3, maxGrace),
		held: map[uuid.UUID]int{}, wake: make(chan struct{}, 1), claims: make(chan struct{}, e.cfg.Workers),
		quit: make(chan struct{}), done: make(chan struct{})}
}

// defaultOwner names an engine: host, process id and a random suffix, so two
// engines never share a name, even across restarts.
func defaultOwner() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "conveyor"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}

// Owner returns the name this engine leases tasks under in a cluster, ""
// for a single engine.
func (e *Engine) Owner() string {
	if e.cl == nil {
		return ""
	}
	return e.cl.owner
}

// start frees the leases a previous life of this owner left, listens for
// wake-ups and starts the claimer and the renewer. The first claim round runs
// at once: it is the cluster's recovery.
func (c *cluster) start(ctx context.Context) error {
	if n, err := c.st.ReleaseOwner(ctx, c.owner); err != nil {
		return fmt.Errorf("engine: free the leases of a previous run: %w", err)
	} else if n > 0 {
		c.e.log.Info("cluster: freed the leases of a previous run of this node", "owner", c.owner, "count", n)
	}
	lctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	wake, err := c.st.Listen(lctx, c.st.Channel())
	if err != nil {
		cancel()
		return fmt.Errorf("engine: listen for work: %w", err)
	}
	c.e.log.Info("cluster mode", "owner", c.owner, "lease", c.lease.String())
	c.e.wg.Go(func() { c.listen(wake) })
	c.e.wg.Go(c.claimer)
	go c.renewer()
	return nil
}

// stop ends the renewer once the engine's work has ended (Engine.Stop waits
// for it first, since calls in flight need their leases renewed).
func (c *cluster) stop() {
	if c == nil || c.cancel == nil {
		return
	}
	c.cancel()
	close(c.quit)
	<-c.done
}

// listen turns notifications into wake-ups of the claimer and the timer
// service, at most one per wakeGap.
func (c *cluster) listen(wake <-chan struct{}) {
	defer c.cancel()
	for {
		select {
		case <-c.e.stop:
			return
		case _, ok := <-wake:
			if !ok {
				return // the store closed; the claimer still polls
			}
		}
		signal(c.wake)
		c.e.kick()
		select {
		case <-c.e.stop:
			return
		case <-time.After(wakeGap):
		}
	}
}

// claimer is the service that finds work no engine does: every Lease/3, and
// after wake-ups, it rescues expired leases and claims idle active tasks.
func (c *cluster) claimer() {
	for {
		full := c.claim(context.Background())
		if full {
			select {
			case <-c.e.stop:
				return
			default:
				continue // a backlog: another round at once
			}
		}
		select {
		case <-c.e.stop:
			return
		case <-c.wake:
		case <-c.e.clock.After(c.lease / 3):
		}
	}
}

// claim runs one round of the claimer and reports whether it claimed a full
// batch. Each claimed task gets a step (runTask) and its lease back after.
func (c *cluster) claim(ctx context.Context) bool {
	now := c.e.clock.Now()
	if n, err := c.st.RescueExpired(ctx, now); err != nil {
		c.e.log.Error("cluster: rescue expired leases", "err", err)
	} else if n > 0 {
		c.e.log.Info("cluster: freed expired leases (a node died or stalled)", "count", n)
	}
	batch := cap(c.claims)
	ids, err := c.st.ClaimIdle(ctx, c.owner, now, c.grace, c.lease, batch)
	if err != nil {
		c.e.log.Error("cluster: claim idle tasks", "err", err)
		return false
	}
	if len(ids) == 0 {
		return false
	}
	c.e.log.Info("cluster: claimed tasks no node was working on", "count", len(ids))
	c.adopt(ids)
	for i, id := range ids {
		select {
		case c.claims <- struct{}{}:
		case <-c.e.stop:
			for _, id := range ids[i:] {
				c.release(id)
			}
			return false
		}
		c.e.wg.Go(func() {
			defer func() { <-c.claims }()
			defer c.release(id)
			c.e.runTask(id)
		})
	}
	return len(ids) == batch
}

// renewer renews the engine's leases every Lease/3 until stop.
func (c *cluster) renewer() {
	defer close(c.done)
	for {
		select {
		case <-c.quit:
			return
		case <-c.e.clock.After(c.lease / 3):
		}
		c.renew(context.Background())
	}
}

// renew extends every lease the engine holds and logs those it lost: another
// engine took them over after they expired, so the work in progress on them
// may be done twice (a call with the same idempotency key).
func (c *cluster) renew(ctx context.Context) {
	c.mu.Lock()
	ids := make([]uuid.UUID, 0, len(c.held))
	for id := range c.held {
		ids = append(ids, id)
	}
	c.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	renewed, err := c.st.RenewLease(ctx, c.owner, ids, c.lease)
	if err != nil {
		c.e.log.Error("cluster: renew leases", "count", len(ids), "err", err)
		return
	}
	if len(renewed) == len(ids) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		if _, ok := slices.BinarySearchFunc(renewed, id, compareUUID); !ok && c.held[id] > 0 {
			c.e.log.Warn("cluster: lost the lease of a task in progress; another node may repeat its call (same idempotency key)", "task_id", id)
		}
	}
}

func compareUUID(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) }

// lockOf returns the mutex that orders a task's lease operations.
func (c *cluster) lockOf(id uuid.UUID) *sync.Mutex { return &c.locks[int(id[15])%len(c.locks)] }

// join counts one more piece of work on a task whose lease the engine holds
// already and reports whether it does. Without a cluster it reports true:
// a single engine needs no lease.
func (c *cluster) join(id uuid.UUID) bool {
	if c == nil {
		return true
	}
	m := c.lockOf(id)
	m.Lock()
	defer m.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held[id] == 0 {
		return false
	}
	c.held[id]++
	return true
}

// acquire takes a task's lease for one piece of work, trying a few times
// while another engine holds it (it is usually about to give it back), and
// reports whether the engine holds it now. Without a cluster it reports
// true.
func (c *cluster) acquire(id uuid.UUID) bool {
	if c == nil {
		return true
	}
	for _, wait := range acquireBackoff {
		if wait > 0 {
			select {
			case <-c.e.stop:
				return false
			case <-time.After(wait):
			}
		}
		ok, err := c.tryAcquire(id)
		if err != nil {
			c.e.log.Error("cluster: lease a task", "task_id", id, "err", err)
			return false
		}
		if ok {
			return true
		}
	}
	c.e.log.Debug("cluster: another node holds the task; it will see what is owed", "task_id", id)
	return false
}

func (c *cluster) tryAcquire(id uuid.UUID) (bool, error) {
	m := c.lockOf(id)
	m.Lock()
	defer m.Unlock()
	c.mu.Lock()
	if c.held[id] > 0 {
		c.held[id]++
		c.mu.Unlock()
		return true, nil
	}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), c.lease/3)
	defer cancel()
	ok, err := c.st.TryLease(ctx, c.owner, id, c.e.clock.Now(), c.lease)
	if !ok || err != nil {
		return false, err
	}
	c.mu.Lock()
	c.held[id]++
	c.mu.Unlock()
	return true, nil
}

// adopt counts one piece of work on each of ids, which a claim has just
// leased to the engine.
func (c *cluster) adopt(ids []uuid.UUID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		c.held[id]++
	}
}

// release ends one piece of work on a task and gives its lease back when it
// was the last. Without a cluster it does nothing.
func (c *cluster) release(id uuid.UUID) {
	if c == nil {
		return
	}
	m := c.lockOf(id)
	m.Lock()
	defer m.Unlock()
	c.mu.Lock()
	c.held[id]--
	n := c.held[id]
	if n <= 0 {
		delete(c.held, id)
	}
	c.mu.Unlock()
	if n > 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.lease/3)
	defer cancel()
	if err := c.st.ReleaseLease(ctx, c.owner, []uuid.UUID{id}); err != nil {
		// It expires by itself; until then no other engine works on the task.
		c.e.log.Error("cluster: give a lease back", "task_id", id, "err", err)
	}
}

// due returns this round's due timers: in a cluster those the engine
// claimed (each with its lease, given back after firing), else all of them.
func (e *Engine) due(ctx context.Context, limit int) ([]store.Timer, error) {
	if e.cl == nil {
		return e.st.Due(ctx, e.clock.Now(), limit)
	}
	due, err := e.cl.st.ClaimDue(ctx, e.cl.owner, e.clock.Now(), e.cl.lease, limit)
	ids := make([]uuid.UUID, len(due))
	for i, t := range due {
		ids[i] = t.TaskID
	}
	e.cl.adopt(ids)
	return due, err
}

// signal sends a wake-up unless one is pending.
func signal(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"

	conveyor "github.com/conveyor-dev/conveyor"
	"github.com/conveyor-dev/conveyor/processes"
	"github.com/conveyor-dev/conveyor/store"
)

// Queue alarms (Corezoid's "alert when there is a tasks queue"). A node may
// declare alarm: {threshold: N, signal: PROCESS}. After every commit that
// moves a task into or out of such a node (or changes its status there), the
// alarm watcher reads the node's count — the tasks standing in it in any
// unfinished status, from the store's counters — and compares it with the
// threshold. Reaching it turns the alarm on, falling below turns it off; each
// crossing is
//
//   - recorded in the store (store.AlarmCrossing, numbered per node), whose
//     latest crossing is the alarm's state, so a restart neither fires it
//     again nor forgets it;
//   - exported through Metrics.Alarm (the gauge conveyor_queue_alarm);
//   - when signal names a process, announced by a task submitted to it with
//     the data {"process", "node", "tasks", "threshold", "start"} and the
//     ref alarm-<process>-<node>-<n>, n the crossing's number. tasks is the
//     count (no input field may be called count, an expression function);
//     start is true when the alarm goes on. The signal task is submitted
//     before the crossing is recorded: a crash in between submits it again
//     under the same ref, which finds the first one, so each crossing starts
//     one task.
//
// New refuses a signal process that is not loaded or whose input does not
// accept that data: it must declare process and node (string), tasks and
// threshold (integer) and start (boolean), and require nothing else.

// alarmRetry is how long the watcher waits before it looks again at alarms
// it could not evaluate (a store error, a refused signal task).
const alarmRetry = 5 * time.Second

// alarmKey names a node of a process.
type alarmKey struct{ process, node string }

// alarmService is the watcher's state.
type alarmService struct {
	// any is set when some current process has an alarm; commits skip the
	// bookkeeping otherwise.
	any  bool
	wake chan struct{}

	mu    sync.Mutex
	dirty map[alarmKey]bool

	// state is the latest crossing of each node, as the watcher last read or
	// wrote it; only the watcher's goroutine uses it.
	state  map[alarmKey]store.AlarmCrossing
	loaded bool
}

func newAlarmService() *alarmService {
	return &alarmService{wake: make(chan struct{}, 1), dirty: map[alarmKey]bool{}, state: map[alarmKey]store.AlarmCrossing{}}
}

// mark asks the watcher to look at a node again.
func (a *alarmService) mark(k alarmKey) {
	a.mu.Lock()
	a.dirty[k] = true
	a.mu.Unlock()
}

func (a *alarmService) kick() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// take returns the nodes to look at, grouped by process, and forgets them.
func (a *alarmService) take() map[string][]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string][]string{}
	for k := range a.dirty {
		out[k.process] = append(out[k.process], k.node)
	}
	clear(a.dirty)
	return out
}

// checkAlarms checks, at New, that every alarm's signal process is loaded and
// accepts the signal data.
func (e *Engine) checkAlarms() error {
	for _, d := range e.cfg.Definitions {
		for _, n := range d.Nodes {
			if n.Alarm == nil {
				continue
			}
			e.alarm.any = true
			sig := n.Alarm.Signal
			if sig == "" {
				continue
			}
			target, ok := e.current[sig]
			if !ok {
				return fmt.Errorf("engine: node %s of process %s signals its queue alarm to process %s, which is not loaded", n.Name, d.Name, sig)
			}
			if err := target.Input.Validate(signalData(d.Name, n.Name, int64(n.Alarm.Threshold), n.Alarm.Threshold, true)); err != nil {
				return fmt.Errorf("engine: node %s of process %s signals its queue alarm to process %s, whose input must accept "+
					"process and node (string), tasks and threshold (integer) and start (boolean): %w", n.Name, d.Name, sig, err)
			}
		}
	}
	return nil
}

// signalData is the input of a signal task.
func signalData(process, node string, count int64, threshold int, start bool) map[string]any {
	return map[string]any{
		"process": process, "node": node, "start": start,
		"tasks": json.Number(strconv.FormatInt(count, 10)), "threshold": json.Number(strconv.Itoa(threshold)),
	}
}

// alarmNode returns the node of a current process when it has an alarm.
func (e *Engine) alarmNode(process, node string) *processes.Node {
	d, ok := e.Definition(process)
	if !ok {
		return nil
	}
	if n := d.Node(node); n != nil && n.Alarm != nil {
		return n
	}
	return nil
}

// noteAlarms tells the watcher which alarm nodes a commit touched: the nodes
// its history entries leave and enter.
func (e *Engine) noteAlarms(process string, hist []store.HistoryEntry) {
	if !e.alarm.any {
		return
	}
	marked := false
	for _, h := range hist {
		for _, name := range [2]string{h.From, h.To} {
			if name != "" && e.alarmNode(process, name) != nil {
				e.alarm.mark(alarmKey{process, name})
				marked = true
			}
		}
	}
	if marked {
		e.alarm.kick()
	}
}

// alarmWatcher is the alarm service: at Start it loads the alarms' states,
// exports them and looks at every alarm (tasks may have moved while the
// engine was down); then it looks at the nodes commits touch.
func (e *Engine) alarmWatcher() {
	if !e.alarm.any {
		return
	}
	ctx := context.Background()
	for _, d := range e.Definitions() {
		for _, n := range d.Nodes {
			if n.Alarm != nil {
				e.alarm.mark(alarmKey{d.Name, n.Name})
			}
		}
	}
	for {
		var retry <-chan time.Time
		if !e.watchAlarms(ctx) {
			retry = e.clock.After(alarmRetry)
		}
		select {
		case <-e.stop:
			return
		case <-e.alarm.wake:
		case <-retry:
		}
	}
}

// watchAlarms evaluates the nodes marked, and reports whether it could.
func (e *Engine) watchAlarms(ctx context.Context) bool {
	if !e.alarm.loaded {
		if err := e.loadAlarms(ctx); err != nil {
			e.log.Error("queue alarms: read states", "err", err)
			return false
		}
	}
	ok := true
	for process, names := range e.alarm.take() {
		counts, err := e.st.Counts(ctx, process)
		if err != nil {
			e.log.Error("queue alarms: read counts", "process", process, "err", err)
		}
		now := map[string]int64{}
		for _, nc := range counts {
			for _, n := range nc.Now {
				now[nc.Node] += n
			}
		}
		for _, name := range names {
			k := alarmKey{process, name}
			if err != nil || !e.evaluate(ctx, k, now[name]) {
				e.alarm.mark(k)
				ok = false
			}
		}
	}
	return ok
}

// loadAlarms reads every alarm's state and exports it.
func (e *Engine) loadAlarms(ctx context.Context) error {
	states, err := e.st.AlarmStates(ctx)
	if err != nil {
		return err
	}
	for _, c := range states {
		e.alarm.state[alarmKey{c.Process, c.Node}] = c
	}
	for _, d := range e.Definitions() {
		for _, n := range d.Nodes {
			if n.Alarm != nil {
				e.m.Alarm(d.Name, n.Name, e.alarm.state[alarmKey{d.Name, n.Name}].On)
			}
		}
	}
	e.alarm.loaded = true
	return nil
}

// evaluate compares a node's count with its alarm's threshold and records a
// crossing; false means it must be looked at again.
func (e *Engine) evaluate(ctx context.Context, k alarmKey, count int64) bool {
	n := e.alarmNode(k.process, k.node)
	if n == nil {
		return true
	}
	prev := e.alarm.state[k]
	on := count >= int64(n.Alarm.Threshold)
	if on == prev.On {
		return true
	}
	c := store.AlarmCrossing{Process: k.process, Node: k.node, Seq: prev.Seq + 1, On: on, Count: count,
		Threshold: n.Alarm.Threshold, Signal: n.Alarm.Signal, At: e.clock.Now()}
	if c.Signal != "" {
		v, err := e.signal(ctx, c)
		if err != nil {
			e.log.Error("queue alarm: start the signal task", "process", k.process, "node", k.node, "signal", c.Signal, "err", err)
			return false
		}
		c.TaskID = v
	}
	err := e.st.PutAlarmCrossing(ctx, c)
	if errors.Is(err, store.ErrConflict) {
		// Another engine recorded this crossing: read where the alarm is.
		e.alarm.loaded = false
		return false
	}
	if err != nil {
		e.log.Error("queue alarm: record the crossing", "process", k.process, "node", k.node, "err", err)
		return false
	}
	e.alarm.state[k] = c
	e.m.Alarm(k.process, k.node, on)
	if on {
		e.log.Warn("queue alarm on", "process", k.process, "node", k.node, "count", count, "threshold", c.Threshold, "signal_task", c.TaskID)
	} else {
		e.log.Info("queue alarm off", "process", k.process, "node", k.node, "count", count, "threshold", c.Threshold, "signal_task", c.TaskID)
	}
	return true
}

// signal submits a crossing's signal task, or finds the one an earlier try
// submitted under the same ref.
func (e *Engine) signal(ctx context.Context, c store.AlarmCrossing) (uuid.UUID, error) {
	ref := fmt.Sprintf("alarm-%s-%s-%d", c.Process, c.Node, c.Seq)
	v, _, err := e.Submit(ctx, SubmitRequest{Process: c.Signal, Ref: ref, Actor: "alarm",
		Data: signalData(c.Process, c.Node, c.Count, c.Threshold, c.On)})
	if err == nil {
		return v.ID, nil
	}
	if conveyor.ErrorCode(err) == conveyor.EConflict {
		if t, err2 := e.st.TaskByRef(ctx, c.Signal, ref); err2 == nil {
			return t.ID, nil
		}
	}
	return uuid.Nil, err
}

// AlarmView is a node's queue alarm as operators see it.
type AlarmView struct {
	Process   string `json:"process"`
	Node      string `json:"node"`
	Threshold int    `json:"threshold"`
	Signal    string `json:"signal,omitempty"`
	// On is the alarm's recorded state; Since when it last crossed (nil
	// before the first crossing).
	On    bool       `json:"on"`
	Since *time.Time `json:"since,omitempty"`
	// Count is how many unfinished tasks stand in the node now.
	Count int64 `json:"count"`
}

// AlarmReport is every queue alarm of the current processes, in file order,
// and the latest crossings, newest first.
type AlarmReport struct {
	Alarms    []AlarmView           `json:"alarms"`
	Crossings []store.AlarmCrossing `json:"crossings"`
}

// Alarms returns the queue alarms' states and up to limit recent crossings
// (default 50, at most 1000).
func (e *Engine) Alarms(ctx context.Context, limit int) (*AlarmReport, error) {
	states, err := e.st.AlarmStates(ctx)
	if err != nil {
		return nil, err
	}
	byNode := map[alarmKey]store.AlarmCrossing{}
	for _, c := range states {
		byNode[alarmKey{c.Process, c.Node}] = c
	}
	r := &AlarmReport{Alarms: []AlarmView{}}
	for _, d := range e.Definitions() {
		var now map[string]int64
		for _, n := range d.Nodes {
			if n.Alarm == nil {
				continue
			}
			if now == nil {
				counts, err := e.st.Counts(ctx, d.Name)
				if err != nil {
					return nil, err
				}
				now = map[string]int64{}
				for _, nc := range counts {
					for _, c := range nc.Now {
						now[nc.Node] += c
					}
				}
			}
			v := AlarmView{Process: d.Name, Node: n.Name, Threshold: n.Alarm.Threshold, Signal: n.Alarm.Signal, Count: now[n.Name]}
			if c, ok := byNode[alarmKey{d.Name, n.Name}]; ok {
				at := c.At
				v.On, v.Since = c.On, &at
			}
			r.Alarms = append(r.Alarms, v)
		}
	}
	if r.Crossings, err = e.st.AlarmCrossings(ctx, limit); err != nil {
		return nil, err
	}
	if r.Crossings == nil {
		r.Crossings = []store.AlarmCrossing{}
	}
	return r, nil
}

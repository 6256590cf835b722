package engine_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conveyor-dev/conveyor/engine"
	"github.com/conveyor-dev/conveyor/store"
)

// Alarm makes recorder (engine_test.go) an engine.Metrics.
func (r *recorder) Alarm(string, string, bool) {}

// alarmGauge is an engine.Metrics that keeps the queue alarm gauge.
type alarmGauge struct {
	mu      sync.Mutex
	set     map[string][]bool // process/node -> every value set, in order
	changed chan struct{}
}

func newAlarmGauge() *alarmGauge {
	return &alarmGauge{set: map[string][]bool{}, changed: make(chan struct{}, 1)}
}

func (*alarmGauge) Transition(string, string, string, string)  {}
func (*alarmGauge) Call(string, string, string, time.Duration) {}
func (*alarmGauge) Callback(string)                            {}
func (*alarmGauge) TimerLag(time.Duration)                     {}
func (*alarmGauge) Commit(time.Duration, error)                {}
func (g *alarmGauge) Alarm(process, node string, on bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.set[process+"/"+node] = append(g.set[process+"/"+node], on)
	select {
	case g.changed <- struct{}{}:
	default:
	}
}

// wait waits (bounded) until the gauge of key was set n times; the engine
// sets it just after it stores a crossing.
func (g *alarmGauge) wait(t *testing.T, key string, n int) []bool {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if got := g.values(key); len(got) >= n {
			return got
		}
		select {
		case <-g.changed:
		case <-deadline:
			t.Fatalf("gauge %s set %d times, never %d", key, len(g.values(key)), n)
		}
	}
}

func (g *alarmGauge) values(key string) []bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]bool(nil), g.set[key]...)
}

var queueFlows = withFlows("testdata/queue.yaml", "testdata/queue-signal.yaml")

// waitCrossings waits (bounded) until the store holds n alarm crossings and
// returns them, newest first.
func (b *bundle) waitCrossings(n int) []store.AlarmCrossing {
	b.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		cs, err := b.st.AlarmCrossings(context.Background(), 0)
		if err != nil {
			b.t.Fatal(err)
		}
		if len(cs) >= n {
			return cs
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%d alarm crossings, never %d", len(cs), n)
		}
		select {
		case <-b.notify:
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// signalTask reads the signal task of a crossing and its data.
func (b *bundle) signalTask(ref string) (*store.Task, map[string]any) {
	b.t.Helper()
	task, err := b.st.TaskByRef(context.Background(), "queue-signal", ref)
	if err != nil {
		b.t.Fatalf("signal task %s: %v", ref, err)
	}
	var data map[string]any
	if err := json.Unmarshal(task.Data, &data); err != nil {
		b.t.Fatal(err)
	}
	return task, data
}

func TestEngine_alarm(t *testing.T) {
	t.Parallel()
	gauge := newAlarmGauge()
	b := setup(t, queueFlows, func(c *engine.Config) { c.Metrics = gauge })
	ctx := context.Background()
	var held []*engine.TaskView
	for range 2 {
		held = append(held, b.submit("queue", "", `{"n": 1}`))
	}
	b.submit("queue", "", `{"n": 0}`) // passes by: no alarm
	if got := gauge.wait(t, "queue/hold", 1); len(got) != 1 || got[0] {
		t.Fatalf("gauge %v before the threshold, want one off at start", got)
	}
	held = append(held, b.submit("queue", "", `{"n": 1}`))

	up := b.waitCrossings(1)[0]
	if !up.On || up.Seq != 1 || up.Count != 3 || up.Threshold != 3 || up.Signal != "queue-signal" || up.Process != "queue" || up.Node != "hold" {
		t.Errorf("crossing up %+v", up)
	}
	task, data := b.signalTask("alarm-queue-hold-1")
	if task.ID != up.TaskID || task.Status != store.StatusSucceeded {
		t.Errorf("signal task %s (%s), the crossing names %s", task.ID, task.Status, up.TaskID)
	}
	want := map[string]any{"process": "queue", "node": "hold", "tasks": 3.0, "threshold": 3.0, "start": true}
	for k, v := range want {
		if data[k] != v {
			t.Errorf("signal data %s = %v, want %v", k, data[k], v)
		}
	}
	report, err := b.eng.Alarms(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(report.Alarms) != 1 || !report.Alarms[0].On || report.Alarms[0].Count != 3 || report.Alarms[0].Since == nil || len(report.Crossings) != 1 {
		t.Errorf("report %+v", report)
	}

	if _, err := b.eng.Cancel(ctx, held[0].ID, engine.Action{Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	down := b.waitCrossings(2)[0]
	if down.On || down.Seq != 2 || down.Count != 2 {
		t.Errorf("crossing down %+v", down)
	}
	_, data = b.signalTask("alarm-queue-hold-2")
	if data["start"] != false || data["tasks"] != 2.0 {
		t.Errorf("signal data %v, want start false with 2 tasks", data)
	}
	if got := gauge.wait(t, "queue/hold", 3); len(got) != 3 || got[1] != true || got[2] != false {
		t.Errorf("gauge %v, want off, on, off", got)
	}

	b.restart()
	b.submit("queue", "", `{"n": 0}`)
	if cs, _ := b.st.AlarmCrossings(ctx, 0); len(cs) != 2 {
		t.Errorf("%d crossings after a restart, want the same 2", len(cs))
	}
	if got := gauge.wait(t, "queue/hold", 4); got[3] != false {
		t.Errorf("gauge %v after the restart, want off set at start", got)
	}
	b.submit("queue", "", `{"n": 1}`)
	if up := b.waitCrossings(3)[0]; !up.On || up.Seq != 3 {
		t.Errorf("third crossing %+v", up)
	}
	b.signalTask("alarm-queue-hold-3")
}

func TestEngine_New_alarmSignal(t *testing.T) {
	t.Parallel()
	b := setup(t, queueFlows)
	for name, tc := range map[string]struct {
		drop string
		want string
	}{
		"missing":   {"queue-signal", "process queue-signal, which is not loaded"},
		"bad_input": {"", "whose input must accept"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := b.cfg
			cfg.Definitions = nil
			for _, d := range b.cfg.Definitions {
				if d.Name != tc.drop {
					cfg.Definitions = append(cfg.Definitions, d)
				}
			}
			if tc.drop == "" {
				// queue signals to a process whose input is not the signal's.
				defs, err := b.cfg.Loader.LoadFiles([]string{"testdata/queue.yaml"})
				if err != nil {
					t.Fatal(err)
				}
				src := strings.Replace(string(defs[0].Source), "signal: queue-signal", "signal: internal", 1)
				d, err := b.cfg.Loader.Load("queue.yaml", []byte(src))
				if err != nil {
					t.Fatal(err)
				}
				for i, def := range cfg.Definitions {
					if def.Name == "queue" {
						cfg.Definitions[i] = d
					}
				}
			}
			if _, err := engine.New(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

package nodes

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/conveyor-dev/conveyor/processes"
)

// Delay holds a task for a duration, or until a time taken from its data
// (RFC 3339 text or Unix seconds), then moves it on.
//
//	pause:   {type: delay, for: 30s, next: poll}
//	until:   {type: delay, until: "{{ expires_at }}", next: expire}
type Delay struct {
	dur   time.Duration
	until *processes.Template
	edges []processes.Edge
}

type delayConfig struct {
	For   string `yaml:"for"`
	Until string `yaml:"until"`
	Next  string `yaml:"next"`
}

type delayKind struct{}

func (delayKind) Writes(*processes.NodeContext) []string { return nil }

func (delayKind) Compile(c *processes.NodeContext) processes.Spec {
	var cfg delayConfig
	if !c.Decode(&cfg) {
		return nil
	}
	requireTarget(c, "next", cfg.Next)
	d := &Delay{edges: edge(c, nil, OutNext, "next", cfg.Next)}
	switch {
	case cfg.For != "" && cfg.Until != "":
		c.Errorf("until", "give either for or until, not both")
	case cfg.For != "":
		d.dur = c.Duration("for", cfg.For)
	case cfg.Until != "":
		d.until = c.Template("until", cfg.Until, processes.UseData)
	default:
		c.Errorf("", "missing for or until: a delay needs a time limit")
	}
	return d
}

// Class implements processes.Spec.
func (*Delay) Class() processes.Class { return processes.Wait }

// Edges implements processes.Spec.
func (d *Delay) Edges() []processes.Edge { return d.edges }

// Timeout implements processes.Timed.
func (d *Delay) Timeout() time.Duration { return d.dur }

// Deadline implements Waiter.
func (d *Delay) Deadline(in *Input) (time.Time, error) {
	if d.until == nil {
		return in.Now.Add(d.dur), nil
	}
	v, err := d.until.Render(in.Env)
	if err != nil {
		return time.Time{}, err
	}
	return parseTime(v)
}

// Expire implements Waiter.
func (d *Delay) Expire() Result { return Result{Outcome: OutNext} }

// parseTime reads an absolute time: RFC 3339 text or Unix seconds.
func parseTime(v any) (time.Time, error) {
	switch x := v.(type) {
	case string:
		if t, err := time.Parse(time.RFC3339, x); err == nil {
			return t, nil
		}
		if n, err := strconv.ParseInt(x, 10, 64); err == nil {
			return time.Unix(n, 0), nil
		}
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return time.Unix(n, 0), nil
		}
	case int:
		return time.Unix(int64(x), 0), nil
	case int64:
		return time.Unix(x, 0), nil
	case time.Time:
		return x, nil
	}
	return time.Time{}, fmt.Errorf("until: %v is not a time (want RFC 3339 or Unix seconds)", v)
}

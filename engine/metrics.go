package engine

import "time"

// Metrics receives the engine's measurements. The service implements it with
// Prometheus collectors; tests may record them.
type Metrics interface {
	// Transition counts one move of a task.
	Transition(process, from, to, event string)
	// Call observes one outbound call attempt: its node, outcome class
	// ("ok", "5xx", "timeout", ...) and latency.
	Call(process, node, outcome string, d time.Duration)
	// Callback counts one callback answer (accepted, duplicate, not_waiting,
	// unknown, refused).
	Callback(result string)
	// TimerLag observes how late a timer fired (fire time minus due time).
	TimerLag(d time.Duration)
	// Commit observes one store commit's latency.
	Commit(d time.Duration, err error)
	// Alarm sets the state of a node's queue alarm: on while the tasks in the
	// node are at or above its threshold. It is called for every alarm at
	// Start and at each crossing.
	Alarm(process, node string, on bool)
}

type nopMetrics struct{}

func (nopMetrics) Transition(string, string, string, string)  {}
func (nopMetrics) Call(string, string, string, time.Duration) {}
func (nopMetrics) Callback(string)                            {}
func (nopMetrics) TimerLag(time.Duration)                     {}
func (nopMetrics) Commit(time.Duration, error)                {}
func (nopMetrics) Alarm(string, string, bool)                 {}

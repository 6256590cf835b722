package nodes_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-dev/conveyor/nodes"
	"github.com/conveyor-dev/conveyor/processes"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestDelay_Deadline(t *testing.T) {
	t.Parallel()
	def := compile(t, flow("{at: {type: string}, at_n: {type: integer}}", `  pause: {type: delay, for: 90s, next: until}
  until: {type: delay, until: "{{ at }}", next: until_n}
  until_n: {type: delay, until: "{{ at_n }}", next: done}
  done: {type: final, result: success}
`))
	t.Run("for", func(t *testing.T) {
		t.Parallel()
		d := spec[*nodes.Delay](t, def, "pause")
		got, err := d.Deadline(&nodes.Input{Now: now})
		if err != nil || !got.Equal(now.Add(90*time.Second)) {
			t.Errorf("Deadline = %v, %v; want now + 90s", got, err)
		}
		if d.Timeout() != 90*time.Second {
			t.Errorf("Timeout = %v, want 90s", d.Timeout())
		}
	})
	until := spec[*nodes.Delay](t, def, "until")
	if until.Timeout() != 0 {
		t.Errorf("until: Timeout = %v, want 0 (the deadline comes from data)", until.Timeout())
	}
	tests := []struct {
		name string
		node string
		env  processes.Env
		want time.Time
	}{
		{"RFC 3339", "until", processes.Env{"at": "2026-03-02T08:30:00Z"}, time.Date(2026, 3, 2, 8, 30, 0, 0, time.UTC)},
		{"RFC 3339 with offset", "until", processes.Env{"at": "2026-03-02T10:30:00+02:00"}, time.Date(2026, 3, 2, 8, 30, 0, 0, time.UTC)},
		{"Unix seconds as text", "until", processes.Env{"at": "1772440200"}, time.Unix(1772440200, 0)},
		{"Unix seconds as json.Number", "until_n", processes.Env{"at_n": json.Number("1772440200")}, time.Unix(1772440200, 0)},
		{"Unix seconds as int64", "until_n", processes.Env{"at_n": int64(1772440200)}, time.Unix(1772440200, 0)},
		{"a time in the past is kept", "until", processes.Env{"at": "2020-01-01T00:00:00Z"}, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := spec[*nodes.Delay](t, def, tt.node).Deadline(&nodes.Input{Now: now, Env: tt.env})
			if err != nil || !got.Equal(tt.want) {
				t.Errorf("Deadline = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
	for _, bad := range []processes.Env{{"at": "tomorrow"}, {"at": "2026-03-02"}, {}, {"at": "1.5"}} {
		if _, err := until.Deadline(&nodes.Input{Now: now, Env: bad}); err == nil || !strings.Contains(err.Error(), "is not a time") {
			t.Errorf("Deadline(%v): err = %v, want not a time", bad, err)
		}
	}
}

func TestDelay_Expire(t *testing.T) {
	t.Parallel()
	def := compile(t, flow("{}", "  p: {type: delay, for: 1s, next: p}\n"))
	diff(t, "Expire", nodes.Result{Outcome: nodes.OutNext}, spec[*nodes.Delay](t, def, "p").Expire())
}

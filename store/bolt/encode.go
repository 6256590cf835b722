package bolt

import (
	"encoding/json"

	"github.com/conveyor-dev/conveyor/store"
)

// The record encoding lives here alone, so a binary format can replace JSON
// without touching the rest of the package. Decoders must not keep any part
// of their input: it points into bbolt's mmap and is only valid inside the
// transaction. encoding/json copies everything it decodes, so they don't.

func encodeTask(t *store.Task) ([]byte, error) { return json.Marshal(t) }

func decodeTask(b []byte) (*store.Task, error) {
	t := new(store.Task)
	if err := json.Unmarshal(b, t); err != nil {
		return nil, err
	}
	return t, nil
}

func encodeHistory(h *store.HistoryEntry) ([]byte, error) { return json.Marshal(h) }

func decodeHistory(b []byte) (store.HistoryEntry, error) {
	var h store.HistoryEntry
	err := json.Unmarshal(b, &h)
	return h, err
}

func encodeVersion(v *store.Version) ([]byte, error) { return json.Marshal(v) }

func decodeVersion(b []byte) (*store.Version, error) {
	v := new(store.Version)
	if err := json.Unmarshal(b, v); err != nil {
		return nil, err
	}
	return v, nil
}

func encodeAudit(a *store.AuditEntry) ([]byte, error) { return json.Marshal(a) }

func decodeAudit(b []byte) (store.AuditEntry, error) {
	var a store.AuditEntry
	err := json.Unmarshal(b, &a)
	return a, err
}

func encodeJob(j *store.Job) ([]byte, error) { return json.Marshal(j) }

func decodeJob(b []byte) (*store.Job, error) {
	j := new(store.Job)
	if err := json.Unmarshal(b, j); err != nil {
		return nil, err
	}
	return j, nil
}

func encodeResult(r *store.JobResult) ([]byte, error) { return json.Marshal(r) }

func decodeResult(b []byte) (store.JobResult, error) {
	var r store.JobResult
	err := json.Unmarshal(b, &r)
	return r, err
}

func encodeAlarm(c *store.AlarmCrossing) ([]byte, error) { return json.Marshal(c) }

func decodeAlarm(b []byte) (store.AlarmCrossing, error) {
	var c store.AlarmCrossing
	err := json.Unmarshal(b, &c)
	return c, err
}

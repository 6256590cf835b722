package bolt

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/conveyor-dev/conveyor/store"
)

// The record encoding lives here alone. Decoders must not keep any part of
// their input: it points into bbolt's mmap and is only valid inside the
// transaction, so every decoded string and byte slice is a copy.
//
// Task records and history entries, written and read on every event, use a
// compact binary format (below); the rare records (versions, audit entries,
// jobs, alarms) stay JSON. Files written before the binary format hold JSON
// task and history records, which always start with '{': the decoders still
// read them, and a record is rewritten in binary the next time it changes.

// recordV1 is the first byte of a binary history entry and of a whole task
// record of schema 3: the format's version. JSON records start with '{', so
// the two can never be confused.
const recordV1 = 0x01

// errShort is the error of a binary record that ends before its last field.
var errShort = errors.New("record is truncated")

// Since schema 4 a task is stored as two records under its id: its state in
// the tasks bucket and its body in the bodies bucket. The state is what
// moves on every event (node, status, timer, counters, times): a few dozen
// bytes, so that a burst of timeouts spread over a large file rewrites one
// small page entry per task instead of the task's whole record, and many
// tasks share a page. The body holds what is set once or changes only with
// the data (names, ref, token, marks, early callbacks, data); the writer
// puts it only when its bytes differ from the stored ones.
//
// A state record is recordV2, then node, status, timer (strings), timer at
// (time: varint unix seconds + uvarint nanoseconds), attempt, steps
// (varints), rev, history length (uvarints), updated, entered, finished
// (times), error (a 0 byte, or 1 then code, description, node). The id is
// the key.
//
// A body record is recordV2, then process, version, ref, input hash, token
// (strings), created (time), marks (uvarint count, then hash, node, at
// each), early callbacks (uvarint count, then content type, body, actor, at
// each), and last the data (uvarint length + bytes). The early bodies and
// the data come last so that a header decode can stop before copying them.
//
// Records of schema 3 and older (one recordV1 or JSON record per task in the
// tasks bucket, see decodeTaskRecord) are still read; the task's next commit
// writes it split.

// recordV2 is the first byte of a split task record (state or body).
const recordV2 = 0x02

// encodeTask encodes t as its state and body records.
func encodeTask(t *store.Task) (state, body []byte, err error) {
	state = make([]byte, 0, 64+len(t.Node)+len(t.Status)+len(t.Timer))
	state = append(state, recordV2)
	for _, s := range [...]string{t.Node, string(t.Status), t.Timer} {
		state = appendString(state, s)
	}
	state = appendTime(state, t.TimerAt)
	state = binary.AppendVarint(state, int64(t.Attempt))
	state = binary.AppendVarint(state, int64(t.Steps))
	state = binary.AppendUvarint(state, t.Rev)
	state = binary.AppendUvarint(state, uint64(t.HistoryLen))
	for _, at := range [...]time.Time{t.Updated, t.Entered, t.Finished} {
		state = appendTime(state, at)
	}
	state = appendError(state, t.Error)

	n := 48 + len(t.Process) + len(t.Version) + len(t.Ref) + len(t.InputHash) + len(t.Token) + len(t.Data)
	for _, e := range t.Early {
		n += 32 + len(e.Body) + len(e.ContentType) + len(e.Actor)
	}
	n += len(t.Marks) * 64
	body = make([]byte, 0, n)
	body = append(body, recordV2)
	for _, s := range [...]string{t.Process, t.Version, t.Ref, t.InputHash, t.Token} {
		body = appendString(body, s)
	}
	body = appendTime(body, t.Created)
	body = appendMarks(body, t.Marks)
	body = appendEarly(body, t.Early)
	return state, appendBytes(body, t.Data), nil
}

func appendError(b []byte, e *store.TaskError) []byte {
	if e == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	b = appendString(b, e.Code)
	b = appendString(b, e.Description)
	return appendString(b, e.Node)
}

func appendMarks(b []byte, marks []store.Mark) []byte {
	b = binary.AppendUvarint(b, uint64(len(marks)))
	for _, m := range marks {
		b = appendString(b, m.Hash)
		b = appendString(b, m.Node)
		b = appendTime(b, m.At)
	}
	return b
}

func appendEarly(b []byte, early []store.Early) []byte {
	b = binary.AppendUvarint(b, uint64(len(early)))
	for _, e := range early {
		b = appendString(b, e.ContentType)
		b = appendBytes(b, e.Body)
		b = appendString(b, e.Actor)
		b = appendTime(b, e.At)
	}
	return b
}

// decodeState decodes the state record of task id.
func decodeState(id uuid.UUID, b []byte) (*store.Task, error) {
	r, err := newReader(b, recordV2)
	if err != nil {
		return nil, err
	}
	t := &store.Task{ID: id}
	var status string
	for _, s := range [...]*string{&t.Node, &status, &t.Timer} {
		*s = r.string()
	}
	t.Status = store.Status(status)
	t.TimerAt = r.time()
	t.Attempt, t.Steps = int(r.varint()), int(r.varint())
	t.Rev, t.HistoryLen = r.uvarint(), uint32(r.uvarint())
	for _, at := range [...]*time.Time{&t.Updated, &t.Entered, &t.Finished} {
		*at = r.time()
	}
	t.Error = r.taskError()
	r.end()
	if r.err != nil {
		return nil, r.err
	}
	return t, nil
}

// decodeBody decodes a body record into t; without full it stops before the
// early callbacks and the data.
func decodeBody(t *store.Task, b []byte, full bool) error {
	r, err := newReader(b, recordV2)
	if err != nil {
		return err
	}
	for _, s := range [...]*string{&t.Process, &t.Version, &t.Ref, &t.InputHash, &t.Token} {
		*s = r.string()
	}
	t.Created = r.time()
	t.Marks = r.marks()
	if !full {
		return r.err
	}
	t.Early = r.early()
	t.Data = r.bytes()
	r.end()
	return r.err
}

// decodeTaskRecord decodes a whole task record of schema 3 or older: JSON,
// or recordV1 then id (16 bytes), process, version, ref, input hash, node,
// status, token, timer (strings), timer at (time), attempt, steps (varints),
// rev, history length (uvarints), created, updated, entered, finished
// (times), error, marks, early callbacks, and last the data. Without full it
// stops before the early callbacks and the data.
func decodeTaskRecord(b []byte, full bool) (*store.Task, error) {
	if len(b) > 0 && b[0] == '{' {
		t := new(store.Task)
		if err := json.Unmarshal(b, t); err != nil {
			return nil, err
		}
		return t, nil
	}
	r, err := newReader(b, recordV1)
	if err != nil {
		return nil, err
	}
	t := new(store.Task)
	copy(t.ID[:], r.next(len(uuid.UUID{})))
	var status string
	for _, s := range [...]*string{&t.Process, &t.Version, &t.Ref, &t.InputHash, &t.Node, &status, &t.Token, &t.Timer} {
		*s = r.string()
	}
	t.Status = store.Status(status)
	t.TimerAt = r.time()
	t.Attempt, t.Steps = int(r.varint()), int(r.varint())
	t.Rev, t.HistoryLen = r.uvarint(), uint32(r.uvarint())
	for _, at := range [...]*time.Time{&t.Created, &t.Updated, &t.Entered, &t.Finished} {
		*at = r.time()
	}
	t.Error = r.taskError()
	t.Marks = r.marks()
	if !full {
		return t, r.err
	}
	t.Early = r.early()
	t.Data = r.bytes()
	r.end()
	if r.err != nil {
		return nil, r.err
	}
	return t, nil
}

func (r *reader) taskError() *store.TaskError {
	switch r.byte() {
	case 0:
	case 1:
		return &store.TaskError{Code: r.string(), Description: r.string(), Node: r.string()}
	default:
		r.fail(fmt.Errorf("bad error flag"))
	}
	return nil
}

func (r *reader) marks() []store.Mark {
	n := r.count()
	if n == 0 {
		return nil
	}
	marks := make([]store.Mark, n)
	for i := range marks {
		marks[i] = store.Mark{Hash: r.string(), Node: r.string(), At: r.time()}
	}
	return marks
}

func (r *reader) early() []store.Early {
	n := r.count()
	if n == 0 {
		return nil
	}
	early := make([]store.Early, n)
	for i := range early {
		early[i] = store.Early{ContentType: r.string(), Body: r.bytes(), Actor: r.string(), At: r.time()}
	}
	return early
}

// end fails a record that goes on after its last field.
func (r *reader) end() {
	if r.err == nil && len(r.b) > 0 {
		r.fail(fmt.Errorf("%d bytes after the last field", len(r.b)))
	}
}

// A binary history entry is recordV1, then seq (uvarint), at (time), from,
// to, event, actor, reason, detail and job id (strings).

func encodeHistory(h *store.HistoryEntry) ([]byte, error) {
	b := make([]byte, 0, 32+len(h.From)+len(h.To)+len(h.Event)+len(h.Actor)+len(h.Reason)+len(h.Detail)+len(h.JobID))
	b = append(b, recordV1)
	b = binary.AppendUvarint(b, uint64(h.Seq))
	b = appendTime(b, h.At)
	for _, s := range [...]string{h.From, h.To, h.Event, h.Actor, h.Reason, h.Detail, h.JobID} {
		b = appendString(b, s)
	}
	return b, nil
}

func decodeHistory(b []byte) (store.HistoryEntry, error) {
	var h store.HistoryEntry
	if len(b) > 0 && b[0] == '{' {
		err := json.Unmarshal(b, &h)
		return h, err
	}
	r, err := newReader(b, recordV1)
	if err != nil {
		return h, err
	}
	h.Seq = uint32(r.uvarint())
	h.At = r.time()
	for _, s := range [...]*string{&h.From, &h.To, &h.Event, &h.Actor, &h.Reason, &h.Detail, &h.JobID} {
		*s = r.string()
	}
	r.end()
	return h, r.err
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendBytes(b, v []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(v))), v...)
}

// appendTime encodes t as unix seconds and nanoseconds, so the zero time
// (year 1) and times before 1970 round-trip exactly. Decoded times are UTC.
func appendTime(b []byte, t time.Time) []byte {
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// reader decodes a binary record. The first error sticks: later reads return
// zero values, so decoders check r.err once at the end.
type reader struct {
	b   []byte
	err error
}

// newReader reads a record of the given format.
func newReader(b []byte, format byte) (*reader, error) {
	switch {
	case len(b) == 0:
		return nil, errShort
	case b[0] != format:
		return nil, fmt.Errorf("unknown record format 0x%02x", b[0])
	}
	return &reader{b: b[1:]}, nil
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.b = nil
}

// next returns the next n bytes, still pointing into the input.
func (r *reader) next(n int) []byte {
	if n < 0 || len(r.b) < n {
		r.fail(errShort)
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) byte() byte {
	if v := r.next(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) uvarint() uint64 { return readVarint(r, binary.Uvarint) }

func (r *reader) varint() int64 { return readVarint(r, binary.Varint) }

// readVarint reads one varint with decode (binary.Uvarint or Varint).
func readVarint[T int64 | uint64](r *reader, decode func([]byte) (T, int)) T {
	v, n := decode(r.b)
	if n <= 0 {
		r.fail(errShort)
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a list length, refusing one that the rest of the record could
// not hold (each element takes at least one byte), so a damaged record cannot
// make the decoder allocate without bound.
func (r *reader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail(fmt.Errorf("list of %d elements in %d bytes", n, len(r.b)))
		return 0
	}
	return int(n)
}

func (r *reader) string() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail(errShort)
		return ""
	}
	return string(r.next(int(n)))
}

// bytes returns a copy of the next length-prefixed bytes; nil for none.
func (r *reader) bytes() []byte {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail(errShort)
		return nil
	}
	if n == 0 {
		return nil
	}
	return append([]byte(nil), r.next(int(n))...)
}

func (r *reader) time() time.Time {
	sec, nsec := r.varint(), r.uvarint()
	if r.err != nil || nsec >= 1e9 {
		r.fail(errShort)
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
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

package bolt

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"
	bbolt "go.etcd.io/bbolt"

	"github.com/conveyor-dev/conveyor/store"
)

// fullTask has every field of a task set, times in a zone other than UTC,
// one before 1970 and one zero.
func fullTask() *store.Task {
	kyiv := time.FixedZone("EET", 2*3600)
	at := time.Date(2031, 5, 6, 7, 8, 9, 123456789, kyiv)
	return &store.Task{
		ID: uuid.Must(uuid.NewV7()), Process: "liqpay-hold", Version: "v3", Ref: "order-ü-1",
		InputHash: "abc123", Node: "wait_callback", Status: store.StatusEscalated,
		Data:  []byte(`{"amount":"100.50","card":"sealed:xyz"}`),
		Error: &store.TaskError{Code: "http_503", Description: "provider down", Node: "hold"},
		Token: "tok\x00en", TimerAt: at.Add(time.Hour), Timer: "timeout", Attempt: 3, Steps: -1,
		Rev: 1 << 40, HistoryLen: 77,
		Marks:   []store.Mark{{Hash: "h1", Node: "wait", At: at}, {Hash: "h2", Node: "wait2", At: time.Unix(-5, 7)}},
		Early:   []store.Early{{ContentType: "application/json", Body: []byte(`{"x":1}`), Actor: "callback", At: at}},
		Created: at, Updated: at.Add(time.Second), Entered: at.Add(2 * time.Second),
	}
}

// encodeTaskV1 writes a whole task record as schema 3 did (recordV1): the
// files of older builds hold these, and the store must still read them.
func encodeTaskV1(t *store.Task) []byte {
	b := []byte{recordV1}
	b = append(b, t.ID[:]...)
	for _, s := range [...]string{t.Process, t.Version, t.Ref, t.InputHash, t.Node, string(t.Status), t.Token, t.Timer} {
		b = appendString(b, s)
	}
	b = appendTime(b, t.TimerAt)
	b = binary.AppendVarint(b, int64(t.Attempt))
	b = binary.AppendVarint(b, int64(t.Steps))
	b = binary.AppendUvarint(b, t.Rev)
	b = binary.AppendUvarint(b, uint64(t.HistoryLen))
	for _, at := range [...]time.Time{t.Created, t.Updated, t.Entered, t.Finished} {
		b = appendTime(b, at)
	}
	b = appendError(b, t.Error)
	b = appendMarks(b, t.Marks)
	b = appendEarly(b, t.Early)
	return appendBytes(b, t.Data)
}

// decodeSplit decodes a state and a body record as the store does.
func decodeSplit(id uuid.UUID, state, body []byte, full bool) (*store.Task, error) {
	t, err := decodeState(id, state)
	if err != nil {
		return nil, err
	}
	if err := decodeBody(t, body, full); err != nil {
		return nil, err
	}
	return t, nil
}

func TestEncodeTask(t *testing.T) {
	t.Parallel()
	t.Run("round-trips_every_field", func(t *testing.T) {
		t.Parallel()
		for _, want := range []*store.Task{fullTask(), newTask("p", ""), {ID: uuid.New(), Process: "p", Status: store.StatusActive}} {
			state, body, err := encodeTask(want)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeSplit(want.ID, state, body, true)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("decode(encodeTask(t)) (-want +got):\n%s", diff)
			}
		}
	})
	t.Run("decodes_the_header_without_data_or_early_callbacks", func(t *testing.T) {
		t.Parallel()
		task := fullTask()
		state, body, _ := encodeTask(task)
		got, err := decodeSplit(task.ID, state, body, false)
		if err != nil {
			t.Fatal(err)
		}
		want := task.Clone()
		want.Data, want.Early = nil, nil
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("header decode (-want +got):\n%s", diff)
		}
	})
	t.Run("keeps_what_moves_on_every_event_in_a_small_state_record", func(t *testing.T) {
		t.Parallel()
		// A task waiting in a callback node, as a million of them are in the
		// scale benchmark: its state must stay a small fraction of a page,
		// whatever its names, token and data.
		task := newTask("bench-wait", "w-0000001")
		task.Node, task.Status, task.Timer = "wait", store.StatusWaiting, "timeout"
		task.TimerAt = task.Created.Add(time.Hour)
		task.InputHash = strings.Repeat("5f", 32)
		task.Token = "01a2025585b8TrBHPwf9w6miLeh2nsBrJ2pkWaU"
		task.Data = []byte(`{"amount":12.34,"currency":"UAH","due":1795339088,"order_id":"w-0000001"}`)
		state, body, _ := encodeTask(task)
		if len(state) > 64 {
			t.Errorf("state record is %d bytes, want at most 64 (body %d)", len(state), len(body))
		}
	})
	t.Run("reads_whole_records_of_schema_3_and_JSON_records_before_them", func(t *testing.T) {
		t.Parallel()
		want := fullTask()
		j, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		for name, b := range map[string][]byte{"JSON": j, "recordV1": encodeTaskV1(want)} {
			got, err := decodeTaskRecord(b, true)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("decode of a %s record (-want +got):\n%s", name, diff)
			}
			head, err := decodeTaskRecord(b, false)
			if err != nil || head.Node != want.Node || head.Marks == nil {
				t.Errorf("header decode of a %s record = %+v, %v", name, head, err)
			}
		}
	})
	t.Run("is_smaller_than_JSON", func(t *testing.T) {
		t.Parallel()
		task := newTask("liqpay-hold", "order-1")
		task.Data = []byte(`{"amount":"100.50","currency":"UAH","description":"hold for order 1","phone":"380950000001"}`)
		state, body, _ := encodeTask(task)
		j, _ := json.Marshal(task)
		if n := len(state) + len(body); n*2 > len(j) {
			t.Errorf("binary records are %d bytes, JSON %d: want at most half", n, len(j))
		}
	})
	t.Run("fails_cleanly_on_every_truncation_and_unknown_format", func(t *testing.T) {
		t.Parallel()
		task := fullTask()
		state, body, _ := encodeTask(task)
		for n := range len(state) {
			if _, err := decodeState(task.ID, state[:n]); err == nil {
				t.Errorf("decodeState of the first %d of %d bytes succeeded, want an error", n, len(state))
			}
		}
		for n := range len(body) {
			if err := decodeBody(new(store.Task), body[:n], true); err == nil {
				t.Errorf("decodeBody of the first %d of %d bytes succeeded, want an error", n, len(body))
			}
		}
		v1 := encodeTaskV1(task)
		for n := range len(v1) {
			if _, err := decodeTaskRecord(v1[:n], true); err == nil {
				t.Errorf("decodeTaskRecord of the first %d of %d bytes succeeded, want an error", n, len(v1))
			}
		}
		for name, b := range map[string][]byte{"state": state, "body": body, "recordV1": v1} {
			unknown := append([]byte{0x7f}, b[1:]...)
			trailing := append(b[:len(b):len(b)], 0)
			for what, b := range map[string][]byte{"an unknown format": unknown, "a trailing byte": trailing} {
				var err error
				switch name {
				case "state":
					_, err = decodeState(task.ID, b)
				case "body":
					err = decodeBody(new(store.Task), b, true)
				default:
					_, err = decodeTaskRecord(b, true)
				}
				if err == nil {
					t.Errorf("decoding a %s record with %s succeeded", name, what)
				}
			}
		}
	})
}

func TestEncodeHistory(t *testing.T) {
	t.Parallel()
	want := store.HistoryEntry{
		Seq: 9, At: time.Date(2031, 5, 6, 7, 8, 9, 10, time.UTC), From: "a", To: "b", Event: "operator_move",
		Actor: "token:alice", Reason: "stuck", Detail: "HTTP 503", JobID: "job-1",
	}
	b, _ := encodeHistory(&want)
	got, err := decodeHistory(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("decodeHistory(encodeHistory(h)) (-want +got):\n%s", diff)
	}
	j, _ := json.Marshal(want)
	if got, err = decodeHistory(j); err != nil || !cmp.Equal(want, got) {
		t.Errorf("decodeHistory of a JSON entry = %+v, %v; want %+v", got, err, want)
	}
	for n := range len(b) {
		if _, err := decodeHistory(b[:n]); err == nil {
			t.Errorf("decodeHistory of the first %d of %d bytes succeeded", n, len(b))
		}
	}
}

// TestOpen_readsAndRewritesJSONRecords opens a file whose task and history
// records are JSON, as builds before the binary format wrote them: reads
// serve them, a commit rewrites the record in binary, and Check is clean.
func TestOpen_readsAndRewritesJSONRecords(t *testing.T) {
	t.Parallel()
	ctx, path := t.Context(), tempPath(t)
	db := openTest(t, path, Options{})
	task := newTask("payment", "order-1")
	if err := db.Commit(ctx, creation(task)); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	entry := creation(task).History[0]
	rewrite(t, path, func(tx *bbolt.Tx) error {
		tb, _ := json.Marshal(task)
		hb, _ := json.Marshal(entry)
		if err := tx.Bucket(bucketTasks).Put(task.ID[:], tb); err != nil {
			return err
		}
		if err := tx.Bucket(bucketBodies).Delete(task.ID[:]); err != nil { // schema 3 had none
			return err
		}
		return tx.Bucket(bucketHistory).Put(historyKey(task.ID, 0), hb)
	})

	db = openTest(t, path, Options{})
	mustCheck(t, db)
	got, err := db.Task(ctx, task.ID)
	if err != nil || !cmp.Equal(task, got) {
		t.Fatalf("Task of a JSON record = %+v, %v; want %+v", got, err, task)
	}
	if err := db.Commit(ctx, finishing(got, store.StatusSucceeded)); err != nil {
		t.Fatal(err)
	}
	hist, err := db.History(ctx, task.ID)
	if err != nil || len(hist) != 2 || hist[0].Event != "submit" || hist[1].To != "done" {
		t.Errorf("History = %+v, %v; want the JSON entry then the new one", hist, err)
	}
	mustCheck(t, db)
	err = db.bolt.View(func(tx *bbolt.Tx) error {
		if v := tx.Bucket(bucketTasks).Get(task.ID[:]); len(v) == 0 || v[0] != recordV2 {
			return fmt.Errorf("record after a commit starts with %q, want a state record", v[:1])
		}
		if v := tx.Bucket(bucketBodies).Get(task.ID[:]); len(v) == 0 || v[0] != recordV2 {
			return fmt.Errorf("no body record after a commit (%q)", v)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

// TestDB_fillsAppendOrderedBuckets commits tasks in id order, as the engine
// creates them, and expects the tasks bucket's pages nearly full rather than
// at bbolt's default half.
func TestDB_fillsAppendOrderedBuckets(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := openTest(t, tempPath(t), Options{NoSync: true})
	for range 40 {
		var cs []store.Change
		for range 100 {
			cs = append(cs, creation(newTask("payment", "")))
		}
		if err := db.Commit(ctx, cs...); err != nil {
			t.Fatal(err)
		}
	}
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{bucketTasks, bucketHistory, bucketByState} {
			s := tx.Bucket(name).Stats()
			if used := float64(s.LeafInuse) / float64(s.LeafAlloc); used < 0.8 {
				return fmt.Errorf("bucket %s: leaf pages %.0f%% used, want at least 80%%", name, used*100)
			}
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	mustCheck(t, db)
}

// rewrite changes a closed file with a raw bbolt transaction.
func rewrite(t *testing.T, path string, fn func(*bbolt.Tx) error) {
	t.Helper()
	raw, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = raw.Update(fn)
	if cerr := raw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}

// FuzzDecodeTask feeds damaged and arbitrary records to the decoders (a
// state and a body record, and the same bytes as a whole record of schema 3
// or JSON): they must fail or succeed, never panic or allocate without
// bound, and what they decode must encode and decode to the same task.
func FuzzDecodeTask(f *testing.F) {
	for _, task := range []*store.Task{fullTask(), newTask("p", "r")} {
		state, body, _ := encodeTask(task)
		f.Add(state, body)
		j, _ := json.Marshal(task)
		f.Add(j, body)
		f.Add(encodeTaskV1(task), body)
	}
	f.Add([]byte{recordV2}, []byte{recordV2})
	id := uuid.MustParse("01a20255-85b8-7028-9903-1b43555d9994")
	f.Fuzz(func(t *testing.T, state, body []byte) {
		tasks := map[string]*store.Task{}
		if task, err := decodeSplit(id, state, body, true); err == nil {
			if _, err := decodeSplit(id, state, body, false); err != nil {
				t.Fatalf("the header of records that decode fails: %v", err)
			}
			tasks["split"] = task
		}
		if task, err := decodeTaskRecord(state, true); err == nil {
			if _, err := decodeTaskRecord(state, false); err != nil {
				t.Fatalf("the header of a whole record that decodes fails: %v", err)
			}
			tasks["whole"] = task
		}
		for name, task := range tasks {
			s, b, _ := encodeTask(task)
			got, err := decodeSplit(task.ID, s, b, true)
			// Binary has no empty-but-present lists: JSON's [] comes back nil.
			if err != nil || !cmp.Equal(task, got, cmpopts.EquateEmpty()) {
				t.Fatalf("%s: re-encoded records decode to %+v, %v; want %+v", name, got, err, task)
			}
		}
	})
}

// TestIndexes_sameMeansTheSameKey: an index's same, which lets the writer
// skip an entry without building its keys, must never call two versions of
// a task the same when their keys differ (the entry would then go stale),
// and should see every pair whose keys agree.
func TestIndexes_sameMeansTheSameKey(t *testing.T) {
	t.Parallel()
	base := newTask("payment", "order-1")
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	variants := []func(*store.Task){
		func(*store.Task) {},
		func(t *store.Task) { t.Process = "refund" },
		func(t *store.Task) { t.Ref = "" },
		func(t *store.Task) { t.Ref = "order-2" },
		func(t *store.Task) { t.Token = "tok-1" },
		func(t *store.Task) { t.Token = "tok-2" },
		func(t *store.Task) { t.TimerAt = at },
		func(t *store.Task) { t.TimerAt = at.Add(time.Nanosecond) },
		func(t *store.Task) { t.TimerAt = time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC) },
		func(t *store.Task) { t.Node = "wait" },
		func(t *store.Task) { t.Node, t.Status = "wait", store.StatusWaiting },
		func(t *store.Task) { t.Status = store.StatusEscalated },
		func(t *store.Task) { t.Node, t.Status, t.Finished = "done", store.StatusSucceeded, at },
		func(t *store.Task) { t.Node, t.Status, t.Finished = "done", store.StatusSucceeded, at.Add(time.Second) },
		func(t *store.Task) { t.Node, t.Status, t.Finished = "done", store.StatusFailed, at },
		func(t *store.Task) { t.Finished = at }, // a Finished time on an active task is in no index
	}
	tasks := make([]*store.Task, len(variants))
	for i, v := range variants {
		tasks[i] = base.Clone()
		v(tasks[i])
	}
	for _, ix := range indexes {
		for i, a := range tasks {
			for j, b := range tasks {
				sameKey := bytes.Equal(ix.key(a), ix.key(b))
				if got := ix.same(a, b); got != sameKey {
					t.Errorf("%s: same(variant %d, variant %d) = %v, but the keys are equal: %v", ix.bucket, i, j, got, sameKey)
				}
			}
		}
	}
}

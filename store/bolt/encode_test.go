package bolt

import (
	"encoding/json"
	"fmt"
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

func TestEncodeTask(t *testing.T) {
	t.Parallel()
	t.Run("round-trips_every_field", func(t *testing.T) {
		t.Parallel()
		for _, want := range []*store.Task{fullTask(), newTask("p", ""), {ID: uuid.New(), Process: "p", Status: store.StatusActive}} {
			b, err := encodeTask(want)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeTask(b)
			if err != nil {
				t.Fatalf("decodeTask: %v", err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("decodeTask(encodeTask(t)) (-want +got):\n%s", diff)
			}
		}
	})
	t.Run("decodes_the_header_without_data_or_early_callbacks", func(t *testing.T) {
		t.Parallel()
		task := fullTask()
		b, _ := encodeTask(task)
		got, err := decodeTaskHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		want := task.Clone()
		want.Data, want.Early = nil, nil
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("decodeTaskHeader (-want +got):\n%s", diff)
		}
	})
	t.Run("reads_records_written_as_JSON_before_the_binary_format", func(t *testing.T) {
		t.Parallel()
		want := fullTask()
		b, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		for name, decode := range map[string]func([]byte) (*store.Task, error){"full": decodeTask, "header": decodeTaskHeader} {
			got, err := decode(b)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s decode of a JSON record (-want +got):\n%s", name, diff)
			}
		}
	})
	t.Run("is_smaller_than_JSON", func(t *testing.T) {
		t.Parallel()
		task := newTask("liqpay-hold", "order-1")
		task.Data = []byte(`{"amount":"100.50","currency":"UAH","description":"hold for order 1","phone":"380950000001"}`)
		b, _ := encodeTask(task)
		j, _ := json.Marshal(task)
		if len(b)*2 > len(j) {
			t.Errorf("binary record is %d bytes, JSON %d: want at most half", len(b), len(j))
		}
	})
	t.Run("fails_cleanly_on_every_truncation_and_unknown_format", func(t *testing.T) {
		t.Parallel()
		b, _ := encodeTask(fullTask())
		for n := range len(b) {
			if _, err := decodeTask(b[:n]); err == nil {
				t.Errorf("decodeTask of the first %d of %d bytes succeeded, want an error", n, len(b))
			}
		}
		if _, err := decodeTask(append([]byte{0x7f}, b[1:]...)); err == nil {
			t.Error("decodeTask of an unknown format succeeded")
		}
		if _, err := decodeTask(append(b[:len(b):len(b)], 0)); err == nil {
			t.Error("decodeTask with a trailing byte succeeded")
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
		if v := tx.Bucket(bucketTasks).Get(task.ID[:]); len(v) == 0 || v[0] != recordV1 {
			return fmt.Errorf("record after a commit starts with %q, want the binary format", v[:1])
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
		for _, name := range [][]byte{bucketTasks, bucketHistory, bucketByNode} {
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

// FuzzDecodeTask feeds damaged and arbitrary records to the decoder: it must
// fail or succeed, never panic or allocate without bound, and what it
// decodes must encode and decode to the same task.
func FuzzDecodeTask(f *testing.F) {
	for _, task := range []*store.Task{fullTask(), newTask("p", "r")} {
		b, _ := encodeTask(task)
		f.Add(b)
		j, _ := json.Marshal(task)
		f.Add(j)
	}
	f.Add([]byte{recordV1})
	f.Fuzz(func(t *testing.T, b []byte) {
		task, err := decodeTask(b)
		if err != nil {
			return
		}
		if _, err := decodeTaskHeader(b); err != nil {
			t.Fatalf("the header of a record that decodes fails: %v", err)
		}
		again, _ := encodeTask(task)
		got, err := decodeTask(again)
		// Binary has no empty-but-present lists: JSON's [] comes back nil.
		if err != nil || !cmp.Equal(task, got, cmpopts.EquateEmpty()) {
			t.Fatalf("re-encoded record decodes to %+v, %v; want %+v", got, err, task)
		}
	})
}

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/google/uuid"

	"github.com/conveyor-dev/conveyor/store"
)

// The dump that export writes and import reads is JSON lines, one record a
// line, streamed in this order: a header; every task (newest first) with its
// whole history, each preceded by its process version the first time the
// version is met; the bulk jobs with their results; a trailer with the
// counts, so that import notices a dump that was cut short. Task data is
// copied as stored: sealed fields stay sealed, and the target needs the same
// data key.
//
// What a dump does not carry: a task's Rev (the target numbers its own
// commits from 1), final-node totals of tasks purged before the export (the
// target counts the tasks it holds), audit entries of purged tasks (the
// audit log is rebuilt from the histories, which hold every operator action
// of the tasks that remain), queue alarm states (an alarm on may fire once
// more), process versions no task runs on (serve records the current ones),
// and bulk jobs beyond the newest 1000.

// dumpFormat is the version of the dump format.
const dumpFormat = 1

// dumpRecord is one line of a dump; exactly one field is set (Task with
// History).
type dumpRecord struct {
	Conveyor   *dumpHeader          `json:"conveyor,omitempty"`
	Version    *store.Version       `json:"version,omitempty"`
	Task       *store.Task          `json:"task,omitempty"`
	History    []store.HistoryEntry `json:"history,omitempty"`
	Job        *store.Job           `json:"job,omitempty"`
	JobResults *dumpResults         `json:"job_results,omitempty"`
	End        *dumpCounts          `json:"end,omitempty"`
}

// dumpHeader opens a dump.
type dumpHeader struct {
	Format   int       `json:"format"`
	Exported time.Time `json:"exported"`
}

// dumpResults is a page of a job's results.
type dumpResults struct {
	JobID   uuid.UUID         `json:"job_id"`
	Results []store.JobResult `json:"results"`
}

// dumpCounts counts the records of a dump; the trailer carries them.
type dumpCounts struct {
	Versions   int `json:"versions"`
	Tasks      int `json:"tasks"`
	History    int `json:"history"`
	Jobs       int `json:"jobs"`
	JobResults int `json:"job_results"`
}

func (c dumpCounts) String() string {
	return fmt.Sprintf("%d tasks with %d history entries, %d process versions, %d jobs with %d results",
		c.Tasks, c.History, c.Versions, c.Jobs, c.JobResults)
}

// exportCommand writes a store's processes, tasks and jobs to stdout.
type exportCommand struct {
	stdout, stderr io.Writer
	environ        func() []string
}

// Run implements command.
func (c *exportCommand) Run(ctx context.Context, args []string) error {
	fs := newFlags("export", "", c.stderr)
	where := addStoreFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, `Usage: conveyor export [--db FILE | --store URL] > dump.jsonl

Writes every task with its history, the process versions they run on and
the bulk jobs to stdout as JSON lines, for conveyor import into another
store (bbolt <-> PostgreSQL). Sensitive fields stay sealed: the target needs
the same data key. Stop the nodes first for an exact copy; a running
service's dump mixes moments.

Flags:
`)
		fs.PrintDefaults()
	}
	st, err := openFromFlags(ctx, where, args, c.environ, false)
	if err != nil {
		return err
	}
	defer st.Close()
	w := bufio.NewWriterSize(c.stdout, 1<<16)
	n, err := exportStore(ctx, st, w)
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "conveyor export: %s\n", n)
	return nil
}

// importCommand reads a dump from stdin into a store.
type importCommand struct {
	stdout, stderr io.Writer
	environ        func() []string
	stdin          io.Reader
}

// Run implements command.
func (c *importCommand) Run(ctx context.Context, args []string) error {
	fs := newFlags("import", "", c.stderr)
	where := addStoreFlags(fs)
	skip := fs.Bool("skip-existing", false, "skip tasks and jobs the store holds already (by id), to finish an import that stopped halfway")
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, `Usage: conveyor import [--db FILE | --store URL] < dump.jsonl

Reads a dump written by conveyor export and creates its tasks (with their
history), process versions and bulk jobs in the store, a batch of tasks per
commit. The store should be new, or hold other tasks: a task or ref it
holds already stops the import (see --skip-existing). An import that stops
keeps the batches it committed. Serve the store with the dump's data key.

Flags:
`)
		fs.PrintDefaults()
	}
	st, err := openFromFlags(ctx, where, args, c.environ, true)
	if err != nil {
		return err
	}
	defer st.Close()
	in := c.stdin
	if in == nil {
		in = os.Stdin
	}
	n, skipped, err := importStore(ctx, st, bufio.NewReaderSize(in, 1<<16), *skip)
	if err != nil {
		return fmt.Errorf("%w (committed before it: %s)", err, n)
	}
	fmt.Fprintf(c.stderr, "conveyor import: %s", n)
	if skipped > 0 {
		fmt.Fprintf(c.stderr, "; skipped %d held already", skipped)
	}
	fmt.Fprintln(c.stderr)
	return nil
}

// openFromFlags parses a store command's flags and opens the store they
// name; a bolt file that does not exist is created only when create is set.
func openFromFlags(ctx context.Context, where *storeFlags, args []string, environ func() []string, create bool) (store.Store, error) {
	if err := parse(where.fs, args); err != nil {
		return nil, err
	}
	if where.fs.NArg() > 0 {
		return nil, usageError(where.fs, "unexpected argument %q", where.fs.Arg(0))
	}
	env := os.Environ()
	if environ != nil {
		env = environ()
	}
	db, url, err := where.resolve(env)
	if err != nil {
		return nil, err
	}
	if url == "" && !create {
		if _, err := os.Stat(db); err != nil {
			return nil, fmt.Errorf("database file: %w", err) // never create an empty one by mistake
		}
	}
	return openStore(ctx, db, url, slog.New(slog.DiscardHandler))
}

// exportStore writes the dump of st to w.
func exportStore(ctx context.Context, st store.Store, w io.Writer) (dumpCounts, error) {
	var n dumpCounts
	enc := json.NewEncoder(w)
	if err := enc.Encode(dumpRecord{Conveyor: &dumpHeader{Format: dumpFormat, Exported: time.Now().UTC()}}); err != nil {
		return n, err
	}
	versions := map[[2]string]bool{}
	f := store.Filter{Limit: 1000}
	for {
		page, err := st.List(ctx, f)
		if err != nil {
			return n, fmt.Errorf("list tasks: %w", err)
		}
		for _, t := range page.Tasks {
			if k := [2]string{t.Process, t.Version}; !versions[k] {
				v, err := st.Version(ctx, t.Process, t.Version)
				if err != nil {
					return n, fmt.Errorf("version %s of %s (task %s): %w", t.Version, t.Process, t.ID, err)
				}
				if err := enc.Encode(dumpRecord{Version: v}); err != nil {
					return n, err
				}
				versions[k] = true
				n.Versions++
			}
			h, err := st.History(ctx, t.ID)
			if errors.Is(err, store.ErrNotFound) {
				continue // purged since the page was read
			}
			if err != nil {
				return n, fmt.Errorf("history of task %s: %w", t.ID, err)
			}
			if err := enc.Encode(dumpRecord{Task: t, History: h}); err != nil {
				return n, err
			}
			n.Tasks++
			n.History += len(h)
		}
		if page.Next == "" {
			break
		}
		f.Cursor = page.Next
	}
	jobs, err := st.Jobs(ctx, 1000)
	if err != nil {
		return n, fmt.Errorf("list jobs: %w", err)
	}
	for _, j := range jobs {
		if err := enc.Encode(dumpRecord{Job: j}); err != nil {
			return n, err
		}
		n.Jobs++
		for cursor := ""; ; {
			rs, next, err := st.JobResults(ctx, j.ID, cursor, 1000)
			if err != nil {
				return n, fmt.Errorf("results of job %s: %w", j.ID, err)
			}
			if len(rs) > 0 {
				if err := enc.Encode(dumpRecord{JobResults: &dumpResults{JobID: j.ID, Results: rs}}); err != nil {
					return n, err
				}
				n.JobResults += len(rs)
			}
			if next == "" {
				break
			}
			cursor = next
		}
	}
	return n, enc.Encode(dumpRecord{End: &n})
}

// Import commits tasks in batches of at most importBatch tasks or
// importHistory history entries.
const (
	importBatch   = 100
	importHistory = 5000
)

// importer creates the records of a dump in a store.
type importer struct {
	ctx     context.Context
	st      store.Store
	skip    bool
	batch   []store.Change
	entries int
	n       dumpCounts // committed
	skipped int
}

// importStore reads a dump from r into st. It returns what it committed,
// also when it fails.
func importStore(ctx context.Context, st store.Store, r io.Reader, skip bool) (dumpCounts, int, error) {
	im := &importer{ctx: ctx, st: st, skip: skip}
	dec := json.NewDecoder(r)
	var read dumpCounts
	for line := 1; ; line++ {
		var rec dumpRecord
		err := dec.Decode(&rec)
		if errors.Is(err, io.EOF) {
			return im.n, im.skipped, errors.New("the dump ends before its trailer: it was cut short")
		}
		if err != nil {
			return im.n, im.skipped, fmt.Errorf("record %d: %w", line, err)
		}
		switch {
		case line == 1 && (rec.Conveyor == nil || rec.Conveyor.Format != dumpFormat):
			return im.n, im.skipped, fmt.Errorf("not a conveyor dump of format %d (the first line must be its header)", dumpFormat)
		case line == 1:
		case rec.Version != nil:
			read.Versions++
			err = im.version(rec.Version)
		case rec.Task != nil:
			read.Tasks++
			read.History += len(rec.History)
			err = im.task(rec.Task, rec.History)
		case rec.Job != nil:
			read.Jobs++
			err = im.job(rec.Job)
		case rec.JobResults != nil:
			read.JobResults += len(rec.JobResults.Results)
			err = im.results(rec.JobResults)
		case rec.End != nil:
			if err := im.flush(); err != nil {
				return im.n, im.skipped, err
			}
			if *rec.End != read {
				return im.n, im.skipped, fmt.Errorf("the trailer counts %s, the dump held %s", *rec.End, read)
			}
			if err := dec.Decode(&rec); !errors.Is(err, io.EOF) {
				return im.n, im.skipped, errors.New("records after the trailer")
			}
			return im.n, im.skipped, nil
		default:
			err = fmt.Errorf("record %d is of no kind this build knows", line)
		}
		if err != nil {
			return im.n, im.skipped, err
		}
	}
}

func (im *importer) version(v *store.Version) error {
	if err := im.st.PutVersion(im.ctx, *v); err != nil {
		return fmt.Errorf("version %s of %s: %w", v.Version, v.Process, err)
	}
	im.n.Versions++
	return nil
}

// task queues the creation of a task with its history, and commits the
// batch when it is full.
func (im *importer) task(t *store.Task, h []store.HistoryEntry) error {
	if uint32(len(h)) != t.HistoryLen {
		return fmt.Errorf("task %s: the dump holds %d history entries, the task counts %d", t.ID, len(h), t.HistoryLen)
	}
	t.Rev = 0
	im.batch = append(im.batch, store.Change{Task: t, History: h})
	im.entries += len(h)
	if len(im.batch) >= importBatch || im.entries >= importHistory {
		return im.flush()
	}
	return nil
}

// flush commits the queued tasks in one transaction; when that fails it
// commits them one by one, to skip those held already (with --skip-existing)
// or to name the one that fails.
func (im *importer) flush() error {
	batch := im.batch
	im.batch, im.entries = nil, 0
	if len(batch) == 0 {
		return nil
	}
	if err := im.st.Commit(im.ctx, batch...); err == nil {
		for _, c := range batch {
			im.n.Tasks++
			im.n.History += len(c.History)
		}
		return nil
	}
	for _, c := range batch {
		c.Task.Rev = 0
		err := im.st.Commit(im.ctx, c)
		switch {
		case err == nil:
			im.n.Tasks++
			im.n.History += len(c.History)
		case im.skip && errors.Is(err, store.ErrExists):
			im.skipped++
		default:
			return fmt.Errorf("task %s (%s, ref %q): %w", c.Task.ID, c.Task.Process, c.Task.Ref, err)
		}
	}
	return nil
}

func (im *importer) job(j *store.Job) error {
	if err := im.flush(); err != nil {
		return err
	}
	c := j.Clone()
	c.Rev = 0
	err := im.st.PutJob(im.ctx, c)
	switch {
	case err == nil:
		im.n.Jobs++
	case im.skip && errors.Is(err, store.ErrExists):
		im.skipped++
	default:
		return fmt.Errorf("job %s: %w", j.ID, err)
	}
	return nil
}

func (im *importer) results(r *dumpResults) error {
	if err := im.st.PutJobResults(im.ctx, r.JobID, r.Results); err != nil {
		return fmt.Errorf("results of job %s: %w", r.JobID, err)
	}
	im.n.JobResults += len(r.Results)
	return nil
}

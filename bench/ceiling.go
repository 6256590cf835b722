package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/conveyor-dev/conveyor/sandbox/liqpay"
	"github.com/conveyor-dev/conveyor/store"
)

// Sizes of the seed's messages on the wire and of what one commit writes,
// measured on the seed flow (see BENCHMARKS.md), so that the bare program
// moves as many bytes as the service does.
const (
	bareSubmit        = 250  // the submit's JSON body
	bareSubmitReply   = 525  // the task view a submit answers
	bareHoldRequest   = 525  // the signed LiqPay hold form
	bareHoldReply     = 620  // LiqPay's JSON answer
	bareCallback      = 860  // the signed callback form
	bareCallbackReply = 110  // {"result":"accepted",...}
	bareRecord        = 1900 // a task record in the store's binary format (1.77-1.79 KB) and the history entries (~90 B each, 1.6 per commit) a commit adds
	// bareMaxBatch is the store's default group-commit size.
	bareMaxBatch = 4096
)

// ceilingRun measures, at each of the seed's concurrencies, a bare program
// that does what a seed flow does on the wire and on disk and nothing
// else: the client POSTs a submit; the server commits and answers, then
// POSTs the hold to the LiqPay simulator (the service's, signed as LiqPay
// wants), which answers and then POSTs its callback back; the server
// commits the reply and the callback, as many fsync'd commits in all as a
// seed flow costs (measured by the seed scenario, 3 when it did not run),
// grouped by a writer like the store's. No engine: no decoding of the
// reply or the callback, no FSM, no indexes, no history.
//
// The provider is the one the seed talks to, and it shares the machine's
// two CPUs with the program in both measurements: the engine's share is
// then what the engine costs, not what the simulator does. Each round also
// measures the bare program against a bare provider (fixed bytes, no
// JSON, no signatures): the machine's limit for the exchange, reported
// beside it.
func (r *runner) ceilingRun(ctx context.Context) error {
	commits := commitsOf(r.commitsPerFlow)
	for _, conc := range r.o.Size.SeedConcurrency {
		if r.ceiling[conc] == nil {
			c, err := r.measureCeiling(ctx, conc, commits)
			if err != nil {
				return err
			}
			r.ceiling[conc] = c
		}
		c := r.ceiling[conc]
		r.cpuNote(fmt.Sprintf("ceiling @ %d", conc), c.res)
		at := fmt.Sprintf(" @ %d clients", conc)
		r.add(Row{Scenario: Ceiling, Metric: "completed flows/s" + at, Value: c.res.rate, Unit: "/s"})
		r.add(Row{Scenario: Ceiling, Metric: "end-to-end p50" + at, Value: ms(quantile(c.res.latencies, 0.5)), Unit: "ms"})
		r.add(Row{Scenario: Ceiling, Metric: "end-to-end p99" + at, Value: ms(quantile(c.res.latencies, 0.99)), Unit: "ms"})
		r.add(Row{Scenario: Ceiling, Metric: "callback ack p99" + at, Value: ms(quantile(c.acks, 0.99)), Unit: "ms"})
		if c.limit != nil {
			r.add(Row{Scenario: Ceiling, Metric: "completed flows/s, bare provider" + at, Value: c.limit.rate, Unit: "/s"})
		}
		r.note("ceiling @ %d: %d fsync'd commits per flow, %d B written per commit; %s", conc, c.commits, bareRecord, c.writer)
	}
	r.share()
	return nil
}

// commitsOf rounds the seed's measured commits per flow; 3 (submit, reply,
// callback) when the seed did not run.
func commitsOf(perFlow float64) int {
	if perFlow <= 0 {
		return 3
	}
	return max(3, int(perFlow+0.5))
}

// ceilingResult is one measurement of the bare program.
type ceilingResult struct {
	res     *loadResult
	acks    []time.Duration
	commits int
	writer  string // how hard the group committer worked
	// limit is the bare program against a bare provider, measured right
	// after res.
	limit *loadResult
}

// measureCeiling measures the bare program at conc clients, for the
// ceiling's rows and the seed's share.
func (r *runner) measureCeiling(ctx context.Context, conc, commits int) (*ceilingResult, error) {
	res, writer, err := r.ceilingAt(ctx, conc, commits, true)
	if err != nil {
		return nil, err
	}
	c := &ceilingResult{res: res, acks: r.acks.between(res.from, res.to), commits: commits, writer: writer}
	if c.limit, _, err = r.ceilingAt(ctx, conc, commits, false); err != nil {
		return nil, fmt.Errorf("bare provider: %w", err)
	}
	return c, nil
}

// ceilingAt measures the bare program at conc clients, against the LiqPay
// simulator (sandbox) or a bare provider.
func (r *runner) ceilingAt(ctx context.Context, conc, commits int, sandbox bool) (*loadResult, string, error) {
	dir, cleanup, err := r.tempDir(fmt.Sprintf("ceiling-%d", conc))
	if err != nil {
		return nil, "", err
	}
	defer cleanup()
	b, err := startBare(filepath.Join(dir, "bare.db"), commits, r.callbacks, sandbox)
	if err != nil {
		return nil, "", err
	}
	defer b.close()
	cl := newHTTPClient(conc)
	defer cl.CloseIdleConnections()
	body := bytes.Repeat([]byte("x"), bareSubmit)
	r.acks.reset()
	written := diskWritten()
	res := drive(ctx, conc, warmUp(r.o.Size.Duration), r.o.Size.Duration, nil, func(ctx context.Context, w, n int) (time.Time, time.Time, error) {
		id := fmt.Sprintf("c%d-%d-%d", conc, w, n)
		ch := b.waiters.expect(id)
		defer b.waiters.forget(id)
		start := time.Now()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.url+"/submit/"+id, bytes.NewReader(body))
		if err != nil {
			return start, time.Now(), err
		}
		req.Header.Set("Content-Type", "application/json")
		if err := roundTrip(cl, req, http.StatusCreated); err != nil {
			return start, time.Now(), err
		}
		ev, ok := await(ch, flowLimit, event.settled)
		if !ok {
			return start, time.Now(), fmt.Errorf("bare flow %s did not end within %s", id, flowLimit)
		}
		return start, ev.At, nil
	})
	writer := fmt.Sprintf("the writer committed %.1f puts per transaction, %.2f ms each",
		float64(b.w.puts.Load())/float64(max(1, b.w.batches.Load())), ms(time.Duration(b.w.busy.Load()/max(1, b.w.batches.Load()))))
	if w := diskWritten(); written >= 0 && w >= 0 && b.w.puts.Load() > 0 {
		// Over the whole drive, warm-up included.
		writer += fmt.Sprintf("; %.1f KiB written to disk per flow", float64(w-written)/1024/(float64(b.w.puts.Load())/float64(commits)))
	}
	if n := b.retries.Load(); n > 0 {
		writer += fmt.Sprintf("; %d calls or callbacks were sent again after a failed attempt (first: %s)", n, b.firstFailure.Load())
	}
	return res, writer, failed(res)
}

// roundTrip sends req, reads the whole answer and checks its status.
func roundTrip(c *http.Client, req *http.Request, want int) error {
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: HTTP %d, want %d", req.Method, req.URL.Path, resp.StatusCode, want)
	}
	return nil
}

// bare is the ceiling's server: one HTTP server holding both the service's
// endpoints and the provider's (the LiqPay simulator, or a bare one), and a
// bbolt file written by a group committer.
type bare struct {
	url    string
	srv    *http.Server
	served chan error
	// lp is the LiqPay simulator the holds go to; nil for the bare
	// provider (simulate).
	lp      *liqpay.Server
	w       *groupWriter
	out     *http.Client // server -> simulator, pooled like the engine's
	back    *http.Client // simulator -> server, as the LiqPay sandbox's
	waiters waiters
	commits int
	flows   sync.Map // id -> *atomic.Int32: the events (replied, calledBack) seen
	seq     atomic.Uint64
	wg      sync.WaitGroup
	// retries counts the calls and callbacks sent again after a failed
	// attempt; firstFailure is the first failure's error.
	retries      atomic.Int64
	firstFailure atomic.Value // string
}

func startBare(path string, commits int, callbacks http.RoundTripper, sandbox bool) (*bare, error) {
	w, err := openGroupWriter(path)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		w.close()
		return nil, err
	}
	b := &bare{
		url: "http://" + ln.Addr().String(), w: w, commits: commits, served: make(chan error, 1),
		out:     &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second}},
		back:    &http.Client{Timeout: 5 * time.Second, Transport: callbacks}, // as the service's simulators
		waiters: waiters{m: map[string]chan event{}},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /submit/{id}", b.submit)
	mux.HandleFunc("POST /callbacks/{id}", b.callback)
	if sandbox {
		// As serve --sandbox mounts it, logging as the bench's service does.
		b.lp = liqpay.New(liqpay.Config{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), HTTPClient: b.back})
		mux.Handle("/sandbox/liqpay/", http.StripPrefix("/sandbox/liqpay", b.lp))
	} else {
		mux.HandleFunc("POST /sim/request/{id}", b.simulate)
	}
	b.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { b.served <- b.srv.Serve(ln) }()
	return b, nil
}

func (b *bare) close() {
	// Shutdown waits 5 s for a connection that was opened and never used.
	b.out.CloseIdleConnections()
	b.back.CloseIdleConnections()
	_ = b.srv.Shutdown(context.Background())
	<-b.served
	b.wg.Wait()
	if b.lp != nil {
		_ = b.lp.Close() // waits for its callbacks in flight
	}
	b.out.CloseIdleConnections()
	b.back.CloseIdleConnections()
	b.w.close()
}

// commit writes n records of bareRecord bytes, each in the group commit
// that is forming, and returns once they are on disk.
func (b *bare) commit(n int) error {
	for range n {
		key := binary.BigEndian.AppendUint64(nil, b.seq.Add(1))
		if err := b.w.put(key, make([]byte, bareRecord)); err != nil {
			return err
		}
	}
	return nil
}

// submit: commit the new task, answer, then make the hold call.
func (b *bare) submit(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := io.Copy(io.Discard, r.Body); err != nil || b.commit(1) != nil {
		http.Error(w, "commit failed", http.StatusServiceUnavailable)
		return
	}
	b.flows.Store(id, &atomic.Int32{})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(make([]byte, bareSubmitReply))
	b.wg.Go(func() { b.call(id) })
}

// call sends the hold to the provider and commits its reply.
func (b *bare) call(id string) {
	target, body := b.url+"/sandbox/liqpay"+liqpay.PathRequest, []byte(nil)
	if b.lp == nil {
		target, body = b.url+"/sim/request/"+id, make([]byte, bareHoldRequest)
	} else if form, err := b.hold(id); err == nil {
		body = form
	} else {
		b.firstFailure.CompareAndSwap(nil, err.Error())
		return
	}
	err := b.retry(func() error {
		req, err := http.NewRequest(http.MethodPost, target, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return roundTrip(b.out, req, http.StatusOK)
	})
	if err != nil || b.commit(1) != nil {
		return
	}
	b.event(id, replied)
}

// hold is the LiqPay hold the seed flow's calling_api node sends for the
// bench's input (holdData), with the same fields, as the signed form the
// simulator reads. The simulator's answer is not decoded: the bare program
// commits it as it comes.
func (b *bare) hold(id string) ([]byte, error) {
	params := map[string]any{"action": "hold", "version": "3", "public_key": liqpay.DefaultPublicKey, "server_url": b.url + "/callbacks/" + id}
	for k, v := range holdData(id) {
		params[k] = fmt.Sprint(v)
	}
	for _, k := range []string{"sandbox", "prepare", "product_url", "result_url", "sender_first_name", "sender_last_name",
		"sender_country_code", "sender_city", "sender_address", "sender_postal_code"} {
		params[k] = ""
	}
	data, signature, err := liqpay.Encode(liqpay.DefaultPrivateKey, params)
	if err != nil {
		return nil, err
	}
	return []byte(url.Values{"data": {data}, "signature": {signature}}.Encode()), nil
}

// retry runs send until it succeeds, at most 1 + liqpay.CallbackRetries
// times with the LiqPay simulator's doubling backoff, as the service's
// simulators retry their callbacks (and its engine its calls): on a
// loaded machine one attempt in tens of thousands fails, and a flow of
// the bare program must not hang on it when the service's would not.
func (b *bare) retry(send func() error) error {
	backoff := liqpay.DefaultCallbackBackoff
	for attempt := 1; ; attempt++ {
		err := send()
		if err == nil || attempt > liqpay.CallbackRetries {
			return err
		}
		b.firstFailure.CompareAndSwap(nil, err.Error())
		b.retries.Add(1)
		time.Sleep(backoff)
		backoff *= 2
	}
}

// simulate is the provider: it answers the hold, then (once the answer is
// out) posts the callback, as the LiqPay sandbox does.
func (b *bare) simulate(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(make([]byte, bareHoldReply))
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	b.wg.Go(func() {
		form := "data=" + strings.Repeat("x", bareCallback-25) + "&signature=0123456789ab"
		_ = b.retry(func() error {
			req, err := http.NewRequest(http.MethodPost, b.url+"/callbacks/"+id, strings.NewReader(form))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return roundTrip(b.back, req, http.StatusOK)
		})
	})
}

// callback commits the callback (and whatever commits a seed flow spends
// beyond its three) and answers.
func (b *bare) callback(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := io.Copy(io.Discard, r.Body); err != nil || b.commit(b.commits-2) != nil {
		http.Error(w, "commit failed", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(make([]byte, bareCallbackReply))
	b.event(id, calledBack)
}

// The events a bare flow waits for, as bits.
const (
	replied int32 = 1 << iota
	calledBack
)

// event records a flow's reply or callback; the flow ends with the later of
// the two. A callback sent again after an attempt that did reach the server
// counts once.
func (b *bare) event(id string, e int32) {
	v, ok := b.flows.Load(id)
	if !ok || v.(*atomic.Int32).Or(e)|e != replied|calledBack {
		return
	}
	if b.flows.CompareAndDelete(id, v) {
		b.waiters.notify(id, event{Status: store.StatusSucceeded, At: time.Now()})
	}
}

// groupWriter is the store's group commit reduced to its physics: one
// goroutine takes the queued puts, writes them in one bbolt transaction
// and one fsync, and answers every caller.
type groupWriter struct {
	db   *bbolt.DB
	reqs chan *put
	done chan struct{}
	// batches, puts and busy (nanoseconds in transactions) say how hard
	// the writer worked.
	batches, puts, busy atomic.Int64
}

type put struct {
	key, val []byte
	err      chan error
}

var bareBucket = []byte("tasks")

func openGroupWriter(path string) (*groupWriter, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, InitialMmapSize: 1 << 30, FreelistType: bbolt.FreelistMapType})
	if err != nil {
		return nil, err
	}
	if err := db.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucketIfNotExists(bareBucket); return err }); err != nil {
		db.Close()
		return nil, err
	}
	g := &groupWriter{db: db, reqs: make(chan *put, bareMaxBatch), done: make(chan struct{})}
	go g.run()
	return g, nil
}

func (g *groupWriter) put(key, val []byte) error {
	p := &put{key: key, val: val, err: make(chan error, 1)}
	g.reqs <- p
	return <-p.err
}

func (g *groupWriter) run() {
	defer close(g.done)
	for p := range g.reqs {
		batch := []*put{p}
	collect:
		for len(batch) < bareMaxBatch {
			select {
			case q, ok := <-g.reqs:
				if !ok {
					break collect
				}
				batch = append(batch, q)
			default:
				break collect
			}
		}
		start := time.Now()
		err := g.db.Update(func(tx *bbolt.Tx) error {
			bk := tx.Bucket(bareBucket)
			for _, p := range batch {
				if err := bk.Put(p.key, p.val); err != nil {
					return err
				}
			}
			return nil
		})
		g.busy.Add(int64(time.Since(start)))
		g.batches.Add(1)
		g.puts.Add(int64(len(batch)))
		for _, p := range batch {
			p.err <- err
		}
	}
}

func (g *groupWriter) close() {
	close(g.reqs)
	<-g.done
	_ = g.db.Close()
}

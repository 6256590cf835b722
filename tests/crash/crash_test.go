// Package crash holds the engine's crash test: it runs the engine in a child
// process under load, kills it with SIGKILL at random moments, restarts it,
// and proves that nothing acknowledged was lost, no ref was duplicated, no
// task is stuck, history agrees with state, and the bbolt file is
// consistent. Run it alone with `go test ./tests/crash -v`.
package crash

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/conveyor-dev/conveyor/engine"
	"github.com/conveyor-dev/conveyor/nodes"
	"github.com/conveyor-dev/conveyor/processes"
	"github.com/conveyor-dev/conveyor/store"
	"github.com/conveyor-dev/conveyor/store/bolt"
)

const (
	envChild    = "CONVEYOR_CRASH_CHILD"
	envDB       = "CONVEYOR_CRASH_DB"
	envProvider = "CONVEYOR_CRASH_PROVIDER"
	envWAL      = "CONVEYOR_CRASH_WAL" // "1": the store has the write-ahead log
	cycles      = 8
	taskData    = `{"amount": "10.00", "card": "4242424242424242", "cvv": "123"}`
)

// TestMain turns the test binary into the engine child when asked.
func TestMain(m *testing.M) {
	if os.Getenv(envChild) == "1" {
		child()
		return
	}
	os.Exit(m.Run())
}

// child serves submit and callback-by-ref over HTTP on a free loopback port,
// prints the port, then each acknowledged submit as "ack <ref> <id>".
func child() {
	l := &processes.Loader{Kinds: nodes.Kinds()}
	defs, err := l.LoadFiles([]string{"testdata/crash.yaml"})
	must(err)
	st, err := bolt.Open(os.Getenv(envDB), bolt.Options{Timeout: 5 * time.Second, Log: os.Getenv(envWAL) == "1",
		Logger: slog.New(slog.NewTextHandler(os.Stdout, nil))}) // "write-ahead log replayed" tells the parent
	must(err)
	key := []byte("0123456789abcdef0123456789abcdef")
	eng, err := engine.New(context.Background(), engine.Config{Store: st, Definitions: defs, Loader: l, Key: key,
		BaseURL: "http://127.0.0.1", Env: map[string]string{"PROVIDER_URL": os.Getenv(envProvider)}, TimerPoll: 20 * time.Millisecond})
	must(err)
	must(eng.Start(context.Background()))
	var out sync.Mutex
	mux := http.NewServeMux()
	mux.HandleFunc("POST /submit/{ref}", func(w http.ResponseWriter, r *http.Request) {
		var data map[string]any
		dec := json.NewDecoder(r.Body)
		dec.UseNumber()
		must(dec.Decode(&data))
		v, _, err := eng.Submit(r.Context(), engine.SubmitRequest{Process: "crash", Ref: r.PathValue("ref"), Data: data})
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		out.Lock()
		fmt.Printf("ack %s %s\n", v.Ref, v.ID)
		out.Unlock()
		fmt.Fprint(w, v.ID)
	})
	mux.HandleFunc("POST /callback/{ref}", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		res, err := eng.Callback(r.Context(), engine.CallbackRequest{Process: "crash", Ref: r.PathValue("ref"), ContentType: "application/json", Body: body})
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprint(w, res.Result)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	fmt.Printf("port %d\n", ln.Addr().(*net.TCPAddr).Port)
	must(http.Serve(ln, mux))
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(3)
	}
}

// provider answers every charge at once and records each call's idempotency
// key with the task's ref.
type provider struct {
	mu   sync.Mutex
	keys map[string]map[string]bool // ref -> keys seen
}

func (p *provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	_ = json.NewDecoder(r.Body).Decode(&body)
	ref, _ := body["ref"].(string)
	p.mu.Lock()
	if p.keys[ref] == nil {
		p.keys[ref] = map[string]bool{}
	}
	p.keys[ref][r.Header.Get("Idempotency-Key")] = true
	p.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprint(w, `{"status":"pending"}`)
}

// run is one life of the child.
type run struct {
	// replayed: the child's store replayed logged commits when it opened.
	replayed atomic.Bool
	cmd      *exec.Cmd
	base     string
	acks     chan [2]string
	done     chan struct{}
}

func start(t *testing.T, db, providerURL string, wal bool) *run {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"=1", envDB+"="+db, envProvider+"="+providerURL)
	if wal {
		cmd.Env = append(cmd.Env, envWAL+"=1")
	}
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &run{cmd: cmd, acks: make(chan [2]string, 100000), done: make(chan struct{})}
	sc := bufio.NewScanner(stdout)
	ready := make(chan string, 1)
	go func() {
		defer close(r.done)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) == 2 && f[0] == "port":
				ready <- f[1]
			case len(f) == 3 && f[0] == "ack":
				r.acks <- [2]string{f[1], f[2]}
			case strings.Contains(sc.Text(), "write-ahead log replayed"):
				r.replayed.Store(true)
			}
		}
	}()
	select {
	case port := <-ready:
		r.base = "http://127.0.0.1:" + port
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("child did not start")
	}
	return r
}

func (r *run) kill() {
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	_ = r.cmd.Wait()
	<-r.done
}

// load submits tasks and delivers their callbacks until stop closes.
func load(r *run, next func() string, stop <-chan struct{}) {
	client := &http.Client{Timeout: 3 * time.Second}
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				ref := next()
				resp, err := client.Post(r.base+"/submit/"+ref, "application/json", strings.NewReader(taskData))
				if err != nil {
					return // the child died
				}
				resp.Body.Close()
				callback(client, r.base, ref, 5)
			}
		})
	}
	wg.Wait()
}

// callback delivers {"status":"ok"} by ref until accepted or duplicate, or
// until tries run out.
func callback(client *http.Client, base, ref string, tries int) string {
	for range tries {
		resp, err := client.Post(base+"/callback/"+ref, "application/json", strings.NewReader(`{"status":"ok"}`))
		if err != nil {
			return "error"
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if s := string(b); s == engine.CallbackAccepted || s == engine.CallbackDuplicate {
			return s
		}
		time.Sleep(20 * time.Millisecond) // bounded: tries * 20ms
	}
	return "gave up"
}

func TestEngine_survivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("the crash test runs the engine in a child process many times; skipped with -short")
	}
	t.Run("bolt", func(t *testing.T) { t.Parallel(); survivesSIGKILL(t, false) })
	// With the write-ahead log, a kill leaves acknowledged commits that only
	// the log holds; verify opens the file without the log option, which
	// replays it.
	t.Run("bolt_with_write-ahead_log", func(t *testing.T) { t.Parallel(); survivesSIGKILL(t, true) })
}

// survivesSIGKILL is TestEngine_survivesSIGKILL on a store with or without
// the write-ahead log.
func survivesSIGKILL(t *testing.T, wal bool) {
	db := filepath.Join(t.TempDir(), "crash.db")
	prov := &provider{keys: map[string]map[string]bool{}}
	ps := httptest.NewServer(prov)
	defer ps.Close()

	acked := map[string]string{} // ref -> id
	var seq int
	var seqMu sync.Mutex
	next := func() string {
		seqMu.Lock()
		defer seqMu.Unlock()
		seq++
		return fmt.Sprintf("r%05d", seq)
	}
	replays := 0
	for i := range cycles {
		r := start(t, db, ps.URL, wal)
		if r.replayed.Load() {
			replays++
		}
		stop := make(chan struct{})
		loaded := make(chan struct{})
		go func() { load(r, next, stop); close(loaded) }()
		time.Sleep(time.Duration(150+rand.IntN(600)) * time.Millisecond) // a random moment under load
		r.kill()
		close(stop)
		<-loaded
		close(r.acks)
		for a := range r.acks {
			acked[a[0]] = a[1]
		}
		t.Logf("cycle %d: killed; %d tasks acknowledged so far", i+1, len(acked))
	}

	// A last life with no kill: deliver every callback and let everything finish.
	r := start(t, db, ps.URL, wal)
	if r.replayed.Load() {
		replays++
	}
	t.Logf("%d of %d starts replayed logged commits", replays, cycles+1)
	if wal && replays == 0 {
		t.Error("no restart replayed logged commits: the kills never caught the log ahead of the file, so the log's recovery went untested")
	}
	client := &http.Client{Timeout: 3 * time.Second}
	for ref := range acked {
		if got := callback(client, r.base, ref, 100); got != engine.CallbackAccepted && got != engine.CallbackDuplicate {
			t.Errorf("ref %s: callback %s", ref, got)
		}
	}
	time.Sleep(500 * time.Millisecond) // the 100ms delays and their timers
	r.kill()

	verify(t, db, acked, prov)
}

// verify opens the file the child left and checks every invariant.
func verify(t *testing.T, db string, acked map[string]string, prov *provider) {
	st, err := bolt.Open(db, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Check(); err != nil {
		t.Fatalf("bbolt file inconsistent: %v", err)
	}
	ctx := context.Background()
	byRef := map[string]int{}
	var all []*store.Task
	f := store.Filter{Process: "crash", Limit: 1000}
	for {
		page, err := st.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page.Tasks...)
		if page.Next == "" {
			break
		}
		f.Cursor = page.Next
	}
	for _, task := range all {
		byRef[task.Ref]++
		h, err := st.History(ctx, task.ID)
		if err != nil {
			t.Fatal(err)
		}
		if uint32(len(h)) != task.HistoryLen || h[len(h)-1].To != task.Node {
			t.Errorf("task %s: history (%d entries, last to %s) disagrees with state (%d, node %s)", task.ID, len(h), h[len(h)-1].To, task.HistoryLen, task.Node)
		}
		if task.Status != store.StatusSucceeded && acked[task.Ref] != "" {
			t.Errorf("acknowledged task %s (%s) is %s in %s, error %+v", task.ID, task.Ref, task.Status, task.Node, task.Error)
		}
		if task.Status == store.StatusWaiting && task.TimerAt.IsZero() {
			t.Errorf("task %s waits without a timer", task.ID)
		}
		if strings.Contains(string(task.Data), "4242424242424242") {
			t.Errorf("task %s holds the card number in clear", task.ID)
		}
	}
	for ref, id := range acked {
		if byRef[ref] != 1 {
			t.Errorf("acknowledged ref %s (task %s) found %d times", ref, id, byRef[ref])
		}
	}
	prov.mu.Lock()
	defer prov.mu.Unlock()
	for ref, keys := range prov.keys {
		if len(keys) != 1 {
			t.Errorf("ref %s: the provider saw %d idempotency keys, want 1 (retries must reuse it)", ref, len(keys))
		}
	}
	t.Logf("%d tasks acknowledged, %d stored, all consistent", len(acked), len(all))
}

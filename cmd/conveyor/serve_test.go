package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conveyor-dev/conveyor/api"
	"github.com/conveyor-dev/conveyor/client"
	"github.com/conveyor-dev/conveyor/processes"
)

// waitBudget bounds every wait of these tests.
const waitBudget = 15 * time.Second

// served is a serve command running in this process.
type served struct {
	url    string
	stderr *syncBuffer
	stop   func() int // cancels the command's context and returns its exit code
}

// startServe runs `conveyor serve args...` in-process (with environ as its
// environment) until the test ends, and waits for its listening line.
func startServe(t *testing.T, environ []string, args ...string) *served {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	stderr := &syncBuffer{}
	done := make(chan int, 1)
	cmd := &serveCommand{stdout: pw, stderr: stderr, environ: func() []string { return environ }}
	go func() {
		done <- codeOf(cmd.Run(ctx, args), stderr)
		pw.Close()
	}()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var url string
	select {
	case line, ok := <-lines:
		if !ok {
			cancel()
			t.Fatalf("serve ended before listening (exit %d):\n%s", <-done, stderr)
		}
		var found bool
		if url, found = strings.CutPrefix(line, "conveyor: listening on "); !found {
			t.Fatalf("first line %q", line)
		}
	case <-time.After(waitBudget):
		cancel()
		t.Fatalf("serve did not listen within %s:\n%s", waitBudget, stderr)
	}
	go func() {
		for range lines {
		}
	}()
	var once sync.Once
	code := -1
	stop := func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(waitBudget):
				t.Errorf("serve did not stop within %s", waitBudget)
			}
		})
		return code
	}
	t.Cleanup(func() { stop() })
	return &served{url: url, stderr: stderr, stop: stop}
}

// codeOf maps a command's error to an exit code as run does, printing the
// error to stderr.
func codeOf(err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintln(stderr, err.Error())
	return 1
}

// input is valid liqpay-hold data.
const input = `{"phone":"380950000001","amount":"5.50","currency":"UAH","description":"test","order_id":"%s",` +
	`"card":"%s","card_exp_month":"12","card_exp_year":"39","card_cvv":"123","ip":"127.0.0.1"}`

func TestServe_withSandbox(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "conveyor.db")
	s := startServe(t, nil, "--addr", "127.0.0.1:0", "--db", db, "--sandbox", "--token", "s3cret")

	c := client.New(s.url, "s3cret", nil)
	ctx := context.Background()
	task, created, err := c.Submit(ctx, "liqpay-hold", "r1", json.RawMessage(fmt.Sprintf(input, "o1", "4242424242424242")))
	if err != nil || !created {
		t.Fatalf("Submit: %v %v", err, created)
	}
	awaitTask(t, c, task.ID, "succeeded")

	for _, path := range []string{"/healthz", "/metrics", "/api/v1/openapi.json"} {
		resp, err := http.Get(s.url + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", path, resp.StatusCode)
		}
		// The bolt store's group commits reach the metrics: the task's
		// commits were written by some.
		for _, name := range []string{api.MetricGroupCommitDuration, api.MetricGroupCommitPages} {
			if path == "/metrics" && !regexp.MustCompile(`(?m)^`+name+`_count [1-9]`).Match(body) {
				t.Errorf("metrics lack the store's group commits (%s):\n%s", name, grepLines(string(body), "conveyor_store"))
			}
		}
		// One task makes no group of 512: the history backlog stays empty.
		if path == "/metrics" && !regexp.MustCompile(`(?m)^`+api.MetricHistoryBacklog+` 0$`).Match(body) {
			t.Errorf("metrics lack an empty history backlog:\n%s", grepLines(string(body), "conveyor_store"))
		}
	}
	resp, err := http.Get(s.url + "/api/v1/tasks")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/tasks without the token: %d", resp.StatusCode)
	}

	if code := s.stop(); code != 0 {
		t.Errorf("serve exited %d:\n%s", code, s.stderr)
	}
	logs := s.stderr.String()
	for _, want := range []string{`"msg":"listening"`, `"msg":"shutting down"`, `"msg":"stopped"`, `"route":"POST /callbacks/{token}"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s", want)
		}
	}
	for _, secret := range []string{"4242424242424242", "s3cret", `"123"`} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain %q", secret)
		}
	}
	fi, err := os.Stat(db + ".key")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != keySize {
		t.Errorf("key file mode %v size %d", fi.Mode().Perm(), fi.Size())
	}

	// A restart reads the same key and the same tasks.
	s = startServe(t, nil, "--addr", "127.0.0.1:0", "--db", db, "--sandbox", "--token", "s3cret")
	got, err := client.New(s.url, "s3cret", nil).Task(ctx, task.ID)
	if err != nil || got.Status != "succeeded" || got.Data["card"] != "424242******4242" {
		t.Errorf("after restart: %v %+v", err, got)
	}
}

func TestServe_processesDirAndEnvironment(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	flows := filepath.Join(dir, "flows")
	if err := os.Mkdir(flows, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := fs.ReadFile(processes.Shipped(), "liqpay-hold.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(flows, "hold.yaml"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	// Without --sandbox the flow's env.LIQPAY_URL must come from the
	// environment; this one points nowhere, so the call is retried.
	environ := []string{
		"CONVEYOR_ENV_LIQPAY_URL=http://127.0.0.1:1",
		"CONVEYOR_SECRET_LIQPAY_PUBLIC_KEY=pk", "CONVEYOR_SECRET_LIQPAY_PRIVATE_KEY=sk",
		"CONVEYOR_TOKEN=from-env",
	}
	s := startServe(t, environ, "--addr", "127.0.0.1:0", "--db", filepath.Join(dir, "c.db"), "--processes", flows)
	c := client.New(s.url, "from-env", nil)
	list, err := c.Processes(context.Background())
	if err != nil || len(list) != 1 || list[0].Name != "liqpay-hold" {
		t.Fatalf("Processes: %v %+v", err, list)
	}
	if _, err := client.New(s.url, "", nil).Processes(context.Background()); err == nil {
		t.Error("the token from CONVEYOR_TOKEN is not required")
	}
	if strings.Contains(s.stderr.String(), "not configured") {
		t.Errorf("secrets from the environment were not seen:\n%s", s.stderr)
	}
}

func TestServe_refusals(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	loose := filepath.Join(dir, "loose.db")
	if err := os.WriteFile(loose+".key", bytes.Repeat([]byte{1}, keySize), 0o644); err != nil {
		t.Fatal(err)
	}
	orphan := filepath.Join(dir, "orphan.db")
	if err := os.WriteFile(orphan, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		environ []string
		args    []string
		code    int
		want    string
	}{
		{"public address without a token", nil, []string{"--addr", "0.0.0.0:0"}, 1, "refusing to listen on 0.0.0.0:0 without a token"},
		{"all interfaces without a token", nil, []string{"--addr", ":0"}, 1, "without a token"},
		{"bad address", nil, []string{"--addr", "nowhere"}, 2, "bad address"},
		{"key open to others", nil, []string{"--addr", "127.0.0.1:0", "--db", loose}, 1, "chmod 600"},
		{"database without its key", nil, []string{"--addr", "127.0.0.1:0", "--db", orphan}, 1, "restore the key"},
		{"flow variable missing", nil, []string{"--addr", "127.0.0.1:0", "--db", filepath.Join(dir, "x.db")}, 1, "CONVEYOR_ENV_"},
		{"no flows", nil, []string{"--addr", "127.0.0.1:0", "--db", filepath.Join(dir, "y.db"), "--processes", dir}, 1, "no flows"},
		{"stray argument", nil, []string{"now"}, 2, "unexpected argument"},
		{"bad flag", nil, []string{"--port", "1"}, 2, "flag provided but not defined"},
		{"write-ahead log asked for PostgreSQL", nil, []string{"--wal", "--store", "postgres://127.0.0.1:1/x"}, 2, "--wal is for a bolt file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			cmd := &serveCommand{stdout: &stdout, stderr: &stderr, environ: func() []string { return c.environ }}
			ctx, cancel := context.WithTimeout(context.Background(), waitBudget)
			defer cancel()
			code := codeOf(cmd.Run(ctx, c.args), &stderr)
			if code != c.code || !strings.Contains(stderr.String(), c.want) {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, c.code, stderr.String())
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout: %s", stdout.String())
			}
		})
	}

	t.Run("through run", func(t *testing.T) {
		t.Parallel()
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"serve", "--addr", "0.0.0.0:0", "--token", ""}, &stdout, &stderr)
		if os.Getenv(envToken) == "" && (code != 1 || !strings.Contains(stderr.String(), "conveyor serve: refusing")) {
			t.Errorf("exit %d; stderr:\n%s", code, stderr.String())
		}
	})
}

func TestFlowConfig(t *testing.T) {
	t.Parallel()
	env, secrets := flowConfig([]string{
		"CONVEYOR_ENV_LIQPAY_URL=https://www.liqpay.ua", "CONVEYOR_ENV_Mixed_Case=x=y",
		"CONVEYOR_SECRET_LIQPAY_PRIVATE_KEY=sk", "CONVEYOR_SECRET_=ignored", "CONVEYOR_ENV_=ignored",
		"PATH=/bin", "CONVEYOR_TOKEN=t",
	})
	if len(env) != 2 || env["LIQPAY_URL"] != "https://www.liqpay.ua" || env["Mixed_Case"] != "x=y" {
		t.Errorf("env %v", env)
	}
	if len(secrets) != 1 || secrets["liqpay_private_key"] != "sk" {
		t.Errorf("secrets %v", secrets)
	}
}

func TestLoopback(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "localhost:80": true, "[::1]:0": true, "127.1.2.3:1": true,
		"0.0.0.0:8080": false, ":8080": false, "10.0.0.1:80": false, "[::]:1": false, "example.com:80": false,
	} {
		got, err := loopback(addr)
		if err != nil || got != want {
			t.Errorf("loopback(%q) = %v, %v; want %v", addr, got, err, want)
		}
	}
}

func awaitTask(t *testing.T, c *client.Client, id, status string) *client.Task {
	t.Helper()
	deadline := time.Now().Add(waitBudget)
	for {
		task, err := c.Task(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if task.Status == status {
			return task
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s is %s in %s, never %s", id, task.Status, task.Node, status)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestSandboxTransport: the simulators mounted by `serve --sandbox` call back
// on a pooled transport, so a second wave of concurrent callbacks reuses the
// first wave's connections instead of opening new ones (Go's default keeps
// two idle connections per host).
func TestSandboxTransport(t *testing.T) {
	t.Parallel()
	const callers = 64
	var opened atomic.Int32
	// Each wave's requests are held until all of them have arrived, so that
	// every wave needs callers connections at once.
	arrived := make(chan struct{}, callers)
	var release atomic.Pointer[chan struct{}]
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		gate := *release.Load()
		arrived <- struct{}{}
		<-gate
		w.WriteHeader(http.StatusOK)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	client := &http.Client{Timeout: 10 * time.Second, Transport: sandboxTransport()}
	wave := func() {
		gate := make(chan struct{})
		release.Store(&gate)
		var wg sync.WaitGroup
		for range callers {
			wg.Go(func() {
				resp, err := client.Post(srv.URL+"/callbacks/x", "application/x-www-form-urlencoded", strings.NewReader("data=x"))
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			})
		}
		for range callers {
			select {
			case <-arrived:
			case <-time.After(10 * time.Second):
				t.Fatal("the wave's callbacks did not all arrive")
			}
		}
		close(gate)
		wg.Wait()
	}
	wave()
	first := opened.Load()
	if first != callers {
		t.Fatalf("the first wave of %d concurrent callbacks opened %d connections", callers, first)
	}
	wave()
	if again := opened.Load() - first; again > 0 {
		t.Errorf("the second wave of %d callbacks opened %d new connections: idle ones are not kept", callers, again)
	}
}

// grepLines returns the lines of text that contain sub.
func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestServe_writeAheadLog: by default, a hold runs to its end with every
// commit logged in FILE.wal first; the log holds no card number or CVV in
// clear, is emptied once the file has everything at shutdown, and a start
// with --wal=false serves the same tasks and removes the log.
func TestServe_writeAheadLog(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "conveyor.db")
	s := startServe(t, nil, "--addr", "127.0.0.1:0", "--db", db, "--sandbox")
	c := client.New(s.url, "", nil)
	ctx := context.Background()
	task, _, err := c.Submit(ctx, "liqpay-hold", "w1", json.RawMessage(fmt.Sprintf(input, "ow1", "4242424242424242")))
	if err != nil {
		t.Fatal(err)
	}
	awaitTask(t, c, task.ID, "succeeded")
	wal, err := os.ReadFile(db + ".wal")
	if err != nil || len(wal) == 0 {
		t.Fatalf("the write-ahead log while serving: %d bytes, %v; want the task's commits", len(wal), err)
	}
	for _, secret := range []string{"4242424242424242", `"card_cvv":"123"`} {
		if bytes.Contains(wal, []byte(secret)) {
			t.Errorf("the write-ahead log holds %q in clear", secret)
		}
	}
	if code := s.stop(); code != 0 {
		t.Fatalf("serve exited %d:\n%s", code, s.stderr)
	}
	if fi, err := os.Stat(db + ".wal"); err != nil || fi.Size() != 0 {
		t.Errorf("the log after shutdown: %v, %v; want it empty", fi, err)
	}

	s = startServe(t, nil, "--addr", "127.0.0.1:0", "--db", db, "--sandbox", "--wal=false")
	got, err := client.New(s.url, "", nil).Task(ctx, task.ID)
	if err != nil || got.Status != "succeeded" {
		t.Errorf("after a restart with --wal=false: %v %+v", err, got)
	}
	if _, err := os.Stat(db + ".wal"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the log after a start with --wal=false: %v, want it removed", err)
	}
}

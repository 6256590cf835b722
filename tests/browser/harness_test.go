// Package browser holds the operator dashboard's browser tests: the real
// `conveyor serve --sandbox` binary on 127.0.0.1, driven through headless
// Chromium with chromedp, and checked through the JSON API.
//
// Chromium comes from Debian's package, installed by `bash
// scripts/browser.sh`; CONVEYOR_CHROMIUM names another binary. Without it
// the tests skip, unless CI is set, when they fail. CONVEYOR_BIN names a
// prebuilt conveyor binary (default: built into a temporary directory).
// Screenshots of each main page go to a temporary directory, or to
// tests/browser/screenshots/ when CONVEYOR_SCREENSHOTS=1.
//
// Run them alone with `go test ./tests/browser/ -v`.
package browser

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Bounds of every wait.
const (
	buildLimit = 5 * time.Minute  // go build of the binary
	startLimit = 30 * time.Second // the server's "listening" line
	stepLimit  = 30 * time.Second // one browser step
	testLimit  = 4 * time.Minute  // the browser's whole life
)

// chromiumPath returns the browser to drive, skipping (or, under CI,
// failing) the test when there is none.
func chromiumPath(t *testing.T) string {
	t.Helper()
	p := os.Getenv("CONVEYOR_CHROMIUM")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
		return p
	}
	msg := fmt.Sprintf("headless Chromium is not installed at %s: run `bash scripts/browser.sh` (or set CONVEYOR_CHROMIUM)", p)
	if os.Getenv("CI") != "" {
		t.Fatal(msg + "; CI is set, so the browser tests must run")
	}
	t.Skip(msg)
	return ""
}

// server is a running `conveyor serve --sandbox`.
type server struct {
	t     *testing.T
	URL   string
	token string
	cmd   *exec.Cmd
	logs  *bytes.Buffer
	mu    *sync.Mutex
}

// binary returns the conveyor binary: CONVEYOR_BIN, or one built now.
func binary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CONVEYOR_BIN"); p != "" {
		return p
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out := filepath.Join(t.TempDir(), "conveyor")
	ctx, cancel := context.WithTimeout(context.Background(), buildLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", out, "github.com/conveyor-dev/conveyor/cmd/conveyor")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/conveyor: %v\n%s", err, b)
	}
	return out
}

// startServer runs the binary with the sandbox and a token on a free
// loopback port, and stops it when the test ends.
func startServer(t *testing.T, bin, token string) *server {
	t.Helper()
	dir := t.TempDir()
	s := &server{t: t, token: token, logs: &bytes.Buffer{}, mu: &sync.Mutex{}}
	s.cmd = exec.Command(bin, "serve", "--sandbox", "--addr", "127.0.0.1:0",
		"--db", filepath.Join(dir, "conveyor.db"), "--token", token, "--log-level", "warn")
	s.cmd.Env = append(os.Environ(), "CONVEYOR_TOKEN=")
	s.cmd.Stderr = lockedWriter{s.mu, s.logs}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = s.cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			s.mu.Lock()
			t.Logf("server log:\n%s", s.logs.String())
			s.mu.Unlock()
		}
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "conveyor: listening on "); ok {
				lines <- u
			}
		}
	}()
	select {
	case s.URL = <-lines:
	case <-exited:
		t.Fatalf("conveyor serve exited before listening:\n%s", s.logs.String())
	case <-time.After(startLimit):
		t.Fatalf("conveyor serve did not print its address within %v", startLimit)
	}
	if !strings.HasPrefix(s.URL, "http://127.0.0.1:") {
		t.Fatalf("server listens on %s, want loopback", s.URL)
	}
	return s
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// call does one API request with the token; out, when non-nil, receives
// the JSON answer. It returns the status.
func (s *server) call(method, path string, body, out any) int {
	s.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			s.t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.URL+path, r)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("X-Conveyor-Actor", "browser-test")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	if out != nil && res.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			s.t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return res.StatusCode
}

// must does a request that must answer want.
func (s *server) must(want int, method, path string, body, out any) {
	s.t.Helper()
	if got := s.call(method, path, body, out); got != want {
		s.t.Fatalf("%s %s: status %d, want %d", method, path, got, want)
	}
}

// served reports whether the API has a route (it answers something other
// than the "no such endpoint" 404).
func (s *server) served(path string) bool {
	s.t.Helper()
	var e struct {
		Error struct{ Message string } `json:"error"`
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	_ = json.NewDecoder(res.Body).Decode(&e)
	return !(res.StatusCode == http.StatusNotFound && strings.Contains(e.Error.Message, "no such endpoint"))
}

// task is the part of the API's task the tests read.
type task struct {
	ID     string         `json:"id"`
	Ref    string         `json:"ref"`
	Node   string         `json:"node"`
	Status string         `json:"status"`
	Data   map[string]any `json:"data"`
	Error  *struct {
		Code string `json:"code"`
		Node string `json:"node"`
	} `json:"error"`
	History []struct {
		From   string `json:"from"`
		To     string `json:"to"`
		Event  string `json:"event"`
		Actor  string `json:"actor"`
		Reason string `json:"reason"`
		Detail string `json:"detail"`
	} `json:"history"`
}

// awaitTask polls a task until ok accepts it.
func (s *server) awaitTask(id string, what string, ok func(*task) bool) *task {
	s.t.Helper()
	deadline := time.Now().Add(stepLimit)
	for {
		var v task
		s.must(200, "GET", "/api/v1/tasks/"+id, nil, &v)
		if ok(&v) {
			return &v
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("task %s never became %s; it is %s in %s", id, what, v.Status, v.Node)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// browser is one headless Chromium tab with the page's errors collected.
type browser struct {
	t    *testing.T
	ctx  context.Context
	dir  string
	mu   sync.Mutex
	errs []string
}

// newBrowser starts Chromium headless with a fresh profile and no
// background networking; it stops when the test ends.
func newBrowser(t *testing.T, exe string) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 960),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter"),
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("lang", "en-US"),
	}
	root, stop := context.WithTimeout(context.Background(), testLimit)
	actx, cancelAlloc := chromedp.NewExecAllocator(root, opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
		stop()
	})
	b := &browser{t: t, ctx: ctx, dir: screenshotDir(t)}
	// Start the browser on a context without a step timeout: the first
	// Run's context owns it.
	if _, err := chromedp.Run(ctx, chromedp.Location()); err != nil {
		t.Fatalf("start %s: %v", exe, err)
	}
	b.collect()
	return b
}

// collect records uncaught exceptions, console.error calls and browser
// log errors (CSP violations among them) for check.
func (b *browser) collect() {
	exceptions := chromedp.Events(b.ctx, cdpruntime.ExceptionThrown)
	console := chromedp.Events(b.ctx, cdpruntime.ConsoleAPICalled)
	entries := chromedp.Events(b.ctx, log.EntryAdded)
	if _, err := chromedp.Call(b.ctx, log.Enable, cdp.Empty{}); err != nil {
		b.t.Fatal(err)
	}
	add := func(s string) {
		b.mu.Lock()
		b.errs = append(b.errs, s)
		b.mu.Unlock()
	}
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			msg := ev.ExceptionDetails.Text
			if ev.ExceptionDetails.Exception != nil {
				msg += " " + ev.ExceptionDetails.Exception.Description
			}
			add("exception: " + msg)
		}
	}()
	go func() {
		for ev, err := range console {
			if err != nil {
				return
			}
			if ev.Type == cdpruntime.ConsoleAPICalledTypeError {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, string(a.Value))
				}
				add("console.error: " + strings.Join(parts, " "))
			}
		}
	}()
	go func() {
		for ev, err := range entries {
			if err != nil {
				return
			}
			// 404s of endpoints not served yet are expected and handled.
			if ev.Entry.Level == log.EntryLevelError && ev.Entry.Source != log.EntrySourceNetwork {
				add(fmt.Sprintf("log %s: %s", ev.Entry.Source, ev.Entry.Text))
			}
		}
	}()
}

// check fails the test if the page reported errors.
func (b *browser) check() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.errs {
		b.t.Errorf("page error: %s", e)
	}
	b.errs = nil
}

// do runs steps within stepLimit; on failure it saves a screenshot and
// fails with the page's address.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepLimit)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.fail(what, err)
	}
}

// eval evaluates a JavaScript expression within stepLimit.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepLimit)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.fail("evaluate "+expr, err)
	}
	return v
}

// waitFor polls a JavaScript predicate until it is truthy.
func (b *browser) waitFor(what, expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepLimit+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(stepLimit)))
	if err != nil {
		b.fail("wait for "+what, err)
	}
}

func (b *browser) fail(what string, err error) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	where, _ := chromedp.Run(ctx, chromedp.Location())
	b.screenshot("failure")
	b.check()
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%w (after %v)", err, stepLimit)
	}
	b.t.Fatalf("%s at %s: %v", what, where, err)
}

// screenshot saves the whole page as name.png.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepLimit)
	defer cancel()
	// Let fonts settle; clear the passing notices, which would cover the page.
	_, _ = chromedp.Run(ctx, chromedp.Poll[chromedp.Void](`document.fonts.status === "loaded"`, chromedp.WithPollingTimeout(5*time.Second)))
	_ = chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`document.getElementById('toasts')?.replaceChildren()`))
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	p := filepath.Join(b.dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Errorf("save screenshot: %v", err)
		return
	}
	b.t.Logf("screenshot %s", p)
}

// screenshotDir is tests/browser/screenshots/ with CONVEYOR_SCREENSHOTS=1,
// else a temporary directory.
func screenshotDir(t *testing.T) string {
	if os.Getenv("CONVEYOR_SCREENSHOTS") == "1" {
		dir, err := filepath.Abs("screenshots")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	return t.TempDir()
}

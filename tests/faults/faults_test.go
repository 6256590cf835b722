// Package faults runs `conveyor serve` as a process and breaks what is under
// it: a disk that fills up, a file system that turns read-only, more load
// than it can take. In every case the server must answer clearly (503, 429),
// keep serving reads, lose nothing it acknowledged, and recover when the
// fault goes. The disk tests mount small tmpfs file systems, so they need
// root; they skip without it (and fail in CI, which runs as root).
package faults

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "conveyor-faults-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "conveyor")
	if out, err := exec.Command("go", "build", "-o", binary, "github.com/conveyor-dev/conveyor/cmd/conveyor").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build conveyor: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is a running `conveyor serve`.
type server struct {
	cmd  *exec.Cmd
	url  string
	logs *bytes.Buffer
	mu   sync.Mutex
}

func serve(t *testing.T, db string, flags ...string) *server {
	t.Helper()
	dir, _ := filepath.Abs("testdata")
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--db", db, "--processes", dir, "--log-level", "warn"}, flags...)
	s := &server{cmd: exec.Command(binary, args...), logs: &bytes.Buffer{}}
	s.cmd.Stderr = writerFunc(func(b []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.logs.Write(b) })
	out, _ := s.cmd.StdoutPipe()
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "conveyor: listening on "); ok {
				ready <- u
			}
		}
	}()
	select {
	case s.url = <-ready:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		t.Fatalf("serve did not start:\n%s", s.log())
	}
	t.Cleanup(func() {
		_ = s.cmd.Process.Signal(syscall.SIGKILL)
		_ = s.cmd.Wait()
	})
	return s
}

func (s *server) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.String()
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

var httpc = &http.Client{Timeout: 10 * time.Second}

// submit posts a task and returns the status and the decoded body.
func (s *server) submit(ref string, n int, note string) (int, map[string]any) {
	body := fmt.Sprintf(`{"ref": %q, "data": {"n": %d, "note": %q}}`, ref, n, note)
	resp, err := httpc.Post(s.url+"/api/v1/processes/quick/tasks", "application/json", strings.NewReader(body))
	if err != nil {
		return 0, map[string]any{"transport": err.Error()}
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func (s *server) get(path string) (int, map[string]any) {
	resp, err := httpc.Get(s.url + path)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// tmpfs mounts a file system of size bytes for the test.
func tmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("mount tmpfs: %v (CI runs as root and must run the disk tests)", err)
		}
		t.Skipf("mount tmpfs: %v: the disk fault tests need root", err)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

func remount(t *testing.T, dir, opts string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,"+opts, dir).CombinedOutput(); err != nil {
		t.Fatalf("remount %s: %v %s", opts, err, out)
	}
}

func errorCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

// TestDisk_full fills the file system under the database: the server must
// answer 503 with a clear error, keep every acknowledged task readable, and
// take work again once there is room.
//
// With the write-ahead log (serve's default) the log fills the disk first;
// lists, which wait for the file to apply the log, fail with the same clear
// 503 until there is room.
func TestDisk_full(t *testing.T) {
	t.Run("bolt_with_write-ahead_log", func(t *testing.T) { diskFull(t) })
	t.Run("bolt_without_write-ahead_log", func(t *testing.T) { diskFull(t, "--wal=false") })
}

// diskFull is TestDisk_full with serve's extra flags.
func diskFull(t *testing.T, flags ...string) {
	wal := !slices.Contains(flags, "--wal=false")
	dir := tmpfs(t, "6m")
	db := filepath.Join(dir, "conveyor.db")
	s := serve(t, db, flags...)
	note := strings.Repeat("x", 3000)
	var acked []string
	status := 0
	var body map[string]any
	for i := range 20000 { // bounded: 6 MiB fill long before
		status, body = s.submit(fmt.Sprintf("full-%d", i), i, note)
		if status != http.StatusCreated {
			break
		}
		acked = append(acked, body["id"].(string))
	}
	if status != http.StatusServiceUnavailable || errorCode(body) != "unavailable" {
		t.Fatalf("after %d tasks: HTTP %d %v; want 503 unavailable", len(acked), status, body)
	}
	if len(acked) < 100 {
		t.Fatalf("only %d tasks fit before the disk was full", len(acked))
	}
	msg, _ := body["error"].(map[string]any)["message"].(string)
	if msg == "" || strings.Contains(msg, "internal") {
		t.Errorf("503 message %q: want a clear one", msg)
	}
	for _, id := range []string{acked[0], acked[len(acked)/2], acked[len(acked)-1]} {
		if code, task := s.get("/api/v1/tasks/" + id); code != 200 || task["status"] != "succeeded" {
			t.Errorf("acknowledged task %s: HTTP %d %v", id, code, task["status"])
		}
	}
	code, page := s.get("/api/v1/tasks?process=quick&limit=1000")
	switch {
	case wal && (code != http.StatusServiceUnavailable || errorCode(page) != "unavailable"):
		t.Errorf("list while full, with the log the file cannot apply: HTTP %d %v; want 503 unavailable", code, page)
	case !wal && (code != 200 || len(page["tasks"].([]any)) == 0):
		t.Errorf("list while full: HTTP %d", code)
	}
	remount(t, dir, "size=64m")
	if status, body := s.submit("after-full", 1, "ok"); status != http.StatusCreated {
		t.Errorf("with room again: HTTP %d %v; want 201", status, body)
	}
	// Nothing acknowledged was lost: every task is there after a restart.
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	_ = s.cmd.Wait()
	s = serve(t, db, flags...)
	missing := 0
	for _, id := range acked {
		if code, _ := s.get("/api/v1/tasks/" + id); code != 200 {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d acknowledged tasks are gone after a restart", missing, len(acked))
	}
	if code, page := s.get("/api/v1/tasks?process=quick&limit=1000"); code != 200 || len(page["tasks"].([]any)) == 0 {
		t.Errorf("list after the restart: HTTP %d", code)
	}
	t.Logf("%d tasks fit in 6 MiB; then 503; then recovered", len(acked))
}

// TestDisk_readOnly: a database on a read-only file system. Linux refuses to
// remount a file system read-only while the server holds its file open for
// writing, so the fault is met at start: serve must refuse with a clear
// error, and the data written before must be intact once the disk is
// writable again.
func TestDisk_readOnly(t *testing.T) {
	dir := tmpfs(t, "64m")
	db := filepath.Join(dir, "conveyor.db")
	s := serve(t, db)
	code, first := s.submit("ro-1", 1, "")
	if code != http.StatusCreated {
		t.Fatalf("first submit: %d %v", code, first)
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	_ = s.cmd.Wait()
	remount(t, dir, "ro")
	cmd := exec.Command(binary, "serve", "--addr", "127.0.0.1:0", "--db", db, "--processes", "testdata")
	out, err := cmd.CombinedOutput()
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "read-only") {
		t.Fatalf("serve on a read-only disk: %v, output:\n%s\nwant exit 1 and a message that says read-only", err, out)
	}
	remount(t, dir, "rw")
	s = serve(t, db)
	if code, task := s.get("/api/v1/tasks/" + first["id"].(string)); code != 200 || task["status"] != "succeeded" {
		t.Errorf("the task acknowledged before: HTTP %d %v", code, task)
	}
	if code, body := s.submit("ro-2", 2, ""); code != http.StatusCreated {
		t.Errorf("after the disk is writable again: HTTP %d %v", code, body)
	}
}

// TestOverload sends far more concurrent submits than the server admits: it
// sheds the excess with 429, answers everything else normally, keeps its
// memory bounded, and serves normally afterwards.
func TestOverload(t *testing.T) {
	t.Parallel()
	s := serve(t, filepath.Join(t.TempDir(), "conveyor.db"), "--max-inflight", "4")
	var ok, shed, other atomic.Int64
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for w := range 64 {
		wg.Go(func() {
			for i := range 40 {
				if ctx.Err() != nil {
					return
				}
				switch code, _ := s.submit(fmt.Sprintf("load-%d-%d", w, i), i, strings.Repeat("y", 200)); code {
				case http.StatusCreated:
					ok.Add(1)
				case http.StatusTooManyRequests:
					shed.Add(1)
				default:
					other.Add(1)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("accepted %d, shed %d (429), other %d", ok.Load(), shed.Load(), other.Load())
	if shed.Load() == 0 || ok.Load() == 0 || other.Load() != 0 {
		t.Errorf("accepted %d, shed %d, other %d: want some of each of the first two and nothing else", ok.Load(), shed.Load(), other.Load())
	}
	if code, _ := s.submit("after-load", 1, ""); code != http.StatusCreated {
		t.Errorf("after the load: HTTP %d", code)
	}
	if rss := rssKiB(t, s.cmd.Process.Pid); rss > 512*1024 {
		t.Errorf("RSS %d KiB after the load: memory is not bounded", rss)
	}
}

// rssKiB reads a process's resident set size.
func rssKiB(t *testing.T, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			var n int
			fmt.Sscan(f[1], &n)
			return n
		}
	}
	return 0
}

var _ = io.Discard

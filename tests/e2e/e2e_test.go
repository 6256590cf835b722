// Package e2e runs the conveyor binary as people do — `conveyor serve` and
// `conveyor sandbox liqpay` as separate processes on loopback — and drives
// the seed's LiqPay hold through the HTTP API: success, OTP, decline,
// timeout, duplicate submits and callbacks, a SIGKILL mid-flow, and a scan
// of the database file, the logs and every response for card data.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	conveyor "github.com/conveyor-dev/conveyor"
	"github.com/conveyor-dev/conveyor/client"
	"github.com/conveyor-dev/conveyor/sandbox/liqpay"
)

// Card data the scan looks for: the sandbox cards used and the CVV.
const cvv = "739"

var cards = []string{"4242424242424242", "4000000000003089", "4000000000000002"}

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "conveyor-e2e-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "conveyor")
	out, err := exec.Command("go", "build", "-o", binary, "github.com/conveyor-dev/conveyor/cmd/conveyor").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build conveyor: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running conveyor process.
type proc struct {
	cmd  *exec.Cmd
	url  string
	logs *bytes.Buffer
	mu   *sync.Mutex
}

// start runs the binary with args and env until it prints its URL line.
func start(t *testing.T, prefix string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	p := &proc{cmd: cmd, logs: &bytes.Buffer{}, mu: &sync.Mutex{}}
	cmd.Stderr = lockedWriter{p.mu, p.logs}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), prefix); ok {
				found <- u
			}
		}
	}()
	select {
	case p.url = <-found:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("%v did not start; stderr:\n%s", args, p.logText())
	}
	t.Cleanup(p.kill)
	return p
}

func (p *proc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// kill ends the process with SIGKILL (idempotent).
func (p *proc) kill() {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		_ = p.cmd.Wait()
	}
}

// stop ends the process with SIGTERM and waits for a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("%v exited with %v; stderr:\n%s", p.cmd.Args, err, p.logText())
		}
	case <-time.After(20 * time.Second):
		t.Errorf("%v did not stop on SIGTERM", p.cmd.Args)
		p.kill()
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// sandbox starts `conveyor sandbox liqpay` with extra flags.
func sandbox(t *testing.T, flags ...string) *proc {
	return start(t, "conveyor: liqpay sandbox listening on ", nil, append([]string{"sandbox", "liqpay", "--addr", "127.0.0.1:0"}, flags...)...)
}

// flows writes the shipped seed flow into a directory, with the callback
// time limit shortened so the timeout case takes seconds, not minutes.
func flows(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile("../../processes/flows/liqpay-hold.yaml")
	if err != nil {
		t.Fatal(err)
	}
	patched := strings.Replace(string(src), "timeout: 180s", "timeout: 2s", 1)
	if patched == string(src) {
		t.Fatal("the seed flow no longer has `timeout: 180s` on its callback node; update the test")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "liqpay-hold.yaml"), []byte(patched), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// server starts `conveyor serve` on addr against a sandbox.
func server(t *testing.T, sb *proc, db, dir, addr string) *proc {
	env := []string{
		"CONVEYOR_ENV_LIQPAY_URL=" + sb.url,
		"CONVEYOR_SECRET_LIQPAY_PUBLIC_KEY=" + liqpay.DefaultPublicKey,
		"CONVEYOR_SECRET_LIQPAY_PRIVATE_KEY=" + liqpay.DefaultPrivateKey,
	}
	return start(t, "conveyor: listening on ", env, "serve", "--addr", addr, "--db", db, "--processes", dir)
}

// recorder keeps every response body the tests received, for the scan.
type recorder struct {
	mu     sync.Mutex
	bodies [][]byte
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	r.mu.Lock()
	r.bodies = append(r.bodies, b)
	r.mu.Unlock()
	return resp, nil
}

func holdData(order, card string) map[string]any {
	return map[string]any{
		"phone": "380950000001", "amount": json.Number("7.34"), "currency": "UAH", "description": "e2e",
		"order_id": order, "card": card, "card_exp_month": "12", "card_exp_year": "29", "card_cvv": cvv, "ip": "127.0.0.1",
	}
}

// await polls the task until it is final or escalated (bounded).
func await(t *testing.T, c *client.Client, id string) *client.Task {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		task, err := c.Task(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if task.Final() || task.Status == "escalated" {
			return task
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s still %s in %s", id, task.Status, task.Node)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// path lists the nodes a task passed, from its history's moves.
func path(task *client.Task) string {
	var nodes []string
	for _, h := range task.History {
		if len(nodes) == 0 || nodes[len(nodes)-1] != h.To {
			nodes = append(nodes, h.To)
		}
	}
	return strings.Join(nodes, " > ")
}

func count(task *client.Task, event string) int {
	n := 0
	for _, h := range task.History {
		if h.Event == event {
			n++
		}
	}
	return n
}

func TestSeedHold(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	sb := sandbox(t, "--faults", "duplicate_callback") // every callback arrives twice
	drop := sandbox(t, "--faults", "drop_callback")    // no callback ever comes
	dir := flows(t)
	db := filepath.Join(t.TempDir(), "conveyor.db")
	dropDB := filepath.Join(t.TempDir(), "conveyor.db")
	srv := server(t, sb, db, dir, "127.0.0.1:0")
	dropSrv := server(t, drop, dropDB, dir, "127.0.0.1:0")
	c := client.New(srv.url, "", &http.Client{Transport: rec, Timeout: 10 * time.Second})
	ctx := context.Background()
	run := fmt.Sprint(time.Now().UnixNano())

	t.Run("success", func(t *testing.T) {
		task, created, err := c.Submit(ctx, "liqpay-hold", "ok-"+run, holdData("ok-"+run, cards[0]))
		if err != nil || !created {
			t.Fatalf("submit: %v %v", created, err)
		}
		task = await(t, c, task.ID)
		if task.Status != "succeeded" || path(task) != "calling_api > receive_callback > check_status > held" {
			t.Fatalf("%s via %s", task.Status, path(task))
		}
		if task.Data["card"] != "424242******4242" || task.Data["card_cvv"] != nil {
			t.Errorf("card %v, cvv %v", task.Data["card"], task.Data["card_cvv"])
		}
		if cb, _ := task.Data["callback"].(map[string]any); cb["status"] != "hold_wait" {
			t.Errorf("callback data %v", task.Data["callback"])
		}
		if n := count(task, "held"); n != 1 {
			t.Errorf("the duplicated callback moved the task %d times", n)
		}
	})

	t.Run("OTP", func(t *testing.T) {
		task, _, err := c.Submit(ctx, "liqpay-hold", "otp-"+run, holdData("otp-"+run, cards[1]))
		if err != nil {
			t.Fatal(err)
		}
		task = await(t, c, task.ID)
		cb, _ := task.Data["callback"].(map[string]any)
		if task.Node != "otp_verify" || cb["status"] != "otp_verify" || cb["token"] == nil {
			t.Errorf("%s in %s; callback %v", task.Status, task.Node, cb)
		}
	})

	t.Run("declined", func(t *testing.T) {
		task, _, err := c.Submit(ctx, "liqpay-hold", "no-"+run, holdData("no-"+run, cards[2]))
		if err != nil {
			t.Fatal(err)
		}
		task = await(t, c, task.ID)
		if task.Status != "escalated" || task.Error == nil || task.Error.Code != "limit" || task.Error.Node != "calling_api" {
			t.Fatalf("%s in %s, error %+v", task.Status, task.Node, task.Error)
		}
		if task.Data["err_code"] != "limit" || task.Data["err_description"] == nil {
			t.Errorf("err fields in data: %v %v", task.Data["err_code"], task.Data["err_description"])
		}
	})

	t.Run("timeout", func(t *testing.T) {
		dc := client.New(dropSrv.url, "", &http.Client{Transport: rec, Timeout: 10 * time.Second})
		task, _, err := dc.Submit(ctx, "liqpay-hold", "late-"+run, holdData("late-"+run, cards[0]))
		if err != nil {
			t.Fatal(err)
		}
		task = await(t, dc, task.ID)
		if task.Status != "escalated" || task.Error.Code != "callback_timeout" || task.Error.Node != "receive_callback" {
			t.Fatalf("%s in %s, error %+v", task.Status, task.Node, task.Error)
		}
	})

	t.Run("the same ref again", func(t *testing.T) {
		ref := "ok-" + run
		again, created, err := c.Submit(ctx, "liqpay-hold", ref, holdData(ref, cards[0]))
		if err != nil || created {
			t.Fatalf("same data: created %v, err %v; want the existing task", created, err)
		}
		if again.Ref != ref || again.Status != "succeeded" {
			t.Errorf("got %s %s", again.Ref, again.Status)
		}
		d := holdData(ref, cards[0])
		d["amount"] = json.Number("8.00")
		_, _, err = c.Submit(ctx, "liqpay-hold", ref, d)
		if conveyor.ErrorCode(err) != conveyor.EConflict {
			t.Errorf("different data: %v, want conflict", err)
		}
	})

	// The metrics page is a response too: no card data in a label.
	if resp, err := (&http.Client{Transport: rec}).Get(srv.url + "/metrics"); err == nil {
		resp.Body.Close()
	}
	// The write-ahead log holds the commits while the server runs (it is
	// emptied at shutdown), the sealed card data among them.
	wal := read(t, db+".wal")
	srv.stop(t)
	dropSrv.stop(t)
	t.Run("no card data or secret anywhere", func(t *testing.T) {
		scan := map[string][]byte{"database": read(t, db), "database (timeout server)": read(t, dropDB), "write-ahead log": wal,
			"server log": []byte(srv.logText()), "server log (timeout server)": []byte(dropSrv.logText())}
		rec.mu.Lock()
		scan["responses"] = bytes.Join(rec.bodies, []byte("\n"))
		rec.mu.Unlock()
		for where, b := range scan {
			for _, card := range cards {
				if bytes.Contains(b, []byte(card)) {
					t.Errorf("the card number %s appears in the %s", card, where)
				}
			}
			if bytes.Contains(b, []byte(liqpay.DefaultPrivateKey)) {
				t.Errorf("the LiqPay private key appears in the %s", where)
			}
			for _, form := range []string{`"card_cvv":"` + cvv + `"`, `card_cvv=` + cvv, `"card_cvv": "` + cvv + `"`} {
				if bytes.Contains(b, []byte(form)) {
					t.Errorf("the CVV appears in the %s (%s)", where, form)
				}
			}
		}
		if len(scan["responses"]) == 0 || len(scan["database"]) == 0 || len(scan["write-ahead log"]) == 0 {
			t.Error("nothing was scanned")
		}
	})
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSeedHold_SIGKILL kills the server while a hold waits for LiqPay's
// callback, restarts it on the same database and address, and the callback
// (delayed by the simulator) completes the task.
func TestSeedHold_SIGKILL(t *testing.T) {
	t.Parallel()
	sb := sandbox(t, "--callback-delay", "3s")
	dir := flows(t)
	patched := filepath.Join(dir, "liqpay-hold.yaml")
	src := read(t, patched)
	_ = os.WriteFile(patched, bytes.Replace(src, []byte("timeout: 2s"), []byte("timeout: 60s"), 1), 0o644)
	db := filepath.Join(t.TempDir(), "conveyor.db")
	addr := freeAddr(t)
	srv := server(t, sb, db, dir, addr)
	c := client.New(srv.url, "", &http.Client{Timeout: 10 * time.Second})
	ctx := context.Background()
	ref := fmt.Sprint("kill-", time.Now().UnixNano())
	task, _, err := c.Submit(ctx, "liqpay-hold", ref, holdData(ref, cards[0]))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for task.Node != "receive_callback" {
		if time.Now().After(deadline) {
			t.Fatalf("never waited for the callback: %s in %s", task.Status, task.Node)
		}
		time.Sleep(10 * time.Millisecond)
		if task, err = c.Task(ctx, task.ID); err != nil {
			t.Fatal(err)
		}
	}
	srv.kill()
	srv = server(t, sb, db, dir, addr)
	c = client.New(srv.url, "", &http.Client{Timeout: 10 * time.Second})
	task = await(t, c, task.ID)
	if task.Status != "succeeded" || task.Node != "held" {
		t.Fatalf("after the restart: %s in %s (%s)", task.Status, task.Node, path(task))
	}
	srv.stop(t)
}

// freeAddr returns a loopback address no one listens on, so a restarted
// server keeps the callback URLs it handed out.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

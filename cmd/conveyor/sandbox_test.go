package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/conveyor-dev/conveyor/sandbox/liqpay"
)

// startSandbox runs `conveyor sandbox ...` in-process and returns its URL and
// a stop function that checks it exits 0.
func startSandbox(t *testing.T, provider string, args ...string) (base string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	stderr := &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"sandbox", provider, "--addr", "127.0.0.1:0"}, args...), pw, stderr)
		pw.Close()
	}()
	lines := make(chan string, 8)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	select {
	case line := <-lines:
		var ok bool
		if base, ok = strings.CutPrefix(line, "conveyor: "+provider+" sandbox listening on "); !ok {
			t.Fatalf("first line %q; stderr:\n%s", line, stderr)
		}
	case <-time.After(waitBudget):
		t.Fatalf("the sandbox did not listen; stderr:\n%s", stderr)
	}
	go func() {
		for range lines {
		}
	}()
	return base, func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("exit %d; stderr:\n%s", code, stderr)
			}
		case <-time.After(waitBudget):
			t.Fatal("the sandbox did not stop")
		}
	}
}

func TestSandbox_liqpay(t *testing.T) {
	t.Parallel()
	base, stop := startSandbox(t, "liqpay", "--faults", "duplicate_callback")
	data, sig, err := liqpay.Encode(liqpay.DefaultPrivateKey, map[string]any{"version": 3, "public_key": liqpay.DefaultPublicKey,
		"action": "status", "order_id": "nope"})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.PostForm(base+"/api/request", url.Values{"data": {data}, "signature": {sig}})
	if err != nil {
		t.Fatal(err)
	}
	var reply map[string]any
	err = json.NewDecoder(resp.Body).Decode(&reply)
	resp.Body.Close()
	if err != nil || reply["err_code"] != "payment_not_found" {
		t.Errorf("status of an unknown order: %v %v", err, reply)
	}
	stop()

	var out, errs bytes.Buffer
	for _, args := range [][]string{{"sandbox"}, {"sandbox", "visa"}, {"sandbox", "liqpay", "--faults", "gremlins"}, {"sandbox", "via", "--faults", "gremlins"}} {
		if code := run(context.Background(), args, &out, &errs); code != 2 {
			t.Errorf("conveyor %s: exit %d, want 2", strings.Join(args, " "), code)
		}
	}
}

func TestSandbox_via(t *testing.T) {
	t.Parallel()
	base, stop := startSandbox(t, "via")
	defer stop()
	req, _ := http.NewRequest(http.MethodPost, base+"/partner/hold/create", strings.NewReader(`{"merchantId": "mrt_qwegFC1lHGaAzJIRphv4LdU10zX",
		"externalId": "cli-1", "cardToken": "VLH8VNWKE3SBBBZEKA86T5PF72ZNTEST", "amount": 10000, "currency": "UZS", "accounts": {"account": "1"}}`))
	req.Header.Set("client-id", "system")
	req.Header.Set("client-secret", "system123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var reply struct {
		Data struct{ HoldID, Status string }
	}
	err = json.NewDecoder(resp.Body).Decode(&reply)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || !strings.HasPrefix(reply.Data.HoldID, "phl_") || reply.Data.Status != "NEW" {
		t.Errorf("create: %d %v %+v", resp.StatusCode, err, reply)
	}
}

// TestServe_binary builds the binary and runs it as people do: it prints
// its URL, serves, and stops cleanly on SIGTERM.
func TestServe_binary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	t.Parallel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "conveyor")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitBudget)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "serve", "--addr", "127.0.0.1:0", "--db", filepath.Join(dir, "c.db"), "--sandbox")
	cmd.Env = append(os.Environ(), "CONVEYOR_TOKEN=from-env")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("no output; stderr:\n%s", stderr)
	}
	base, ok := strings.CutPrefix(sc.Text(), "conveyor: listening on ")
	if !ok {
		t.Fatalf("first line %q", sc.Text())
	}
	go io.Copy(io.Discard, stdout)

	var out, errs bytes.Buffer
	code := run(context.Background(), []string{"task", "list", "--server", base, "--token", "from-env", "-o", "json"}, &out, &errs)
	if code != 0 || !strings.Contains(out.String(), `"tasks": []`) {
		t.Errorf("task list: exit %d\n%s%s", code, out.String(), errs.String())
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("serve after SIGTERM: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr.String(), `"msg":"stopped"`) {
		t.Errorf("no clean stop in the log:\n%s", stderr)
	}
}

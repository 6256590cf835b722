package crash

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/conveyor-dev/conveyor/client"
	"github.com/conveyor-dev/conveyor/sandbox/liqpay"
	"github.com/conveyor-dev/conveyor/sandbox/via"
)

const serverKills = 6

// TestServer_survivesSIGKILL runs the full server (`conveyor serve`) with
// both hold lifecycles against the two simulators (separate processes, so
// they outlive the server), kills the server with SIGKILL at random moments
// while holds are created and captured, restarts it, and proves: every
// acknowledged hold ends CAPTURED exactly once, at the provider too.
func TestServer_survivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the server binary many times; skipped with -short")
	}
	bin := buildBinary(t)
	t.Run("bolt_with_write-ahead_log", func(t *testing.T) { t.Parallel(); serverSurvivesSIGKILL(t, bin) }) // serve's default
	t.Run("bolt_without_write-ahead_log", func(t *testing.T) { t.Parallel(); serverSurvivesSIGKILL(t, bin, "--wal=false") })
}

// serverSurvivesSIGKILL is TestServer_survivesSIGKILL with serve's extra
// flags.
func serverSurvivesSIGKILL(t *testing.T, bin string, flags ...string) {
	lp := startProc(t, bin, "conveyor: liqpay sandbox listening on ", nil, "sandbox", "liqpay", "--addr", "127.0.0.1:0")
	vs := startProc(t, bin, "conveyor: via sandbox listening on ", nil, "sandbox", "via", "--addr", "127.0.0.1:0")
	db := filepath.Join(t.TempDir(), "conveyor.db")
	addr := freeAddr(t)
	env := []string{
		"CONVEYOR_ENV_LIQPAY_URL=" + lp.url, "CONVEYOR_ENV_VIA_URL=" + vs.url,
		"CONVEYOR_SECRET_LIQPAY_PUBLIC_KEY=" + liqpay.DefaultPublicKey, "CONVEYOR_SECRET_LIQPAY_PRIVATE_KEY=" + liqpay.DefaultPrivateKey,
		"CONVEYOR_SECRET_VIA_CLIENT_ID=" + via.DefaultClientID, "CONVEYOR_SECRET_VIA_CLIENT_SECRET=" + via.DefaultClientSecret,
	}
	serve := func() *proc {
		return startProc(t, bin, "conveyor: listening on ", env, append([]string{"serve", "--addr", addr, "--db", db, "--log-level", "error"}, flags...)...)
	}
	c := client.New("http://"+addr, "", &http.Client{Timeout: 5 * time.Second})

	var mu sync.Mutex
	acked := map[string]string{} // ref -> process
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				process, ref := "liqpay-hold-lifecycle", fmt.Sprintf("lp-%d-%d", w, i)
				if i%2 == 1 {
					process, ref = "via-hold-lifecycle", fmt.Sprintf("via-%d-%d", w, i)
				}
				if _, _, err := c.Submit(context.Background(), process, ref, holdInput(process, ref)); err != nil {
					time.Sleep(50 * time.Millisecond) // the server is down: bounded by stop
					continue
				}
				mu.Lock()
				acked[ref] = process
				mu.Unlock()
			}
		})
	}
	// Capture whatever is held, all along.
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			mu.Lock()
			refs := make(map[string]string, len(acked))
			for r, p := range acked {
				refs[r] = p
			}
			mu.Unlock()
			for ref, process := range refs {
				captureIfHeld(c, process, ref)
			}
		}
	})
	srv := serve()
	for i := range serverKills {
		time.Sleep(time.Duration(400+rand.IntN(900)) * time.Millisecond)
		srv.kill()
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		t.Logf("kill %d: %d holds acknowledged", i+1, n)
		srv = serve()
	}
	close(stop)
	wg.Wait()

	// The last life: no kill; every acknowledged hold must end captured.
	deadline := time.Now().Add(60 * time.Second)
	pending := map[string]string{}
	for r, p := range acked {
		pending[r] = p
	}
	final := map[string]*client.Task{}
	for len(pending) > 0 && time.Now().Before(deadline) {
		for ref, process := range pending {
			task := captureIfHeld(c, process, ref)
			if task != nil && task.Final() {
				delete(pending, ref)
				final[ref] = task
				if task.Node != "captured" || task.Data["hold_state"] != "CAPTURED" {
					t.Errorf("%s: ended %s in %s (%v), want CAPTURED; error %+v", ref, task.Status, task.Node, task.Data["hold_state"], task.Error)
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	for ref, process := range pending {
		task := captureIfHeld(c, process, ref)
		t.Errorf("%s never finished: %+v", ref, task)
	}
	srv.stop(t)
	for ref, task := range final {
		checkProvider(t, lp.url, vs.url, task, ref)
	}
	t.Logf("%d holds acknowledged across %d kills; all captured once", len(acked), serverKills)
}

// captureIfHeld reads a task by ref and, when it is HELD and waits for the
// merchant, sends the capture. It returns the task (nil when unreadable).
func captureIfHeld(c *client.Client, process, ref string) *client.Task {
	page, err := c.List(context.Background(), client.ListOptions{Process: process, Ref: ref, Limit: 1})
	if err != nil || len(page.Tasks) == 0 {
		return nil
	}
	task := page.Tasks[0]
	if task.Data["hold_state"] == "HELD" && task.Status == "waiting" {
		_, _ = c.CallbackByRef(context.Background(), process, ref, "application/json", []byte(`{"command":"capture"}`))
	}
	return task
}

func holdInput(process, ref string) map[string]any {
	if process == "via-hold-lifecycle" {
		return map[string]any{"merchantId": via.DefaultMerchantID, "cardToken": via.CardSuccess, "amount": json.Number("10000"),
			"currency": "UZS", "accounts": map[string]any{"account": "1"}, "externalId": ref}
	}
	return map[string]any{"phone": "380950000001", "amount": json.Number("7.34"), "currency": "UAH", "description": "crash",
		"order_id": ref, "card": liqpay.CardSuccess, "card_exp_month": "12", "card_exp_year": "29", "card_cvv": "123", "ip": "127.0.0.1"}
}

// checkProvider asks the simulator itself: the hold was captured once, for
// the full amount.
func checkProvider(t *testing.T, lpURL, viaURL string, task *client.Task, ref string) {
	t.Helper()
	if task.Process == "liqpay-hold-lifecycle" {
		data, sig, _ := liqpay.Encode(liqpay.DefaultPrivateKey, map[string]any{"version": 3, "public_key": liqpay.DefaultPublicKey, "action": "status", "order_id": ref})
		resp, err := http.PostForm(lpURL+"/api/request", url.Values{"data": {data}, "signature": {sig}})
		if err != nil {
			t.Fatal(err)
		}
		var st map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if st["status"] != "success" || fmt.Sprint(st["amount_debit"]) != "7.34" {
			t.Errorf("LiqPay %s: status %v, debited %v; want success, 7.34", ref, st["status"], st["amount_debit"])
		}
		return
	}
	holdID, _ := task.Data["hold_id"].(string)
	req, _ := http.NewRequest(http.MethodPost, viaURL+"/partner/hold/info?holdId="+url.QueryEscape(holdID), nil)
	req.Header.Set("client-id", via.DefaultClientID)
	req.Header.Set("client-secret", via.DefaultClientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Data struct {
			HoldID, Status, ExternalID string
			ConfirmedAmount            int
		}
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if out.Data.Status != via.StatusConfirmSuccess || out.Data.ConfirmedAmount != 10000 || out.Data.ExternalID != ref {
		t.Errorf("VIA %s: hold %s is %s for %d (externalId %s), want CONFIRM_SUCCESS for 10000", ref, holdID, out.Data.Status, out.Data.ConfirmedAmount, out.Data.ExternalID)
	}
}

// proc is a running conveyor binary.
type proc struct {
	cmd  *exec.Cmd
	url  string
	mu   sync.Mutex
	logs bytes.Buffer
}

func startProc(t *testing.T, bin, prefix string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...)}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = writer(func(b []byte) (int, error) { p.mu.Lock(); defer p.mu.Unlock(); return p.logs.Write(b) })
	out, _ := p.cmd.StdoutPipe()
	if err := p.cmd.Start(); err != nil {
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
		p.kill()
		p.mu.Lock()
		defer p.mu.Unlock()
		t.Fatalf("%v did not start:\n%s", args, p.logs.String())
	}
	t.Cleanup(p.kill)
	return p
}

func (p *proc) kill() {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		_ = p.cmd.Wait()
	}
}

func (p *proc) stop(t *testing.T) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Errorf("server exit: %v", err)
	}
}

type writer func([]byte) (int, error)

func (w writer) Write(b []byte) (int, error) { return w(b) }

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "conveyor")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/conveyor-dev/conveyor/cmd/conveyor").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

var _ = io.Discard

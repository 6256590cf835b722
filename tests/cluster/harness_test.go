// Package cluster runs several `conveyor serve` processes on one PostgreSQL
// database behind a round-robin proxy, against the LiqPay simulator, and
// proves that work is shared and never duplicated: a node killed with
// SIGKILL under load loses nothing, every task completes exactly once, and
// a repeated outbound call carries the same idempotency key. The benchmark
// compares throughput with one, two and three nodes. Run alone with
// `go test ./tests/cluster -v`; it needs CONVEYOR_TEST_POSTGRES (see
// docs/postgres.md).
package cluster

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/conveyor-dev/conveyor/sandbox/liqpay"
)

// pgEnv points the tests at a PostgreSQL database in which they may create
// and drop schemas.
const pgEnv = "CONVEYOR_TEST_POSTGRES"

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "conveyor-cluster-")
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

// pgSchema returns the URL of a fresh schema of the test database, dropped
// when the test ends. Without a database the test skips, except under CI.
func pgSchema(t testing.TB) string {
	t.Helper()
	base := os.Getenv(pgEnv)
	switch {
	case base != "":
	case os.Getenv("CI") != "":
		t.Fatal(pgEnv + " is not set, and CI never skips the PostgreSQL tests: .ci/run starts PostgreSQL with scripts/postgres.sh")
	default:
		t.Skip(pgEnv + " is not set: run `eval \"$(bash scripts/postgres.sh)\"` to start a local PostgreSQL")
	}
	name := "cluster_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	pgExec(t, base, `CREATE SCHEMA `+name)
	t.Cleanup(func() { pgExec(t, base, `DROP SCHEMA `+name+` CASCADE`) })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s is not a URL: %v", pgEnv, err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}

func pgExec(t testing.TB, u, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatalf("connect to %s: %v", pgEnv, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// provider is the LiqPay simulator, in this process so that the test can
// read what it saw, behind a front that records which node sent each
// request (nodes call it under /<node>/) and makes it honour the
// Idempotency-Key header, as a provider that dedupes by key does: a request
// whose key was seen gets the first one's answer and never reaches the
// simulator. LiqPay itself refuses a repeated order_id instead; flows for it
// resend nothing of unknown outcome (on_unknown), see the lifecycle flows.
type provider struct {
	sim *liqpay.Server
	srv *httptest.Server
	// latency delays every hold before the simulator sees it, so that each
	// node always has calls in flight.
	latency atomic.Int64 // nanoseconds

	mu      sync.Mutex
	byKey   map[string]*reply
	arrived map[string][]arrival // by order_id: every hold that reached the front
}

// arrival is one outbound call as it reached the provider.
type arrival struct {
	Node, Key string
	Replayed  bool // answered from the key's first reply
}

type reply struct {
	done   chan struct{}
	status int
	header http.Header
	body   []byte
}

func newProvider(t testing.TB) *provider {
	p := &provider{sim: liqpay.New(liqpay.Config{}), byKey: map[string]*reply{}, arrived: map[string][]arrival{}}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(func() {
		p.srv.Close()
		p.sim.Close()
	})
	return p
}

// url is the LIQPAY_URL of a node.
func (p *provider) url(node string) string { return p.srv.URL + "/" + node }

func (p *provider) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	node, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	action, order := decodeLiqPay(body)
	key := r.Header.Get("Idempotency-Key")
	p.mu.Lock()
	first, seen := p.byKey[key]
	if action == "hold" {
		p.arrived[order] = append(p.arrived[order], arrival{Node: node, Key: key, Replayed: seen})
	}
	if !seen && key != "" {
		first = &reply{done: make(chan struct{})}
		p.byKey[key] = first
	}
	p.mu.Unlock()
	if seen {
		select {
		case <-first.done:
		case <-r.Context().Done():
			return
		}
		for k, v := range first.header {
			w.Header()[k] = v
		}
		w.WriteHeader(first.status)
		_, _ = w.Write(first.body)
		return
	}
	if action == "hold" {
		time.Sleep(time.Duration(p.latency.Load())) // even when the caller is gone: the provider works on
	}
	rec := httptest.NewRecorder()
	p.sim.ServeHTTP(rec, r)
	if first != nil {
		first.status, first.header, first.body = rec.Code, rec.Header(), rec.Body.Bytes()
		close(first.done)
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// decodeLiqPay reads the action and order_id of a LiqPay request body.
func decodeLiqPay(body []byte) (action, order string) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return "", ""
	}
	raw, err := base64.StdEncoding.DecodeString(form.Get("data"))
	if err != nil {
		return "", ""
	}
	var d struct {
		Action  string `json:"action"`
		OrderID string `json:"order_id"`
	}
	_ = json.Unmarshal(raw, &d)
	return d.Action, d.OrderID
}

// arrivals returns the holds that reached the front, by order_id.
func (p *provider) arrivals() map[string][]arrival {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string][]arrival, len(p.arrived))
	for k, v := range p.arrived {
		out[k] = append([]arrival(nil), v...)
	}
	return out
}

// node is one `conveyor serve` process.
type node struct {
	name string
	cmd  *exec.Cmd
	url  string
	logs *lockedBuffer
	dead atomic.Bool
}

// lockedBuffer is a bytes.Buffer safe for concurrent use.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// kill ends the node with SIGKILL (idempotent).
func (n *node) kill() {
	if n.dead.Swap(true) {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	_ = n.cmd.Wait()
}

// stop ends the node with SIGTERM and waits (bounded) for it.
func (n *node) stop(t testing.TB) {
	if n.dead.Swap(true) {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- n.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("node %s exited with %v; log tail:\n%s", n.name, err, tail(n.logs.String(), 20))
		}
	case <-time.After(20 * time.Second):
		t.Errorf("node %s did not stop on SIGTERM", n.name)
		_ = n.cmd.Process.Kill()
		<-done
	}
}

func tail(s string, lines int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(ls[max(0, len(ls)-lines):], "\n")
}

// cluster is the nodes, the proxy in front of them and the provider.
type cluster struct {
	t     testing.TB
	store string // the PostgreSQL URL, or "" for one node on db
	db    string // the bolt file of a single node
	key   string // the data key file every node shares
	flows string
	prov  *provider
	lb    *balancer
	nodes []*node
}

// newCluster starts n nodes on a fresh schema behind a proxy. lease is each
// node's --lease.
func newCluster(t testing.TB, n int, lease time.Duration) *cluster {
	t.Helper()
	return startCluster(t, &cluster{t: t, store: pgSchema(t)}, n, lease)
}

// newBoltNode starts one node on a bolt file behind the proxy, for
// comparison.
func newBoltNode(t testing.TB) *cluster {
	t.Helper()
	return startCluster(t, &cluster{t: t, db: filepath.Join(t.TempDir(), "conveyor.db")}, 1, time.Second)
}

func startCluster(t testing.TB, c *cluster, n int, lease time.Duration) *cluster {
	c.prov, c.flows = newProvider(t), t.TempDir()
	dir := t.TempDir()
	c.key = filepath.Join(dir, "conveyor.key")
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	if err := os.WriteFile(c.key, key, 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("../../processes/flows/liqpay-hold.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.flows, "liqpay-hold.yaml"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	c.lb = newBalancer(t)
	// The first node migrates the schema; the others start together.
	c.nodes = append(c.nodes, c.start("n1", lease))
	var wg sync.WaitGroup
	rest := make([]*node, n-1)
	for i := range rest {
		wg.Go(func() { rest[i] = c.start(fmt.Sprint("n", i+2), lease) })
	}
	wg.Wait()
	c.nodes = append(c.nodes, rest...)
	for _, nd := range c.nodes {
		if nd == nil {
			t.FailNow()
		}
		c.lb.add(nd)
	}
	return c
}

// start runs one node until it prints its URL.
func (c *cluster) start(name string, lease time.Duration) *node {
	where := []string{"--store", c.store}
	if c.store == "" {
		where = []string{"--db", c.db}
	}
	cmd := exec.Command(binary, append([]string{"serve", "--addr", "127.0.0.1:0", "--key", c.key,
		"--processes", c.flows, "--base-url", c.lb.url(), "--node", name, "--lease", lease.String()}, where...)...)
	cmd.Env = append(os.Environ(),
		"CONVEYOR_ENV_LIQPAY_URL="+c.prov.url(name),
		"CONVEYOR_SECRET_LIQPAY_PUBLIC_KEY="+liqpay.DefaultPublicKey,
		"CONVEYOR_SECRET_LIQPAY_PRIVATE_KEY="+liqpay.DefaultPrivateKey)
	nd := &node{name: name, cmd: cmd, logs: &lockedBuffer{}}
	cmd.Stderr = nd.logs
	out, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Error(err)
		return nil
	}
	if err := cmd.Start(); err != nil {
		c.t.Error(err)
		return nil
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "conveyor: listening on "); ok {
				found <- u
			}
		}
	}()
	select {
	case nd.url = <-found:
	case <-time.After(30 * time.Second):
		nd.kill()
		c.t.Errorf("node %s did not start; log:\n%s", name, nd.logs.String())
		return nil
	}
	c.t.Cleanup(nd.kill)
	return nd
}

// nodesCPU is the CPU time the live nodes used so far.
func (c *cluster) nodesCPU() time.Duration {
	var total time.Duration
	for _, n := range c.nodes {
		if !n.dead.Load() {
			total += cpuOf(n.cmd.Process.Pid)
		}
	}
	return total
}

// node returns the node named name.
func (c *cluster) node(name string) *node {
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// balancer is a round-robin reverse proxy over the nodes, as a load
// balancer in front of a cluster is: a node that refuses connections is
// skipped from then on (the request goes to the next one), and an error
// after the request went out is answered 502 for the client to retry. It
// records which node answered each callback.
type balancer struct {
	srv   *httptest.Server
	proxy *httputil.ReverseProxy
	base  *http.Transport

	mu    sync.Mutex
	nodes []*node
	next  int
	seen  []served
}

// served is one request the balancer passed on.
type served struct {
	Node, Path string
	Status     int
	Body       []byte
}

func newBalancer(t testing.TB) *balancer {
	b := &balancer{base: &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second}}
	b.proxy = &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.Out.URL.Scheme, pr.Out.URL.Host = "http", "backend" },
		Transport: b,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, "bad gateway: "+err.Error(), http.StatusBadGateway)
		},
	}
	// Listen first: the nodes need the proxy's URL for their callback URLs.
	b.srv = httptest.NewServer(b.proxy)
	t.Cleanup(b.srv.Close)
	return b
}

func (b *balancer) url() string { return b.srv.URL }

func (b *balancer) add(n *node) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.nodes = append(b.nodes, n)
}

// pick returns the next live node, or nil when none is left.
func (b *balancer) pick() *node {
	b.mu.Lock()
	defer b.mu.Unlock()
	for range b.nodes {
		n := b.nodes[b.next%len(b.nodes)]
		b.next++
		if !n.dead.Load() {
			return n
		}
	}
	return nil
}

// RoundTrip sends the request to the next live node, and to the one after
// when a node refuses the connection (nothing was sent, so trying another
// is safe).
func (b *balancer) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
	}
	for {
		n := b.pick()
		if n == nil {
			return nil, errors.New("no node is alive")
		}
		u, _ := url.Parse(n.url)
		out := req.Clone(req.Context())
		out.URL.Host, out.Host = u.Host, u.Host
		if body != nil {
			out.Body = io.NopCloser(bytes.NewReader(body))
		}
		resp, err := b.base.RoundTrip(out)
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			n.dead.Store(true) // refused: the node is gone
			continue
		}
		if err != nil {
			return nil, err
		}
		if strings.HasPrefix(req.URL.Path, "/callbacks/") {
			rb, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return nil, err
			}
			resp.Body = io.NopCloser(bytes.NewReader(rb))
			b.mu.Lock()
			b.seen = append(b.seen, served{Node: n.name, Path: req.URL.Path, Status: resp.StatusCode, Body: rb})
			b.mu.Unlock()
		}
		return resp, nil
	}
}

// served returns what the balancer recorded.
func (b *balancer) served() []served {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]served(nil), b.seen...)
}

// holdData is the seed hold's input for order (ref and order_id alike).
func holdData(order string) map[string]any {
	return map[string]any{
		"phone": "380950000001", "amount": json.Number("7.34"), "currency": "UAH", "description": "cluster",
		"order_id": order, "card": "4242424242424242", "card_exp_month": "12", "card_exp_year": "39",
		"card_cvv": "739", "ip": "127.0.0.1",
	}
}

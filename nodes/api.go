package nodes

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/conveyor-dev/conveyor/internal/exactjson"
	"github.com/conveyor-dev/conveyor/processes"
)

// API calls an outbound HTTP endpoint (Corezoid's "Calling API"). The engine
// commits the decision to call, sends the request this node builds (with an
// Idempotency-Key header), and hands the reply back to Reply, which saves it
// and picks the outcome. Failures that the retry policy covers are retried
// on durable timers; the rest, and the last attempt, take on_error.
//
// on_unknown, when set, names where a task goes when the call's outcome is
// unknown — the attempt timed out, or the engine restarted while the call was
// in flight — instead of sending it again: a capture whose reply was lost
// should ask the provider's status before anything else.
//
//	calling_api:
//	  type: api
//	  request:
//	    method: POST
//	    url: "{{ env.LIQPAY_URL }}/api/request"
//	    codec: {name: liqpay, public_key: liqpay_public_key, private_key: liqpay_private_key}
//	    body: {action: hold, amount: "{{ amount }}"}
//	  timeout: 30s
//	  retry: {attempts: 5, backoff: exponential, initial: 1s, max: 1m, jitter: full}
//	  save_as: reply
//	  cases:
//	    - {when: 'reply.result == "error"', error: {code: "{{ reply.err_code }}", description: "{{ reply.err_description }}"}}
//	  next: receive_callback
//	  on_error: escalation
type API struct {
	onUnknown bool
	method    string
	url       *processes.Template
	query     *processes.Value
	headers   []header
	body      *processes.Value
	codec     CodecConfig
	timeout   time.Duration
	retry     RetryPolicy
	accept    []int
	saveAs    string
	cases     []apiCase
	edges     []processes.Edge
	hasError  bool
}

type header struct {
	name string
	tmpl *processes.Template
}

type apiCase struct {
	name string
	when *processes.Expr
	next string
	code *processes.Template
	desc *processes.Template
}

// RetryPolicy says which failures of an outbound call are retried and when.
type RetryPolicy struct {
	// Attempts is the total number of attempts, the first included (1: no retry).
	Attempts int
	// Backoff is exponential (delay doubles from Initial) or fixed (Initial).
	Backoff string
	// Initial is the first delay; Max caps every delay.
	Initial, Max time.Duration
	// Jitter "full" draws each delay uniformly from [0, delay] (AWS's full
	// jitter), spreading retries of many tasks; "none" keeps it exact.
	Jitter string
	// On lists the failure classes retried: network, timeout, 5xx, 429.
	On []string
}

// Failure classes of an outbound call.
const (
	ClassNetwork = "network"
	ClassTimeout = "timeout"
	Class5xx     = "5xx"
	Class429     = "429"
	Class4xx     = "4xx"
)

type apiConfig struct {
	Request struct {
		Method  string            `yaml:"method"`
		URL     string            `yaml:"url"`
		Query   map[string]string `yaml:"query"`
		Headers map[string]string `yaml:"headers"`
		Codec   codecField        `yaml:"codec"`
		Body    any               `yaml:"body"`
	} `yaml:"request"`
	Timeout string `yaml:"timeout"`
	Retry   struct {
		Attempts int      `yaml:"attempts"`
		Backoff  string   `yaml:"backoff"`
		Initial  string   `yaml:"initial"`
		Max      string   `yaml:"max"`
		Jitter   string   `yaml:"jitter"`
		On       []string `yaml:"on"`
	} `yaml:"retry"`
	Accept []int  `yaml:"accept"`
	SaveAs string `yaml:"save_as"`
	Cases  []struct {
		Name  string `yaml:"name"`
		When  string `yaml:"when"`
		Next  string `yaml:"next"`
		Error *struct {
			Code        string `yaml:"code"`
			Description string `yaml:"description"`
		} `yaml:"error"`
	} `yaml:"cases"`
	Next      string `yaml:"next"`
	OnError   string `yaml:"on_error"`
	OnUnknown string `yaml:"on_unknown"`
}

// DefaultAPITimeout is an api node's timeout when it sets none.
const DefaultAPITimeout = 30 * time.Second

var (
	methods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
	// urlBaseRE: a URL must start with its scheme and host written in the flow,
	// or with one configuration variable, followed by the path, query or
	// nothing; never with task data, not even a part of the host.
	urlBaseRE   = regexp.MustCompile(`^(https?://[^/{?#]+|\{\{\s*env\.[A-Za-z_][A-Za-z0-9_]*\s*\}\})([/?#]|$)`)
	retryable   = []string{ClassNetwork, ClassTimeout, Class5xx, Class429}
	headerRE    = regexp.MustCompile(`^[A-Za-z0-9-]+$`)
	reservedHdr = []string{"Idempotency-Key", "Content-Type", "Content-Length", "Host"}
)

type apiKind struct{}

func (apiKind) Writes(c *processes.NodeContext) []string {
	if n := c.Raw("save_as"); n != nil && pathRE.MatchString(n.Value) {
		return []string{splitPath(n.Value)[0]}
	}
	return nil
}

func (apiKind) Compile(c *processes.NodeContext) processes.Spec {
	var cfg apiConfig
	if !c.Decode(&cfg) {
		return nil
	}
	a := &API{method: strings.ToUpper(cfg.Request.Method), saveAs: cfg.SaveAs, accept: cfg.Accept}
	if a.method == "" {
		a.method = http.MethodPost
	}
	if !slices.Contains(methods, a.method) {
		c.Errorf("request.method", "unknown method %q (want one of %s)", cfg.Request.Method, strings.Join(methods, ", "))
	}
	if cfg.Request.URL == "" {
		c.Errorf("", "missing request.url")
	} else {
		if !urlBaseRE.MatchString(cfg.Request.URL) {
			c.Errorf("request.url", "the URL must begin with its scheme and host (https://host/...) or with {{ env.NAME }}: a URL's host never comes from task data")
		}
		a.url = c.Template("request.url", cfg.Request.URL, processes.UseURL)
	}
	a.query = c.Value("request.query", processes.UseURL)
	for _, k := range sortedKeys(cfg.Request.Headers) {
		if !headerRE.MatchString(k) || slices.ContainsFunc(reservedHdr, func(h string) bool { return strings.EqualFold(h, k) }) {
			c.Errorf("request.headers."+k, "header %q cannot be set here", k)
			continue
		}
		a.headers = append(a.headers, header{name: k, tmpl: c.Template("request.headers."+k, cfg.Request.Headers[k], processes.UseHeader)})
	}
	a.body = c.Value("request.body", processes.UseBody)
	if a.body != nil && a.method == http.MethodGet {
		c.Errorf("request.body", "a GET request has no body: send the fields in query")
	}
	a.codec = compileCodec(c, "request.codec", CodecConfig(cfg.Request.Codec), "signs requests")
	a.timeout = DefaultAPITimeout
	if cfg.Timeout != "" {
		a.timeout = c.Duration("timeout", cfg.Timeout)
	}
	a.compileRetry(c, cfg)
	if a.saveAs != "" && !pathRE.MatchString(a.saveAs) {
		c.Errorf("save_as", "bad field name %q", a.saveAs)
	}
	requireTarget(c, "next", cfg.Next)
	a.edges = edge(c, nil, OutNext, "next", cfg.Next)
	seen := map[string]bool{}
	for i, cs := range cfg.Cases {
		path := fmt.Sprintf("cases[%d]", i)
		name := cs.Name
		if name == "" {
			name = fmt.Sprintf("case%d", i+1)
		}
		switch {
		case name == OutNext || name == OutError || name == OutUnknown:
			c.Errorf(path+".name", "case name %q is reserved: it is an outcome of every api node", name)
		case seen[name]:
			c.Errorf(path+".name", "case name %q is used twice", name)
		}
		seen[name] = true
		k := apiCase{name: name, next: cs.Next}
		if cs.When == "" {
			c.Errorf(path, "case %s: missing when", name)
		} else {
			k.when = c.Expr(path+".when", cs.When, true)
		}
		switch {
		case cs.Error != nil && cs.Next != "":
			c.Errorf(path, "case %s: give either next or error, not both", name)
		case cs.Error != nil:
			a.hasError = true
			if cs.Error.Code != "" {
				k.code = c.Template(path+".error.code", cs.Error.Code, processes.UseData)
			}
			if cs.Error.Description != "" {
				k.desc = c.Template(path+".error.description", cs.Error.Description, processes.UseData)
			}
		case cs.Next != "":
			a.edges = edge(c, a.edges, name, path+".next", cs.Next)
		default:
			c.Errorf(path, "case %s: missing next or error", name)
		}
		a.cases = append(a.cases, k)
	}
	if cfg.OnError == "" {
		c.Errorf("", "missing on_error: name the node failed calls go to (usually an escalation)")
	}
	a.edges = edge(c, a.edges, OutError, "on_error", cfg.OnError)
	a.edges = edge(c, a.edges, OutUnknown, "on_unknown", cfg.OnUnknown)
	a.onUnknown = cfg.OnUnknown != ""
	return a
}

// OnUnknown reports whether the node sends calls of unknown outcome to its
// on_unknown node rather than sending them again.
func (a *API) OnUnknown() bool { return a.onUnknown }

func (a *API) compileRetry(c *processes.NodeContext, cfg apiConfig) {
	r := cfg.Retry
	a.retry = RetryPolicy{Attempts: max(r.Attempts, 1), Backoff: r.Backoff, Jitter: r.Jitter, On: r.On,
		Initial: time.Second, Max: time.Minute}
	if r.Attempts < 1 && c.Has("retry.attempts") {
		c.Errorf("retry.attempts", "attempts must be at least 1 (the first attempt counts)")
	}
	if a.retry.Backoff == "" {
		a.retry.Backoff = "exponential"
	}
	if a.retry.Backoff != "exponential" && a.retry.Backoff != "fixed" {
		c.Errorf("retry.backoff", "backoff must be exponential or fixed")
	}
	if a.retry.Jitter == "" {
		a.retry.Jitter = "full"
	}
	if a.retry.Jitter != "full" && a.retry.Jitter != "none" {
		c.Errorf("retry.jitter", "jitter must be full or none")
	}
	if r.Initial != "" {
		a.retry.Initial = c.Duration("retry.initial", r.Initial)
	}
	if r.Max != "" {
		a.retry.Max = c.Duration("retry.max", r.Max)
	}
	if a.retry.Max < a.retry.Initial {
		c.Errorf("retry.max", "max must not be shorter than initial")
	}
	if len(a.retry.On) == 0 {
		a.retry.On = retryable
	}
	for i, on := range a.retry.On {
		if !slices.Contains(retryable, on) {
			c.Errorf(fmt.Sprintf("retry.on[%d]", i), "cannot retry on %q (want some of %s)", on, strings.Join(retryable, ", "))
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Class implements processes.Spec.
func (*API) Class() processes.Class { return processes.Call }

// Edges implements processes.Spec.
func (a *API) Edges() []processes.Edge { return a.edges }

// Timeout is how long one attempt may take.
func (a *API) Timeout() time.Duration { return a.timeout }

// Retry is the node's retry policy.
func (a *API) Retry() RetryPolicy { return a.retry }

// SaveAs is the data field replies are saved in, "" when not saved.
func (a *API) SaveAs() string { return a.saveAs }

// Request is an outbound call, built and ready to send.
type Request struct {
	Method string
	URL    string
	Header http.Header
	Body   []byte
}

// Build renders the request for a task. An error (a template that fails, a
// missing secret, a URL that is not http(s)) is permanent: retrying would
// build the same request.
func (a *API) Build(in *Input) (*Request, error) {
	raw, err := a.url.String(in.Env)
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("url %q is not an absolute http(s) URL", raw)
	}
	if a.query != nil {
		qv, err := a.query.Render(in.Env)
		if err != nil {
			return nil, fmt.Errorf("query: %w", err)
		}
		q := u.Query()
		for k, v := range qv.(map[string]any) {
			q.Set(k, stringValue(v))
		}
		u.RawQuery = q.Encode()
	}
	req := &Request{Method: a.method, URL: u.String(), Header: http.Header{}}
	env := in.Env
	if len(a.headers) > 0 {
		env = withSecrets(in)
	}
	for _, h := range a.headers {
		v, err := h.tmpl.String(env)
		if err != nil {
			return nil, fmt.Errorf("header %s: %w", h.name, err)
		}
		req.Header.Set(h.name, v)
	}
	if a.body == nil || a.method == http.MethodGet {
		return req, nil
	}
	bv, err := a.body.Render(in.Env)
	if err != nil {
		return nil, fmt.Errorf("body: %w", err)
	}
	return req, a.encode(in, req, bv)
}

func withSecrets(in *Input) processes.Env {
	env := make(processes.Env, len(in.Env)+1)
	for k, v := range in.Env {
		env[k] = v
	}
	s := make(map[string]any, len(in.Secrets))
	for k, v := range in.Secrets {
		s[k] = v
	}
	env[processes.RootSecrets] = s
	return env
}

func (a *API) encode(in *Input, req *Request, body any) error {
	switch a.codec.Name {
	case CodecForm:
		m, ok := body.(map[string]any)
		if !ok {
			return errors.New("a form body must be a mapping")
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Body = encodeForm(m)
	case CodecLiqPay:
		m, ok := body.(map[string]any)
		if !ok {
			return errors.New("a liqpay body must be a mapping")
		}
		key := in.Secrets[a.codec.PrivateKey]
		if key == "" {
			return fmt.Errorf("secret %s is not configured", a.codec.PrivateKey)
		}
		if _, ok := m["public_key"]; !ok && a.codec.PublicKey != "" {
			m["public_key"] = in.Secrets[a.codec.PublicKey]
		}
		if _, ok := m["version"]; !ok {
			m["version"] = "3"
		}
		b, err := liqpayEncode(key, m)
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Body = b
	default:
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Body = b
	}
	return nil
}

// Reply is what came back from one attempt: a status and body, or Err when
// no HTTP reply arrived.
type Reply struct {
	Status int
	Header http.Header
	Body   []byte
	Err    error
}

// Verdict is what the engine does after an attempt.
type Verdict struct {
	// Retry is set when the attempt failed in a way the policy retries and
	// attempts remain; Delay is how long to wait first.
	Retry bool
	Delay time.Duration
	// Result is the move to make when not retrying.
	Result Result
}

// Judge decides what an attempt's reply means. attempt counts from 1. rnd
// draws jitter in [0, 1).
func (a *API) Judge(in *Input, attempt int, rep Reply, rnd func() float64) Verdict {
	class := classify(rep)
	if class == ClassTimeout && a.onUnknown {
		return Verdict{Result: Result{Outcome: OutUnknown, Failure: &Failure{Code: "outcome_unknown",
			Description: fmt.Sprintf("no reply within %s: the provider may or may not have acted", a.timeout)}}}
	}
	if class != "" {
		if slices.Contains(a.retry.On, class) && attempt < a.retry.Attempts {
			return Verdict{Retry: true, Delay: a.retry.delay(attempt, rnd)}
		}
		return Verdict{Result: Result{Outcome: OutError, Failure: a.failure(class, rep, attempt)}}
	}
	return Verdict{Result: a.reply(in, rep)}
}

// classify names a failed attempt's class, "" for a reply the node accepts.
func classify(rep Reply) string {
	if rep.Err != nil {
		var ne net.Error
		if errors.Is(rep.Err, context.DeadlineExceeded) || (errors.As(rep.Err, &ne) && ne.Timeout()) {
			return ClassTimeout
		}
		return ClassNetwork
	}
	switch {
	case rep.Status == http.StatusTooManyRequests:
		return Class429
	case rep.Status >= 500:
		return Class5xx
	}
	return ""
}

func (a *API) failure(class string, rep Reply, attempt int) *Failure {
	tries := ""
	if attempt > 1 {
		tries = fmt.Sprintf(" after %d attempts", attempt)
	}
	switch class {
	case ClassTimeout:
		return &Failure{Code: "timeout", Description: fmt.Sprintf("no reply within %s%s", a.timeout, tries)}
	case ClassNetwork:
		return &Failure{Code: "network_error", Description: fmt.Sprintf("request failed: %s%s", cleanNetErr(rep.Err), tries)}
	}
	return &Failure{Code: fmt.Sprintf("http_%d", rep.Status), Description: fmt.Sprintf("provider answered HTTP %d%s", rep.Status, tries)}
}

// cleanNetErr drops the URL from a client error: it is in the history already.
func cleanNetErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// reply maps an HTTP reply to an outcome: statuses outside accept (2xx by
// default) are errors; otherwise the body is saved and the cases decide.
func (a *API) reply(in *Input, rep Reply) Result {
	accepted := rep.Status >= 200 && rep.Status < 300
	if len(a.accept) > 0 {
		accepted = slices.Contains(a.accept, rep.Status)
	}
	var body any
	if len(bytes.TrimSpace(rep.Body)) > 0 {
		obj, err := decodeAny(rep.Body)
		if err != nil && a.saveAs != "" && accepted {
			return Result{Outcome: OutError, Failure: &Failure{Code: "bad_reply", Description: fmt.Sprintf("HTTP %d reply is not JSON", rep.Status)}}
		}
		body = obj
	}
	var writes []Write
	if a.saveAs != "" && body != nil {
		writes = []Write{{Path: splitPath(a.saveAs), Value: body}}
	}
	if !accepted {
		return Result{Outcome: OutError, Writes: writes, Failure: &Failure{Code: fmt.Sprintf("http_%d", rep.Status), Description: fmt.Sprintf("provider answered HTTP %d", rep.Status)}}
	}
	var env processes.Env
	if a.saveAs != "" {
		env = withValue(in.Env, splitPath(a.saveAs), processes.ExprValue(body))
	} else {
		env = maps.Clone(in.Env)
		if env == nil {
			env = processes.Env{}
		}
	}
	env[processes.RootHTTP] = map[string]any{"status": rep.Status, "headers": flatHeaders(rep.Header)}
	for _, cs := range a.cases {
		ok, err := cs.when.Bool(env)
		if err != nil {
			return Result{Outcome: OutError, Writes: writes, Failure: &Failure{Code: "expression_error", Description: err.Error()}}
		}
		if !ok {
			continue
		}
		if cs.next != "" {
			return Result{Outcome: cs.name, Writes: writes}
		}
		f := &Failure{Code: "reply_error", Description: "the reply matched error case " + cs.name}
		if cs.code != nil {
			if s, err := cs.code.String(env); err == nil && s != "" {
				f.Code = s
			}
		}
		if cs.desc != nil {
			if s, err := cs.desc.String(env); err == nil && s != "" {
				f.Description = s
			}
		}
		return Result{Outcome: OutError, Writes: writes, Failure: f}
	}
	return Result{Outcome: OutNext, Writes: writes}
}

func decodeAny(b []byte) (any, error) {
	if v, ok := exactjson.Decode(b); ok {
		return v, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

func flatHeaders(h http.Header) map[string]any {
	m := make(map[string]any, len(h))
	for k := range h {
		m[strings.ToLower(k)] = h.Get(k)
	}
	return m
}

// delay is the wait before attempt+1.
func (p RetryPolicy) delay(attempt int, rnd func() float64) time.Duration {
	d := p.Initial
	if p.Backoff == "exponential" {
		for i := 1; i < attempt && d < p.Max; i++ {
			d *= 2
		}
	}
	d = min(d, p.Max)
	if p.Jitter == "full" {
		if rnd == nil {
			rnd = rand.Float64
		}
		d = time.Duration(rnd() * float64(d))
	}
	return d
}

// withValue returns a copy of env with v at path. The objects on the path
// are copied too, so the task's data the caller handed in never changes.
func withValue(env processes.Env, path []string, v any) processes.Env {
	out := maps.Clone(env)
	if out == nil {
		out = processes.Env{}
	}
	cur := map[string]any(out)
	for _, p := range path[:len(path)-1] {
		next, _ := cur[p].(map[string]any)
		next = maps.Clone(next)
		if next == nil {
			next = map[string]any{}
		}
		cur[p] = next
		cur = next
	}
	cur[path[len(path)-1]] = v
	return out
}

// SetPath writes v at path inside m, creating objects on the way and
// replacing non-objects.
func SetPath(m map[string]any, path []string, v any) { setPath(m, path, v) }

func setPath[M ~map[string]any](m M, path []string, v any) {
	cur := map[string]any(m)
	for _, p := range path[:len(path)-1] {
		next, ok := cur[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			cur[p] = next
		}
		cur = next
	}
	cur[path[len(path)-1]] = v
}

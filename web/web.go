// Package web is Conveyor's operator dashboard: a single-page app of plain
// HTML, CSS and JavaScript modules, embedded in the binary and served by
// Handler. It has no build step and loads nothing from other origins.
//
// The app is a client of the JSON API, nothing more: it reads processes,
// tasks, bulk jobs and the audit log with fetch and acts through the same
// operator endpoints the CLI uses, so the API's authentication, validation
// and audit apply unchanged. It sends the API token as
// "Authorization: Bearer" (the operator pastes it once; it is kept in the
// tab's sessionStorage) and the operator's name as X-Conveyor-Actor. When
// the server has no token, it asks for none.
//
// Pages are addressed by the URL fragment (#/processes/NAME,
// #/tasks/ID, #/bulk, #/audit), so the server serves only two paths: the
// page itself at "/" and its assets under "/assets/". Every answer carries
// a strict Content-Security-Policy (scripts, styles and requests from the
// same origin only), X-Frame-Options DENY and nosniff.
//
// Bearer tokens are not sent by browsers on their own, so cross-site
// request forgery cannot reach the API through the dashboard; Protect adds
// Go's origin check in front of state-changing requests all the same.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
)

// DefaultPoll is how often the process graph refreshes its counts when
// Config.Poll is zero.
const DefaultPoll = 1500 * time.Millisecond

// Patterns are the ServeMux patterns the dashboard answers; Mount
// registers Handler under each.
var Patterns = []string{"GET /{$}", "GET /assets/"}

// contentSecurityPolicy allows the page's own scripts, styles, images and
// API requests, and nothing else: no inline script, no other origin, no
// framing, no form posts.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

//go:embed static
var static embed.FS

// Config configures the handler Handler returns. The zero value is ready to
// use.
type Config struct {
	// Poll is how often the process graph refreshes its live counts.
	// Default DefaultPoll (1.5 s); values under 250 ms are raised to it.
	Poll time.Duration
}

// asset is one embedded file, ready to serve.
type asset struct {
	body  []byte
	ctype string
	etag  string
}

// handler serves the page and its assets.
type handler struct {
	assets map[string]*asset // by URL path
}

// Handler returns the dashboard: the page at "/" and its assets under
// "/assets/"; any other path is answered 404. Mount it with Mount, or on
// Patterns. It serves GET and HEAD only (ServeMux's GET patterns cover
// HEAD); other methods get 405.
func Handler(cfg Config) http.Handler {
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	cfg.Poll = max(cfg.Poll, 250*time.Millisecond)
	h := &handler{assets: map[string]*asset{}}
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		url := "/assets/" + p
		if p == "index.html" {
			url = "/"
			body = bytes.ReplaceAll(body, []byte("{{poll_ms}}"), []byte(strconv.FormatInt(cfg.Poll.Milliseconds(), 10)))
		}
		h.assets[url] = newAsset(p, body)
		return nil
	})
	if err != nil {
		panic(err)
	}
	return h
}

func newAsset(name string, body []byte) *asset {
	sum := sha256.Sum256(body)
	ctype := mime.TypeByExtension(path.Ext(name))
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	return &asset{body: body, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
}

// Mount registers h on mux under each of Patterns. Patterns are narrow, so
// every other path keeps the mux's own 404 and 405 answers.
func Mount(mux interface{ Handle(string, http.Handler) }, h http.Handler) {
	for _, p := range Patterns {
		mux.Handle(p, h)
	}
}

// ServeHTTP answers the page or an asset, revalidated by ETag on every
// load so a new binary's assets are picked up at once.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", contentSecurityPolicy)
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hd.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	a, ok := h.assets[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	hd.Set("Content-Type", a.ctype)
	hd.Set("Cache-Control", "no-cache")
	hd.Set("ETag", a.etag)
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatch(inm, a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hd.Set("Content-Length", strconv.Itoa(len(a.body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(a.body)
	}
}

// etagMatch reports whether an If-None-Match header lists etag (or "*").
func etagMatch(header, etag string) bool {
	for t := range strings.SplitSeq(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

// Protect refuses cross-origin state-changing requests from browsers with
// Go's http.CrossOriginProtection: a POST (or PUT, PATCH, DELETE) whose
// Sec-Fetch-Site says another site sent it, or whose Origin is not the
// request's host, gets 403 with a JSON error in the API's shape. Requests
// without those headers (servers, the CLI, providers' callbacks) and safe
// methods pass, so wrapping the whole API is safe.
func Protect(h http.Handler) http.Handler {
	p := http.NewCrossOriginProtection()
	p.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusForbidden)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{
			"code":    "forbidden",
			"message": "cross-origin request refused: state-changing requests must come from the dashboard's own origin",
		}})
	}))
	return p.Handler(h)
}

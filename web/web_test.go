package web_test

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/conveyor-dev/conveyor/web"
)

// get asks h for path with optional headers.
func get(t *testing.T, h http.Handler, method, target string, header map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestHandler_page(t *testing.T) {
	t.Parallel()
	h := web.Handler(web.Config{})
	r := get(t, h, "GET", "/", nil)
	if r.StatusCode != 200 {
		t.Fatalf("GET /: %d", r.StatusCode)
	}
	for k, want := range map[string]string{
		"Content-Type":           "text/html; charset=utf-8",
		"X-Frame-Options":        "DENY",
		"X-Content-Type-Options": "nosniff",
		"Referrer-Policy":        "no-referrer",
		"Cache-Control":          "no-cache",
	} {
		if got := r.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	csp := r.Header.Get("Content-Security-Policy")
	for _, d := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "form-action 'none'"} {
		if !strings.Contains(csp, d) {
			t.Errorf("CSP %q lacks %q", csp, d)
		}
	}
	if strings.Contains(csp, "unsafe") {
		t.Errorf("CSP allows unsafe sources: %q", csp)
	}
	page := body(t, r)
	if !strings.Contains(page, `data-poll-ms="1500"`) {
		t.Error("the page does not carry the default poll interval")
	}
	if strings.Contains(page, "<script>") || strings.Contains(page, " style=") {
		t.Error("the page has inline script or style, which the CSP refuses")
	}
}

func TestHandler_poll(t *testing.T) {
	t.Parallel()
	page := body(t, get(t, web.Handler(web.Config{Poll: 1}), "GET", "/", nil))
	if !strings.Contains(page, `data-poll-ms="250"`) {
		t.Error("a poll interval under 250 ms is not raised to it")
	}
}

func TestHandler_assets(t *testing.T) {
	t.Parallel()
	h := web.Handler(web.Config{})
	cases := []struct{ path, ctype string }{
		{"/assets/app.css", "text/css"},
		{"/assets/js/app.js", "javascript"},
		{"/assets/js/pages/task.js", "javascript"},
		{"/assets/favicon.svg", "image/svg+xml"},
	}
	for _, c := range cases {
		r := get(t, h, "GET", c.path, nil)
		if r.StatusCode != 200 || !strings.Contains(r.Header.Get("Content-Type"), c.ctype) {
			t.Errorf("GET %s: %d %q", c.path, r.StatusCode, r.Header.Get("Content-Type"))
		}
		etag := r.Header.Get("ETag")
		if etag == "" || r.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("GET %s: ETag %q, CSP %q", c.path, etag, r.Header.Get("Content-Security-Policy"))
			continue
		}
		r = get(t, h, "GET", c.path, map[string]string{"If-None-Match": etag})
		if r.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with its ETag: %d, want 304", c.path, r.StatusCode)
		}
		r = get(t, h, "HEAD", c.path, nil)
		if r.StatusCode != 200 || body(t, r) != "" {
			t.Errorf("HEAD %s: %d", c.path, r.StatusCode)
		}
	}
	for _, p := range []string{"/assets/", "/assets/nope.js", "/index.html", "/assets/index.html", "/nope"} {
		if r := get(t, h, "GET", p, nil); r.StatusCode != 404 {
			t.Errorf("GET %s: %d, want 404", p, r.StatusCode)
		}
	}
	if r := get(t, h, "POST", "/", nil); r.StatusCode != 405 || r.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /: %d, Allow %q", r.StatusCode, r.Header.Get("Allow"))
	}
}

// TestMount checks that the dashboard's patterns leave the rest of a mux
// alone: its own 404s and 405s still answer.
func TestMount(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/tasks/{id}/retry", func(w http.ResponseWriter, r *http.Request) {})
	web.Mount(mux, web.Handler(web.Config{}))
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/", 200},
		{"HEAD", "/", 200},
		{"GET", "/assets/js/app.js", 200},
		{"GET", "/nope", 404},
		{"GET", "/api/v1/nope", 404},
		{"GET", "/api/v1/tasks/x/retry", 405},
		{"POST", "/api/v1/tasks/x/retry", 200},
	} {
		if r := get(t, mux, c.method, c.path, nil); r.StatusCode != c.status {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, r.StatusCode, c.status)
		}
	}
}

func TestProtect(t *testing.T) {
	t.Parallel()
	reached := 0
	h := web.Protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached++ }))
	cases := []struct {
		name   string
		method string
		header map[string]string
		status int
	}{
		{"same origin", "POST", map[string]string{"Sec-Fetch-Site": "same-origin"}, 200},
		{"no browser headers (CLI, providers)", "POST", nil, 200},
		{"user typed", "POST", map[string]string{"Sec-Fetch-Site": "none"}, 200},
		{"origin matches host", "POST", map[string]string{"Origin": "http://example.com"}, 200},
		{"cross site", "POST", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"same site, other origin", "POST", map[string]string{"Sec-Fetch-Site": "same-site"}, 403},
		{"foreign origin", "POST", map[string]string{"Origin": "https://evil.example"}, 403},
		{"cross-site read", "GET", map[string]string{"Sec-Fetch-Site": "cross-site"}, 200},
	}
	for _, c := range cases {
		before := reached
		r := get(t, h, c.method, "http://example.com/api/v1/tasks/x/retry", c.header)
		if r.StatusCode != c.status {
			t.Errorf("%s: %d, want %d", c.name, r.StatusCode, c.status)
		}
		if c.status == 403 {
			if reached != before {
				t.Errorf("%s: the handler ran", c.name)
			}
			if b := body(t, r); !strings.Contains(b, `"code":"forbidden"`) || r.Header.Get("Content-Type") != "application/json" {
				t.Errorf("%s: answer %q", c.name, b)
			}
		}
	}
}

// TestStatic guards the embedded app: every module it imports is there,
// nothing is loaded from another origin, and no markup is built from
// strings (task data must never become HTML).
func TestStatic(t *testing.T) {
	t.Parallel()
	root := os.DirFS("static")
	importRE := regexp.MustCompile(`(?m)^import .* from '([^']+)';$`)
	urlRE := regexp.MustCompile(`https?://[^\s'"` + "`" + `)]+`)
	err := fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(root, p)
		if err != nil {
			return err
		}
		src := string(b)
		for _, u := range urlRE.FindAllString(src, -1) {
			if u != "http://www.w3.org/2000/svg" {
				t.Errorf("%s refers to %s: the dashboard loads nothing from other origins", p, u)
			}
		}
		if !strings.HasSuffix(p, ".js") {
			return nil
		}
		for _, bad := range []string{"innerHTML", "outerHTML =", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
			if strings.Contains(src, bad) {
				t.Errorf("%s uses %s", p, bad)
			}
		}
		for _, m := range importRE.FindAllStringSubmatch(src, -1) {
			dep := path.Join(path.Dir(p), m[1])
			if _, err := fs.Stat(root, dep); err != nil {
				t.Errorf("%s imports %s, which is not embedded", p, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	page, err := fs.ReadFile(root, "index.html")
	if err != nil {
		t.Fatal(err)
	}
	h := web.Handler(web.Config{})
	for _, m := range regexp.MustCompile(`(?:src|href)="(/assets/[^"]+)"`).FindAllStringSubmatch(string(page), -1) {
		if r := get(t, h, "GET", m[1], nil); r.StatusCode != 200 {
			t.Errorf("index.html refers to %s: %d", m[1], r.StatusCode)
		}
	}
}

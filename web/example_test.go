package web_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/conveyor-dev/conveyor/web"
)

// Mount puts the dashboard on a mux beside the API; Protect then guards
// the state-changing routes against cross-site requests.
func ExampleMount() {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/tasks/{id}/retry", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "retried")
	})
	web.Mount(mux, web.Handler(web.Config{}))
	h := web.Protect(mux)

	for _, req := range []*http.Request{
		httptest.NewRequest("GET", "/", nil),
		httptest.NewRequest("POST", "/api/v1/tasks/1/retry", nil),
		crossSite(httptest.NewRequest("POST", "/api/v1/tasks/1/retry", nil)),
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		fmt.Println(req.Method, req.URL.Path, rec.Code, rec.Header().Get("Content-Type"))
	}
	// Output:
	// GET / 200 text/html; charset=utf-8
	// POST /api/v1/tasks/1/retry 200 text/plain; charset=utf-8
	// POST /api/v1/tasks/1/retry 403 application/json
}

func crossSite(r *http.Request) *http.Request {
	r.Header.Set("Sec-Fetch-Site", "cross-site")
	return r
}

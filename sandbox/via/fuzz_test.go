package via_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-dev/conveyor/sandbox/via"
)

// holdPlaceholder in a fuzz body is replaced by the id of a hold that exists,
// so that confirm, cancel and info reach the state machine.
const holdPlaceholder = "$HOLD"

// FuzzServer_request feeds arbitrary bodies to every endpoint: whatever
// arrives, the handler must not panic and must answer a JSON object, either
// {"data":{...}} or the error envelope. Each input gets a fresh Server
// holding one CREATE_SUCCESS hold, so runs are repeatable. Hold ids are
// random, so coverage does not reproduce exactly and the fuzzer's input
// minimisation can stall for its full budget: fuzz with
// -fuzzminimizetime=2s.
func FuzzServer_request(f *testing.F) {
	paths := []string{via.PathCreate, via.PathConfirm, via.PathCancel, via.PathInfo}
	create, _ := json.Marshal(createBody("ext-1", via.CardSuccess))
	f.Add(uint8(0), string(create))
	f.Add(uint8(0), `{"merchantId":"mrt_qwegFC1lHGaAzJIRphv4LdU10zX","externalId":"e","cardToken":"`+via.CardPending+
		`","amount":"1","currency":"UZS","accounts":"x","holdTime":1,"sandbox_fault":"pending=1s"}`)
	f.Add(uint8(1), `{"holdId":"$HOLD","amount":"10000"}`)
	f.Add(uint8(1), `{"holdId":"$HOLD","amount":4000,"sandbox_fault":"confirm_error"}`)
	f.Add(uint8(2), `{"holdId":"$HOLD","sandbox_fault":"cancel_error"}`)
	f.Add(uint8(3), `{"holdId":"$HOLD"}`)
	f.Add(uint8(3), ``)
	f.Add(uint8(0), `{"amount":1e3}`)
	f.Add(uint8(1), `{"holdId":null,"amount":[]}`)

	f.Fuzz(func(t *testing.T, endpoint uint8, body string) {
		clock := newFakeClock()
		srv := via.New(via.Config{Clock: clock.Now})
		defer srv.Close()
		rec := serve(srv, via.PathCreate, string(create))
		var created struct{ Data struct{ HoldID string } }
		if err := json.Unmarshal(rec.Body.Bytes(), &created); err != nil || created.Data.HoldID == "" {
			t.Fatalf("setup create failed: %s", rec.Body.String())
		}
		body = strings.ReplaceAll(body, holdPlaceholder, created.Data.HoldID)
		rec = serve(srv, paths[int(endpoint)%len(paths)], body)
		if rec == nil {
			return // the timeout knob: nothing is answered by design
		}
		checkFuzzReply(t, rec, body)
	})
}

// serve runs one authenticated request through srv; nil means the handler
// answered nothing before the 50ms client deadline (the timeout knob).
func serve(srv *via.Server, path, body string) *httptest.ResponseRecorder {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, prefix+path, strings.NewReader(body))
	req.Header.Set("client-id", via.DefaultClientID)
	req.Header.Set("client-secret", via.DefaultClientSecret)
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	if rec.Body.Len() == 0 && ctx.Err() != nil {
		return nil
	}
	return rec
}

// checkFuzzReply requires a JSON object that is either {"data":...} with
// 200 or the error envelope with another status.
func checkFuzzReply(t *testing.T, rec *httptest.ResponseRecorder, body string) {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type = %q for body %q", ct, body)
	}
	var reply map[string]json.RawMessage
	if err := json.Unmarshal(rec.Body.Bytes(), &reply); err != nil {
		t.Fatalf("reply %q is not a JSON object: %v", rec.Body.String(), err)
	}
	_, isData := reply["data"]
	_, isError := reply["error"]
	if isData == isError || (rec.Code == http.StatusOK) != isData {
		t.Fatalf("HTTP %d reply %s is neither data nor the error envelope", rec.Code, rec.Body.String())
	}
}

package via_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/conveyor-dev/conveyor/sandbox/via"
)

// Mounting the sandbox under a prefix, holding funds on the documentation's
// test card and polling the hold, as a VIA client does.
func ExampleNew() {
	sandbox := via.New(via.Config{})
	defer sandbox.Close()
	mux := http.NewServeMux()
	mux.Handle("/sandbox/via/", http.StripPrefix("/sandbox/via", sandbox))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	call := func(path, body string) (reply struct {
		Data struct{ HoldID, Status string }
	}) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/sandbox/via"+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("client-id", via.DefaultClientID)
		req.Header.Set("client-secret", via.DefaultClientSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil {
			panic(err)
		}
		return reply
	}

	created := call(via.PathCreate, `{"merchantId":"mrt_qwegFC1lHGaAzJIRphv4LdU10zX","externalId":"test_1",`+
		`"cardToken":"VLH8VNWKE3SBBBZEKA86T5PF72ZNTEST","amount":10000,"currency":"UZS","note":"",`+
		`"accounts":{"account":"123123"},"holdTime":60}`)
	fmt.Println(created.Data.Status)
	id := created.Data.HoldID
	fmt.Println(call(via.PathInfo+"?holdId="+id, "").Data.Status)
	fmt.Println(call(via.PathConfirm, `{"holdId":"`+id+`","amount":7500}`).Data.Status)
	// Output:
	// NEW
	// CREATE_SUCCESS
	// CONFIRM_SUCCESS
}

package liqpay

import (
	"bytes"
	"encoding/json"
	"math/big"
	"testing"
	"time"

	"github.com/conveyor-dev/conveyor/internal/exactjson"
)

// TestReplies_takeTheExactShortcut: the sandbox's replies and callbacks are
// written by exactjson (whose fuzz tests hold it to encoding/json) without
// falling back to reflection, and the bytes are json.Marshal's.
func TestReplies_takeTheExactShortcut(t *testing.T) {
	t.Parallel()
	now := time.UnixMilli(1700000000000)
	p := &payment{key: orderKey{DefaultPublicKey, "o-1"}, id: 1000000001, desc: "Оплата замовлення №5", currency: "UAH",
		amount: big.NewRat(734, 100), captured: big.NewRat(5, 1), refunded: big.NewRat(1, 2), status: statusOTPVerify,
		token: "tok", sandbox: true, created: now, ended: now, completedAt: now, refundedAt: now, errCode: "err_sms_otp"}
	for name, v := range map[string]map[string]any{
		"reply": reply(p), "refund reply": refundReply(p), "error reply": errorReply(errCode("err_wrong", "bad")),
		"callback": p.object(),
	} {
		got, ok := exactjson.Append(nil, v)
		if !ok {
			t.Errorf("%s: exactjson leaves it to json.Marshal", name)
			continue
		}
		if want, _ := json.Marshal(v); !bytes.Equal(got, want) {
			t.Errorf("%s: %s, json.Marshal gives %s", name, got, want)
		}
	}
}

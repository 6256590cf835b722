package processes_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/conveyor-dev/conveyor/processes"
)

// paymentSchema is the input of a small card flow.
func paymentSchema(t *testing.T) *processes.Schema {
	t.Helper()
	def, err := loadSource(t, `process: payment
input:
  amount:   {type: decimal, required: true}
  fee:      {type: decimal, enum: ["0", "1.50"]}
  currency: {type: string, required: true, enum: [UAH, EUR]}
  order_id: {type: string, required: true, min_length: 3, max_length: 8}
  phone:    {type: string, pattern: '^\+?[0-9]{10,15}$'}
  card:     {type: string, sensitive: pan}
  cvv:      {type: string, sensitive: secret, pattern: '^[0-9]{3,4}$'}
  token:    {type: string, sensitive: secret, max_length: 4}
  quantity: {type: integer}
  urgent:   {type: boolean}
  meta:     {type: object}
  tags:     {type: array}
start: done
nodes:
  done: {type: final, result: success}
`)
	if err != nil {
		t.Fatal(err)
	}
	return def.Input
}

// valid is data that passes paymentSchema; each test changes one thing.
func valid() map[string]any {
	return map[string]any{"amount": json.Number("7.34"), "currency": "UAH", "order_id": "ord-1"}
}

func TestSchema_Validate(t *testing.T) {
	t.Parallel()
	s := paymentSchema(t)
	tests := []struct {
		name  string
		field string
		value any // nil deletes the field
		want  string
	}{
		{"valid", "", nil, ""},
		{"required missing", "amount", nil, "amount: is required"},
		{"required null counts as missing", "currency", "<null>", "currency: is required"},
		{"optional missing", "phone", nil, ""},
		{"enum", "currency", "USD", "currency: must be one of UAH, EUR"},
		{"decimal enum", "fee", json.Number("1.50"), ""},
		{"decimal enum refused", "fee", json.Number("1.5"), "fee: must be one of 0, 1.50"},
		{"min_length", "order_id", "ab", "order_id: must be at least 3 characters"},
		{"max_length", "order_id", "ord-12345", "order_id: must be at most 8 characters"},
		{"max_length counts characters, not bytes", "order_id", "ґґґґґґґґ", ""},
		{"pattern", "phone", "+380501234567", ""},
		{"pattern refused", "phone", "call me", `phone: must match ^\+?[0-9]{10,15}$`},
		{"string type", "order_id", json.Number("12345"), "order_id: must be a string"},
		{"integer", "quantity", json.Number("12"), ""},
		{"negative integer", "quantity", json.Number("-3"), ""},
		{"integer with decimals", "quantity", json.Number("1.0"), "quantity: must be an integer"},
		{"integer as a string", "quantity", "12", "quantity: must be an integer"},
		{"boolean", "urgent", true, ""},
		{"boolean as a string", "urgent", "true", "urgent: must be true or false"},
		{"object", "meta", map[string]any{"a": 1}, ""},
		{"object refused", "meta", []any{}, "meta: must be an object"},
		{"array", "tags", []any{"a"}, ""},
		{"array refused", "tags", "a,b", "tags: must be an array"},
		{"Luhn-valid card", "card", "4111111111111111", ""},
		{"Luhn-valid 19-digit card", "card", "6304000000000000018", ""},
		{"Luhn check digit wrong", "card", "4111111111111112", "card: is not a valid card number"},
		{"card too short", "card", "4111111111", "card: is not a valid card number"},
		{"card with spaces", "card", "4111 1111 1111 1111", "card: is not a valid card number"},
		{"card not a string", "card", json.Number("4111111111111111"), "card: must be a string"},
		{"sensitive pattern hides the pattern", "cvv", "12", "cvv: has the wrong format"},
		{"unknown field", "amonut", "7", "amonut: is not an input field of this process"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			data := valid()
			switch tt.value {
			case nil:
				delete(data, tt.field)
			case "<null>":
				data[tt.field] = nil
			default:
				data[tt.field] = tt.value
			}
			err := s.Validate(data)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || err.Error() != "invalid input: "+tt.want {
				t.Errorf("Validate = %v, want invalid input: %s", err, tt.want)
			}
		})
	}
}

// TestSchema_Validate_decimal lists the decimal formats: a JSON number or a
// numeric string, plain digits with an optional fraction; never a float.
func TestSchema_Validate_decimal(t *testing.T) {
	t.Parallel()
	s := paymentSchema(t)
	for _, ok := range []any{json.Number("5"), json.Number("7.34"), json.Number("0.01"), json.Number("-1"), "7.34", "0", "1000000000000000000000.00"} {
		data := valid()
		data["amount"] = ok
		if err := s.Validate(data); err != nil {
			t.Errorf("amount %#v refused: %v", ok, err)
		}
	}
	for _, bad := range []any{json.Number("1e3"), json.Number("01"), "7.", ".5", "7,34", "1/2", "0x10", " 5", "abc", "", 7.34, 7, true} {
		data := valid()
		data["amount"] = bad
		err := s.Validate(data)
		if err == nil || !strings.HasPrefix(err.Error(), "invalid input: amount: must be a decimal number") {
			t.Errorf("amount %#v: err = %v, want it refused as not a decimal", bad, err)
		}
	}
}

// TestSchema_Validate_all checks that every problem is reported, in schema
// order with unknown fields last, sorted.
func TestSchema_Validate_all(t *testing.T) {
	t.Parallel()
	err := paymentSchema(t).Validate(map[string]any{"zeta": 1, "currency": "GBP", "alpha": 2, "quantity": "x"})
	var ie processes.InputError
	if !errors.As(err, &ie) {
		t.Fatalf("err = %T %v, want InputError", err, err)
	}
	want := processes.InputError{
		{Field: "amount", Msg: "is required"},
		{Field: "currency", Msg: "must be one of UAH, EUR"},
		{Field: "order_id", Msg: "is required"},
		{Field: "quantity", Msg: "must be an integer"},
		{Field: "alpha", Msg: "is not an input field of this process"},
		{Field: "zeta", Msg: "is not an input field of this process"},
	}
	if diff := cmp.Diff(want, ie); diff != "" {
		t.Errorf("InputError (-want +got):\n%s", diff)
	}
	b, _ := json.Marshal(ie[0])
	if string(b) != `{"field":"amount","message":"is required"}` {
		t.Errorf("FieldError JSON = %s", b)
	}
}

// TestSchema_Validate_sensitive checks that no message repeats a sensitive
// value, whatever is wrong with it.
func TestSchema_Validate_sensitive(t *testing.T) {
	t.Parallel()
	s := paymentSchema(t)
	for field, values := range map[string][]string{
		"card":  {"4111111111111112", "4111-1111-1111-1111", "41111111111111111111111", "secret-ish"},
		"cvv":   {"12", "12345", "abc"},
		"token": {"too-long-token"},
	} {
		for _, v := range values {
			data := valid()
			data[field] = v
			err := s.Validate(data)
			if err == nil {
				t.Errorf("%s %q passed", field, v)
				continue
			}
			if strings.Contains(err.Error(), v) {
				t.Errorf("message %q repeats the sensitive value %q", err, v)
			}
		}
	}
}

// TestSchema_ValidateKnown specifies the check for bodies others send
// (callbacks): declared fields that are present must be right; absent ones
// and extra ones pass.
func TestSchema_ValidateKnown(t *testing.T) {
	t.Parallel()
	s := paymentSchema(t)
	for _, data := range []map[string]any{
		{},
		{"extra": true, "currency": "EUR"},
		{"status": "anything", "amount": "1.5", "urgent": false},
	} {
		if err := s.ValidateKnown(data); err != nil {
			t.Errorf("ValidateKnown(%v) = %v, want nil", data, err)
		}
	}
	err := s.ValidateKnown(map[string]any{"currency": "GBP", "amount": nil, "extra": 1})
	if err == nil || err.Error() != "invalid input: amount: is required; currency: must be one of UAH, EUR" {
		t.Errorf("ValidateKnown = %v, want the present declared fields checked", err)
	}
}

func TestSchema_Field(t *testing.T) {
	t.Parallel()
	s := paymentSchema(t)
	f := s.Field("phone")
	if f == nil || f.Type != processes.TypeString || f.Pattern == "" || f.Pos.Line != 7 || f.Pos.Col != 3 {
		t.Errorf("Field(phone) = %+v", f)
	}
	if s.Field("nope") != nil {
		t.Error("Field(nope) is not nil")
	}
	var names []string
	for _, f := range s.Sensitive() {
		names = append(names, f.Name)
	}
	if diff := cmp.Diff([]string{"card", "cvv", "token"}, names); diff != "" {
		t.Errorf("Sensitive (-want +got):\n%s", diff)
	}
}

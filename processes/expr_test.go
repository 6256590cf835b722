package processes_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/conveyor-dev/conveyor/processes"
)

// exprInput declares the fields the expression tests read.
const exprInput = `{amount: {type: decimal}, status: {type: string}, n: {type: integer}, note: {type: string},
  card: {type: string, sensitive: pan}, meta: {type: object}}`

// compileExpr compiles src as a condition of a probe node.
func compileExpr(t *testing.T, src string) *processes.Expr {
	t.Helper()
	e := mustProbe(t, exprInput, "expr: "+strconv.Quote(src)).expr
	if e == nil {
		t.Fatalf("expression %s did not compile", src)
	}
	return e
}

// exprEnv is a task's data with the reserved roots.
func exprEnv() processes.Env {
	return processes.Env{
		"amount": json.Number("5.00"),
		"status": "ok",
		"n":      int64(41), // whole numbers reach expressions as int64, as the engine gives them
		"meta":   map[string]any{"source": "test"},
		"task":   map[string]any{"id": "t1", "attempt": 1},
		"env":    map[string]any{"LIQPAY_URL": "https://liqpay.example"},
	}
}

func TestExpr_Eval(t *testing.T) {
	t.Parallel()
	tests := []struct {
		src  string
		want any
	}{
		{`status == "ok"`, true},
		{`status in ["failure", "error"]`, false},
		{`amount`, json.Number("5.00")},
		{`task.attempt + 1`, 2},
		{`env.LIQPAY_URL + "/api/request"`, "https://liqpay.example/api/request"},
		{`note ?? "none"`, "none"},
		{`note?.text ?? "no note"`, "no note"},
		{`meta.source`, "test"},
		{`len(status) > 1 ? "long" : "short"`, "long"},
		{`let x = 2; x * 3`, 6},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			t.Parallel()
			e := compileExpr(t, tt.src)
			if e.Src != tt.src {
				t.Errorf("Src = %q, want %q", e.Src, tt.src)
			}
			got, err := e.Eval(exprEnv())
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Eval(%s) (-want +got):\n%s", tt.src, diff)
			}
		})
	}
}

func TestExpr_Refs(t *testing.T) {
	t.Parallel()
	e := compileExpr(t, `status == "ok" && dec_cmp(amount, "1") > 0 && task.attempt < 3 && env.X != "" && status != ""`)
	if diff := cmp.Diff([]string{"status", "amount"}, e.Refs); diff != "" {
		t.Errorf("Refs: data fields read, once each, roots excluded (-want +got):\n%s", diff)
	}
}

func TestExpr_Bool(t *testing.T) {
	t.Parallel()
	t.Run("true and false", func(t *testing.T) {
		t.Parallel()
		for src, want := range map[string]bool{`status == "ok"`: true, `n > 100`: false} {
			got, err := compileExpr(t, src).Bool(exprEnv())
			if err != nil || got != want {
				t.Errorf("Bool(%s) = %v, %v; want %v", src, got, err, want)
			}
		}
	})
	t.Run("not a boolean", func(t *testing.T) {
		t.Parallel()
		_, err := compileExpr(t, `status`).Bool(exprEnv())
		if err == nil || !strings.Contains(err.Error(), "want a boolean, got string") {
			t.Errorf("Bool of a string: err = %v, want a boolean", err)
		}
	})
	t.Run("run-time error names the expression", func(t *testing.T) {
		t.Parallel()
		_, err := compileExpr(t, `int(status) > 0`).Bool(exprEnv())
		if err == nil || !strings.HasPrefix(err.Error(), "int(status) > 0: ") {
			t.Errorf("err = %v, want it to start with the expression", err)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("err spans lines: %q", err)
		}
	})
	t.Run("run-time error of a sensitive read hides the value", func(t *testing.T) {
		t.Parallel()
		const pan = "4111111111111111x"
		env := exprEnv()
		env["card"] = pan
		_, err := compileExpr(t, `int(card) > 0`).Bool(env)
		if err == nil {
			t.Fatal("int of a non-number: no error")
		}
		if strings.Contains(err.Error(), "4111") {
			t.Errorf("error %q quotes the card number", err)
		}
	})
}

// TestExpr_decimal specifies the decimal helpers: money is exact, never a
// float, so 0.1 + 0.2 is 0.3 and 19.99 is 1999 cents.
func TestExpr_decimal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		src  string
		want any
	}{
		{`decimal("7.340")`, "7.34"},
		{`decimal(amount)`, "5"},
		{`decimal("-0.50")`, "-0.5"},
		{`decimal(" 12 ")`, "12"},
		{`decimal(0.1)`, "0.1"},
		{`decimal(7)`, "7"},
		{`decimal("1e2")`, "100"},
		{`decimal("1.5E-3")`, "0.0015"},
		{`decimal("0.0000000000000000000001")`, "0.0000000000000000000001"},

		{`dec_cmp("7.34", "7.340")`, 0},
		{`dec_cmp("0.1", "0.10000000000000001")`, -1},
		{`dec_cmp("10", "9.99")`, 1},
		{`dec_cmp(amount, 5)`, 0},

		{`dec_add("0.1", "0.2")`, "0.3"},
		{`dec_add(0.1, 0.2)`, "0.3"},
		{`dec_add("99999999999999999.99", "0.01")`, "100000000000000000"},
		{`dec_add(amount, "-5")`, "0"},
		{`dec_sub("10", "0.01")`, "9.99"},
		{`dec_sub("0.3", "0.1")`, "0.2"},
		{`dec_sub("1", "1.5")`, "-0.5"},

		{`to_minor("7.34", 2)`, 734},
		{`to_minor("19.99", 2)`, 1999},
		{`to_minor(amount, 2)`, 500},
		{`to_minor("0.1", 2)`, 10},
		{`to_minor("5", 0)`, 5},
		{`to_minor("7.340", 2)`, 734},
		{`to_minor("-1.05", 2)`, -105},

		{`from_minor(734, 2)`, "7.34"},
		{`from_minor(1999, 2)`, "19.99"},
		{`from_minor("5", 2)`, "0.05"},
		{`from_minor(100, 2)`, "1"},
		{`from_minor(n, 0)`, "41"},
		{`from_minor(to_minor("12.34", 2), 2)`, "12.34"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			t.Parallel()
			got, err := compileExpr(t, tt.src).Eval(exprEnv())
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("%s (-want +got):\n%s", tt.src, diff)
			}
		})
	}
}

func TestExpr_decimal_refused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		src, want string
	}{
		{`to_minor("7.345", 2)`, "7.345 has more than 2 decimals"},
		{`to_minor("0.001", 0)`, "0.001 has more than 0 decimals"},
		{`to_minor("92233720368547758.08", 2)`, "is too large"},
		{`to_minor("5", 19)`, "decimals must be a whole number from 0 to 18"},
		{`to_minor("5", -1)`, "decimals must be a whole number from 0 to 18"},
		{`from_minor("7.5", 2)`, "7.5 is not a whole number of minor units"},
		{`decimal("abc")`, `not a decimal number: "abc"`},
		{`decimal("7,34")`, `not a decimal number`},
		{`decimal("1/3")`, `not a decimal number`},
		{`decimal("0x10")`, `not a decimal number`},
		{`decimal("1e99999")`, `not a decimal number`},
		{`decimal("")`, `not a decimal number`},
		{`decimal(true)`, "not a number"},
		{`dec_cmp(note, "1")`, "not a number"},
		{`dec_add("1", "two")`, "not a decimal number"},
		{`dec_sub("NaN", "1")`, "not a decimal number"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			t.Parallel()
			got, err := compileExpr(t, tt.src).Eval(exprEnv())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s = %v, %v; want an error with %q", tt.src, got, err, tt.want)
			}
		})
	}
}

// TestNodeContext_Expr specifies what an expression may read.
func TestNodeContext_Expr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, expr string
		http       bool
		want       string // the problem, "" for none
	}{
		{"input field", `status == "ok"`, false, ""},
		{"task and env roots", `task.attempt > 1 || env.MODE == "test"`, false, ""},
		{"engine's error fields", `err_code == "x" || failed_node == "y" || err_description != ""`, false, ""},
		{"field a node writes", `reply.ok`, false, ""},
		{"local variable", `let s = status; s == "ok"`, false, ""},
		{"closure variable", `all(["a"], {# != status})`, false, ""},
		{"http in api cases", `http.status == 200`, true, ""},
		{"undeclared field", `staus == "ok"`, false, `unknown field "staus": not an input field nor written by any node`},
		{"http elsewhere", `http.status == 200`, false, "http is only available in the cases of an api node"},
		{"secrets", `secrets.key == "x"`, false, "secrets may only be read in request headers"},
		{"syntax", `status ==`, false, "bad expression: unexpected token EOF"},
		{"unknown function", `nope(status)`, false, `unknown function "nope"`},
		{"builtin function", `upper(status) == "OK" && len(status) > 0`, false, ""},
		{"wrong argument count", `dec_add(status)`, false, "bad expression: not enough arguments to call dec_add"},
		{"whitespace only", `   `, false, "empty expression"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			probe := "writes: reply, expr: " + strconv.Quote(tt.expr)
			if tt.http {
				probe += ", http: true"
			}
			_, _, err := loadProbe(t, exprInput, "[key]", probe)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
				t.Errorf("problems:\n%s\nwant: %q", got, tt.want)
			}
		})
	}
}

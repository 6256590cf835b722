package processes

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
)

// Reserved roots of the expression environment. Every other top-level name is
// a field of the task's data.
const (
	// RootTask holds the task's own properties: id, ref, process, node,
	// callback_url, idempotency_key, attempt.
	RootTask = "task"
	// RootEnv holds configuration variables (env.LIQPAY_URL).
	RootEnv = "env"
	// RootSecrets holds configured secrets; only request headers may read them.
	RootSecrets = "secrets"
	// RootHTTP holds the reply's status and headers, in api cases only.
	RootHTTP = "http"
)

// Env is the environment an expression runs in: the task's data fields at the
// top level, plus the reserved roots.
type Env map[string]any

// Expr is a compiled expression. It is safe for concurrent use.
type Expr struct {
	// Src is the expression's text.
	Src  string
	prog *vm.Program
	// Refs are the top-level data fields the expression reads.
	Refs []string
	// redact hides run-time error details, which may quote a value, when the
	// expression reads a sensitive field.
	redact bool
}

// Eval runs the expression. When it reads a sensitive input field, a failure
// says only that it failed: the expression library's messages may quote
// values, and errors end up in task data and logs.
func (e *Expr) Eval(env Env) (any, error) {
	out, err := expr.Run(e.prog, map[string]any(env))
	if err != nil {
		if e.redact {
			return nil, fmt.Errorf("%s: failed (details hidden: it reads a sensitive field)", e.Src)
		}
		return nil, fmt.Errorf("%s: %s", e.Src, firstLine(err.Error()))
	}
	return out, nil
}

// Bool runs the expression and requires a boolean result.
func (e *Expr) Bool(env Env) (bool, error) {
	out, err := e.Eval(env)
	if err != nil {
		return false, err
	}
	b, ok := out.(bool)
	if !ok {
		return false, fmt.Errorf("%s: want a boolean, got %T", e.Src, out)
	}
	return b, nil
}

// scope says which names an expression may use where it is written.
type scope struct {
	fields  map[string]bool // declared data fields
	secrets map[string]bool // declared secrets, nil where secrets are not allowed
	http    bool            // the http root is available (api cases)
}

// exprRefs is what compiling an expression found it reads.
type exprRefs struct {
	fields  []string       // data fields
	at      map[string]int // rune offset of each field's first use
	env     []string       // env.NAME
	secrets []string       // secrets.NAME
}

// compileExpr compiles src and checks every name it uses against sc. It
// returns the problems with their position inside src (line and column from
// 1).
func compileExpr(src string, sc scope) (*Expr, exprRefs, []exprProblem) {
	tree, err := parser.Parse(src)
	if err != nil {
		return nil, exprRefs{}, []exprProblem{fromExprError(err)}
	}
	if tree.Node == nil {
		return nil, exprRefs{}, []exprProblem{{line: 1, col: 1, msg: "empty expression"}}
	}
	refs, probs := checkNames(src, tree.Node, sc)
	if len(probs) > 0 {
		return nil, refs, probs
	}
	prog, err := expr.Compile(src, exprOptions()...)
	if err != nil {
		return nil, refs, []exprProblem{fromExprError(err)}
	}
	return &Expr{Src: src, prog: prog, Refs: refs.fields}, refs, nil
}

// exprFunctions are the functions Conveyor adds to the expression language.
var exprFunctions = []string{"decimal", "dec_cmp", "dec_add", "dec_sub", "to_minor", "from_minor"}

// isFunction reports whether an expression may call name: one of expr's
// builtins or Conveyor's. AllowUndefinedVariables would otherwise let a
// misspelt function through to fail at run time.
func isFunction(name string) bool {
	_, ok := builtin.Index[name]
	return ok || slices.Contains(exprFunctions, name)
}

// exprOptions are the options every expression compiles with: names are
// checked by checkNames (data fields are dynamic), and the decimal helpers
// are available.
func exprOptions() []expr.Option {
	return []expr.Option{
		expr.Env(map[string]any{}),
		expr.AllowUndefinedVariables(),
		expr.Function("decimal", decimalFn, new(func(any) string)),
		expr.Function("dec_cmp", decCmpFn, new(func(any, any) int)),
		expr.Function("dec_add", decAddFn, new(func(any, any) string)),
		expr.Function("dec_sub", decSubFn, new(func(any, any) string)),
		expr.Function("to_minor", toMinorFn, new(func(any, int) int)),
		expr.Function("from_minor", fromMinorFn, new(func(any, int) string)),
	}
}

// exprProblem is a problem inside an expression's text.
type exprProblem struct {
	line, col int
	msg       string
}

func fromExprError(err error) exprProblem {
	var fe *file.Error
	if errors.As(err, &fe) {
		return exprProblem{line: max(fe.Line, 1), col: fe.Column + 1, msg: "bad expression: " + fe.Message}
	}
	return exprProblem{line: 1, col: 1, msg: "bad expression: " + firstLine(err.Error())}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// names collects what an expression refers to.
type names struct {
	idents  []*ast.IdentifierNode
	callees map[ast.Node]bool
	locals  map[string]bool
	members []*ast.MemberNode
}

func (n *names) Visit(node *ast.Node) {
	switch v := (*node).(type) {
	case *ast.IdentifierNode:
		n.idents = append(n.idents, v)
	case *ast.CallNode:
		n.callees[v.Callee] = true
	case *ast.VariableDeclaratorNode:
		n.locals[v.Name] = true
	case *ast.MemberNode:
		n.members = append(n.members, v)
	}
}

// checkNames walks the tree and reports names the scope does not declare, and
// reads of env and secrets.
func checkNames(src string, root ast.Node, sc scope) (exprRefs, []exprProblem) {
	n := &names{callees: map[ast.Node]bool{}, locals: map[string]bool{}}
	ast.Walk(&root, n)
	refs := exprRefs{at: map[string]int{}}
	var probs []exprProblem
	at := func(node ast.Node, msg string) {
		line, col := runePos(src, node.Location().From)
		probs = append(probs, exprProblem{line: line, col: col, msg: msg})
	}
	for _, id := range n.idents {
		if n.callees[ast.Node(id)] {
			if !isFunction(id.Value) {
				at(id, fmt.Sprintf("unknown function %q", id.Value))
			}
			continue
		}
		if n.locals[id.Value] || id.Value == "$env" {
			continue
		}
		switch id.Value {
		case RootTask, RootEnv:
		case RootSecrets:
			if sc.secrets == nil {
				at(id, "secrets may only be read in request headers")
			}
		case RootHTTP:
			if !sc.http {
				at(id, "http is only available in the cases of an api node")
			}
		default:
			if !sc.fields[id.Value] {
				at(id, fmt.Sprintf("unknown field %q: not an input field nor written by any node", id.Value))
				continue
			}
			if at, ok := refs.at[id.Value]; !ok || id.Location().From < at {
				refs.at[id.Value] = id.Location().From
			}
			refs.fields = appendOnce(refs.fields, id.Value)
		}
	}
	for _, m := range n.members {
		id, ok := m.Node.(*ast.IdentifierNode)
		if !ok {
			continue
		}
		prop, ok := m.Property.(*ast.StringNode)
		if !ok {
			continue
		}
		switch id.Value {
		case RootEnv:
			refs.env = appendOnce(refs.env, prop.Value)
		case RootSecrets:
			if sc.secrets != nil && !sc.secrets[prop.Value] {
				at(m, fmt.Sprintf("unknown secret %q: declare it under secrets", prop.Value))
			}
			refs.secrets = appendOnce(refs.secrets, prop.Value)
		}
	}
	return refs, probs
}

func appendOnce(s []string, v string) []string {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

// Decimal helpers: money is exact, so amounts are compared and converted as
// rational numbers, never as floats. Arguments may be numbers or numeric strings.

func toRat(v any) (*big.Rat, error) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = string(x)
	case string:
		s = x
	case int:
		return new(big.Rat).SetInt64(int64(x)), nil
	case int64:
		return new(big.Rat).SetInt64(x), nil
	case float64:
		s = fmt.Sprint(x)
	default:
		return nil, fmt.Errorf("not a number: %v", v)
	}
	s = strings.TrimSpace(s)
	if !numberRE.MatchString(s) {
		return nil, fmt.Errorf("not a decimal number: %q", s)
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return nil, fmt.Errorf("not a decimal number: %q", s)
	}
	return r, nil
}

// numberRE is a plain decimal number, as JSON writes them. big.Rat would also
// read fractions (1/3) and hex, and an exponent so large that computing it
// never ends; neither is money.
var numberRE = regexp.MustCompile(`^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]{1,3})?$`)

// scale is 10^exp as a rational, for exp from 0 to 18 (the decimals any
// currency, or an int64 of minor units, can have).
func scale(exp any) (*big.Rat, error) {
	e, ok := exp.(int)
	if !ok || e < 0 || e > 18 {
		return nil, fmt.Errorf("decimals must be a whole number from 0 to 18, not %v", exp)
	}
	return new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(e)), nil)), nil
}

// formatRat prints r as a plain decimal without trailing zeros, exactly:
// with as many decimals as it has (a rational made of decimals always ends),
// never rounded to some fixed count.
func formatRat(r *big.Rat) string {
	if r.IsInt() {
		return r.Num().String()
	}
	s := r.FloatString(decimals(r.Denom()))
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// decimals is how many decimals a fraction with denominator d (in lowest
// terms) needs: d = 2^a * 5^b needs max(a, b). Another d never ends; it gets
// 18 decimals, rounded.
func decimals(d *big.Int) int {
	a := int(d.TrailingZeroBits())
	rest := new(big.Int).Rsh(d, uint(a))
	five, m := big.NewInt(5), new(big.Int)
	b := 0
	for {
		q, _ := new(big.Int).QuoRem(rest, five, m)
		if m.Sign() != 0 {
			break
		}
		rest, b = q, b+1
	}
	if rest.Cmp(big.NewInt(1)) != 0 {
		return 18
	}
	return max(a, b)
}

func decimalFn(p ...any) (any, error) {
	r, err := toRat(p[0])
	if err != nil {
		return nil, err
	}
	return formatRat(r), nil
}

func decCmpFn(p ...any) (any, error) {
	a, err := toRat(p[0])
	if err != nil {
		return nil, err
	}
	b, err := toRat(p[1])
	if err != nil {
		return nil, err
	}
	return a.Cmp(b), nil
}

func decAddFn(p ...any) (any, error) {
	return decOp(p, (*big.Rat).Add)
}

func decSubFn(p ...any) (any, error) {
	return decOp(p, (*big.Rat).Sub)
}

func decOp(p []any, op func(z, x, y *big.Rat) *big.Rat) (any, error) {
	a, err := toRat(p[0])
	if err != nil {
		return nil, err
	}
	b, err := toRat(p[1])
	if err != nil {
		return nil, err
	}
	return formatRat(op(new(big.Rat), a, b)), nil
}

// toMinorFn converts major units to integer minor units with exp decimals
// (to_minor("7.34", 2) == 734) and refuses amounts with more decimals.
func toMinorFn(p ...any) (any, error) {
	r, err := toRat(p[0])
	if err != nil {
		return nil, err
	}
	sc, err := scale(p[1])
	if err != nil {
		return nil, err
	}
	m := new(big.Rat).Mul(r, sc)
	if !m.IsInt() {
		return nil, fmt.Errorf("%s has more than %d decimals", formatRat(r), p[1])
	}
	if !m.Num().IsInt64() {
		return nil, fmt.Errorf("%s is too large", formatRat(r))
	}
	return int(m.Num().Int64()), nil
}

// fromMinorFn converts integer minor units to a major-unit decimal string.
func fromMinorFn(p ...any) (any, error) {
	r, err := toRat(p[0])
	if err != nil {
		return nil, err
	}
	sc, err := scale(p[1])
	if err != nil {
		return nil, err
	}
	if !r.IsInt() {
		return nil, fmt.Errorf("%s is not a whole number of minor units", formatRat(r))
	}
	return formatRat(new(big.Rat).Quo(r, sc)), nil
}

// runePos turns a rune offset into a line and column, both from 1.
func runePos(src string, offset int) (line, col int) {
	line, col = 1, 1
	n := 0
	for _, r := range src {
		if n == offset {
			break
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
		n++
	}
	return line, col
}

// ExprValue shapes decoded JSON (task data, a reply, a callback body) for
// expressions: whole numbers become int64, so they compare with integer
// literals (reply.code == 7); other numbers stay exact json.Number (compare
// them with dec_cmp). It returns a copy; what is stored keeps the value as
// it came.
func ExprValue(v any) any {
	switch x := v.(type) {
	case json.Number:
		if n, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return n
		}
		return x
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, v := range x {
			m[k] = ExprValue(v)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, v := range x {
			l[i] = ExprValue(v)
		}
		return l
	}
	return v
}

package processes

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Template is a string with {{ expression }} holes. A template that is exactly
// one hole renders to the expression's value with its type (a number stays a
// number); any other renders to a string. It is safe for concurrent use.
type Template struct {
	// Src is the template's text.
	Src   string
	parts []tmplPart
	whole *Expr
}

type tmplPart struct {
	lit  string
	expr *Expr
}

// Render evaluates the template.
func (t *Template) Render(env Env) (any, error) {
	if t.whole != nil {
		return t.whole.Eval(env)
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.expr == nil {
			b.WriteString(p.lit)
			continue
		}
		v, err := p.expr.Eval(env)
		if err != nil {
			return nil, err
		}
		b.WriteString(Stringify(v))
	}
	return b.String(), nil
}

// String renders the template and formats the result as a string.
func (t *Template) String(env Env) (string, error) {
	v, err := t.Render(env)
	if err != nil {
		return "", err
	}
	return Stringify(v), nil
}

// Stringify formats a rendered value for a string context: nil is empty,
// strings and numbers print as themselves, anything else as JSON.
func Stringify(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return string(x)
	case fmt.Stringer:
		return x.String()
	case map[string]any, []any:
		b, _ := json.Marshal(x)
		return string(b)
	}
	return fmt.Sprint(v)
}

// holes splits a template source into literal text and expression sources,
// with the byte offset of each expression in src. ok is false when a "{{" is
// not closed.
func holes(src string) (parts []string, isExpr []bool, offsets []int, ok bool) {
	rest, off := src, 0
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			if rest != "" {
				parts, isExpr, offsets = append(parts, rest), append(isExpr, false), append(offsets, off)
			}
			return parts, isExpr, offsets, true
		}
		if i > 0 {
			parts, isExpr, offsets = append(parts, rest[:i]), append(isExpr, false), append(offsets, off)
		}
		j := strings.Index(rest[i+2:], "}}")
		if j < 0 {
			return nil, nil, nil, false
		}
		parts = append(parts, rest[i+2:i+2+j])
		isExpr, offsets = append(isExpr, true), append(offsets, off+i+2)
		off += i + 2 + j + 2
		rest = rest[i+2+j+2:]
	}
}

// Value is a compiled tree of YAML values (a request body, a set of fields)
// whose strings may be templates. Mapping keys keep their order.
type Value struct {
	constant any
	tmpl     *Template
	keys     []string
	vals     []*Value
	items    []*Value
	kind     valueKind
}

type valueKind int

const (
	valueConst valueKind = iota
	valueTemplate
	valueMap
	valueList
)

// Keys returns a mapping value's keys in order (nil for other values).
func (v *Value) Keys() []string { return v.keys }

// Render evaluates the tree. In mappings, keys whose value renders to nil are
// left out, so optional input fields that were not given are not sent.
func (v *Value) Render(env Env) (any, error) {
	switch v.kind {
	case valueTemplate:
		return v.tmpl.Render(env)
	case valueMap:
		m := make(map[string]any, len(v.keys))
		for i, k := range v.keys {
			x, err := v.vals[i].Render(env)
			if err != nil {
				return nil, err
			}
			if x != nil {
				m[k] = x
			}
		}
		return m, nil
	case valueList:
		l := make([]any, 0, len(v.items))
		for _, it := range v.items {
			x, err := it.Render(env)
			if err != nil {
				return nil, err
			}
			l = append(l, x)
		}
		return l, nil
	}
	return v.constant, nil
}

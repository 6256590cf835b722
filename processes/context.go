package processes

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v4"
)

// Use says where a template's value goes, which decides what it may read:
// sensitive input fields only travel in request bodies, and secrets only in
// request headers.
type Use int

// Template uses.
const (
	// UseBody is a request body: sensitive fields allowed (they go to the
	// provider), secrets not.
	UseBody Use = iota
	// UseHeader is a request header: secrets allowed, sensitive fields not.
	UseHeader
	// UseURL is a request URL or query: neither (URLs end up in logs).
	UseURL
	// UseData writes into the task's data or its error: neither, so a copy of a
	// card number never escapes the fields that are masked and encrypted.
	UseData
)

func (u Use) String() string {
	switch u {
	case UseBody:
		return "a request body"
	case UseHeader:
		return "a request header"
	case UseURL:
		return "a URL"
	}
	return "task data"
}

// NodeContext is what a Kind sees while it compiles one node: the node's
// configuration (without the keys common to all nodes), the flow's declared
// fields and secrets, and ways to report problems at their position.
type NodeContext struct {
	// Name is the node's name, Type its kind.
	Name, Type string

	file      string
	at        Pos        // where the node's name is written
	node      *yaml.Node // the node's mapping, common keys removed
	def       *Definition
	fields    map[string]bool
	secrets   map[string]bool
	probs     *Problems
	envRefs   *[]string
	sensitive []string
}

// Errorf reports a problem at the value found at path ("request.url",
// "cases[1].when"), or at the node's name when path is "" or absent.
func (c *NodeContext) Errorf(path, format string, args ...any) {
	c.report(c.PosOf(path), fmt.Sprintf(format, args...))
}

func (c *NodeContext) report(p Pos, msg string) {
	*c.probs = append(*c.probs, Problem{File: c.file, Pos: p, Msg: fmt.Sprintf("node %s: %s", c.Name, msg)})
}

// Has reports whether the configuration has a value at path.
func (c *NodeContext) Has(path string) bool { return lookup(c.node, path) != nil }

// PosOf is the position of the value at path, or of the node's name when
// path is "" or absent.
func (c *NodeContext) PosOf(path string) Pos {
	if path != "" {
		if n := lookup(c.node, path); n != nil {
			return Pos{Line: n.Line, Col: n.Column}
		}
	}
	if c.at.Line > 0 {
		return c.at
	}
	return Pos{Line: c.node.Line, Col: c.node.Column}
}

// Raw returns the YAML node at path, nil when absent.
func (c *NodeContext) Raw(path string) *yaml.Node { return lookup(c.node, path) }

// Decode decodes the configuration into v (a pointer to a struct with yaml
// tags), reporting unknown keys and type mismatches with their positions. It
// reports whether every known key decoded: unknown keys are reported but do
// not fail decoding, so the rest of the node is still checked and every
// problem is reported at once.
func (c *NodeContext) Decode(v any) bool {
	probs, ok := decode(c.node, v)
	for _, p := range probs {
		c.report(p.Pos, p.Msg)
	}
	return ok
}

// decode decodes n into v, refusing unknown keys. It returns the problems
// (positions and messages, no file) and whether every known key decoded:
// an unknown key is a problem but does not spoil the rest. Duplicate keys
// are not its business: the loader reports them once, for the whole file.
func decode(n *yaml.Node, v any) (probs []Problem, ok bool) {
	err := n.Load(v, yaml.WithKnownFields(), yaml.WithUniqueKeys(false))
	if err == nil {
		return nil, true
	}
	var les *yaml.LoadErrors
	var le *yaml.LoadError
	switch {
	case errors.As(err, &les):
		ok = true
		for _, le := range les.Errors {
			probs = append(probs, Problem{Pos: markPos(le.Mark, n), Msg: cleanYAMLMsg(le.Message)})
			if !unknownKeyRE.MatchString(le.Message) {
				ok = false
			}
		}
		return probs, ok
	case errors.As(err, &le):
		return []Problem{{Pos: markPos(le.Mark, n), Msg: cleanYAMLMsg(le.Message)}}, false
	}
	return []Problem{{Pos: Pos{Line: n.Line, Col: n.Column}, Msg: err.Error()}}, false
}

// markPos is the position of a decoder's mark, or of n when the mark is
// unknown.
func markPos(m yaml.Mark, n *yaml.Node) Pos {
	if m.Line < 1 {
		return Pos{Line: max(n.Line, 1), Col: max(n.Column, 1)}
	}
	return Pos{Line: m.Line, Col: max(m.Column, 1)}
}

var (
	unknownKeyRE = regexp.MustCompile(`^field (.+) not found in type .*$`)
	constructRE  = regexp.MustCompile(`^cannot construct (!!\w+)(?: ` + "`(.*)`" + `)? into (.+)$`)
)

// cleanYAMLMsg rewrites the decoder's Go-flavoured messages for flow authors.
func cleanYAMLMsg(m string) string {
	if s := unknownKeyRE.FindStringSubmatch(m); s != nil {
		return "unknown key " + strconv.Quote(s[1])
	}
	if s := constructRE.FindStringSubmatch(m); s != nil {
		got := "`" + s[2] + "`"
		switch s[1] {
		case "!!map":
			got = "a mapping"
		case "!!seq":
			got = "a list"
		}
		return "want " + goTypeWord(s[3]) + ", not " + got
	}
	return m
}

// goTypeWord names a Go type the way a flow author thinks of it.
func goTypeWord(t string) string {
	switch {
	case t == "bool":
		return "true or false"
	case t == "string":
		return "a string"
	case strings.HasPrefix(t, "int") || strings.HasPrefix(t, "uint"):
		return "a whole number"
	case strings.HasPrefix(t, "float"):
		return "a number"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	}
	return "a mapping"
}

// Expr compiles a condition at path. http says whether the reply's http root
// may be read (cases of api nodes).
func (c *NodeContext) Expr(path, src string, http bool) *Expr {
	if strings.TrimSpace(src) == "" {
		c.Errorf(path, "empty expression")
		return nil
	}
	e, refs, probs := compileExpr(src, scope{fields: c.fields, http: http})
	c.noteRefs(path, src, 0, refs, UseData, false)
	c.exprProblems(path, 0, probs)
	if e != nil {
		e.redact = c.readsSensitive(refs)
	}
	return e
}

// Template compiles a template string at path for the given use.
func (c *NodeContext) Template(path, src string, use Use) *Template {
	parts, isExpr, offsets, ok := holes(src)
	if !ok {
		c.Errorf(path, "unclosed {{ in template %q", src)
		return nil
	}
	t := &Template{Src: src}
	broken := false
	sc := scope{fields: c.fields}
	if use == UseHeader {
		sc.secrets = c.secrets
	}
	for i, p := range parts {
		if !isExpr[i] {
			t.parts = append(t.parts, tmplPart{lit: p})
			continue
		}
		if strings.TrimSpace(p) == "" {
			c.Errorf(path, "empty {{ }} in template %q", src)
			broken = true
			continue
		}
		e, refs, probs := compileExpr(p, sc)
		offset := utf8.RuneCountInString(src[:offsets[i]])
		if c.noteRefs(path, p, offset, refs, use, true) {
			broken = true
		}
		if len(probs) > 0 {
			c.exprProblems(path, offset, probs)
			broken = true
			continue
		}
		e.redact = c.readsSensitive(refs)
		e.Src = strings.TrimSpace(p)
		t.parts = append(t.parts, tmplPart{expr: e})
	}
	if broken {
		return nil
	}
	if len(t.parts) == 1 && t.parts[0].expr != nil {
		t.whole = t.parts[0].expr
	}
	return t
}

// noteRefs records env and sensitive reads of the expression src (which
// starts offset runes into the value at path) and reports sensitive fields
// used where they would leak. It reports whether it found a leak.
func (c *NodeContext) noteRefs(path, src string, offset int, refs exprRefs, use Use, template bool) bool {
	for _, e := range refs.env {
		*c.envRefs = appendOnce(*c.envRefs, e)
	}
	leak := false
	for _, f := range refs.fields {
		fld := c.def.Input.Field(f)
		if fld == nil || fld.Sensitive == "" {
			continue
		}
		c.sensitive = appendOnce(c.sensitive, f)
		if template && use != UseBody {
			line, col := runePos(src, refs.at[f])
			c.exprProblems(path, offset, []exprProblem{{line: line, col: col,
				msg: fmt.Sprintf("sensitive field %q (%s) must not be used in %s: it would leak", f, fld.Sensitive, use)}})
			leak = true
		}
	}
	return leak
}

// readsSensitive reports whether an expression reads a sensitive input field.
func (c *NodeContext) readsSensitive(refs exprRefs) bool {
	for _, f := range refs.fields {
		if fld := c.def.Input.Field(f); fld != nil && fld.Sensitive != "" {
			return true
		}
	}
	return false
}

// exprProblems reports problems found inside an expression, placing them
// inside the YAML scalar when it is written on one line (plain or quoted).
func (c *NodeContext) exprProblems(path string, offset int, probs []exprProblem) {
	n := lookup(c.node, path)
	for _, p := range probs {
		pos := c.PosOf(path)
		if n != nil && n.Kind == yaml.ScalarNode && n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) == 0 &&
			!strings.Contains(n.Value, "\n") && p.line == 1 {
			quote := 0
			if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
				quote = 1
			}
			pos.Col += quote + offset + p.col - 1
		}
		c.report(pos, p.msg)
	}
}

// Value compiles the YAML subtree at path: strings become templates for use,
// other scalars constants. It returns nil when path is absent.
func (c *NodeContext) Value(path string, use Use) *Value {
	n := lookup(c.node, path)
	if n == nil {
		return nil
	}
	return c.value(path, n, use)
}

// ValueOf compiles a YAML subtree the caller already holds (a mapping value
// whose key contains dots, say); path only places problems.
func (c *NodeContext) ValueOf(path string, n *yaml.Node, use Use) *Value {
	return c.value(path, n, use)
}

func (c *NodeContext) value(path string, n *yaml.Node, use Use) *Value {
	switch n.Kind {
	case yaml.AliasNode:
		return c.value(path, n.Alias, use)
	case yaml.MappingNode:
		v := &Value{kind: valueMap}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			v.keys = append(v.keys, k)
			v.vals = append(v.vals, c.value(join(path, k), n.Content[i+1], use))
		}
		return v
	case yaml.SequenceNode:
		v := &Value{kind: valueList}
		for i, it := range n.Content {
			v.items = append(v.items, c.value(fmt.Sprintf("%s[%d]", path, i), it, use))
		}
		return v
	}
	switch n.ShortTag() {
	case "!!str":
		if strings.Contains(n.Value, "{{") {
			t := c.Template(path, n.Value, use)
			if t == nil {
				return &Value{}
			}
			return &Value{kind: valueTemplate, tmpl: t}
		}
		return &Value{constant: n.Value}
	case "!!int", "!!float":
		return &Value{constant: json.Number(n.Value)}
	case "!!bool":
		b, _ := strconv.ParseBool(n.Value)
		return &Value{constant: b}
	case "!!null":
		return &Value{}
	}
	return &Value{constant: n.Value}
}

// Duration parses a Go duration ("30s", "1m30s", "72h") at path; it must be
// positive.
func (c *NodeContext) Duration(path, s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		c.Errorf(path, "bad duration %q: want a positive duration such as 30s, 5m or 72h", s)
		return 0
	}
	return d
}

// Edge returns an edge for outcome to the node named at path. Whether the
// target exists is checked by the loader once every node is known.
func (c *NodeContext) Edge(outcome, path, to string) Edge {
	return Edge{Outcome: outcome, To: to, Pos: c.PosOf(path)}
}

// Secret reports a problem at path unless name is a declared secret.
func (c *NodeContext) Secret(path, name string) {
	if !c.secrets[name] {
		c.Errorf(path, "unknown secret %q: declare it under secrets", name)
	}
}

// Field reports whether name is an input field or written by some node.
func (c *NodeContext) Field(name string) bool { return c.fields[name] }

// Input is the flow's input schema.
func (c *NodeContext) Input() *Schema { return c.def.Input }

// NodeNames lists every node of the flow, in file order.
func (c *NodeContext) NodeNames() []string {
	names := make([]string, 0, len(c.def.Nodes))
	for _, n := range c.def.Nodes {
		names = append(names, n.Name)
	}
	return names
}

// join appends a key to a path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var pathSegRE = regexp.MustCompile(`^([^.\[]*)((?:\[\d+\])*)$`)

// lookup finds the node at a dotted path with [i] indexes, or nil.
func lookup(n *yaml.Node, path string) *yaml.Node {
	if path == "" {
		return n
	}
	for seg := range strings.SplitSeq(path, ".") {
		m := pathSegRE.FindStringSubmatch(seg)
		if m == nil {
			return nil
		}
		if m[1] != "" {
			n = mapValue(n, m[1])
			if n == nil {
				return nil
			}
		}
		for idx := range strings.SplitSeq(strings.Trim(m[2], "[]"), "][") {
			if idx == "" {
				continue
			}
			i, _ := strconv.Atoi(idx)
			if n.Kind != yaml.SequenceNode || i >= len(n.Content) {
				return nil
			}
			n = n.Content[i]
		}
	}
	return n
}

// mapValue returns the value of key in a mapping node, or nil.
func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// mapKeys returns the key nodes of a mapping node, each key once: a
// duplicate is reported by the loader and ignored, as mapValue ignores it.
func mapKeys(n *yaml.Node) []*yaml.Node {
	var ks []*yaml.Node
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; !seen[k.Value] {
			seen[k.Value] = true
			ks = append(ks, k)
		}
	}
	return ks
}

// Schema compiles a field schema at path (the same language as a flow's
// input), or returns nil when path is absent.
func (c *NodeContext) Schema(path string) *Schema {
	n := lookup(c.node, path)
	if n == nil {
		return nil
	}
	ld := &load{file: c.file}
	s := &Schema{}
	ld.input(n, s, "schema")
	for _, p := range ld.probs {
		c.report(p.Pos, p.Msg)
	}
	return s
}

package processes

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/expr-lang/expr/builtin"
	"go.yaml.in/yaml/v4"
)

// Fields the engine writes into a task's data when it escalates, readable by
// every expression.
const (
	FieldErrCode        = "err_code"
	FieldErrDescription = "err_description"
	FieldFailedNode     = "failed_node"
)

// commonKeys are the node keys every kind shares; the loader reads them, the
// kind sees the rest.
var commonKeys = []string{"type", "title", "description", "alarm"}

var (
	processNameRE = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	nodeNameRE    = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	fieldNameRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Loader loads flow files with a set of node kinds.
type Loader struct {
	// Kinds are the node types flows may use.
	Kinds Kinds
}

// Load reads one flow. A bad flow gets Problems listing everything wrong.
func (l *Loader) Load(file string, src []byte) (*Definition, error) {
	ld := &load{Loader: l, file: file, src: src}
	def := ld.run()
	if len(ld.probs) > 0 {
		return nil, ld.probs.sort()
	}
	return def, nil
}

// LoadFiles loads several flows and also checks that no two share a process
// name. It returns the good definitions and every problem of every file.
func (l *Loader) LoadFiles(files []string) ([]*Definition, error) {
	var defs []*Definition
	var probs Problems
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			probs = append(probs, Problem{File: f, Pos: Pos{1, 1}, Msg: "cannot read file: " + err.Error()})
			continue
		}
		def, err := l.Load(f, src)
		probs = appendProblems(probs, err)
		if def != nil {
			defs = append(defs, def)
		}
	}
	return defs, joinProblems(defs, probs)
}

// LoadFS loads every *.yaml and *.yml file in dir of fsys, in name order, with
// the same checks as LoadFiles.
func (l *Loader) LoadFS(fsys fs.FS, dir string) ([]*Definition, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	var defs []*Definition
	var probs Problems
	for _, e := range entries {
		ext := path.Ext(e.Name())
		if e.IsDir() || (ext != ".yaml" && ext != ".yml") {
			continue
		}
		name := path.Join(dir, e.Name())
		src, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		def, err := l.Load(name, src)
		probs = appendProblems(probs, err)
		if def != nil {
			defs = append(defs, def)
		}
	}
	return defs, joinProblems(defs, probs)
}

func appendProblems(probs Problems, err error) Problems {
	var ps Problems
	if errors.As(err, &ps) {
		return append(probs, ps...)
	}
	return probs
}

// joinProblems adds a problem for each process name declared twice.
func joinProblems(defs []*Definition, probs Problems) error {
	first := map[string]*Definition{}
	for _, d := range defs {
		if f, ok := first[d.Name]; ok {
			probs = append(probs, Problem{File: d.File, Pos: d.namePos,
				Msg: fmt.Sprintf("process %q is already defined in %s", d.Name, f.File)})
			continue
		}
		first[d.Name] = d
	}
	if len(probs) > 0 {
		return probs.sort()
	}
	return nil
}

// load is the state of loading one file.
type load struct {
	*Loader
	file     string
	src      []byte
	probs    Problems
	declared map[string]bool // every node name, even of nodes too broken to compile
	faulty   map[string]bool // nodes whose kind reported a problem
}

func (ld *load) errorf(n *yaml.Node, format string, args ...any) {
	p := Pos{1, 1}
	if n != nil {
		p = Pos{Line: n.Line, Col: n.Column}
	}
	ld.probs = append(ld.probs, Problem{File: ld.file, Pos: p, Msg: fmt.Sprintf(format, args...)})
}

// rawNode is a node as read before its kind compiles it.
type rawNode struct {
	key, body *yaml.Node
	kind      Kind
	node      *Node
	ctx       *NodeContext
}

func (ld *load) run() *Definition {
	sum := sha256.Sum256(ld.src)
	def := &Definition{File: ld.file, Source: ld.src, Version: hex.EncodeToString(sum[:8]),
		Input: &Schema{}, byName: map[string]*Node{}}
	root := ld.parse()
	if root == nil {
		return nil
	}
	var startNode, nodesNode *yaml.Node
	for _, k := range mapKeys(root) {
		v := mapValue(root, k.Value)
		switch k.Value {
		case "process":
			def.Name = ld.scalar(v, "process")
			def.namePos = Pos{Line: v.Line, Col: v.Column}
			if def.Name != "" && !processNameRE.MatchString(def.Name) {
				ld.errorf(v, "process name %q must be lower-case letters, digits and dashes", def.Name)
			}
		case "title":
			def.Title = ld.scalar(v, "title")
		case "description":
			ld.scalar(v, "description")
		case "input":
			ld.input(v, def.Input, "input")
		case "secrets":
			def.Secrets = ld.secrets(v)
		case "start":
			startNode = v
			def.Start = ld.scalar(v, "start")
		case "nodes":
			nodesNode = v
		default:
			ld.errorf(k, "unknown key %q (want process, title, description, input, secrets, start, nodes)", k.Value)
		}
	}
	if def.Name == "" && mapValue(root, "process") == nil {
		ld.errorf(root, "missing process: every flow needs a name")
	}
	if startNode == nil {
		ld.errorf(root, "missing start: name the node tasks begin in")
	}
	if nodesNode == nil {
		ld.errorf(root, "missing nodes")
		return nil
	}
	raws := ld.nodes(nodesNode, def)
	ld.compile(def, raws)
	ld.checkGraph(def, startNode)
	def.events = buildEvents(def)
	return def
}

// parse reads the YAML and returns the top-level mapping.
func (ld *load) parse() *yaml.Node {
	var doc yaml.Node
	if err := yaml.Unmarshal(ld.src, &doc); err != nil {
		var le *yaml.LoadError
		if errors.As(err, &le) {
			pos, msg := ld.syntaxError(le)
			ld.probs = append(ld.probs, Problem{File: ld.file, Pos: pos, Msg: "YAML syntax: " + msg})
		} else {
			ld.probs = append(ld.probs, Problem{File: ld.file, Pos: Pos{1, 1}, Msg: "YAML syntax: " + err.Error()})
		}
		return nil
	}
	if len(doc.Content) == 0 {
		ld.errorf(nil, "empty file: want a flow with process, start and nodes")
		return nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		ld.errorf(root, "a flow must be a mapping with process, start and nodes")
		return nil
	}
	ld.duplicates(root)
	return root
}

// syntaxError places and explains a YAML syntax error: the parser's
// message, where the construct it was reading began, and the usual cause of
// the most puzzling one (a tab). An error found at the end of the file, such
// as a bracket never closed, is placed where the construct began.
func (ld *load) syntaxError(le *yaml.LoadError) (Pos, string) {
	pos := Pos{Line: max(le.Mark.Line, 1), Col: max(le.Mark.Column, 1)}
	lines := strings.Split(string(ld.src), "\n")
	if l := le.Mark.Line - 1; l >= 0 && l < len(lines) {
		line := []rune(lines[l])
		if c := le.Mark.Column - 1; c >= 0 && c < len(line) && line[c] == '\t' {
			return pos, "found a tab: indent YAML with spaces only"
		}
	}
	if le.ContextMsg == "" || le.ContextMark.Line < 1 || le.ContextMark.Line == le.Mark.Line {
		return pos, le.Message
	}
	content := strings.Split(strings.TrimRight(string(ld.src), " \t\r\n"), "\n")
	if le.Mark.Line > len(content) {
		start := Pos{Line: le.ContextMark.Line, Col: max(le.ContextMark.Column, 1)}
		if strings.Contains(le.Message, "end of stream") {
			return start, fmt.Sprintf("the file ends %s that starts here", le.ContextMsg)
		}
		return start, fmt.Sprintf("%s before the end of the file (%s that starts here)", le.Message, le.ContextMsg)
	}
	return pos, fmt.Sprintf("%s (%s that starts at line %d)", le.Message, le.ContextMsg, le.ContextMark.Line)
}

// duplicates reports every mapping key given twice in the same mapping. The
// YAML decoder would keep one silently; the loader reads the first.
func (ld *load) duplicates(n *yaml.Node) {
	if n.Kind == yaml.MappingNode {
		first := map[string]*yaml.Node{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode {
				continue
			}
			if f, ok := first[k.Value]; ok {
				ld.errorf(k, "duplicate key %q: first given at line %d", k.Value, f.Line)
				continue
			}
			first[k.Value] = k
		}
	}
	for _, c := range n.Content {
		ld.duplicates(c)
	}
}

func (ld *load) scalar(v *yaml.Node, what string) string {
	if v == nil || v.Kind != yaml.ScalarNode || v.ShortTag() == "!!null" {
		ld.errorf(v, "%s must be a string", what)
		return ""
	}
	return v.Value
}

func (ld *load) secrets(v *yaml.Node) []string {
	if v.Kind != yaml.SequenceNode {
		ld.errorf(v, "secrets must be a list of names")
		return nil
	}
	var out []string
	for _, s := range v.Content {
		name := ld.scalar(s, "a secret name")
		if name == "" {
			continue
		}
		if !fieldNameRE.MatchString(name) {
			ld.errorf(s, "secret name %q must be letters, digits and underscores", name)
		}
		if slices.Contains(out, name) {
			ld.errorf(s, "secret %q is listed twice", name)
		}
		out = append(out, name)
	}
	return out
}

var fieldTypes = []string{TypeString, TypeDecimal, TypeInteger, TypeBoolean, TypeObject, TypeArray}

// input reads a field schema (a flow's input, a callback's schema); what
// names it in messages.
func (ld *load) input(v *yaml.Node, s *Schema, what string) {
	if v.Kind != yaml.MappingNode {
		ld.errorf(v, "%s must be a mapping of field names to their schema", what)
		return
	}
	for _, k := range mapKeys(v) {
		fv := mapValue(v, k.Value)
		f := &Field{Name: k.Value, Pos: Pos{k.Line, k.Column}}
		if !fieldNameRE.MatchString(f.Name) {
			ld.errorf(k, "%s field name %q must be letters, digits and underscores", what, f.Name)
		}
		if what == "input" && isReserved(f.Name) {
			ld.errorf(k, "%s field name %q is reserved", what, f.Name)
		}
		if fv.Kind != yaml.MappingNode {
			ld.errorf(fv, "%s field %s: want a mapping such as {type: string}", what, f.Name)
			continue
		}
		probs, ok := decode(fv, f)
		for _, p := range probs {
			ld.probs = append(ld.probs, Problem{File: ld.file, Pos: p.Pos, Msg: what + " field " + f.Name + ": " + p.Msg})
		}
		if !ok {
			continue
		}
		switch {
		case f.Type == "":
			ld.errorf(k, "%s field %s: missing type (want one of %s)", what, f.Name, strings.Join(fieldTypes, ", "))
		case !slices.Contains(fieldTypes, f.Type):
			ld.errorf(mapValue(fv, "type"), "%s field %s: unknown type %q (want one of %s)", what, f.Name, f.Type, strings.Join(fieldTypes, ", "))
		}
		if f.Sensitive != "" && f.Sensitive != SensitivePAN && f.Sensitive != SensitiveSecret {
			ld.errorf(mapValue(fv, "sensitive"), "%s field %s: sensitive must be pan or secret", what, f.Name)
		}
		if f.Sensitive != "" && f.Type != TypeString {
			ld.errorf(mapValue(fv, "sensitive"), "%s field %s: only string fields can be sensitive", what, f.Name)
		}
		for key, bound := range map[string]string{"minimum": f.Minimum, "maximum": f.Maximum} {
			if bound == "" {
				continue
			}
			if f.Type != TypeDecimal && f.Type != TypeInteger {
				ld.errorf(mapValue(fv, key), "%s field %s: %s applies to decimal and integer fields only", what, f.Name, key)
			} else if !decimalRE.MatchString(bound) {
				ld.errorf(mapValue(fv, key), "%s field %s: %s must be a number such as 0 or 0.01", what, f.Name, key)
			}
		}
		if f.Pattern != "" {
			re, err := regexp.Compile(f.Pattern)
			if err != nil {
				ld.errorf(mapValue(fv, "pattern"), "%s field %s: bad pattern: %v", what, f.Name, err)
			}
			f.re = re
		}
		s.Fields = append(s.Fields, f)
	}
}

func isReserved(name string) bool {
	switch name {
	case RootTask, RootEnv, RootSecrets, RootHTTP, FieldErrCode, FieldErrDescription, FieldFailedNode:
		return true
	}
	// A field named like an expression function (count, len, now, ...) could
	// not be read: the function would shadow it.
	return slices.Contains(builtin.Names, name) || slices.Contains(exprFunctions, name)
}

// nodes reads the common keys of every node and finds its kind.
func (ld *load) nodes(v *yaml.Node, def *Definition) []*rawNode {
	if v.Kind != yaml.MappingNode {
		ld.errorf(v, "nodes must be a mapping of node names to nodes")
		return nil
	}
	var raws []*rawNode
	ld.declared = map[string]bool{}
	for _, k := range mapKeys(v) {
		ld.declared[k.Value] = true
		body := mapValue(v, k.Value)
		switch {
		case !nodeNameRE.MatchString(k.Value):
			ld.errorf(k, "node name %q must start with a lower-case letter and hold only lower-case letters, digits and underscores", k.Value)
		case k.Value == "state" || k.Value == "event":
			// looplab/fsm gives these names a meaning of their own.
			ld.errorf(k, "node name %q is reserved", k.Value)
		}
		if body.Kind != yaml.MappingNode {
			ld.errorf(body, "node %s must be a mapping with a type", k.Value)
			continue
		}
		n := &Node{Name: k.Value, Pos: Pos{k.Line, k.Column}}
		typ := mapValue(body, "type")
		if typ == nil {
			ld.errorf(k, "node %s: missing type (want one of %s)", n.Name, ld.kindNames())
			continue
		}
		n.Kind = typ.Value
		kind, ok := ld.Kinds[n.Kind]
		if !ok {
			ld.errorf(typ, "node %s: unknown node type %q (want one of %s)", n.Name, n.Kind, ld.kindNames())
			continue
		}
		if t := mapValue(body, "title"); t != nil {
			n.Title = ld.scalar(t, "node "+n.Name+": title")
		}
		if d := mapValue(body, "description"); d != nil {
			n.Description = ld.scalar(d, "node "+n.Name+": description")
		}
		if a := mapValue(body, "alarm"); a != nil {
			n.Alarm = &Alarm{}
			probs, ok := decode(a, n.Alarm)
			for _, p := range probs {
				ld.probs = append(ld.probs, Problem{File: ld.file, Pos: p.Pos, Msg: "node " + n.Name + ": alarm: " + p.Msg})
			}
			if ok && n.Alarm.Threshold < 1 {
				ld.errorf(a, "node %s: alarm threshold must be at least 1", n.Name)
			}
		}
		def.Nodes = append(def.Nodes, n)
		def.byName[n.Name] = n
		raws = append(raws, &rawNode{key: k, body: body, kind: kind, node: n})
	}
	return raws
}

func (ld *load) kindNames() string {
	names := make([]string, 0, len(ld.Kinds))
	for k := range ld.Kinds {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// compile runs each kind: first every node says what it writes, so that
// expressions anywhere may read it, then each compiles.
func (ld *load) compile(def *Definition, raws []*rawNode) {
	fields := map[string]bool{FieldErrCode: true, FieldErrDescription: true, FieldFailedNode: true}
	for _, f := range def.Input.Fields {
		fields[f.Name] = true
	}
	secrets := map[string]bool{}
	for _, s := range def.Secrets {
		secrets[s] = true
	}
	for _, r := range raws {
		r.ctx = &NodeContext{Name: r.node.Name, Type: r.node.Kind, file: ld.file, at: r.node.Pos, node: stripCommon(r.body),
			def: def, fields: fields, secrets: secrets, probs: &ld.probs, envRefs: &def.EnvRefs}
		for _, w := range r.kind.Writes(r.ctx) {
			if isReserved(w) {
				r.ctx.report(writePos(r.ctx, w), fmt.Sprintf("cannot write %q: the name is reserved", w))
				continue
			}
			if f := def.Input.Field(w); f != nil && f.Sensitive != "" {
				r.ctx.report(writePos(r.ctx, w), fmt.Sprintf("cannot write sensitive input field %q", w))
			}
			fields[w] = true
		}
	}
	ld.faulty = map[string]bool{}
	for _, r := range raws {
		before := len(ld.probs)
		r.node.Spec = r.kind.Compile(r.ctx)
		ld.faulty[r.node.Name] = len(ld.probs) > before
		r.node.Sensitive = r.ctx.sensitive
	}
	sort.Strings(def.EnvRefs)
}

// writePos finds where a node names the field w it writes: a save_as value,
// or a key one level down (a set node's field paths); else the node's name.
func writePos(c *NodeContext, w string) Pos {
	names := func(s string) bool { return s == w || strings.HasPrefix(s, w+".") }
	if v := mapValue(c.node, "save_as"); v != nil && names(v.Value) {
		return Pos{Line: v.Line, Col: v.Column}
	}
	for i := 1; i < len(c.node.Content); i += 2 {
		m := c.node.Content[i]
		if m.Kind != yaml.MappingNode {
			continue
		}
		for j := 0; j+1 < len(m.Content); j += 2 {
			if k := m.Content[j]; names(k.Value) {
				return Pos{Line: k.Line, Col: k.Column}
			}
		}
	}
	return c.PosOf("")
}

// stripCommon returns a copy of a node's mapping without the common keys.
func stripCommon(body *yaml.Node) *yaml.Node {
	c := *body
	c.Content = nil
	for i := 0; i+1 < len(body.Content); i += 2 {
		if slices.Contains(commonKeys, body.Content[i].Value) {
			continue
		}
		c.Content = append(c.Content, body.Content[i], body.Content[i+1])
	}
	return &c
}

// checkGraph checks the start node, every edge's target, and that every node
// can be reached from the start.
func (ld *load) checkGraph(def *Definition, startNode *yaml.Node) {
	if def.Start != "" && !ld.declared[def.Start] {
		ld.errorf(startNode, "start node %q does not exist", def.Start)
		return
	}
	for _, n := range def.Nodes {
		if n.Spec == nil {
			continue
		}
		outcomes := map[string]bool{}
		for _, e := range n.Spec.Edges() {
			if outcomes[e.Outcome] && !ld.faulty[n.Name] {
				// The FSM could take only one of them. (A kind that found a
				// problem has most likely said so better.)
				ld.probs = append(ld.probs, Problem{File: ld.file, Pos: e.Pos,
					Msg: fmt.Sprintf("node %s: outcome %s is given twice", n.Name, e.Outcome)})
			}
			outcomes[e.Outcome] = true
			if e.To != "" && !ld.declared[e.To] {
				ld.probs = append(ld.probs, Problem{File: ld.file, Pos: e.Pos,
					Msg: fmt.Sprintf("node %s: outcome %s leads to node %q, which does not exist", n.Name, e.Outcome, e.To)})
			}
		}
	}
	if def.Start == "" {
		return
	}
	seen := map[string]bool{def.Start: true}
	queue := []string{def.Start}
	for len(queue) > 0 {
		n := def.byName[queue[0]]
		queue = queue[1:]
		if n == nil || n.Spec == nil {
			continue
		}
		for _, e := range n.Spec.Edges() {
			if !seen[e.To] && def.byName[e.To] != nil {
				seen[e.To] = true
				queue = append(queue, e.To)
			}
		}
	}
	for _, n := range def.Nodes {
		// Escalation nodes need no edge: the engine parks tasks there on its own
		// errors (loop guard, run-time expression errors).
		if !seen[n.Name] && n.Spec != nil && n.Kind != "escalation" && !ld.unresolved(def) {
			ld.probs = append(ld.probs, Problem{File: ld.file, Pos: n.Pos,
				Msg: fmt.Sprintf("node %s cannot be reached from start node %s", n.Name, def.Start)})
		}
	}
}

// unresolved reports whether some node has no kind or failed to compile, in
// which case reachability would report noise.
func (ld *load) unresolved(def *Definition) bool {
	if len(def.Nodes) < len(ld.declared) {
		return true
	}
	for _, n := range def.Nodes {
		if n.Spec == nil {
			return true
		}
	}
	return false
}

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
			probs = append(probs, Problem{File: d.File, Pos: Pos{1, 1},
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
	file  string
	src   []byte
	probs Problems
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
			if def.Name != "" && !processNameRE.MatchString(def.Name) {
				ld.errorf(v, "process name %q must be lower-case letters, digits and dashes", def.Name)
			}
		case "title":
			def.Title = ld.scalar(v, "title")
		case "description":
			ld.scalar(v, "description")
		case "input":
			ld.input(v, def.Input)
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
			ld.probs = append(ld.probs, Problem{File: ld.file, Pos: Pos{Line: max(le.Mark.Line, 1), Col: max(le.Mark.Column, 1)},
				Msg: "YAML syntax: " + le.Message})
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
	return root
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

func (ld *load) input(v *yaml.Node, s *Schema) {
	if v.Kind != yaml.MappingNode {
		ld.errorf(v, "input must be a mapping of field names to their schema")
		return
	}
	for _, k := range mapKeys(v) {
		fv := mapValue(v, k.Value)
		f := &Field{Name: k.Value, Pos: Pos{k.Line, k.Column}}
		if !fieldNameRE.MatchString(f.Name) {
			ld.errorf(k, "input field name %q must be letters, digits and underscores", f.Name)
		}
		if isReserved(f.Name) {
			ld.errorf(k, "input field name %q is reserved", f.Name)
		}
		if err := fv.Load(f, yaml.WithKnownFields()); err != nil {
			ld.yamlErrors(err, fv, "input field "+f.Name)
			continue
		}
		switch {
		case f.Type == "":
			ld.errorf(fv, "input field %s: missing type (want one of %s)", f.Name, strings.Join(fieldTypes, ", "))
		case !slices.Contains(fieldTypes, f.Type):
			ld.errorf(mapValue(fv, "type"), "input field %s: unknown type %q (want one of %s)", f.Name, f.Type, strings.Join(fieldTypes, ", "))
		}
		if f.Sensitive != "" && f.Sensitive != SensitivePAN && f.Sensitive != SensitiveSecret {
			ld.errorf(mapValue(fv, "sensitive"), "input field %s: sensitive must be pan or secret", f.Name)
		}
		if f.Sensitive != "" && f.Type != TypeString {
			ld.errorf(mapValue(fv, "sensitive"), "input field %s: only string fields can be sensitive", f.Name)
		}
		if f.Pattern != "" {
			re, err := regexp.Compile(f.Pattern)
			if err != nil {
				ld.errorf(mapValue(fv, "pattern"), "input field %s: bad pattern: %v", f.Name, err)
			}
			f.re = re
		}
		s.Fields = append(s.Fields, f)
	}
}

// yamlErrors reports decode errors at their marks.
func (ld *load) yamlErrors(err error, at *yaml.Node, what string) {
	var les *yaml.LoadErrors
	if errors.As(err, &les) {
		for _, le := range les.Errors {
			ld.probs = append(ld.probs, Problem{File: ld.file, Pos: Pos{le.Mark.Line, le.Mark.Column}, Msg: what + ": " + cleanYAMLMsg(le.Message)})
		}
		return
	}
	ld.errorf(at, "%s: %v", what, err)
}

func isReserved(name string) bool {
	switch name {
	case RootTask, RootEnv, RootSecrets, RootHTTP, FieldErrCode, FieldErrDescription, FieldFailedNode:
		return true
	}
	return false
}

// nodes reads the common keys of every node and finds its kind.
func (ld *load) nodes(v *yaml.Node, def *Definition) []*rawNode {
	if v.Kind != yaml.MappingNode {
		ld.errorf(v, "nodes must be a mapping of node names to nodes")
		return nil
	}
	var raws []*rawNode
	for _, k := range mapKeys(v) {
		body := mapValue(v, k.Value)
		if !nodeNameRE.MatchString(k.Value) || k.Value == "state" || k.Value == "event" {
			ld.errorf(k, "node name %q must start with a letter and hold only lower-case letters, digits and underscores (and not be \"state\" or \"event\")", k.Value)
		}
		if body.Kind != yaml.MappingNode {
			ld.errorf(body, "node %s must be a mapping with a type", k.Value)
			continue
		}
		n := &Node{Name: k.Value, Pos: Pos{k.Line, k.Column}}
		typ := mapValue(body, "type")
		if typ == nil {
			ld.errorf(body, "node %s: missing type (want one of %s)", n.Name, ld.kindNames())
			continue
		}
		n.Kind = typ.Value
		kind, ok := ld.Kinds[n.Kind]
		if !ok {
			ld.errorf(typ, "node %s: unknown node type %q (want one of %s)", n.Name, n.Kind, ld.kindNames())
			continue
		}
		if t := mapValue(body, "title"); t != nil {
			n.Title = t.Value
		}
		if d := mapValue(body, "description"); d != nil {
			n.Description = d.Value
		}
		if a := mapValue(body, "alarm"); a != nil {
			n.Alarm = &Alarm{}
			if err := a.Load(n.Alarm, yaml.WithKnownFields()); err != nil {
				ld.yamlErrors(err, a, "node "+n.Name+": alarm")
			} else if n.Alarm.Threshold < 1 {
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
		r.ctx = &NodeContext{Name: r.node.Name, Type: r.node.Kind, file: ld.file, node: stripCommon(r.body),
			def: def, fields: fields, secrets: secrets, probs: &ld.probs, envRefs: &def.EnvRefs}
		for _, w := range r.kind.Writes(r.ctx) {
			if isReserved(w) {
				r.ctx.Errorf("", "cannot write %q: the name is reserved", w)
				continue
			}
			if f := def.Input.Field(w); f != nil && f.Sensitive != "" {
				r.ctx.Errorf("", "cannot write sensitive input field %q", w)
			}
			fields[w] = true
		}
	}
	for _, r := range raws {
		r.node.Spec = r.kind.Compile(r.ctx)
		r.node.Sensitive = r.ctx.sensitive
	}
	sort.Strings(def.EnvRefs)
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
	if def.Start != "" && def.byName[def.Start] == nil {
		ld.errorf(startNode, "start node %q does not exist", def.Start)
		return
	}
	for _, n := range def.Nodes {
		if n.Spec == nil {
			continue
		}
		for _, e := range n.Spec.Edges() {
			if e.To != "" && def.byName[e.To] == nil {
				ld.probs = append(ld.probs, Problem{File: ld.file, Pos: e.Pos,
					Msg: fmt.Sprintf("node %s: %s leads to node %q, which does not exist", n.Name, e.Outcome, e.To)})
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
		if !seen[n.Name] && n.Spec != nil && !hasUnresolved(def) {
			ld.probs = append(ld.probs, Problem{File: ld.file, Pos: n.Pos,
				Msg: fmt.Sprintf("node %s cannot be reached from start node %s", n.Name, def.Start)})
		}
	}
}

// hasUnresolved reports whether some node failed to compile, in which case
// reachability would report noise.
func hasUnresolved(def *Definition) bool {
	for _, n := range def.Nodes {
		if n.Spec == nil {
			return true
		}
	}
	return false
}

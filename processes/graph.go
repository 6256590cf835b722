package processes

import (
	"fmt"
	"strings"
)

// Graph formats.
const (
	FormatMermaid = "mermaid"
	FormatDOT     = "dot"
)

// Graph renders the definition as a Mermaid flowchart or a Graphviz DOT graph:
// node kinds have distinct shapes and colours, edges carry their outcome.
// The output is deterministic (file order).
func (d *Definition) Graph(format string) (string, error) {
	switch format {
	case FormatMermaid, "":
		return d.mermaid(), nil
	case FormatDOT:
		return d.dot(), nil
	}
	return "", fmt.Errorf("unknown graph format %q (want mermaid or dot)", format)
}

// mermaidShape wraps a label in the shape of a node kind.
func mermaidShape(n *Node, label string) string {
	switch n.Kind {
	case "api":
		return "[/" + label + "/]"
	case "callback":
		return "([" + label + "])"
	case "condition":
		return "{" + label + "}"
	case "delay":
		return "[(" + label + ")]"
	case "escalation":
		return "{{" + label + "}}"
	case "final":
		return "(((" + label + ")))"
	}
	return "[" + label + "]"
}

func (d *Definition) mermaid() string {
	var b strings.Builder
	fmt.Fprintf(&b, "flowchart TD\n")
	fmt.Fprintf(&b, "  %s((start)) --> %s\n", startID, mermaidID(d.Start))
	for _, n := range d.Nodes {
		label := fmt.Sprintf("\"%s<br/><small>%s</small>\"", mermaidEscape(n.Name), n.Kind)
		fmt.Fprintf(&b, "  %s%s\n", mermaidID(n.Name), mermaidShape(n, label))
	}
	for _, n := range d.Nodes {
		if n.Spec == nil {
			continue
		}
		for _, e := range n.Spec.Edges() {
			fmt.Fprintf(&b, "  %s -->|%s| %s\n", mermaidID(n.Name), mermaidEscape(e.Outcome), mermaidID(e.To))
		}
	}
	for _, n := range d.Nodes {
		fmt.Fprintf(&b, "  class %s %s\n", mermaidID(n.Name), kindClass(n))
	}
	b.WriteString("  classDef api fill:#e3f2fd,stroke:#1565c0\n")
	b.WriteString("  classDef callback fill:#fff8e1,stroke:#f9a825\n")
	b.WriteString("  classDef condition fill:#f3e5f5,stroke:#6a1b9a\n")
	b.WriteString("  classDef set fill:#eceff1,stroke:#455a64\n")
	b.WriteString("  classDef delay fill:#e0f7fa,stroke:#00838f\n")
	b.WriteString("  classDef escalation fill:#ffebee,stroke:#c62828,stroke-width:3px\n")
	b.WriteString("  classDef success fill:#e8f5e9,stroke:#2e7d32\n")
	b.WriteString("  classDef error fill:#fbe9e7,stroke:#d84315\n")
	return b.String()
}

// kindClass is the style class of a node; finals are styled by result.
func kindClass(n *Node) string {
	if r, ok := n.Spec.(interface{ Result() string }); ok && n.Kind == "final" {
		return r.Result()
	}
	return n.Kind
}

// startID names the start marker in both formats. Node names are lower-case,
// so it can never be a node's (a node may well be called start).
const startID = "START"

// mermaidID is a node's id in Mermaid: its name, except that Mermaid reads a
// lower-case "end" as the end of a block, so that one is capitalised.
func mermaidID(name string) string {
	if name == "end" {
		return "End"
	}
	return name
}

// mermaidEscapes are the characters a Mermaid label cannot hold as they are.
var mermaidEscapes = strings.NewReplacer(`"`, "#quot;", "|", "#124;")

func mermaidEscape(s string) string {
	return mermaidEscapes.Replace(s)
}

var dotStyle = map[string]string{
	"api":        `shape=box, style="rounded,filled", fillcolor="#e3f2fd"`,
	"callback":   `shape=box, style="filled,dashed", fillcolor="#fff8e1"`,
	"condition":  `shape=diamond, style=filled, fillcolor="#f3e5f5"`,
	"set":        `shape=box, style=filled, fillcolor="#eceff1"`,
	"delay":      `shape=cylinder, style=filled, fillcolor="#e0f7fa"`,
	"escalation": `shape=octagon, style=filled, fillcolor="#ffebee", penwidth=3`,
	"success":    `shape=doublecircle, style=filled, fillcolor="#e8f5e9"`,
	"error":      `shape=doublecircle, style=filled, fillcolor="#fbe9e7"`,
}

func (d *Definition) dot() string {
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %q {\n  rankdir=TB;\n  node [fontname=\"Helvetica\"];\n", d.Name)
	fmt.Fprintf(&b, "  %q [shape=point];\n  %q -> %q;\n", startID, startID, d.Start)
	for _, n := range d.Nodes {
		fmt.Fprintf(&b, "  %q [label=\"%s\\n(%s)\", %s];\n", n.Name, n.Name, n.Kind, dotStyle[kindClass(n)])
	}
	for _, n := range d.Nodes {
		if n.Spec == nil {
			continue
		}
		for _, e := range n.Spec.Edges() {
			fmt.Fprintf(&b, "  %q -> %q [label=%q];\n", n.Name, e.To, e.Outcome)
		}
	}
	b.WriteString("}\n")
	return b.String()
}

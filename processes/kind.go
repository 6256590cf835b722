package processes

// Kind is one node type of the language. It declares what the node writes into
// a task's data (so expressions elsewhere may read it) and compiles the node's
// configuration. Package nodes provides the standard kinds.
type Kind interface {
	// Writes returns the top-level data fields the node writes, read from its
	// raw configuration before anything is compiled. Problems are reported when
	// the node is compiled, not here.
	Writes(c *NodeContext) []string
	// Compile checks the node's configuration, reporting problems through c,
	// and returns the compiled behaviour. It may return nil when the
	// configuration is too broken to compile; c then holds the problems.
	Compile(c *NodeContext) Spec
}

// Kinds maps a node type name to its kind.
type Kinds map[string]Kind

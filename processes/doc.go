// Package processes is Conveyor's process language: it reads flow files
// (YAML), checks them, and compiles each into a Definition that the engine
// runs.
//
// A flow names its nodes, what each does, and where a task goes on each
// outcome. Loading reports every problem at once as file:line:col: message —
// YAML syntax, unknown keys and node types, edges to missing nodes,
// unreachable nodes, waiting nodes without a timeout, expressions that do not
// compile or use undeclared fields, and sensitive fields used where they would
// leak. The node kinds themselves (their configuration and behaviour) live in
// package nodes and are handed to the loader as Kinds, so this package knows
// the shape of a flow and nothing of what an HTTP call is.
//
// Conditions and templates share one expression language,
// github.com/expr-lang/expr, compiled and checked once at load time. Each
// definition also compiles into a github.com/looplab/fsm event table (states
// are nodes, events are outcomes), built once per version and shared.
//
// A version is identified by the hash of the file's content, so a changed file
// is a new version while running tasks keep the one they started on.
package processes

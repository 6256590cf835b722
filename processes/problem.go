package processes

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Pos is a position in a flow file; Line and Col count from 1, 0 means unknown.
type Pos struct {
	Line int `json:"line"`
	Col  int `json:"col"`
}

// Problem is one thing wrong with a flow, at a place in its file.
type Problem struct {
	File string
	Pos  Pos
	Msg  string
}

// String formats the problem as file:line:col: message, the form editors and
// compilers use.
func (p Problem) String() string {
	return fmt.Sprintf("%s:%d:%d: %s", p.File, p.Pos.Line, p.Pos.Col, p.Msg)
}

// Problems is the error a bad flow gets: every problem found, in file order.
type Problems []Problem

// Error prints one problem per line.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// sort orders problems by file, line, column and message, and drops exact
// duplicates (the same mistake reached by two checks).
func (ps Problems) sort() Problems {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Pos.Line, b.Pos.Line),
			cmp.Compare(a.Pos.Col, b.Pos.Col), cmp.Compare(a.Msg, b.Msg))
	})
	return slices.Compact(ps)
}

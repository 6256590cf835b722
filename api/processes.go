package api

import (
	"context"
	"net/http"

	conveyor "github.com/conveyor-dev/conveyor"
	"github.com/conveyor-dev/conveyor/nodes"
	"github.com/conveyor-dev/conveyor/processes"
	"github.com/conveyor-dev/conveyor/store"
)

// processView is a process definition as GET /api/v1/processes shows it.
type processView struct {
	Name    string      `json:"name"`
	Title   string      `json:"title,omitempty"`
	Version string      `json:"version"`
	Start   string      `json:"start"`
	Input   inputView   `json:"input"`
	Nodes   []*nodeView `json:"nodes"`
	// Graph is the flow as a Mermaid flowchart.
	Graph string `json:"graph"`
}

type inputView struct {
	Fields []*processes.Field `json:"fields"`
}

type nodeView struct {
	Name        string `json:"name"`
	Kind        string `json:"kind"`
	Title       string `json:"title,omitempty"`
	Description string `json:"description,omitempty"`
	// Result is success or error, for final nodes.
	Result string     `json:"result,omitempty"`
	Edges  []edgeView `json:"edges"`
	Counts countsView `json:"counts"`
}

type edgeView struct {
	Outcome string `json:"outcome"`
	To      string `json:"to"`
}

// countsView is how many tasks stand in a node now, by status, and for
// final nodes how many ever arrived (total survives purges).
type countsView struct {
	Now   map[store.Status]int64 `json:"now"`
	Total int64                  `json:"total"`
}

// processList is the answer of GET /api/v1/processes.
type processList struct {
	Processes []*processView `json:"processes"`
}

// processes answers every current process definition with its live counts.
func (s *server) processes(w http.ResponseWriter, r *http.Request) error {
	counts, err := s.counts(r.Context(), "")
	if err != nil {
		return err
	}
	out := processList{Processes: []*processView{}}
	for _, d := range s.eng.Definitions() {
		v, err := viewProcess(d, counts)
		if err != nil {
			return err
		}
		out.Processes = append(out.Processes, v)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// process answers one process definition with its live counts.
func (s *server) process(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("process")
	d, ok := s.eng.Definition(name)
	if !ok {
		return conveyor.Errorf(conveyor.ENotFound, "process %q does not exist", name)
	}
	counts, err := s.counts(r.Context(), name)
	if err != nil {
		return err
	}
	v, err := viewProcess(d, counts)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// counts reads the engine's node counters keyed by process and node.
func (s *server) counts(ctx context.Context, process string) (map[[2]string]store.NodeCount, error) {
	list, err := s.eng.Counts(ctx, process)
	if err != nil {
		return nil, err
	}
	m := make(map[[2]string]store.NodeCount, len(list))
	for _, c := range list {
		m[[2]string{c.Process, c.Node}] = c
	}
	return m, nil
}

func viewProcess(d *processes.Definition, counts map[[2]string]store.NodeCount) (*processView, error) {
	graph, err := d.Graph(processes.FormatMermaid)
	if err != nil {
		return nil, err
	}
	v := &processView{Name: d.Name, Title: d.Title, Version: d.Version, Start: d.Start, Graph: graph,
		Input: inputView{Fields: []*processes.Field{}}, Nodes: make([]*nodeView, 0, len(d.Nodes))}
	if d.Input != nil {
		v.Input.Fields = append(v.Input.Fields, d.Input.Fields...)
	}
	for _, n := range d.Nodes {
		nv := &nodeView{Name: n.Name, Kind: n.Kind, Title: n.Title, Description: n.Description,
			Edges: []edgeView{}, Counts: countsView{Now: map[store.Status]int64{}}}
		for _, e := range n.Spec.Edges() {
			nv.Edges = append(nv.Edges, edgeView{Outcome: e.Outcome, To: e.To})
		}
		if f, ok := n.Spec.(*nodes.Final); ok {
			nv.Result = f.Result()
		}
		if c, ok := counts[[2]string{d.Name, n.Name}]; ok {
			for st, k := range c.Now {
				if k != 0 {
					nv.Counts.Now[st] = k
				}
			}
			nv.Counts.Total = c.Total
		}
		v.Nodes = append(v.Nodes, nv)
	}
	return v, nil
}

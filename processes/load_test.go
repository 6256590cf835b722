package processes_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/conveyor-dev/conveyor/nodes"
	"github.com/conveyor-dev/conveyor/processes"
)

var update = flag.Bool("update", false, "rewrite golden files with the current output")

// root is the repository root, relative to this package; golden files name
// flows by their path from there, as `conveyor validate` run at the root does.
const root = ".."

func newLoader() *processes.Loader { return &processes.Loader{Kinds: nodes.Kinds()} }

// loadFile loads one flow by its path from the repository root.
func loadFile(t *testing.T, name string) (*processes.Definition, error) {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(root, name))
	if err != nil {
		t.Fatal(err)
	}
	return newLoader().Load(name, src)
}

// mustLoad loads a flow that must have no problems.
func mustLoad(t *testing.T, name string) *processes.Definition {
	t.Helper()
	def, err := loadFile(t, name)
	if err != nil {
		t.Fatalf("Load(%s) problems:\n%v", name, err)
	}
	return def
}

// loadSource loads a flow written in a test.
func loadSource(t *testing.T, src string) (*processes.Definition, error) {
	t.Helper()
	return newLoader().Load("test.yaml", []byte(src))
}

// problemsOf returns err as Problems, failing the test for any other error.
func problemsOf(t *testing.T, err error) processes.Problems {
	t.Helper()
	if err == nil {
		return nil
	}
	var ps processes.Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error is %T (%v), want processes.Problems", err, err)
	}
	return ps
}

// TestLoader_Load_broken loads every flow in testdata/flows/broken and
// compares its problems with the golden file beside it. A case is a file
// (case.yaml) or a directory of files loaded together (case/), for checks
// across files. Run with -update to rewrite the goldens, then read them: each
// line:col must point at the offending token.
func TestLoader_Load_broken(t *testing.T) {
	t.Parallel()
	dir := "testdata/flows/broken"
	entries, err := os.ReadDir(filepath.Join(root, dir))
	if err != nil {
		t.Fatal(err)
	}
	cases := 0
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() && filepath.Ext(name) != ".yaml" {
			continue
		}
		cases++
		tc := strings.TrimSuffix(name, ".yaml")
		t.Run(tc, func(t *testing.T) {
			t.Parallel()
			var err error
			if e.IsDir() {
				_, err = newLoader().LoadFS(os.DirFS(root), dir+"/"+name)
			} else {
				_, err = loadFile(t, dir+"/"+name)
			}
			if err == nil {
				t.Fatalf("%s loaded without problems; a broken flow must not", name)
			}
			probs := problemsOf(t, err)
			var got strings.Builder
			for _, p := range probs {
				if p.Pos.Line < 1 || p.Pos.Col < 1 {
					t.Errorf("problem without a position: %v", p)
				}
				got.WriteString(p.String() + "\n")
			}
			golden := filepath.Join(root, dir, tc+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestLoader_Load_broken -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), got.String()); diff != "" {
				t.Errorf("problems differ from %s (-want +got):\n%s", golden, diff)
			}
		})
	}
	if cases < 30 {
		t.Errorf("found %d broken flows in %s, want the whole library", cases, dir)
	}
}

// TestLoader_Load_good loads every good flow and the shipped ones: none may
// have a problem.
func TestLoader_Load_good(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob(filepath.Join(root, "testdata/flows/good/*.yaml"))
	shipped, _ := filepath.Glob(filepath.Join(root, "processes/flows/*.yaml"))
	files = append(files, shipped...)
	if len(files) < 4 {
		t.Fatalf("found %d good flows, want the good library and the shipped flows", len(files))
	}
	for _, f := range files {
		name, _ := filepath.Rel(root, f)
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			def := mustLoad(t, filepath.ToSlash(name))
			if def.Name == "" || def.Start == "" || len(def.Nodes) == 0 {
				t.Errorf("definition lacks name, start or nodes: %+v", def)
			}
			for _, n := range def.Nodes {
				if n.Spec == nil {
					t.Errorf("node %s has no compiled spec", n.Name)
				}
			}
		})
	}
}

// TestLoader_Load_everyKind checks that the good library uses every node
// kind, so a kind cannot lose its coverage silently.
func TestLoader_Load_everyKind(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob(filepath.Join(root, "testdata/flows/good/*.yaml"))
	used := map[string]bool{}
	for _, f := range files {
		name, _ := filepath.Rel(root, f)
		for _, n := range mustLoad(t, filepath.ToSlash(name)).Nodes {
			used[n.Kind] = true
		}
	}
	for kind := range nodes.Kinds() {
		if !used[kind] {
			t.Errorf("no good flow uses node kind %s", kind)
		}
	}
}

func TestLoader_Load_definition(t *testing.T) {
	t.Parallel()
	def := mustLoad(t, "processes/flows/liqpay-hold.yaml")
	src, err := os.ReadFile(filepath.Join(root, "processes/flows/liqpay-hold.yaml"))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("header", func(t *testing.T) {
		t.Parallel()
		if def.Name != "liqpay-hold" || def.Start != "calling_api" || def.Title != "Blocking funds on customer's card" {
			t.Errorf("name, start, title = %q, %q, %q", def.Name, def.Start, def.Title)
		}
		if diff := cmp.Diff([]string{"liqpay_public_key", "liqpay_private_key"}, def.Secrets); diff != "" {
			t.Errorf("Secrets (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"LIQPAY_URL"}, def.EnvRefs); diff != "" {
			t.Errorf("EnvRefs (-want +got):\n%s", diff)
		}
		if string(def.Source) != string(src) {
			t.Error("Source is not the file's content")
		}
	})
	t.Run("nodes in file order with kinds and positions", func(t *testing.T) {
		t.Parallel()
		lines := strings.Split(string(src), "\n")
		// lineOf finds where a node's name is written in the file.
		lineOf := func(name string) int {
			for i, l := range lines {
				if strings.HasPrefix(l, "  "+name+":") {
					return i + 1
				}
			}
			return 0
		}
		type node struct {
			Name, Kind string
			Pos        processes.Pos
		}
		var got, want []node
		for _, n := range def.Nodes {
			got = append(got, node{n.Name, n.Kind, n.Pos})
			if def.Node(n.Name) != n {
				t.Errorf("Node(%q) is not the node in Nodes", n.Name)
			}
		}
		for _, n := range []struct{ name, kind string }{
			{"calling_api", "api"}, {"receive_callback", "callback"}, {"check_status", "condition"},
			{"escalation", "escalation"}, {"held", "final"}, {"otp_verify", "final"}, {"failed", "final"},
		} {
			want = append(want, node{n.name, n.kind, processes.Pos{Line: lineOf(n.name), Col: 3}})
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("nodes (-want +got):\n%s", diff)
		}
		if def.Node("nowhere") != nil {
			t.Error("Node of an unknown name is not nil")
		}
	})
	t.Run("sensitive fields read by each node", func(t *testing.T) {
		t.Parallel()
		if diff := cmp.Diff([]string{"card", "card_cvv"}, def.Node("calling_api").Sensitive); diff != "" {
			t.Errorf("calling_api.Sensitive (-want +got):\n%s", diff)
		}
		if s := def.Node("check_status").Sensitive; len(s) != 0 {
			t.Errorf("check_status.Sensitive = %v, want none", s)
		}
		var names []string
		for _, f := range def.Input.Sensitive() {
			names = append(names, f.Name+":"+f.Sensitive)
		}
		if diff := cmp.Diff([]string{"card:pan", "card_cvv:secret"}, names); diff != "" {
			t.Errorf("Input.Sensitive (-want +got):\n%s", diff)
		}
	})
	t.Run("classes", func(t *testing.T) {
		t.Parallel()
		want := map[string]processes.Class{
			"calling_api": processes.Call, "receive_callback": processes.Wait, "check_status": processes.Instant,
			"escalation": processes.Park, "held": processes.Final,
		}
		for name, class := range want {
			if got := def.Node(name).Spec.Class(); got != class {
				t.Errorf("%s class = %v, want %v", name, got, class)
			}
		}
	})
	t.Run("timeouts", func(t *testing.T) {
		t.Parallel()
		for name, want := range map[string]string{"receive_callback": "3m0s", "escalation": "72h0m0s"} {
			timed, ok := def.Node(name).Spec.(processes.Timed)
			if !ok {
				t.Fatalf("%s is not Timed", name)
			}
			if got := timed.Timeout().String(); got != want {
				t.Errorf("%s timeout = %s, want %s", name, got, want)
			}
		}
	})
}

// TestLoader_Load_version checks that a version is the content hash: the same
// bytes give the same version, any change a new one.
func TestLoader_Load_version(t *testing.T) {
	t.Parallel()
	src := "process: v\nstart: done\nnodes:\n  done: {type: final, result: success}\n"
	a, err := loadSource(t, src)
	if err != nil {
		t.Fatal(err)
	}
	b, err := loadSource(t, src)
	if err != nil {
		t.Fatal(err)
	}
	c, err := loadSource(t, src+"# a comment is a change\n")
	if err != nil {
		t.Fatal(err)
	}
	if a.Version != b.Version {
		t.Errorf("same source, versions %s and %s", a.Version, b.Version)
	}
	if a.Version == c.Version {
		t.Errorf("changed source kept version %s", a.Version)
	}
	if len(a.Version) != 16 || strings.Trim(a.Version, "0123456789abcdef") != "" {
		t.Errorf("version %q is not 16 hex digits", a.Version)
	}
}

func TestLoader_LoadFiles(t *testing.T) {
	t.Parallel()

	t.Run("good files load together", func(t *testing.T) {
		t.Parallel()
		files, _ := filepath.Glob(filepath.Join(root, "testdata/flows/good/*.yaml"))
		defs, err := newLoader().LoadFiles(files)
		if err != nil {
			t.Fatal(err)
		}
		if len(defs) != len(files) {
			t.Errorf("got %d definitions for %d files", len(defs), len(files))
		}
	})
	t.Run("duplicate process name across files", func(t *testing.T) {
		t.Parallel()
		a := filepath.Join(root, "testdata/flows/broken/duplicate-process/a.yaml")
		b := filepath.Join(root, "testdata/flows/broken/duplicate-process/b.yaml")
		defs, err := newLoader().LoadFiles([]string{a, b})
		probs := problemsOf(t, err)
		want := processes.Problems{{File: b, Pos: processes.Pos{Line: 2, Col: 10}, Msg: `process "payments" is already defined in ` + a}}
		if diff := cmp.Diff(want, probs); diff != "" {
			t.Errorf("problems (-want +got):\n%s", diff)
		}
		if len(defs) != 2 {
			t.Errorf("got %d definitions, want both files' (they are each good)", len(defs))
		}
	})
	t.Run("every problem of every file", func(t *testing.T) {
		t.Parallel()
		files := []string{
			filepath.Join(root, "testdata/flows/broken/missing-start.yaml"),
			filepath.Join(root, "testdata/flows/good/payout.yaml"),
			filepath.Join(root, "testdata/flows/broken/unreachable.yaml"),
			filepath.Join(root, "testdata/flows/does-not-exist.yaml"),
		}
		defs, err := newLoader().LoadFiles(files)
		probs := problemsOf(t, err)
		var got []string
		for _, p := range probs {
			got = append(got, filepath.Base(p.File)+":"+p.Msg[:min(len(p.Msg), 20)])
		}
		want := []string{
			"missing-start.yaml:missing start: name ",
			"unreachable.yaml:node forgotten canno",
			"unreachable.yaml:node also_forgotten ",
			"does-not-exist.yaml:cannot read file: op",
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("problems (-want +got):\n%s", diff)
		}
		if len(defs) != 1 || defs[0].Name != "payout" {
			t.Errorf("got %d definitions, want the one good file's", len(defs))
		}
	})
}

func TestLoader_LoadFS(t *testing.T) {
	t.Parallel()
	defs, err := newLoader().LoadFS(processes.Shipped(), ".")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(root, "processes/flows/*.y*ml"))
	if len(defs) != len(files) {
		t.Errorf("LoadFS loaded %d definitions from %d shipped files", len(defs), len(files))
	}
	found := false
	for _, d := range defs {
		found = found || d.Name == "liqpay-hold"
	}
	if !found {
		t.Error("the shipped flows lack liqpay-hold")
	}
	if _, err := newLoader().LoadFS(processes.Shipped(), "nowhere"); err == nil {
		t.Error("LoadFS of a missing directory: no error")
	}
}

// TestLoader_Load_positions pins the position rules the goldens rely on, on
// small flows: node problems without a place point at the node's name,
// problems inside expressions at the offending name, through quotes.
func TestLoader_Load_positions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, src, want string
	}{{
		name: "missing key points at the node name",
		src:  "process: p\nstart: d\nnodes:\n  d:\n    type: delay\n    for: 1m\n",
		want: "test.yaml:4:3: node d: missing next: name the node the task goes to",
	}, {
		name: "plain scalar expression",
		src:  "process: p\nstart: c\nnodes:\n  c:\n    type: condition\n    cases: [{when: nope > 1, next: c}]\n    default: c\n",
		want: `test.yaml:6:20: node c: unknown field "nope": not an input field nor written by any node`,
	}, {
		name: "single-quoted expression",
		src:  "process: p\nstart: c\nnodes:\n  c:\n    type: condition\n    cases: [{when: '1 < nope', next: c}]\n    default: c\n",
		want: `test.yaml:6:25: node c: unknown field "nope": not an input field nor written by any node`,
	}, {
		name: "second hole of a double-quoted template",
		src:  "process: p\nstart: s\nnodes:\n  s:\n    type: set\n    set: {a: \"x{{ 1 }}-{{ nope }}\"}\n    next: s\n",
		want: `test.yaml:6:27: node s: unknown field "nope": not an input field nor written by any node`,
	}, {
		name: "non-ASCII text before a hole",
		src:  "process: p\nstart: s\nnodes:\n  s:\n    type: set\n    set: {a: \"сума {{ nope }}\"}\n    next: s\n",
		want: `test.yaml:6:23: node s: unknown field "nope": not an input field nor written by any node`,
	}, {
		name: "block scalar points at the value",
		src:  "process: p\nstart: c\nnodes:\n  c:\n    type: condition\n    cases:\n      - next: c\n        when: >-\n          nope\n    default: c\n",
		want: `test.yaml:8:15: node c: unknown field "nope": not an input field nor written by any node`,
	}, {
		name: "empty file",
		src:  "",
		want: "test.yaml:1:1: empty file: want a flow with process, start and nodes",
	}, {
		name: "comments only",
		src:  "# nothing\n",
		want: "test.yaml:1:1: empty file: want a flow with process, start and nodes",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := loadSource(t, tt.src)
			if got := problemsOf(t, err).Error(); got != tt.want {
				t.Errorf("problems:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestProblems_Error(t *testing.T) {
	t.Parallel()
	ps := processes.Problems{
		{File: "a.yaml", Pos: processes.Pos{Line: 3, Col: 7}, Msg: "first"},
		{File: "a.yaml", Pos: processes.Pos{Line: 9, Col: 1}, Msg: "second"},
	}
	if got, want := ps.Error(), "a.yaml:3:7: first\na.yaml:9:1: second"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

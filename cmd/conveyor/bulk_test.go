package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-dev/conveyor/client"
)

// runCmd runs a command the way run does and returns the exit code, stdout
// and stderr.
func runCmd(t *testing.T, cmd func(stdout, stderr *bytes.Buffer) command, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), waitBudget)
	defer cancel()
	code := codeOf(cmd(&stdout, &stderr).Run(ctx, args), &stderr)
	return code, stdout.String(), stderr.String()
}

func TestBulk_commands(t *testing.T) {
	t.Parallel()
	s := startServe(t, nil, "--addr", "127.0.0.1:0", "--db", filepath.Join(t.TempDir(), "c.db"), "--sandbox", "--token", "s3cret")
	environ := []string{"CONVEYOR_SERVER=" + s.url, "CONVEYOR_TOKEN=s3cret", "USER=alice"}
	tasks := cli{t: t, environ: environ}
	bulk := func(t *testing.T, tty bool, args ...string) (int, string, string) {
		return runCmd(t, func(o, e *bytes.Buffer) command {
			return &bulkCommand{stdout: o, stderr: e, environ: func() []string { return environ }, tty: func() bool { return tty }, poll: 10 * time.Millisecond}
		}, args...)
	}
	audit := func(t *testing.T, args ...string) (int, string, string) {
		return runCmd(t, func(o, e *bytes.Buffer) command {
			return &auditCommand{stdout: o, stderr: e, environ: func() []string { return environ }}
		}, args...)
	}
	var ids []string
	for i := range 2 {
		id := tasks.task("submit", "liqpay-hold", "--ref", fmt.Sprintf("b%d", i), "--data", fmt.Sprintf(input, fmt.Sprintf("ob%d", i), "4000000000000002"))["id"].(string)
		tasks.await(id, "escalated")
		ids = append(ids, id)
	}
	filter := []string{"--process", "liqpay-hold", "--node", "escalation", "--error-code", "limit"}

	code, out, errs := bulk(t, false, append([]string{"move", "--to", "failed", "--dry-run"}, filter...)...)
	if code != 0 || !strings.Contains(out, "2 tasks match; bulk move would act on each") || !strings.Contains(out, ids[0]) {
		t.Fatalf("dry run: exit %d\n%s%s", code, out, errs)
	}

	code, out, errs = bulk(t, false, append([]string{"move", "--to", "failed", "--reason", "give up", "--rate", "100", "--wait"}, filter...)...)
	if code != 0 || !strings.Contains(out, "started bulk move job") || !strings.Contains(out, "is done: 2 of 2 done, 2 succeeded, 0 failed") {
		t.Fatalf("bulk move --wait: exit %d\n%s%s", code, out, errs)
	}
	if strings.Contains(out, "\r") {
		t.Errorf("a progress bar was drawn on a stdout that is no terminal:\n%q", out)
	}
	jobID := strings.TrimSuffix(strings.Fields(out)[4], ":")
	for _, id := range ids {
		tasks.await(id, "failed")
	}

	code, out, _ = bulk(t, false, "list")
	if code != 0 || !strings.Contains(out, jobID) || !strings.Contains(out, "move to failed") || !strings.Contains(out, "2/2") {
		t.Errorf("bulk list: exit %d\n%s", code, out)
	}
	code, out, _ = bulk(t, false, "show", jobID, "--limit", "1")
	for _, want := range []string{"Status", "done", "--process liqpay-hold --node escalation --error-code limit", "token:alice", "give up", "Results:", "ok", "more: conveyor bulk show " + jobID + " --cursor"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("bulk show lacks %q: exit %d\n%s", want, code, out)
		}
	}
	var shown struct {
		Status  string             `json:"status"`
		Results []client.JobResult `json:"results"`
	}
	if code, out, _ = bulk(t, false, "show", jobID, "-o", "json"); code != 0 || json.Unmarshal([]byte(out), &shown) != nil || shown.Status != "done" || len(shown.Results) != 2 {
		t.Errorf("bulk show -o json: exit %d\n%s", code, out)
	}
	if code, _, errs = bulk(t, false, "stop", jobID); code != 1 || !strings.Contains(errs, "(conflict)") {
		t.Errorf("bulk stop of a done job: exit %d, %s", code, errs)
	}

	code, out, _ = audit(t, "--actor", "token:alice", "--since", "1h")
	if code != 0 || strings.Count(out, "operator_move") != 2 || !strings.Contains(out, jobID) || !strings.Contains(out, "escalation -> failed") {
		t.Errorf("audit: exit %d\n%s", code, out)
	}
	var page client.AuditPage
	if code, out, _ = audit(t, "--task", ids[0], "-o", "json"); code != 0 || json.Unmarshal([]byte(out), &page) != nil || len(page.Entries) != 1 || page.Entries[0].JobID != jobID {
		t.Errorf("audit --task -o json: exit %d\n%s", code, out)
	}
	if code, out, _ = audit(t, "--actor", "nobody"); code != 0 || !strings.Contains(out, "(no operator actions)") {
		t.Errorf("audit of nobody: exit %d\n%s", code, out)
	}

	// Without --wait and without a terminal, the job is started and left.
	more := tasks.task("submit", "liqpay-hold", "--ref", "b9", "--data", fmt.Sprintf(input, "ob9", "4000000000000002"))["id"].(string)
	tasks.await(more, "escalated")
	code, out, errs = bulk(t, false, "cancel", "--process", "liqpay-hold", "--status", "escalated", "-o", "json")
	var started client.Job
	if code != 0 || json.Unmarshal([]byte(out), &started) != nil || started.Status != "pending" || started.Total != 1 {
		t.Fatalf("bulk cancel -o json: exit %d\n%s%s", code, out, errs)
	}
	tasks.await(more, "canceled")

	// On a terminal, the job is followed with a progress bar.
	more = tasks.task("submit", "liqpay-hold", "--ref", "b10", "--data", fmt.Sprintf(input, "ob10", "4000000000000002"))["id"].(string)
	tasks.await(more, "escalated")
	code, out, errs = bulk(t, true, "retry", "--process", "liqpay-hold", "--reason", "again")
	if code != 0 || !strings.Contains(out, "\r[") || !strings.Contains(out, "1/1 100%") || !strings.Contains(out, "is done") {
		t.Errorf("bulk retry on a terminal: exit %d\n%q\n%s", code, out, errs)
	}

	if code, _, errs = bulk(t, false, "cancel", "--process", "nope"); code != 1 || !strings.Contains(errs, "(not_found)") {
		t.Errorf("bulk cancel of an unknown process: exit %d, %s", code, errs)
	}
	if code, _, errs = bulk(t, false, "show", "01900000-0000-7000-8000-000000000000"); code != 1 || !strings.Contains(errs, "(not_found)") {
		t.Errorf("bulk show of an unknown job: exit %d, %s", code, errs)
	}
}

func TestBulk_usage(t *testing.T) {
	t.Parallel()
	environ := []string{"CONVEYOR_SERVER=http://127.0.0.1:1"}
	bulk := func(args ...string) (int, string, string) {
		return runCmd(t, func(o, e *bytes.Buffer) command {
			return &bulkCommand{stdout: o, stderr: e, environ: func() []string { return environ }}
		}, args...)
	}
	audit := func(args ...string) (int, string, string) {
		return runCmd(t, func(o, e *bytes.Buffer) command {
			return &auditCommand{stdout: o, stderr: e, environ: func() []string { return environ }}
		}, args...)
	}
	cases := []struct {
		run  func(...string) (int, string, string)
		args []string
		code int
		want string
	}{
		{bulk, nil, 2, "Subcommands:"},
		{bulk, []string{"--help"}, 0, ""},
		{bulk, []string{"frobnicate"}, 2, `unknown subcommand "frobnicate"`},
		{bulk, []string{"retry"}, 2, "missing --process"},
		{bulk, []string{"move", "--process", "p"}, 2, "missing --to"},
		{bulk, []string{"retry", "--process", "p", "--to", "x"}, 2, "flag provided but not defined: -to"},
		{bulk, []string{"cancel", "--process", "p", "--rate", "-1"}, 2, "--rate must not be negative"},
		{bulk, []string{"cancel", "--process", "p", "extra"}, 2, `unexpected argument "extra"`},
		{bulk, []string{"cancel", "--process", "p", "--older-than", "soon"}, 2, "invalid value"},
		{bulk, []string{"retry", "--help"}, 0, "-dry-run"},
		{bulk, []string{"show"}, 2, "missing ID"},
		{bulk, []string{"stop"}, 2, "missing ID"},
		{bulk, []string{"list", "-o", "yaml"}, 2, "-o must be table or json"},
		{bulk, []string{"cancel", "--process", "p"}, 1, "cannot reach the server"},
		{audit, []string{"x"}, 2, `unexpected argument "x"`},
		{audit, []string{"--help"}, 0, "-actor"},
		{audit, nil, 1, "cannot reach the server"},
	}
	for _, tc := range cases {
		code, _, errs := tc.run(tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("%s: exit %d, want %d; stderr:\n%s", strings.Join(tc.args, " "), code, tc.code, errs)
		}
	}
	var stdout, stderr bytes.Buffer
	for _, name := range []string{"bulk", "audit"} {
		stdout.Reset()
		stderr.Reset()
		if code := run(context.Background(), []string{name, "--help"}, &stdout, &stderr); code != 0 || stdout.Len()+stderr.Len() == 0 {
			t.Errorf("conveyor %s --help: exit %d, no help", name, code)
		}
	}
}

func TestProgress(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		job  client.Job
		want string
	}{
		{client.Job{Total: 10, Status: "pending"}, "[          ] 0/10   0%  ok 0  failed 0  pending"},
		{client.Job{Total: 10, Done: 5, Succeeded: 4, Failed: 1, Status: "running"}, "[####x     ] 5/10  50%  ok 4  failed 1  running"},
		{client.Job{Total: 1000, Done: 1, Failed: 1, Status: "running"}, "[x         ] 1/1000   0%  ok 0  failed 1  running"},
		{client.Job{Total: 0, Status: "done"}, "[          ] 0/0   0%  ok 0  failed 0  done"},
		{client.Job{Total: 4, Done: 4, Succeeded: 4, Status: "done"}, "[##########] 4/4 100%  ok 4  failed 0  done"},
	} {
		if got := progress(&tc.job, 10); got != tc.want {
			t.Errorf("progress(%+v) = %q, want %q", tc.job, got, tc.want)
		}
	}
}

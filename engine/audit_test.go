package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/conveyor-dev/conveyor/engine"
	"github.com/conveyor-dev/conveyor/store"
)

func TestEngine_Audit(t *testing.T) {
	t.Parallel()
	b := setup(t, bulkFlows)
	ctx := context.Background()
	ids := b.escalate(3, "limit", b.clock.Now().Add(time.Hour))
	t0 := b.clock.Now()
	step := func() time.Time {
		b.clock.Advance(time.Minute)
		return b.clock.Now()
	}

	atMove := step()
	if _, err := b.eng.Move(ctx, ids[0], "parked", engine.Action{Actor: "token:alice", Reason: "park it"}); err != nil {
		t.Fatal(err)
	}
	atCancel := step()
	if _, err := b.eng.Cancel(ctx, ids[1], engine.Action{Actor: "token:bob", Reason: "duplicate"}); err != nil {
		t.Fatal(err)
	}
	atEdit := step()
	if _, err := b.eng.Edit(ctx, ids[2], decode(t, `{"kind": "other"}`), engine.Action{Actor: "token:dave", Reason: "wrong kind"}); err != nil {
		t.Fatal(err)
	}
	atRetry := step()
	job, err := b.eng.StartBulk(ctx, engine.BulkRequest{Action: "retry", Rate: engine.MaxBulkRate, Actor: "token:carol", Reason: "try again",
		Filter: store.JobFilter{Process: "bulk", ErrorCode: "other"}})
	if err != nil {
		t.Fatal(err)
	}
	if j := b.waitJob(job.ID, "done", func(j *store.Job) bool { return j.Status.Final() }); j.Succeeded != 1 {
		t.Fatalf("bulk retry %+v, want one task retried", j)
	}

	entry := func(at time.Time, actor, action string, i int, from, to, reason, detail, jobID string, seq uint32) store.AuditEntry {
		return store.AuditEntry{At: at, Actor: actor, Action: action, TaskID: ids[i], Seq: seq, Process: "bulk",
			From: from, To: to, Reason: reason, Detail: detail, JobID: jobID}
	}
	// Each task has submit, then escalation (seq 0 and 1).
	retry := entry(atRetry, "token:carol", "operator_retry", 2, "escalation", "check", "try again", "", job.ID.String(), 4)
	edit := entry(atEdit, "token:dave", "operator_edit", 2, "escalation", "check", "wrong kind", "changed kind", "", 2)
	cancel := entry(atCancel, "token:bob", "operator_cancel", 1, "escalation", "escalation", "duplicate", "status escalated -> canceled", "", 2)
	move := entry(atMove, "token:alice", "operator_move", 0, "escalation", "parked", "park it", "", "", 2)
	for _, tc := range []struct {
		name string
		f    store.AuditFilter
		want []store.AuditEntry
	}{
		{"all", store.AuditFilter{}, []store.AuditEntry{retry, edit, cancel, move}},
		{"task", store.AuditFilter{TaskID: ids[2]}, []store.AuditEntry{retry, edit}},
		{"actor", store.AuditFilter{Actor: "token:bob"}, []store.AuditEntry{cancel}},
		{"process", store.AuditFilter{Process: "bulk", Limit: 1}, []store.AuditEntry{retry}},
		{"since", store.AuditFilter{Since: atEdit}, []store.AuditEntry{retry, edit}},
		{"before_anything", store.AuditFilter{Actor: "token:alice", Since: t0}, []store.AuditEntry{move}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			page, err := b.eng.Audit(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, page.Entries); diff != "" {
				t.Errorf("Audit(%+v) (-want +got):\n%s", tc.f, diff)
			}
		})
	}
	v, err := b.eng.Task(ctx, ids[2])
	if err != nil {
		t.Fatal(err)
	}
	var jobs []string
	for _, h := range v.History {
		if h.JobID != "" {
			jobs = append(jobs, h.Event+" "+h.JobID)
		}
	}
	if want := []string{"operator_retry " + job.ID.String()}; !cmp.Equal(jobs, want) {
		t.Errorf("the task's history names jobs %v, want %v", jobs, want)
	}
}

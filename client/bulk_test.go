package client_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	conveyor "github.com/conveyor-dev/conveyor"
	"github.com/conveyor-dev/conveyor/client"
)

// awaitJob polls a bulk job until it is final, within a bounded time.
func awaitJob(t *testing.T, c *client.Client, id string) *client.Job {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		j, err := c.Job(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if j.Final() {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s is %s, never final", id, j.Status)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestClient_bulk(t *testing.T) {
	t.Parallel()
	c, _ := setup(t)
	c.Actor = "bob"
	ctx := context.Background()
	var ids []string
	for i := range 2 {
		task, _, err := c.Submit(ctx, process, fmt.Sprintf("bulk-%d", i), data(fmt.Sprintf("o%d", i), cardLimit))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, await(t, c, task.ID, "escalated").ID)
	}
	req := client.BulkRequest{Action: "move", To: "failed", Reason: "give up", Rate: 100,
		Filter: client.BulkFilter{Process: process, Node: "escalation", ErrorCode: "limit", OlderThan: time.Nanosecond}}
	dry, err := c.BulkDryRun(ctx, req)
	if err != nil || dry.Count != 2 || len(dry.Sample) != 2 || dry.Sample[0].ID != ids[1] {
		t.Fatalf("BulkDryRun = %+v, %v; want both tasks, newest first", dry, err)
	}
	job, err := c.StartBulk(ctx, req)
	if err != nil || job.Status != "pending" || job.Total != 2 || job.Actor != "token:bob" || job.Filter.OlderThan != "1ns" {
		t.Fatalf("StartBulk = %+v, %v", job, err)
	}
	job = awaitJob(t, c, job.ID)
	if job.Status != "done" || job.Succeeded != 2 || job.Finished == nil {
		t.Errorf("finished job %+v", job)
	}
	page, err := c.JobResults(ctx, job.ID, "", 1)
	if err != nil || len(page.Results) != 1 || page.NextCursor == "" {
		t.Fatalf("JobResults(limit 1) = %+v, %v", page, err)
	}
	rest, err := c.JobResults(ctx, job.ID, page.NextCursor, 0)
	if err != nil || len(rest.Results) != 1 || rest.NextCursor != "" || !rest.Results[0].OK {
		t.Errorf("JobResults(cursor) = %+v, %v", rest, err)
	}
	jobs, err := c.Jobs(ctx, 10)
	if err != nil || len(jobs) != 1 || jobs[0].ID != job.ID {
		t.Errorf("Jobs = %+v, %v", jobs, err)
	}
	_, err = c.CancelBulk(ctx, job.ID)
	code(t, err, conveyor.EConflict)
	_, err = c.Job(ctx, "01900000-0000-7000-8000-000000000000")
	code(t, err, conveyor.ENotFound)
	_, err = c.StartBulk(ctx, client.BulkRequest{Action: "move", Filter: client.BulkFilter{Process: process}})
	code(t, err, conveyor.EInvalid)

	audit, err := c.Audit(ctx, client.AuditOptions{Task: ids[0], Since: time.Now().Add(-time.Hour)})
	if err != nil || len(audit.Entries) != 1 {
		t.Fatalf("Audit = %+v, %v", audit, err)
	}
	if e := audit.Entries[0]; e.Action != "operator_move" || e.Actor != "token:bob" || e.JobID != job.ID || e.To != "failed" || e.Reason != "give up" {
		t.Errorf("audit entry %+v", e)
	}
	if all, err := c.Audit(ctx, client.AuditOptions{Actor: "token:bob", Limit: 1}); err != nil || len(all.Entries) != 1 || all.NextCursor == "" {
		t.Errorf("Audit(limit 1) = %+v, %v", all, err)
	}
	task, err := c.Task(ctx, ids[0])
	if err != nil || task.Status != "failed" || task.History[len(task.History)-1].JobID != job.ID {
		t.Errorf("task after the bulk move: %+v, %v", task, err)
	}
	alarms, err := c.Alarms(ctx, 0)
	if err != nil || len(alarms.Alarms) != 0 || len(alarms.Crossings) != 0 {
		t.Errorf("Alarms = %+v, %v; the shipped flows have none", alarms, err)
	}
}

package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

	"github.com/conveyor-dev/conveyor/store"
)

var taskTests = []test{
	{"fails_with_ErrNotFound_for_an_unknown_id", func(t *testing.T, f *fixture) {
		_, err := f.s.Task(f.ctx, f.task().ID)
		wantErr(t, err, store.ErrNotFound)
	}},
	{"returns_a_copy_the_caller_may_change", func(t *testing.T, f *fixture) {
		task := f.task()
		f.create(task)
		got := f.get(task.ID)
		got.Data[0] = 'X'
		f.wantStored(task)
	}},
	{"finds_a_task_by_process_and_ref", func(t *testing.T, f *fixture) {
		task := f.task()
		task.Ref = "order-1"
		f.create(task, f.task())
		got, err := f.s.TaskByRef(f.ctx, "payment", "order-1")
		if err != nil || got.ID != task.ID {
			t.Fatalf("TaskByRef = %v, %v; want task %s", got, err, task.ID)
		}
		_, err = f.s.TaskByRef(f.ctx, "payment", "order-2")
		wantErr(t, err, store.ErrNotFound)
		_, err = f.s.TaskByRef(f.ctx, "payment", "")
		wantErr(t, err, store.ErrNotFound)
	}},
	{"reads_many_at_once_in_the_order_asked_as_one_by_one", func(t *testing.T, f *fixture) {
		br, ok := f.s.(store.BatchReader)
		if !ok {
			t.Skip("the store reads tasks one at a time (no store.BatchReader)")
		}
		tasks := f.tasks(5)
		tasks[2].Data = []byte(`{"n":2}`)
		f.create(tasks...)
		f.update(tasks[4], func(t *store.Task) { t.Node = "moved" })
		missing := f.task().ID
		ask := []uuid.UUID{tasks[3].ID, missing, tasks[0].ID, tasks[4].ID, tasks[2].ID}
		got, err := br.Tasks(f.ctx, ask)
		if err != nil || len(got) != len(ask) {
			t.Fatalf("Tasks = %d tasks, %v; want %d", len(got), err, len(ask))
		}
		for i, id := range ask {
			if id == missing {
				if got[i] != nil {
					t.Errorf("Tasks[%d] for an unknown id = %+v, want nil", i, got[i])
				}
				continue
			}
			if diff := cmp.Diff(f.get(id), got[i]); diff != "" {
				t.Errorf("Tasks[%d] differs from Task(%s) (-Task +Tasks):\n%s", i, id, diff)
			}
		}
	}},
}

var tokenTests = []test{
	{"finds_the_task_while_its_token_is_set_moved_and_cleared", func(t *testing.T, f *fixture) {
		task := f.task()
		task.Token = "tok-1"
		f.create(task)
		wantByToken(t, f, "tok-1", task.ID)
		f.update(task, func(t *store.Task) { t.Token = "tok-2" })
		wantByToken(t, f, "tok-1", uuid.Nil)
		wantByToken(t, f, "tok-2", task.ID)
		f.update(task, func(t *store.Task) { t.Token = "" })
		wantByToken(t, f, "tok-2", uuid.Nil)
	}},
	{"fails_with_ErrNotFound_for_the_empty_token", func(t *testing.T, f *fixture) {
		f.create(f.task())
		wantByToken(t, f, "", uuid.Nil)
	}},
	{"rejects_a_token_another_task_holds", func(t *testing.T, f *fixture) {
		a, b := f.task(), f.task()
		a.Token, b.Token = "tok-1", "tok-1"
		f.create(a)
		if err := f.s.Commit(f.ctx, f.creation(b)); err == nil {
			t.Fatal("Commit of a second task with the same token = nil, want an error")
		}
		wantByToken(t, f, "tok-1", a.ID)
	}},
	{"frees_the_token_for_another_task_once_cleared", func(t *testing.T, f *fixture) {
		a, b := f.task(), f.task()
		a.Token = "tok-1"
		f.create(a, b)
		f.update(a, func(t *store.Task) { t.Token = "" })
		f.update(b, func(t *store.Task) { t.Token = "tok-1" })
		wantByToken(t, f, "tok-1", b.ID)
	}},
}

// wantByToken fails the test unless TaskByToken(token) finds id, or
// ErrNotFound when id is uuid.Nil.
func wantByToken(t *testing.T, f *fixture, token string, id uuid.UUID) {
	t.Helper()
	got, err := f.s.TaskByToken(f.ctx, token)
	if id == uuid.Nil {
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("TaskByToken(%q) = %v, %v; want ErrNotFound", token, got, err)
		}
		return
	}
	if err != nil || got.ID != id {
		t.Errorf("TaskByToken(%q) = %v, %v; want task %s", token, got, err, id)
	}
}

var dueTests = []test{
	{"returns_timers_due_at_or_before_t_earliest_first", func(t *testing.T, f *fixture) {
		late, early, middle, none := f.task(), f.task(), f.task(), f.task()
		late.TimerAt, early.TimerAt, middle.TimerAt = f.at(3*time.Second), f.at(time.Second), f.at(2*time.Second)
		f.create(late, early, middle, none)
		wantDue(t, f, f.at(2*time.Second), 10, early, middle)
		wantDue(t, f, f.at(time.Hour), 10, early, middle, late)
		wantDue(t, f, f.t0, 10)
	}},
	{"returns_at_most_limit_timers", func(t *testing.T, f *fixture) {
		a, b, c := f.task(), f.task(), f.task()
		a.TimerAt, b.TimerAt, c.TimerAt = f.at(time.Second), f.at(time.Second), f.at(2*time.Second)
		f.create(a, b, c)
		due, err := f.s.Due(f.ctx, f.at(time.Hour), 2)
		if err != nil || len(due) != 2 {
			t.Fatalf("Due(limit 2) = %d timers, %v; want 2", len(due), err)
		}
		if !due[0].At.Equal(f.at(time.Second)) || !due[1].At.Equal(f.at(time.Second)) {
			t.Errorf("Due(limit 2) = %v, want the two earliest", due)
		}
	}},
	{"follows_the_timer_when_it_moves_or_is_cleared", func(t *testing.T, f *fixture) {
		a, b := f.task(), f.task()
		a.TimerAt, b.TimerAt = f.at(time.Second), f.at(2*time.Second)
		f.create(a, b)
		f.update(a, func(t *store.Task) { t.TimerAt = f.at(5 * time.Second) })
		wantDue(t, f, f.at(time.Hour), 10, b, a)
		f.update(b, func(t *store.Task) { t.TimerAt = time.Time{} })
		wantDue(t, f, f.at(time.Hour), 10, a)
	}},
	{"NextDue_returns_the_earliest_timer", func(t *testing.T, f *fixture) {
		if _, ok, err := f.s.NextDue(f.ctx); ok || err != nil {
			t.Fatalf("NextDue on an empty store = %v, %v; want false, nil", ok, err)
		}
		a, b := f.task(), f.task()
		a.TimerAt, b.TimerAt = f.at(2*time.Second), f.at(time.Second)
		f.create(a, b)
		at, ok, err := f.s.NextDue(f.ctx)
		if err != nil || !ok || !at.Equal(f.at(time.Second)) {
			t.Errorf("NextDue = %v, %v, %v; want %v, true, nil", at, ok, err, f.at(time.Second))
		}
	}},
}

// wantDue fails the test unless Due(until, limit) returns the timers of want,
// in that order and at their TimerAt.
func wantDue(t *testing.T, f *fixture, until time.Time, limit int, want ...*store.Task) {
	t.Helper()
	due, err := f.s.Due(f.ctx, until, limit)
	if err != nil {
		t.Fatalf("Due: %v", err)
	}
	var wantTimers []store.Timer
	for _, w := range want {
		wantTimers = append(wantTimers, store.Timer{TaskID: w.ID, At: w.TimerAt})
	}
	if diff := cmp.Diff(wantTimers, due, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Due(%v, %d) (-want +got):\n%s", until, limit, diff)
	}
}

var runnableTests = []test{
	{"lists_the_active_tasks_in_id_order_after_a_cursor", func(t *testing.T, f *fixture) {
		tasks := f.tasks(5)
		tasks[2].Status, tasks[2].Node = store.StatusWaiting, "wait"
		f.create(tasks...)
		active := ids([]*store.Task{tasks[0], tasks[1], tasks[3], tasks[4]})
		wantRunnable(t, f, uuid.Nil, 10, active)
		wantRunnable(t, f, tasks[0].ID, 2, active[1:3])
		wantRunnable(t, f, tasks[4].ID, 10, nil)
	}},
	{"merges_the_active_tasks_of_every_process_and_node_in_id_order", func(t *testing.T, f *fixture) {
		tasks := f.tasks(12)
		var active []*store.Task
		for i, task := range tasks {
			switch i % 4 {
			case 1:
				task.Node = "charge"
			case 2:
				task.Process, task.Node = "refund", "start"
			case 3:
				task.Node, task.Status = "wait", store.StatusWaiting
			}
			if task.Status == store.StatusActive {
				active = append(active, task)
			}
		}
		f.create(tasks...)
		want := ids(active)
		wantRunnable(t, f, uuid.Nil, 20, want)
		var got []uuid.UUID
		after := uuid.Nil
		for range len(want) {
			page, err := f.s.Runnable(f.ctx, after, 4)
			if err != nil {
				t.Fatalf("Runnable: %v", err)
			}
			if len(page) == 0 {
				break
			}
			got, after = append(got, page...), page[len(page)-1]
		}
		wantIDs(t, "Runnable in pages of 4", got, want)
	}},
	{"tracks_the_active_status", func(t *testing.T, f *fixture) {
		a, b := f.task(), f.task()
		f.create(a, b)
		f.update(a, func(t *store.Task) { t.Status, t.Node = store.StatusWaiting, "wait" })
		wantRunnable(t, f, uuid.Nil, 10, ids([]*store.Task{b}))
		f.update(a, func(t *store.Task) { t.Status, t.Node = store.StatusActive, "charge" })
		f.finish(b, store.StatusSucceeded, f.t0)
		wantRunnable(t, f, uuid.Nil, 10, ids([]*store.Task{a}))
	}},
}

// wantRunnable fails the test unless Runnable(after, limit) returns want.
func wantRunnable(t *testing.T, f *fixture, after uuid.UUID, limit int, want []uuid.UUID) {
	t.Helper()
	got, err := f.s.Runnable(f.ctx, after, limit)
	if err != nil {
		t.Fatalf("Runnable: %v", err)
	}
	wantIDs(t, "Runnable", got, want)
}

var listTests = []test{
	{"selects_by_each_filter_newest_first", func(t *testing.T, f *fixture) {
		tasks := f.tasks(6)
		start, charge, wait, escalated, refund, done := tasks[0], tasks[1], tasks[2], tasks[3], tasks[4], tasks[5]
		start.Ref = "order-1"
		charge.Node = "charge"
		wait.Node, wait.Status, wait.Entered = "wait", store.StatusWaiting, f.at(-time.Hour)
		escalated.Node, escalated.Status = "charge", store.StatusEscalated
		escalated.Error = &store.TaskError{Code: "http_503", Node: "charge"}
		refund.Process, refund.Ref = "refund", "order-1"
		f.create(tasks...)
		f.finish(done, store.StatusSucceeded, f.t0)
		for _, tc := range []struct {
			name string
			f    store.Filter
			want []uuid.UUID
		}{
			{"all", store.Filter{}, newestFirst(tasks...)},
			{"process", store.Filter{Process: "payment"}, newestFirst(start, charge, wait, escalated, done)},
			{"process_and_node", store.Filter{Process: "payment", Node: "charge"}, newestFirst(charge, escalated)},
			{"node", store.Filter{Node: "charge"}, newestFirst(charge, escalated)},
			{"status", store.Filter{Status: store.StatusActive}, newestFirst(start, charge, refund)},
			{"final_status", store.Filter{Status: store.StatusSucceeded}, newestFirst(done)},
			{"process_and_ref", store.Filter{Process: "payment", Ref: "order-1"}, newestFirst(start)},
			{"ref", store.Filter{Ref: "order-1"}, newestFirst(start, refund)},
			{"error_code", store.Filter{ErrorCode: "http_503"}, newestFirst(escalated)},
			{"entered_before", store.Filter{EnteredBefore: f.at(-time.Minute)}, newestFirst(wait)},
			{"status_and_node", store.Filter{Process: "payment", Node: "charge", Status: store.StatusEscalated}, newestFirst(escalated)},
			{"nothing", store.Filter{Process: "payment", Node: "nowhere"}, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				page, err := f.s.List(f.ctx, tc.f)
				if err != nil {
					t.Fatal(err)
				}
				wantIDs(t, "List", ids(page.Tasks), tc.want)
				if page.Next != "" {
					t.Errorf("Next = %q on the only page, want empty", page.Next)
				}
			})
		}
	}},
	{"pages_with_a_cursor_without_gaps_or_duplicates", func(t *testing.T, f *fixture) {
		tasks := f.tasks(25)
		f.create(tasks...)
		for _, filter := range []store.Filter{
			{},
			{Status: store.StatusActive},
			{Process: "payment", Node: "start"},
			{Process: "payment"},
		} {
			filter.Limit = 10
			var got []uuid.UUID
			pages := 0
			for {
				page, err := f.s.List(f.ctx, filter)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, ids(page.Tasks)...)
				if pages++; page.Next == "" || pages > 5 {
					break
				}
				filter.Cursor = page.Next
			}
			if pages != 3 {
				t.Errorf("filter %+v: %d pages of 10 for 25 tasks, want 3", filter, pages)
			}
			wantIDs(t, "the pages of List", got, newestFirst(tasks...))
		}
	}},
	{"pages_through_tasks_spread_over_nodes_statuses_and_processes_in_id_order", func(t *testing.T, f *fixture) {
		tasks := f.tasks(30)
		byStatus := map[store.Status][]*store.Task{}
		var inCharge, inPayment []*store.Task
		for i, task := range tasks {
			switch i % 5 {
			case 1:
				task.Node = "charge"
			case 2:
				task.Node, task.Status = "charge", store.StatusEscalated
			case 3:
				task.Process = "refund"
			case 4:
				task.Node, task.Status = "wait", store.StatusWaiting
			}
			byStatus[task.Status] = append(byStatus[task.Status], task)
			if task.Process == "payment" {
				inPayment = append(inPayment, task)
				if task.Node == "charge" {
					inCharge = append(inCharge, task)
				}
			}
		}
		f.create(tasks...)
		var activePayments []*store.Task
		for _, task := range byStatus[store.StatusActive] {
			if task.Process == "payment" {
				activePayments = append(activePayments, task)
			}
		}
		for _, tc := range []struct {
			filter store.Filter
			want   []*store.Task
		}{
			{store.Filter{Status: store.StatusActive}, byStatus[store.StatusActive]},
			{store.Filter{Status: store.StatusActive, Process: "payment"}, activePayments},
			{store.Filter{Process: "payment", Node: "charge"}, inCharge},
			{store.Filter{Process: "payment"}, inPayment},
		} {
			filter := tc.filter
			filter.Limit = 4
			var got []uuid.UUID
			for range len(tasks) {
				page, err := f.s.List(f.ctx, filter)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, ids(page.Tasks)...)
				if page.Next == "" {
					break
				}
				filter.Cursor = page.Next
			}
			wantIDs(t, fmt.Sprintf("the pages of List %+v", tc.filter), got, newestFirst(tc.want...))
		}
	}},
	{"applies_a_default_limit_of_50_and_a_maximum_of_1000", func(t *testing.T, f *fixture) {
		f.create(f.tasks(1001)...)
		for _, tc := range []struct{ limit, want int }{{0, 50}, {7, 7}, {5000, 1000}} {
			page, err := f.s.List(f.ctx, store.Filter{Limit: tc.limit})
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Tasks) != tc.want || page.Next == "" {
				t.Errorf("List(Limit %d) = %d tasks, Next %q; want %d and a next page", tc.limit, len(page.Tasks), page.Next, tc.want)
			}
		}
	}},
}

var countsTests = []test{
	{"counts_the_tasks_in_each_node_by_status", func(t *testing.T, f *fixture) {
		tasks := f.tasks(4)
		tasks[2].Node, tasks[2].Status = "wait", store.StatusWaiting
		tasks[3].Process = "refund"
		f.create(tasks...)
		wantCounts(t, f, "payment", map[string]store.NodeCount{
			"payment/start": {Now: map[store.Status]int64{store.StatusActive: 2}},
			"payment/wait":  {Now: map[store.Status]int64{store.StatusWaiting: 1}},
		})
		wantCounts(t, f, "", map[string]store.NodeCount{
			"payment/start": {Now: map[store.Status]int64{store.StatusActive: 2}},
			"payment/wait":  {Now: map[store.Status]int64{store.StatusWaiting: 1}},
			"refund/start":  {Now: map[store.Status]int64{store.StatusActive: 1}},
		})
	}},
	{"moves_the_count_with_the_task", func(t *testing.T, f *fixture) {
		a, b := f.task(), f.task()
		f.create(a, b)
		f.update(a, func(t *store.Task) { t.Node, t.Status = "wait", store.StatusWaiting })
		f.update(b, func(t *store.Task) { t.Status = store.StatusEscalated })
		wantCounts(t, f, "payment", map[string]store.NodeCount{
			"payment/start": {Now: map[store.Status]int64{store.StatusEscalated: 1}},
			"payment/wait":  {Now: map[store.Status]int64{store.StatusWaiting: 1}},
		})
	}},
	{"totals_arrivals_into_a_final_status_and_keeps_them_after_Purge", func(t *testing.T, f *fixture) {
		tasks := f.tasks(3)
		f.create(tasks...)
		f.finish(tasks[0], store.StatusSucceeded, f.at(time.Second))
		f.finish(tasks[1], store.StatusSucceeded, f.at(time.Second))
		want := map[string]store.NodeCount{
			"payment/start": {Now: map[store.Status]int64{store.StatusActive: 1}},
			"payment/done":  {Total: 2},
		}
		wantCounts(t, f, "payment", want)
		if n, err := f.s.Purge(f.ctx, f.at(time.Hour), 10); n != 2 || err != nil {
			t.Fatalf("Purge = %d, %v; want 2, nil", n, err)
		}
		wantCounts(t, f, "payment", want)
	}},
	{"does_not_total_a_change_within_a_final_status", func(t *testing.T, f *fixture) {
		task := f.task()
		f.create(task)
		f.finish(task, store.StatusFailed, f.at(time.Second))
		f.update(task, func(t *store.Task) { t.Data = []byte(`{"note":"late callback"}`) })
		wantCounts(t, f, "payment", map[string]store.NodeCount{"payment/done": {Total: 1}})
	}},
}

// wantCounts fails the test unless Counts(process) returns want, keyed by
// "process/node", sorted by process and node.
func wantCounts(t *testing.T, f *fixture, process string, want map[string]store.NodeCount) {
	t.Helper()
	counts, err := f.s.Counts(f.ctx, process)
	if err != nil {
		t.Fatalf("Counts: %v", err)
	}
	got := map[string]store.NodeCount{}
	for i, c := range counts {
		if i > 0 && (counts[i-1].Process > c.Process || counts[i-1].Process == c.Process && counts[i-1].Node >= c.Node) {
			t.Errorf("Counts not sorted by process and node: %v", counts)
		}
		key := c.Process + "/" + c.Node
		c.Process, c.Node = "", ""
		got[key] = c
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Counts(%q) (-want +got):\n%s", process, diff)
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/conveyor-dev/conveyor/client"
	"github.com/conveyor-dev/conveyor/engine"
)

// demoCommand runs a card hold end to end on a private server: the engine,
// the LiqPay simulator and a temporary database, on a free loopback port.
type demoCommand struct {
	stdout, stderr io.Writer
}

// demoWait bounds how long the demo waits for a task to settle.
const demoWait = 20 * time.Second

// Run implements command.
func (c *demoCommand) Run(ctx context.Context, args []string) error {
	fs := newFlags("demo", "", c.stderr)
	keep := fs.Bool("keep", false, "keep the temporary database and log instead of deleting them")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(fs, "unexpected argument %q", fs.Arg(0))
	}
	dir, err := os.MkdirTemp("", "conveyor-demo-")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	logf, err := os.Create(filepath.Join(dir, "conveyor.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	log := slog.New(slog.NewJSONHandler(logf, nil))
	svc, err := startService(ctx, serviceConfig{Addr: "127.0.0.1:0", DB: filepath.Join(dir, "conveyor.db"), WAL: true, Sandbox: true, Log: log, Stderr: c.stderr})
	if err != nil {
		return err
	}
	defer svc.shutdown()
	d := &demo{out: c.stdout, cl: client.New(svc.URL, "", nil), run: time.Now().Format("150405")}
	fmt.Fprintf(d.out, "Conveyor demo: the engine, the LiqPay simulator and a fresh database, serving on %s\n", svc.URL)
	if *keep {
		fmt.Fprintf(d.out, "(database and log kept in %s)\n", dir)
	}
	return d.play(ctx)
}

// demo is the script the demo plays.
type demo struct {
	out io.Writer
	cl  *client.Client
	run string
}

func (d *demo) play(ctx context.Context) error {
	d.section("1. A hold that goes through")
	held, err := d.submit(ctx, "hold-ok", "4242424242424242")
	if err != nil {
		return err
	}
	if held, err = d.follow(ctx, held); err != nil {
		return err
	}
	if held.Status != "succeeded" || held.Node != "held" {
		return fmt.Errorf("the hold ended %s in %s, want succeeded in held", held.Status, held.Node)
	}
	d.showData(held)

	d.section("2. A hold the bank declines: it lands in escalation")
	declined, err := d.submit(ctx, "hold-declined", "4000000000000002")
	if err != nil {
		return err
	}
	if declined, err = d.follow(ctx, declined); err != nil {
		return err
	}
	if declined.Status != "escalated" || declined.Error == nil {
		return fmt.Errorf("the declined hold ended %s in %s, want escalated", declined.Status, declined.Node)
	}
	fmt.Fprintf(d.out, "  escalated in %s: err_code=%s err_description=%q (failed node: %s)\n",
		declined.Node, declined.Error.Code, declined.Error.Description, declined.Error.Node)

	d.section("3. An operator edits the task (another card, a new order id) and retries it")
	edit := map[string]any{"card": "4242424242424242", "card_cvv": "123", "order_id": declined.Data["order_id"].(string) + "-2"}
	fmt.Fprintln(d.out, "  POST /api/v1/tasks/"+declined.ID+"/edit  {card, card_cvv, order_id}  reason: \"customer gave another card\"")
	seen := len(declined.History)
	retried, err := d.cl.Edit(ctx, declined.ID, edit, "customer gave another card")
	if err != nil {
		return err
	}
	retried.History = declined.History[:seen]
	if retried, err = d.follow(ctx, retried); err != nil {
		return err
	}
	if retried.Status != "succeeded" {
		return fmt.Errorf("the retried hold ended %s in %s, want succeeded", retried.Status, retried.Node)
	}
	d.showData(retried)
	d.section("Done: every move above was committed (fsync) before it was acknowledged.")
	return nil
}

func (d *demo) section(title string) { fmt.Fprintf(d.out, "\n%s\n", title) }

// submit sends a liqpay-hold task for a sandbox card.
func (d *demo) submit(ctx context.Context, name, card string) (*client.Task, error) {
	order := "demo-" + d.run + "-" + name
	data := map[string]any{
		"phone": "380950000001", "amount": json.Number("7.34"), "currency": "UAH", "description": "Conveyor demo",
		"order_id": order, "card": card, "card_exp_month": "12", "card_exp_year": "29", "card_cvv": "123", "ip": "127.0.0.1",
	}
	fmt.Fprintf(d.out, "  POST /api/v1/processes/liqpay-hold/tasks  ref=%s card=%s amount=7.34 UAH\n", order, engine.MaskPAN(card))
	t, _, err := d.cl.Submit(ctx, "liqpay-hold", order, data)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(d.out, "  -> task %s\n", t.ID)
	return t, nil
}

// follow prints the task's history as it grows until the task finishes or
// parks in escalation.
func (d *demo) follow(ctx context.Context, t *client.Task) (*client.Task, error) {
	shown := len(t.History)
	deadline := time.Now().Add(demoWait)
	for {
		cur, err := d.cl.Task(ctx, t.ID)
		if err != nil {
			return nil, err
		}
		for _, h := range cur.History[min(shown, len(cur.History)):] {
			d.step(h)
		}
		shown = len(cur.History)
		if cur.Final() || cur.Status == "escalated" {
			return cur, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("task %s still %s in %s after %s", cur.ID, cur.Status, cur.Node, demoWait)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (d *demo) step(h client.HistoryEntry) {
	move := h.To
	if h.From != "" && h.From != h.To {
		move = h.From + " -> " + h.To
	}
	line := fmt.Sprintf("  %s  %-34s %-18s", h.At.Format("15:04:05.000"), move, h.Event)
	if h.Actor != "" {
		line += " by " + h.Actor
	}
	if h.Detail != "" {
		line += ": " + h.Detail
	}
	fmt.Fprintln(d.out, strings.TrimRight(line, " "))
}

// showData prints the task's data as the API shows it: card masked, CVV gone.
func (d *demo) showData(t *client.Task) {
	keys := make([]string, 0, len(t.Data))
	for k := range t.Data {
		if k != "reply" && k != "callback" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	fmt.Fprintf(d.out, "  %s: %s in %s; data as the API shows it:\n", t.ID, t.Status, t.Node)
	for _, k := range keys {
		fmt.Fprintf(d.out, "    %-15s %v\n", k, t.Data[k])
	}
	if cb, ok := t.Data["callback"].(map[string]any); ok {
		fmt.Fprintf(d.out, "    %-15s status=%v payment_id=%v card=%v\n", "callback", cb["status"], cb["payment_id"], cb["sender_card_mask2"])
	}
}

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/conveyor-dev/conveyor/sandbox/liqpay"
	"github.com/conveyor-dev/conveyor/sandbox/via"
)

// sandboxCommand runs a provider simulator alone, for people testing their
// own integration against it.
type sandboxCommand struct {
	stdout, stderr io.Writer
}

// sandboxProviders are the simulators sandbox can run.
var sandboxProviders = []struct{ name, summary string }{
	{"liqpay", "LiqPay's server-to-server API for card holds (POST /api/request)"},
	{"via", "VIA's partner hold API (POST /partner/hold/create, confirm, cancel, info)"},
}

func (c *sandboxCommand) usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: conveyor sandbox <provider> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Runs a faithful local simulator of a payment provider.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Providers:")
	for _, p := range sandboxProviders {
		fmt.Fprintf(w, "  %-7s %s\n", p.name, p.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'conveyor sandbox <provider> --help' for its flags.")
}

// Run implements command.
func (c *sandboxCommand) Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		c.usage(c.stderr)
		return errUsage
	}
	switch args[0] {
	case "-h", "--help", "-help", "help":
		c.usage(c.stdout)
		return flag.ErrHelp
	case "liqpay":
		return c.liqpay(ctx, args[1:])
	case "via":
		return c.via(ctx, args[1:])
	}
	fmt.Fprintf(c.stderr, "conveyor sandbox: unknown provider %q\n\n", args[0])
	c.usage(c.stderr)
	return errUsage
}

func (c *sandboxCommand) liqpay(ctx context.Context, args []string) error {
	fs := newFlags("sandbox liqpay", "", c.stderr)
	addr := fs.String("addr", "127.0.0.1:8081", "listen address; port 0 picks a free one")
	otp := fs.String("otp", liqpay.DefaultOTP, "the one-time password confirm accepts")
	faults := fs.String("faults", "", "fault knobs for every request, e.g. latency=200ms,duplicate_callback (see the package doc)")
	delay := fs.Duration("callback-delay", 0, "wait this long before sending each callback")
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(fs, "unexpected argument %q", fs.Arg(0))
	}
	f, err := liqpay.ParseFaults(*faults)
	if err != nil {
		return usageError(fs, "--faults: %v", err)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return usageError(fs, "bad --log-level %q", *level)
	}
	if _, err := loopback(*addr); err != nil {
		return usageError(fs, "%v", err)
	}
	log := slog.New(slog.NewJSONHandler(c.stderr, &slog.HandlerOptions{Level: lvl}))
	sb := liqpay.New(liqpay.Config{OTP: *otp, Faults: f, CallbackDelay: *delay, Logger: log})
	defer sb.Close()
	return c.serve(ctx, "liqpay", sb, *addr, log, func(url string) {
		fmt.Fprintf(c.stdout, "  POST %s/api/request   public_key %s   private_key %s (published test keys)\n",
			url, liqpay.DefaultPublicKey, liqpay.DefaultPrivateKey)
	})
}

func (c *sandboxCommand) via(ctx context.Context, args []string) error {
	fs := newFlags("sandbox via", "", c.stderr)
	addr := fs.String("addr", "127.0.0.1:8082", "listen address; port 0 picks a free one")
	faults := fs.String("faults", "", "fault knobs for every request, e.g. latency=200ms,confirm_error (see the package doc)")
	pending := fs.Duration("pending", 0, "how long NEW/CREATE_PENDING and the other _PENDING states last")
	webhook := fs.String("webhook-url", "", "sandbox-only extension: POST each status change here (VIA documents no callbacks)")
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(fs, "unexpected argument %q", fs.Arg(0))
	}
	f, err := via.ParseFaults(*faults)
	if err != nil {
		return usageError(fs, "--faults: %v", err)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return usageError(fs, "bad --log-level %q", *level)
	}
	if _, err := loopback(*addr); err != nil {
		return usageError(fs, "%v", err)
	}
	log := slog.New(slog.NewJSONHandler(c.stderr, &slog.HandlerOptions{Level: lvl}))
	sb := via.New(via.Config{Faults: f, PendingFor: *pending, WebhookURL: *webhook, Logger: log})
	defer sb.Close()
	return c.serve(ctx, "via", sb, *addr, log, func(url string) {
		fmt.Fprintf(c.stdout, "  POST %s/partner/hold/create   client-id %s   client-secret %s (sandbox credentials)\n",
			url, via.DefaultClientID, via.DefaultClientSecret)
	})
}

// serve runs a simulator's handler on addr until ctx ends.
func (c *sandboxCommand) serve(ctx context.Context, name string, h http.Handler, addr string, log *slog.Logger, hello func(url string)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	url := baseURL(ln.Addr())
	log.Info(name+" sandbox listening", "url", url)
	fmt.Fprintf(c.stdout, "conveyor: %s sandbox listening on %s\n", name, url)
	hello(url)
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("requests still in flight at shutdown", "err", err)
	}
	<-served
	return nil
}

package main

import (
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// Environment variables the service and the CLI read.
const (
	// envToken is the bearer token of serve and of the task commands.
	envToken = "CONVEYOR_TOKEN"
	// envServer is the server the task commands talk to.
	envServer = "CONVEYOR_SERVER"
	// envPrefixEnv names a flow variable: CONVEYOR_ENV_LIQPAY_URL sets
	// env.LIQPAY_URL (the name is kept as written).
	envPrefixEnv = "CONVEYOR_ENV_"
	// envPrefixSecret names a secret: CONVEYOR_SECRET_LIQPAY_PRIVATE_KEY sets
	// the secret liqpay_private_key (the name is lower-cased).
	envPrefixSecret = "CONVEYOR_SECRET_"
)

// defaultServer is where the task commands look when neither --server nor
// CONVEYOR_SERVER says.
const defaultServer = "http://127.0.0.1:8080"

// keySize is the length of the data key: AES-256.
const keySize = 32

// flowConfig reads the flows' configuration variables and secrets from an
// environment (os.Environ's form): CONVEYOR_ENV_<NAME> becomes env.NAME and
// CONVEYOR_SECRET_<NAME> the secret named <name> in lower case.
func flowConfig(environ []string) (env, secrets map[string]string) {
	env, secrets = map[string]string{}, map[string]string{}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		if name, ok := strings.CutPrefix(k, envPrefixEnv); ok && name != "" {
			env[name] = v
		}
		if name, ok := strings.CutPrefix(k, envPrefixSecret); ok && name != "" {
			secrets[strings.ToLower(name)] = v
		}
	}
	return env, secrets
}

// lookup returns the value of key in an environment, "" when unset.
func lookup(environ []string, key string) string {
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// loadKey reads the data key that seals sensitive task fields from path, or
// creates it (32 random bytes, mode 0600) when neither it nor the database
// exists. It refuses a key file that group or others may access, and a
// database without its key: a new key could not open the sealed fields.
func loadKey(path, dbPath string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err == nil {
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			return nil, fmt.Errorf("key file %s is open to group or others (mode %04o); run: chmod 600 %s", path, perm, path)
		}
		key, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read key file: %w", err)
		}
		if len(key) != keySize {
			return nil, fmt.Errorf("key file %s holds %d bytes, want %d", path, len(key), keySize)
		}
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("key file: %w", err)
	}
	if _, err := os.Stat(dbPath); err == nil {
		return nil, fmt.Errorf("database %s exists but its key file %s does not; restore the key (a new one could not read sealed fields)", dbPath, path)
	}
	key := make([]byte, keySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create key file: %w", err)
	}
	if _, err := f.Write(key); err != nil {
		f.Close()
		return nil, fmt.Errorf("write key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("sync key file: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("close key file: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync() // make the new name durable too
		d.Close()
	}
	return key, nil
}

// loopback reports whether a listen address (host:port) binds loopback
// only. An empty host binds every interface.
func loopback(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, fmt.Errorf("bad address %q: want host:port, e.g. 127.0.0.1:8080", addr)
	}
	if host == "localhost" {
		return true, nil
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}

// baseURL is the URL a listener is reached at, for callback URLs: an
// unspecified address (0.0.0.0, ::) is shown as loopback, since no better
// guess exists (set --base-url).
func baseURL(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return "http://" + a.String()
	}
	ip := tcp.IP
	if ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return "http://" + net.JoinHostPort(ip.String(), fmt.Sprint(tcp.Port))
}

// usageError prints a usage problem and the command's flags, and returns
// errUsage (exit 2).
func usageError(fs *flag.FlagSet, format string, args ...any) error {
	fmt.Fprintf(fs.Output(), "%s: %s\n", fs.Name(), fmt.Sprintf(format, args...))
	fs.Usage()
	return errUsage
}

// parseInterleaved parses flags that may come before, between or after the
// positional arguments ("task submit PROCESS --ref R") and returns the
// positional ones. Everything after "--" is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parse(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

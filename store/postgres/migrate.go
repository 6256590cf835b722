package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
)

// migrationFiles are the schema's versions: NNNN_name.sql, numbered from
// 0001 without gaps. A released file never changes; a new schema is a new
// file.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrateLock is the first key of the advisory lock that serializes
// migrations ("conv"); the second is a hash of the schema, so stores in
// different schemas of one database migrate independently.
const migrateLock int32 = 0x636f6e76

// migration is one embedded schema version.
type migration struct {
	version int
	name    string // the file name, e.g. "0001_init.sql"
	sql     string
}

// migrations parses the embedded files once.
var migrations = sync.OnceValues(func() ([]migration, error) {
	return parseMigrations(migrationFiles, "migrations")
})

// parseMigrations reads the NNNN_name.sql files of dir in order and checks
// that they number 1, 2, 3... without gaps.
func parseMigrations(fsys fs.FS, dir string) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		prefix, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(prefix)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("migration %s: want NNNN_name.sql", e.Name())
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: version %d, want %d", m.name, m.version, i+1)
		}
	}
	return ms, nil
}

// Migrate applies the migrations the database at url lacks, as Open does,
// and returns the names of those it applied (none when the schema is
// current). It is what `conveyor migrate` runs, for operators who migrate
// before they deploy.
func Migrate(ctx context.Context, url string) ([]string, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("store: migrate: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	applied, err := migrate(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("store: migrate: %w", err)
	}
	return applied, nil
}

// conn is what migrate needs of a connection or a pool.
type conn interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// migrate applies the missing migrations in one transaction, holding an
// advisory lock so that concurrent callers wait for each other, and records
// each in schema_migrations. It fails, applying nothing, when the database
// has a version this build does not know. A current schema is only read, so
// a role without the right to change the schema can open it.
func migrate(ctx context.Context, db conn) ([]string, error) {
	ms, err := migrations()
	if err != nil {
		return nil, err
	}
	current, err := currentVersion(ctx, db)
	if err != nil {
		return nil, err
	}
	if err := checkVersion(current, len(ms)); err != nil || current == len(ms) {
		return nil, err
	}
	var applied []string
	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))`, migrateLock); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return err
		}
		// Another node may have migrated since currentVersion.
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
			return err
		}
		if err := checkVersion(current, len(ms)); err != nil {
			return err
		}
		for _, m := range ms[current:] {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name); err != nil {
				return err
			}
			applied = append(applied, m.name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return applied, nil
}

// currentVersion returns the schema's version, 0 before the first migration.
func currentVersion(ctx context.Context, db conn) (int, error) {
	var exists bool
	if err := db.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		return 0, err
	}
	var v int
	err := db.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// checkVersion fails when the schema is newer than this build.
func checkVersion(current, latest int) error {
	if current > latest {
		return fmt.Errorf("the schema is at version %d, newer than this build knows (%d): run a newer conveyor", current, latest)
	}
	return nil
}

// schemaVersion returns the newest version this build knows.
func schemaVersion() int {
	ms, _ := migrations()
	return len(ms)
}

package bolt

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	bbolt "go.etcd.io/bbolt"

	"github.com/conveyor-dev/conveyor/store"
)

// TestOpen_warmsTheMap: after Open, a file up to WarmLimit ends up resident
// in the process's page tables without any request touching it; a file
// above the limit, or with warming off, stays as cold as Open left it.
func TestOpen_warmsTheMap(t *testing.T) {
	t.Parallel()
	path := tempPath(t)
	db, err := Open(path, Options{WarmLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	// ~24 MiB of task bodies, each in its own overflow pages.
	big := `{"blob":"` + strings.Repeat("x", 12<<10) + `"}`
	changes := make([]store.Change, 0, 2000)
	for i := range 2000 {
		task := newTask("p", fmt.Sprint("r", i))
		task.Data = []byte(big)
		changes = append(changes, creation(task))
	}
	if err := db.Commit(context.Background(), changes...); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// The file grows in steps; what the map can hold is the part in use.
	var size int64
	check := openTest(t, path, Options{WarmLimit: -1})
	if err := check.bolt.View(func(tx *bbolt.Tx) error { size = tx.Size(); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := check.Close(); err != nil {
		t.Fatal(err)
	}
	if size < 20<<20 {
		t.Fatalf("the file uses %d bytes, want over 20 MiB", size)
	}

	for _, tc := range []struct {
		name  string
		limit int64
		warm  bool
	}{
		{"default limit", 0, true},
		{"limit above the file", size + 1, true},
		{"limit below the file", size - 1, false},
		{"off", -1, false},
	} {
		db := openTest(t, path, Options{WarmLimit: tc.limit})
		<-db.warmed
		resident := mappedResident(t, db.bolt.Info().Data)
		t.Logf("%s: %d of %d bytes resident", tc.name, resident, size)
		if got := resident >= size*9/10; got != tc.warm {
			t.Errorf("%s: %d of the %d bytes in use resident in the map, want warmed=%v", tc.name, resident, size, tc.warm)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// mappedResident is the Rss, in bytes, of the mapping that holds addr,
// from /proc/self/smaps.
func mappedResident(t *testing.T, addr uintptr) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if lo, hi, ok := strings.Cut(fields[0], "-"); ok && !strings.HasSuffix(fields[0], ":") {
			l, err1 := strconv.ParseUint(lo, 16, 64)
			h, err2 := strconv.ParseUint(hi, 16, 64)
			in = err1 == nil && err2 == nil && uint64(addr) >= l && uint64(addr) < h
			continue
		}
		if in && fields[0] == "Rss:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	t.Fatalf("no mapping holds %#x", addr)
	return 0
}

package bolt

import (
	"bytes"

	"github.com/google/uuid"
	bbolt "go.etcd.io/bbolt"

	"github.com/conveyor-dev/conveyor/store"
)

// The bystate index keeps one range per (status, process, node), each in id
// order. A list by node reads the node's range of every status, and a list
// by status the ranges of every node in it; ranges merges them back into one
// walk in id order, which is the order pages and cursors are defined in.

// nodeRanges returns the bystate prefixes of a node's tasks: of one status,
// or of every status when s is "".
func nodeRanges(s store.Status, process, node string) [][]byte {
	if s != "" {
		return [][]byte{statePrefix(s, process, node)}
	}
	prefixes := make([][]byte, len(store.Statuses))
	for i, s := range store.Statuses {
		prefixes[i] = statePrefix(s, process, node)
	}
	return prefixes
}

// groups returns the prefixes of the ranges under prefix (a status, or a
// status and a process): one seek per range, however many tasks it holds.
func groups(b *bbolt.Bucket, prefix []byte) [][]byte {
	var out [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); {
		if len(k) < len(prefix)+len(uuid.UUID{}) {
			k, _ = c.Next() // not an index key (Check reports it)
			continue
		}
		g := bytes.Clone(k[:len(k)-len(uuid.UUID{})])
		out = append(out, g)
		u := upperBound(g)
		if u == nil {
			break
		}
		k, _ = c.Seek(u)
	}
	return out
}

// merged walks the ranges of some prefixes of one index, each prefix + id,
// as one range in id order: descending, or ascending when asc.
type merged struct {
	heads []head
	asc   bool
}

// head is one range's cursor and its current key.
type head struct {
	c         *bbolt.Cursor
	prefix, k []byte
}

// descendMerged starts a newest-first walk below the id after (from the
// newest when after is nil).
func descendMerged(b *bbolt.Bucket, prefixes [][]byte, after []byte) *merged {
	m := &merged{}
	for _, p := range prefixes {
		c := b.Cursor()
		k, _ := seekBelow(c, p, after)
		m.add(c, p, k)
	}
	return m
}

// ascendMerged starts an oldest-first walk above the id after (from the
// oldest when after is nil).
func ascendMerged(b *bbolt.Bucket, prefixes [][]byte, after []byte) *merged {
	m := &merged{asc: true}
	for _, p := range prefixes {
		c := b.Cursor()
		from := append(bytes.Clone(p), after...)
		k, _ := c.Seek(from)
		if after != nil && bytes.Equal(k, from) {
			k, _ = c.Next()
		}
		m.add(c, p, k)
	}
	return m
}

// add keeps a range whose current key k is still in it.
func (m *merged) add(c *bbolt.Cursor, prefix, k []byte) {
	if k != nil && bytes.HasPrefix(k, prefix) {
		m.heads = append(m.heads, head{c: c, prefix: prefix, k: k})
	}
}

// next returns the next id of the walk, and false once every range ended.
func (m *merged) next() (uuid.UUID, bool) {
	best := -1
	for i := range m.heads {
		if best < 0 {
			best = i
			continue
		}
		c := bytes.Compare(m.heads[i].id(), m.heads[best].id())
		if (m.asc && c < 0) || (!m.asc && c > 0) {
			best = i
		}
	}
	if best < 0 {
		return uuid.Nil, false
	}
	h := &m.heads[best]
	id := uuid.UUID(h.id())
	if m.asc {
		h.k, _ = h.c.Next()
	} else {
		h.k, _ = h.c.Prev()
	}
	if h.k == nil || !bytes.HasPrefix(h.k, h.prefix) {
		m.heads = append(m.heads[:best], m.heads[best+1:]...)
	}
	return id, true
}

// id is the task id that ends the head's key.
func (h *head) id() []byte { return h.k[len(h.k)-len(uuid.UUID{}):] }

// seekBelow positions c on the last key below prefix + after (below every
// key with prefix when after is nil) and returns it; the caller checks that
// it still has the prefix.
func seekBelow(c *bbolt.Cursor, prefix, after []byte) (k, v []byte) {
	start := upperBound(prefix)
	if after != nil {
		start = append(bytes.Clone(prefix), after...)
	}
	if start == nil {
		return c.Last()
	}
	if k, _ = c.Seek(start); k == nil {
		return c.Last()
	}
	return c.Prev()
}

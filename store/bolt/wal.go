package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/google/uuid"

	"github.com/conveyor-dev/conveyor/store"
)

// walFile is the write-ahead log beside the bbolt file (Options.Log): a
// sequence of records, each one group of commits the logger acknowledged.
// A record is its payload's length (u32), a CRC-32C of the sequence number
// and the payload (u32), the sequence number (u64) and the payload, all big
// endian. Sequence numbers follow each other with no gap; the bbolt file
// records the last one it has applied (meta "logseq"), so replay after a
// crash applies exactly the records after it.
//
// A record is acknowledged only once fdatasync returns. A crash while one is
// written leaves a torn tail, which openWAL cuts off: nobody was answered
// for it.
type walFile struct {
	f    *os.File
	path string
	size int64
	buf  []byte
	// dirSync is set after a rewrite's rename until the directory is
	// synced (see rewrite).
	dirSync bool
}

// walHeader is the size of a record's header.
const walHeader = 4 + 4 + 8

// walMaxRecord bounds a record's payload when reading: a length beyond it
// is a torn or damaged header, not a record.
const walMaxRecord = 1 << 30

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// walRecord is one record read back from the log.
type walRecord struct {
	seq     uint64
	payload []byte
}

// openWAL opens (or creates) the log at path and returns its records in
// order. A torn or damaged tail is cut off, and how many bytes that was is
// returned in cut.
func openWAL(path string) (w *walFile, recs []walRecord, cut int64, err error) {
	// A rewrite that crashed before its rename leaves its copy: the log it
	// was to replace is whole.
	if err := os.Remove(path + ".tmp"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, 0, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, 0, err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, nil, 0, err
	}
	var off int64
	for int64(len(data))-off >= walHeader {
		h := data[off:]
		n := int64(binary.BigEndian.Uint32(h))
		if n > walMaxRecord || int64(len(h)) < walHeader+n {
			break
		}
		body := h[8 : walHeader+n]
		if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(h[4:]) {
			break
		}
		recs = append(recs, walRecord{seq: binary.BigEndian.Uint64(h[8:]), payload: h[walHeader : walHeader+n]})
		off += walHeader + n
	}
	w = &walFile{f: f, path: path, size: off}
	if cut = int64(len(data)) - off; cut > 0 {
		if err := w.truncate(off); err != nil {
			f.Close()
			return nil, nil, 0, err
		}
	}
	return w, recs, cut, nil
}

// encodeRecord appends a record's header and payload to b.
func encodeRecord(b []byte, seq uint64, payload []byte) []byte {
	start := len(b)
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	b = binary.BigEndian.AppendUint32(b, 0)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = append(b, payload...)
	binary.BigEndian.PutUint32(b[start+4:], crc32.Checksum(b[start+8:], castagnoli))
	return b
}

// rewrite replaces the log with recs, the records bbolt has not applied
// yet, so that a log under a load that never pauses does not grow without
// end. The new log is written beside the old one, synced and renamed over
// it: a crash at any point leaves one complete log holding every record
// bbolt lacks. On a failure before the rename the old log stays in use.
// After the rename the directory must be synced before a record is
// appended to the new log (a crash could otherwise bring the old one
// back): append does it while dirSync is set.
func (w *walFile) rewrite(recs []walRecord) error {
	tmp := w.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	var size int64
	for _, r := range recs {
		b := encodeRecord(w.buf[:0], r.seq, r.payload)
		w.buf = b
		if _, err = f.WriteAt(b, size); err != nil {
			break
		}
		size += int64(len(b))
	}
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = os.Rename(tmp, w.path)
	}
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	old := w.f
	w.f, w.size, w.dirSync = f, size, true
	old.Close()
	return nil
}

// syncDir makes the directory entries of dir durable (a rename in it).
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// append writes a record and syncs it. When either fails, the record is cut
// off again, so that a later record never follows a torn one.
func (w *walFile) append(seq uint64, payload []byte) error {
	if w.dirSync {
		if err := syncDir(filepath.Dir(w.path)); err != nil {
			return fmt.Errorf("sync the directory after rewriting the log: %w", err)
		}
		w.dirSync = false
	}
	b := encodeRecord(w.buf[:0], seq, payload)
	w.buf = b
	_, err := w.f.WriteAt(b, w.size)
	if err == nil {
		err = fdatasync(w.f)
	}
	if err != nil {
		if terr := w.truncate(w.size); terr != nil {
			return fmt.Errorf("%w (and cutting the record off failed: %v)", err, terr)
		}
		return err
	}
	w.size += int64(len(b))
	return nil
}

// truncate cuts the log to size bytes and syncs that. Once the file is cut
// the next record goes at its new end, even when the sync fails (the next
// append's sync covers the size too): a record written past it would leave
// a hole that reads as a torn tail.
func (w *walFile) truncate(size int64) error {
	if err := w.f.Truncate(size); err != nil {
		return err
	}
	w.size = size
	return fdatasync(w.f)
}

func (w *walFile) close() error { return w.f.Close() }

// fdatasync flushes f's data and size, not its other metadata.
func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// appendLogged appends one write of a logged group: the task id, its state
// and body records and its new history entries, each record as a uvarint
// length and its bytes. It returns where in b the state and body records
// begin, so that the overlay can keep them there.
func appendLogged(b []byte, w *write) (_ []byte, stateAt, bodyAt int) {
	id := w.new.ID
	b = append(b, id[:]...)
	b = binary.AppendUvarint(b, uint64(len(w.state)))
	stateAt = len(b)
	b = append(b, w.state...)
	b = binary.AppendUvarint(b, uint64(len(w.body)))
	bodyAt = len(b)
	b = append(b, w.body...)
	b = binary.AppendUvarint(b, uint64(len(w.history)))
	for _, h := range w.history {
		b = appendBytes(b, h)
	}
	return b, stateAt, bodyAt
}

// loggedSize is how many bytes appendLogged appends for w, at most.
func loggedSize(w *write) int {
	n := 16 + 3*binary.MaxVarintLen32 + len(w.state) + len(w.body)
	for _, h := range w.history {
		n += binary.MaxVarintLen32 + len(h)
	}
	return n
}

// eachLogged calls fn with each write of a record's payload (a count, then
// appendLogged's writes), its records sliced from payload.
func eachLogged(payload []byte, fn func(id uuid.UUID, state, body []byte, history [][]byte) error) error {
	r := &reader{b: payload}
	var history [][]byte
	for range r.count() {
		var id uuid.UUID
		copy(id[:], r.next(len(id)))
		state, body := r.view(), r.view()
		history = history[:0]
		for range r.count() {
			history = append(history, r.view())
		}
		if r.err != nil {
			return r.err
		}
		if err := fn(id, state, body, history); err != nil {
			return err
		}
	}
	r.end()
	return r.err
}

// view is bytes without the copy: the slice of r's input, capped at its
// length so that an append cannot write over what follows.
func (r *reader) view() []byte {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail(errShort)
		return nil
	}
	b := r.next(int(n))
	return b[:len(b):len(b)]
}

// decodeLogged decodes a record's payload into writes the applier takes:
// each with the new task's header, its records, history and audit entries.
// The records are slices of payload.
func decodeLogged(payload []byte) ([]write, error) {
	var ws []write
	err := eachLogged(payload, func(id uuid.UUID, state, body []byte, history [][]byte) error {
		w := write{state: state, body: body, history: slices.Clone(history)}
		t, err := decodeState(id, w.state)
		if err == nil {
			err = decodeBody(t, w.body, false)
		}
		if err != nil {
			return fmt.Errorf("task %s: %w", id, err)
		}
		w.new = t
		for _, hb := range w.history {
			h, err := decodeHistory(hb)
			if err != nil {
				return fmt.Errorf("task %s: history: %w", id, err)
			}
			if !h.Audited() {
				continue
			}
			a := store.NewAuditEntry(t, &h)
			ab, err := encodeAudit(&a)
			if err != nil {
				return err
			}
			w.audit = append(w.audit, kv{auditKey(h.At, id, h.Seq), ab})
		}
		ws = append(ws, w)
		return nil
	})
	return ws, err
}

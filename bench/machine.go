package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Machine describes where the numbers were taken.
type Machine struct {
	CPUs int `json:"cpus"`
	// Procs is GOMAXPROCS: conveyor runs one more than CPUs (see main).
	Procs     int    `json:"gomaxprocs"`
	Model     string `json:"model"`
	MemoryMiB int64  `json:"memory_mib"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
	// Dir is where the databases were; FsyncP50ms and FsyncP99ms are the
	// latencies of a 4 KiB write plus fdatasync there.
	Dir        string  `json:"dir"`
	FsyncP50ms float64 `json:"fsync_p50_ms"`
	FsyncP99ms float64 `json:"fsync_p99_ms"`
	// ScatteredMs and ContiguousMs are the median times to write
	// probePages 4 KiB pages and fdatasync them, at random places in a
	// file and side by side: what a bbolt commit that touched that many
	// B-tree pages costs the disk, and what it would cost if its pages
	// were adjacent. Their ratio is how much this disk charges per
	// separate write.
	ScatteredMs  float64 `json:"scattered_pages_sync_ms"`
	ContiguousMs float64 `json:"contiguous_pages_sync_ms"`
	// LoadAverage is the 1-minute load before the run: other work on the
	// machine makes every number worse.
	LoadAverage string `json:"load_average"`
}

// fsyncProbes is how many write+fdatasync rounds measure the disk.
const fsyncProbes = 200

// probePages is how many pages a round of pageSync writes: about what a
// group commit of the seed flow at 64 clients writes (BENCHMARKS.md).
// pageRounds rounds of each layout run in a file of probeFile bytes.
const (
	probePages = 48
	pageRounds = 15
	probeFile  = 64 << 20
)

func probeMachine(dir string) (Machine, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	m := Machine{CPUs: runtime.NumCPU(), Procs: runtime.GOMAXPROCS(0), Model: cpuModel(), GoVersion: runtime.Version(), Dir: dir}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.LoadAverage = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	if kb, ok := procField("/proc/meminfo", "MemTotal"); ok {
		m.MemoryMiB = kb >> 10
	}
	ds, err := fsyncLatency(dir, fsyncProbes)
	if err != nil {
		return m, fmt.Errorf("bench: measure fsync in %s: %w", dir, err)
	}
	m.FsyncP50ms, m.FsyncP99ms = ms(quantile(ds, 0.5)), ms(quantile(ds, 0.99))
	scattered, contiguous, err := pageSync(dir)
	if err != nil {
		return m, fmt.Errorf("bench: measure page writes in %s: %w", dir, err)
	}
	m.ScatteredMs, m.ContiguousMs = ms(scattered), ms(contiguous)
	return m, nil
}

// pageSync returns the median times to write probePages pages and
// fdatasync them, scattered over a file of probeFile bytes (in offset
// order, as bbolt writes them) and side by side.
func pageSync(dir string) (scattered, contiguous time.Duration, err error) {
	f, err := os.CreateTemp(dir, "conveyor-bench-pages-")
	if err != nil {
		return 0, 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	// Write the file first, so that no round pays for allocating blocks.
	if _, err := f.Write(make([]byte, probeFile)); err != nil {
		return 0, 0, err
	}
	if err := fdatasync(f); err != nil {
		return 0, 0, err
	}
	page := bytes.Repeat([]byte{0x5a}, 4096)
	const pages = probeFile / 4096
	round := func(ids []int) (time.Duration, error) {
		start := time.Now()
		for _, id := range ids {
			if _, err := f.WriteAt(page, int64(id)*4096); err != nil {
				return 0, err
			}
		}
		err := fdatasync(f)
		return time.Since(start), err
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))
	var s, c []time.Duration
	for range pageRounds {
		ids := make([]int, probePages)
		for i := range ids {
			ids[i] = rng.IntN(pages)
		}
		slices.Sort(ids)
		d, err := round(ids)
		if err != nil {
			return 0, 0, err
		}
		s = append(s, d)
		first := rng.IntN(pages - probePages)
		for i := range ids {
			ids[i] = first + i
		}
		if d, err = round(ids); err != nil {
			return 0, 0, err
		}
		c = append(c, d)
	}
	return quantile(s, 0.5), quantile(c, 0.5), nil
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// fsyncLatency times n rounds of a 4 KiB write and a data sync (bbolt's
// commit ends in one) in a fresh file in dir.
func fsyncLatency(dir string, n int) ([]time.Duration, error) {
	f, err := os.CreateTemp(dir, "conveyor-bench-fsync-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	page := bytes.Repeat([]byte{0xa5}, 4096)
	ds := make([]time.Duration, 0, n)
	for i := range n {
		start := time.Now()
		if _, err := f.WriteAt(page, int64(i%64)*4096); err != nil {
			return nil, err
		}
		if err := fdatasync(f); err != nil {
			return nil, err
		}
		ds = append(ds, time.Since(start))
	}
	return ds, nil
}

// memory is the process's resident memory, from /proc/self/status.
type memory struct {
	RSS, Anon, File, HWM int64 // bytes
}

func readMemory() memory {
	var m memory
	for name, dst := range map[string]*int64{"VmRSS": &m.RSS, "RssAnon": &m.Anon, "RssFile": &m.File, "VmHWM": &m.HWM} {
		if kb, ok := procField("/proc/self/status", name); ok {
			*dst = kb << 10
		}
	}
	return m
}

// diskWritten is how many bytes this process has caused to be written to
// the disk (/proc/self/io write_bytes), -1 when unknown.
func diskWritten() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				return n
			}
		}
	}
	return -1
}

// procField reads a "Name:   123 kB" line of a /proc file, in kB.
func procField(path, name string) (int64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != name {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			return 0, false
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		return n, err == nil
	}
	return 0, false
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// cpuSample is the CPU time this process and the whole machine had used at
// one moment.
type cpuSample struct {
	at    time.Time
	self  time.Duration // user+system time of this process
	busy  time.Duration // user+system time of every CPU of the machine
	irq   time.Duration // interrupts and softirqs (loopback TCP runs there too)
	steal time.Duration // taken by the hypervisor for other guests
	valid bool
}

func sampleCPU() cpuSample {
	s := cpuSample{at: time.Now()}
	self, ok := processCPU()
	if !ok {
		return s
	}
	s.self = self
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return s
	}
	// user nice system idle iowait irq softirq steal (guest time is
	// already in user and nice).
	var n [8]int64
	for i := range n {
		v, err := strconv.ParseInt(f[i+1], 10, 64)
		if err != nil {
			return s
		}
		n[i] = v
	}
	tick := func(v int64) time.Duration { return time.Duration(v) * time.Second / clockTicks }
	s.busy = tick(n[0] + n[1] + n[2])
	s.irq = tick(n[5] + n[6])
	s.steal = tick(n[7])
	s.valid = true
	return s
}

// clockTicks is USER_HZ, the unit of /proc/stat: 100 on every Linux
// architecture Go runs on.
const clockTicks = 100

// cpuUse is how many CPUs were busy, on average, between two samples: this
// process, other processes, interrupt handling (the machine's, this
// process's loopback traffic included) and the hypervisor's steal.
type cpuUse struct {
	Self, Others, IRQ, Steal float64
}

func cpuBetween(a, b cpuSample) cpuUse {
	if !a.valid || !b.valid {
		return cpuUse{}
	}
	wall := b.at.Sub(a.at).Seconds()
	self := (b.self - a.self).Seconds() / wall
	all := (b.busy - a.busy).Seconds() / wall
	return cpuUse{Self: self, Others: max(0, all-self), IRQ: (b.irq - a.irq).Seconds() / wall, Steal: (b.steal - a.steal).Seconds() / wall}
}

func (u cpuUse) String() string {
	return fmt.Sprintf("this process %.2f, other processes %.2f, interrupts %.2f, hypervisor steal %.2f", u.Self, u.Others, u.IRQ, u.Steal)
}

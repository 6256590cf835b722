package main

// procs is the GOMAXPROCS conveyor runs with: one more than the runtime's
// default (the CPUs it may use), unless GOMAXPROCS is set in the
// environment, which wins.
//
// The store's writer spends much of its time in fdatasync, and Go keeps
// the processor (P) of a goroutine blocked in a system call until its
// monitor notices and hands the P to other work (20 µs to 10 ms later):
// with as many Ps as CPUs, one CPU sat idle during many fsyncs (1.6 of 2
// CPUs busy on the seed benchmark). The extra P runs Go
// code meanwhile. On the 2-CPU benchmark machine it raised the seed flow
// from ~1,950 to ~2,550 flows/s at 64 clients with lower p50 and p99
// latency, and every other throughput scenario by 15-20 % (BENCHMARKS.md).
func procs(env string, runtimeDefault int) int {
	if env != "" {
		return runtimeDefault // the runtime has already applied it
	}
	return runtimeDefault + 1
}

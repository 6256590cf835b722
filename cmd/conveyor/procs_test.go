package main

import "testing"

func TestProcs_oneMoreThanTheCPUsUnlessGOMAXPROCSIsSet(t *testing.T) {
	for _, c := range []struct {
		env  string
		def  int
		want int
	}{
		{"", 2, 3},
		{"", 1, 2},
		{"", 16, 17},
		{"2", 2, 2}, // the runtime applied GOMAXPROCS=2: keep it
		{"8", 8, 8},
	} {
		if got := procs(c.env, c.def); got != c.want {
			t.Errorf("procs(GOMAXPROCS=%q, runtime default %d) = %d, want %d", c.env, c.def, got, c.want)
		}
	}
}

package main

import (
	"runtime/debug"
	"testing"
)

func TestLimitHeap(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	tests := []struct {
		name      string
		env       map[string]string
		cpus      int
		wantSet   bool
		wantLimit int64
	}{
		{name: "1 CPU", cpus: 1, wantSet: true, wantLimit: 96 << 20},
		{name: "2 CPUs, as measured", cpus: 2, wantSet: true, wantLimit: 128 << 20},
		// 8 workers keep ~280 MiB of blocks and dictionaries live.
		{name: "8 CPUs", cpus: 8, wantSet: true, wantLimit: 320 << 20},
		{name: "GOMEMLIMIT wins", env: map[string]string{"GOMEMLIMIT": "1GiB"}, cpus: 2, wantSet: false, wantLimit: 12345 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A sentinel that only limitHeap can change.
			debug.SetMemoryLimit(12345 << 20)
			set := limitHeap(func(k string) string { return tt.env[k] }, tt.cpus)
			if set != tt.wantSet {
				t.Errorf("limitHeap set = %v, want %v", set, tt.wantSet)
			}
			if got := debug.SetMemoryLimit(-1); got != tt.wantLimit {
				t.Errorf("memory limit = %d, want %d", got, tt.wantLimit)
			}
		})
	}
}

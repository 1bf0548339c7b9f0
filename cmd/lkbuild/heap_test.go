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
		wantSet   bool
		wantLimit int64
	}{
		{name: "default", env: nil, wantSet: true, wantLimit: heapLimit},
		{name: "GOMEMLIMIT wins", env: map[string]string{"GOMEMLIMIT": "1GiB"}, wantSet: false, wantLimit: 12345 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A sentinel that only limitHeap can change.
			debug.SetMemoryLimit(12345 << 20)
			set := limitHeap(func(k string) string { return tt.env[k] })
			if set != tt.wantSet {
				t.Errorf("limitHeap set = %v, want %v", set, tt.wantSet)
			}
			if got := debug.SetMemoryLimit(-1); got != tt.wantLimit {
				t.Errorf("memory limit = %d, want %d", got, tt.wantLimit)
			}
		})
	}
}

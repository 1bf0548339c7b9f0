package cachedir

import (
	"slices"
	"testing"
	"time"
)

// TestSelect: what a prune picks, least recently used first; scratch
// space is never picked but counts towards the size.
func TestSelect(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	entry := func(kind, name string, size int64, age time.Duration) Entry {
		return Entry{Kind: kind, Name: name, Size: size, Used: now.Add(-age)}
	}
	// In Entries' order (by kind), not by age.
	entries := []Entry{
		entry(KindRootfs, "rootfs-5d", 400, 5*day),
		entry(KindRootfs, "rootfs-60d", 300, 60*day),
		entry(KindSource, "source-40d", 200, 40*day),
		entry(KindTree, "tree-1d", 100, 1*day),
		entry(KindLog, "log-10d", 10, 10*day),
		{Kind: KindLog, Name: "log-never", Size: 5}, // Used zero: older than all
		entry(KindWork, "work-90d", 1000, 90*day),
	}
	// total: 2015 bytes, 1000 of them scratch space.
	for _, tc := range []struct {
		name string
		o    PruneOptions
		want []string
	}{
		{"zero options", PruneOptions{Now: now}, nil},
		{"older than 30d", PruneOptions{OlderThan: 30 * day, Now: now}, []string{"log-never", "rootfs-60d", "source-40d"}},
		{"older than 7d", PruneOptions{OlderThan: 7 * day, Now: now}, []string{"log-never", "rootfs-60d", "source-40d", "log-10d"}},
		{"older than all", PruneOptions{OlderThan: 100 * day, Now: now}, []string{"log-never"}},
		{"max size above total", PruneOptions{MaxSize: 5000, Now: now}, nil},
		{"max size equal to total", PruneOptions{MaxSize: 2015, Now: now}, nil},
		// 2015-5-300 = 1710 <= 1800.
		{"max size", PruneOptions{MaxSize: 1800, Now: now}, []string{"log-never", "rootfs-60d"}},
		// Scratch space counts: 1000 of the 1100 are work, so all but
		// the newest entry go.
		{"max size counts work", PruneOptions{MaxSize: 1100, Now: now}, []string{"log-never", "rootfs-60d", "source-40d", "log-10d", "rootfs-5d"}},
		{"max size below work", PruneOptions{MaxSize: 1, Now: now}, []string{"log-never", "rootfs-60d", "source-40d", "log-10d", "rootfs-5d", "tree-1d"}},
		// Old ones go whatever the size; then LRU down to the size.
		{"both, age decides", PruneOptions{OlderThan: 30 * day, MaxSize: 5000, Now: now}, []string{"log-never", "rootfs-60d", "source-40d"}},
		{"both, size decides", PruneOptions{OlderThan: 50 * day, MaxSize: 1500, Now: now}, []string{"log-never", "rootfs-60d", "source-40d", "log-10d"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, e := range Select(entries, tc.o) {
				if e.Kind == KindWork {
					t.Errorf("scratch space %s picked", e.Name)
				}
				got = append(got, e.Name)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("picked %q, want %q", got, tc.want)
			}
		})
	}
	if entries[0].Name != "rootfs-5d" || entries[1].Name != "rootfs-60d" {
		t.Errorf("Select reordered its argument: %v", entries)
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseAge(t *testing.T) {
	day := 24 * time.Hour
	for _, tc := range []struct {
		in   string
		want time.Duration // 0: refused
	}{
		{"30d", 30 * day},
		{"1.5d", 36 * time.Hour},
		{"36h", 36 * time.Hour},
		{"90m", 90 * time.Minute},
		{"45s", 45 * time.Second},
		{"1h30m", 90 * time.Minute},
		{"100000d", 100000 * day},
		{"", 0},
		{"0", 0},
		{"0d", 0},
		{"0s", 0},
		{"-1d", 0},
		{"-5h", 0},
		{"abc", 0},
		{"d", 0},
		{"30x", 0},
		{"30", 0},
		{"30 d", 0},
		{"100001d", 0},
		{"1e30d", 0},
		{"NaNd", 0},
		{"Infd", 0},
	} {
		got, err := parseAge(tc.in)
		if tc.want == 0 {
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.in)) {
				t.Errorf("parseAge(%q) = %v, %v: want an error quoting it", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseAge(%q) = %v, %v, want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64 // 0: refused
	}{
		{"20GB", 20e9},
		{"10 GB", 10e9},
		{"500MB", 500e6},
		{"2KB", 2000},
		{"1TB", 1e12},
		{"512MiB", 512 << 20},
		{"1.5GiB", 3 << 29},
		{"1KiB", 1024},
		{"2TiB", 2 << 40},
		{"1B", 1},
		{"1000000", 1000000},
		{"", 0},
		{"0", 0},
		{"0B", 0},
		{"-1", 0},
		{"-1d", 0},
		{"-5GB", 0},
		{"abc", 0},
		{"GB", 0},
		{"30x", 0},
		{"1e30GB", 0},
		{"1e30", 0},
		{"8EiB", 0},
		{"NaN", 0},
		{"NaNGB", 0},
		{"Inf", 0},
	} {
		got, err := parseSize(tc.in)
		if tc.want == 0 {
			if err == nil {
				t.Errorf("parseSize(%q) = %d: want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v, want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestHumanSize(t *testing.T) {
	for _, tc := range []struct {
		in   int64
		want string
	}{
		{0, "0 B"},
		{1, "1 B"},
		{999, "999 B"},
		{1000, "1.0 kB"},
		{1500, "1.5 kB"},
		{4096, "4.1 kB"},
		{1e6, "1.0 MB"},
		{1 << 20, "1.0 MB"},
		{20e9, "20.0 GB"},
		{1.5e12, "1.5 TB"},
		{2e15, "2000.0 TB"},
	} {
		if got := humanSize(tc.in); got != tc.want {
			t.Errorf("humanSize(%d) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestAgo(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		{time.Time{}, "never"},
		{now, "just now"},
		{now.Add(-59 * time.Second), "just now"},
		{now.Add(time.Hour), "just now"}, // a clock set back
		{now.Add(-time.Minute), "1 min ago"},
		{now.Add(-59 * time.Minute), "59 min ago"},
		{now.Add(-time.Hour), "1 h ago"},
		{now.Add(-47 * time.Hour), "47 h ago"},
		{now.Add(-48 * time.Hour), "2 days ago"},
		{now.Add(-30*24*time.Hour - time.Hour), "30 days ago"},
	} {
		if got := ago(now, tc.t); got != tc.want {
			t.Errorf("ago(%v) = %q, want %q", now.Sub(tc.t), got, tc.want)
		}
	}
}

// cacheWithLogs makes a cache holding two logs and an archive.
func cacheWithLogs(t *testing.T) (string, []string) {
	t.Helper()
	cache := filepath.Join(t.TempDir(), "cache")
	files := []string{
		filepath.Join(cache, "logs", "a.log"),
		filepath.Join(cache, "logs", "b.log"),
		filepath.Join(cache, "archives", "linux-6.12.1.tar.xz"),
	}
	for _, f := range files {
		if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte(strings.Repeat("x", 5000)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return cache, files
}

// TestCacheCommand: the listing, as a table and as JSON.
func TestCacheCommand(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "cache")
	out := lkbuildOK(t, "--cache-dir", empty, "cache")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[0]), " ") != "KIND SIZE LAST USED NAME" ||
		!strings.HasPrefix(lines[1], "0 entries, 0 B in "+empty) {
		t.Errorf("lkbuild cache of an empty cache:\n%s", out)
	}
	if out := lkbuildOK(t, "--cache-dir", empty, "cache", "--json"); out != "" {
		t.Errorf("lkbuild cache --json of an empty cache: %q", out)
	}

	cache, _ := cacheWithLogs(t)
	out = lkbuildOK(t, "--cache-dir", cache, "cache")
	for _, want := range []string{"archive ", "linux-6.12.1.tar.xz", "log ", "a.log", "b.log", "3 entries, "} {
		if !strings.Contains(out, want) {
			t.Errorf("lkbuild cache: no %q in\n%s", want, out)
		}
	}

	out = lkbuildOK(t, "--cache-dir", cache, "cache", "--json")
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("lkbuild cache --json: %d lines, want 3:\n%s", len(lines), out)
	}
	var names []string
	for _, l := range lines {
		var e map[string]any
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("lkbuild cache --json: %q: %v", l, err)
		}
		for _, k := range []string{"kind", "name", "size", "used", "paths"} {
			if _, ok := e[k]; !ok {
				t.Errorf("lkbuild cache --json: no %q in %s", k, l)
			}
		}
		if size, _ := e["size"].(float64); size <= 0 {
			t.Errorf("lkbuild cache --json: size %v in %s", e["size"], l)
		}
		if used, _ := e["used"].(string); used == "" || strings.HasPrefix(used, "0001-") {
			t.Errorf("lkbuild cache --json: used %v in %s", e["used"], l)
		}
		names = append(names, e["kind"].(string)+" "+e["name"].(string))
	}
	if got := strings.Join(names, ", "); got != "archive linux-6.12.1.tar.xz, log b.log, log a.log" &&
		got != "archive linux-6.12.1.tar.xz, log a.log, log b.log" {
		t.Errorf("lkbuild cache --json: entries %s", got)
	}

	_, stderr, code := lkbuild(t, "--cache-dir", cache, "cache", "clean")
	if code == 0 || !strings.Contains(stderr, `unexpected argument "clean"`) {
		t.Errorf("lkbuild cache clean: exit %d, %s", code, stderr)
	}
}

// TestCachePrune: prune needs to be told what to remove, takes only good
// values, and a dry run removes nothing.
func TestCachePrune(t *testing.T) {
	cache, files := cacheWithLogs(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "--older-than"},
		{[]string{"--dry-run"}, "--older-than"},
		{[]string{"--older-than", "abc"}, `--older-than: "abc"`},
		{[]string{"--older-than", "-1d"}, `--older-than: "-1d"`},
		{[]string{"--max-size", "0"}, `--max-size: "0"`},
		{[]string{"--max-size", "lots"}, `--max-size: "lots"`},
		{[]string{"--older-than", "30d", "now"}, `unexpected argument "now"`},
	} {
		_, stderr, code := lkbuild(t, append([]string{"--cache-dir", cache, "cache", "prune"}, tc.args...)...)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("lkbuild cache prune %q: exit %d, stderr %q, want %q", tc.args, code, stderr, tc.want)
		}
	}
	check := func(what string) {
		t.Helper()
		for _, f := range files {
			if _, err := os.Stat(f); err != nil {
				t.Errorf("%s: %v", what, err)
			}
		}
	}
	check("failed prunes")

	out := lkbuildOK(t, "--cache-dir", cache, "cache", "prune", "--max-size", "1B", "--dry-run")
	for _, want := range []string{"would remove log a.log (", "would remove log b.log (", "would remove archive linux-6.12.1.tar.xz (", "would remove 3 entries, "} {
		if !strings.Contains(out, want) {
			t.Errorf("prune --dry-run: no %q in\n%s", want, out)
		}
	}
	if strings.Contains(out, "removed") {
		t.Errorf("prune --dry-run says it removed:\n%s", out)
	}
	check("prune --dry-run")

	// Nothing is 30 days old.
	out = lkbuildOK(t, "--cache-dir", cache, "cache", "prune", "--older-than", "30d")
	if !strings.HasPrefix(out, "removed 0 entries, 0 B; ") {
		t.Errorf("prune --older-than 30d of a new cache:\n%s", out)
	}
	check("prune --older-than 30d")

	out = lkbuildOK(t, "--cache-dir", cache, "cache", "prune", "--max-size", "1B")
	if !strings.Contains(out, "removed log a.log") || !strings.Contains(out, "removed 3 entries, ") {
		t.Errorf("prune --max-size 1B:\n%s", out)
	}
	for _, f := range files {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("prune --max-size 1B left %s: %v", f, err)
		}
	}
	if out := lkbuildOK(t, "--cache-dir", cache, "cache"); !strings.Contains(out, "0 entries, 0 B in ") {
		t.Errorf("lkbuild cache after the prune:\n%s", out)
	}
}

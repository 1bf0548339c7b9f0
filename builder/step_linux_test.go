package builder

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lkbuild/lkbuild/internal/rootfstest"
	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/sandbox"
)

// TestStepActionInSandbox runs a step action the way the pipeline does:
// lkbuild itself, re-executed inside the sandbox, sees the merged source
// overlay that exists only there.
func TestStepActionInSandbox(t *testing.T) {
	rootfs := fixtures.Need(t, rootfstest.AMD64)
	dir := t.TempDir()
	lower, upper, out := filepath.Join(dir, "lower"), filepath.Join(dir, "upper"), filepath.Join(dir, "out")
	for _, d := range []string{lower, upper, out} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(lower, "a"), []byte("pristine\n"), 0o644)
	os.WriteFile(filepath.Join(upper, "a"), []byte("changed\n"), 0o644)
	req, err := newStepRequest(&kernel.FileCopy{From: []string{"/src/a"}, To: "/out/a"}, time.Unix(0, 0), nil)
	if err != nil {
		t.Fatal(err)
	}
	in, _ := json.Marshal(req)
	var stdout bytes.Buffer
	spec := sandbox.Spec{
		Rootfs: rootfs, StateDir: t.TempDir(),
		Args: []string{"/proc/self/exe", StepArg}, Env: []string{"PATH=" + kernel.DefaultPath},
		Stdin: bytes.NewReader(in), Stdout: &stdout,
		Mounts: []sandbox.Mount{
			{Target: "/src", Overlay: &sandbox.Overlay{Lower: []string{upper, lower}}},
			{Source: out, Target: "/out"},
		},
	}
	if err := sandbox.Run(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	var res stepResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil || res.Error != "" {
		t.Errorf("step result %q (%v)", stdout.String(), err)
	}
	if got, _ := os.ReadFile(filepath.Join(out, "a")); string(got) != "changed\n" {
		t.Errorf("the step copied %q", got)
	}
}

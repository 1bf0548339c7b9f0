package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func matrixIDs(t *testing.T, out string) []string {
	t.Helper()
	var entries []struct {
		Index int      `json:"index"`
		ID    string   `json:"id"`
		Ref   string   `json:"ref"`
		Args  []string `json:"args"`
	}
	if err := json.Unmarshal([]byte(out), &entries); err != nil {
		t.Fatalf("lkbuild matrix printed no JSON list: %v\n%s", err, out)
	}
	ids := []string{}
	for _, e := range entries {
		ids = append(ids, e.ID)
		if e.Ref == "" || len(e.Args) < 2 || e.Args[0] != "build" {
			t.Errorf("entry %+v: no image or build arguments", e)
		}
	}
	return ids
}

func TestMatrix(t *testing.T) {
	testGit(t)
	k := kernelRepo(t, "kernel", seriesKernelFiles())
	all := []string{
		"6.12.x/aarch64/plain", "6.12.x/aarch64/debug", "6.12.x/x86_64/plain", "6.12.x/x86_64/debug",
		"6.6.x/aarch64/plain", "6.6.x/aarch64/debug", "6.6.x/riscv64/plain", "6.6.x/riscv64/debug",
		"6.6.x/x86_64/plain", "6.6.x/x86_64/debug",
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string
		err  string
	}{
		{name: "everything", want: all},
		{name: "a series and an arch", args: []string{"--series", "6.6.x", "--arch", "riscv64", "--arch", "amd64"},
			want: []string{"6.6.x/riscv64/plain", "6.6.x/riscv64/debug", "6.6.x/x86_64/plain", "6.6.x/x86_64/debug"}},
		{name: "plain kernels and perf", args: []string{"--series", "6.12.x", "--variant", "plain", "--variant", "perf"},
			want: []string{"6.12.x/aarch64/plain", "6.12.x/aarch64/perf", "6.12.x/x86_64/plain", "6.12.x/x86_64/perf"}},
		{name: "an arch no series has a config for", args: []string{"--series", "6.12.x", "--arch", "riscv64"}, want: []string{}},
		{name: "no variant series", args: []string{"--extra", "-rt"}, want: []string{}},
		{name: "a deprecated series", args: []string{"--series", "5.15.x"}, err: "no series 5.15.x that is built by default"},
		{name: "bcc", args: []string{"--variant", "bcc"}, err: "bcc needs LLVM"},
		{name: "a bad arch", args: []string{"--arch", "sparc"}, err: "sparc"},
		{name: "a bad format", args: []string{"--format", "yaml"}, err: `--format "yaml": want json, github or k8s`},
		{name: "k8s without its image", args: []string{"--format", "k8s"}, err: "--format k8s needs --job-image"},
		{name: "a Job name Kubernetes refuses", args: []string{"--format", "k8s", "--job-image", "x", "--job-name", "Kernels_1"}, err: `--job-name "Kernels_1": a Job's name is a DNS label`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, stderr, code := lkbuild(t, append([]string{"matrix", "--all", "--kernel-dir", k}, tc.args...)...)
			if tc.err != "" {
				if code == 0 || !strings.Contains(stderr, tc.err) {
					t.Fatalf("exit %d, want an error saying %q:\n%s", code, tc.err, stderr)
				}
				return
			}
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, stderr)
			}
			if got := matrixIDs(t, out); !slices.Equal(got, tc.want) {
				t.Errorf("targets %q\nwant %q", got, tc.want)
			}
		})
	}

	// The arguments build the target alone; an index is its place.
	out := lkbuildOK(t, "matrix", "--all", "--kernel-dir", k, "--org", "registry.example/lk", "--series", "6.6.x", "--arch", "x86_64", "--variant", "debug")
	var e []matrixEntry
	if err := json.Unmarshal([]byte(out), &e); err != nil || len(e) != 1 {
		t.Fatalf("%v: %s", err, out)
	}
	want := []string{"build", "--push", "--kernel-dir", k, "--org", "registry.example/lk", "--image", "kernel", "--series", "6.6.x", "--arch", "x86_64", "--debug"}
	if !slices.Equal(e[0].Args, want) || e[0].Version != "6.6.71" || !strings.HasPrefix(e[0].Ref, "registry.example/lk/kernel:6.6.71-dbg-") || !strings.HasSuffix(e[0].Ref, "-amd64") {
		t.Errorf("entry %+v\nwant args %q", e[0], want)
	}
}

// build --matrix-index, --matrix-targets, JOB_COMPLETION_INDEX and
// --matrix-target pick one target; the build then runs as lkbuild build
// with its flags (here it stops at the fetch: offline, nothing cached).
func TestBuildMatrixTarget(t *testing.T) {
	testGit(t)
	k := kernelRepo(t, "kernel", seriesKernelFiles())
	list := "6.6.x/x86_64/debug 6.12.x/aarch64/perf 6.6.x/riscv64/plain"
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want []string
		err  string
	}{
		{name: "an index of the whole matrix", args: []string{"--matrix-index", "3"},
			want: []string{"matrix target 3 of 10: 6.12.x/x86_64/debug", "building linuxkit/kernel:6.12.59-dbg-"}},
		{name: "an index of a list", args: []string{"--matrix-index", "1", "--matrix-targets", list},
			want: []string{"matrix target 1 of 3 in --matrix-targets: 6.12.x/aarch64/perf", "building linuxkit/kernel-perf:6.12.59-"}},
		{name: "Kubernetes' index", env: map[string]string{"JOB_COMPLETION_INDEX": "2", "LKBUILD_MATRIX_TARGETS": list},
			want: []string{"matrix target 2 of 3 in --matrix-targets: 6.6.x/riscv64/plain", "building linuxkit/kernel:6.6.71-"}},
		{name: "an id", args: []string{"--matrix-target", "6.6.x/aarch64/debug"}, want: []string{"matrix target: 6.6.x/aarch64/debug", "building linuxkit/kernel:6.6.71-dbg-"}},
		{name: "an index out of the list", args: []string{"--matrix-index", "3", "--matrix-targets", list}, err: "matrix index 3: --matrix-targets lists 3 targets (0 to 2)"},
		{name: "an index out of the matrix", args: []string{"--matrix-index", "10"}, err: "matrix index 10: the matrix has 10 targets (0 to 9"},
		{name: "an unknown id", args: []string{"--matrix-target", "6.6.x/x86_64/rt"}, err: `no matrix target "6.6.x/x86_64/rt"`},
		{name: "a list without an index", args: []string{"--matrix-targets", list}, err: "--matrix-targets needs --matrix-index"},
		{name: "an index and a series", args: []string{"--matrix-index", "0", "--series", "6.6.x"}, err: "--series and the matrix target both name what to build"},
		{name: "Kubernetes' index and an arch", args: []string{"--arch", "x86_64"}, env: map[string]string{"JOB_COMPLETION_INDEX": "0"}, err: "--arch and the matrix target"},
		{name: "an index and an id", args: []string{"--matrix-index", "0", "--matrix-target", "6.6.x/x86_64/plain"}, err: "give one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			dir := t.TempDir()
			args := append([]string{"--cache-dir", filepath.Join(dir, "cache"), "--offline", "build", "--kernel-dir", k,
				"--output", filepath.Join(dir, "oci")}, tc.args...)
			_, stderr, code := lkbuild(t, args...)
			if tc.err != "" {
				if code == 0 || !strings.Contains(stderr, tc.err) || strings.Contains(stderr, "building ") {
					t.Fatalf("exit %d, want an error saying %q before any build:\n%s", code, tc.err, stderr)
				}
				return
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}

// A registry that cannot be reached is exit code 3, for a CI engine to
// retry; a failed build is 1.
func TestExitCodeOfARegistryFault(t *testing.T) {
	testGit(t)
	k := kernelRepo(t, "kernel", seriesKernelFiles())
	dir := t.TempDir()
	// Nothing listens on port 1 of the loopback.
	_, stderr, code := lkbuild(t, "--cache-dir", filepath.Join(dir, "cache"), "build", "--push", "--insecure-registry",
		"--kernel-dir", k, "--series", "6.6.x", "--arch", "x86_64", "--org", "127.0.0.1:1/lk", "--output", filepath.Join(dir, "oci"))
	if code != exitRegistryFault || !strings.Contains(stderr, "127.0.0.1:1") {
		t.Errorf("exit %d, want %d naming the registry:\n%s", code, exitRegistryFault, stderr)
	}
	_, _, code = lkbuild(t, "matrix", "--kernel-dir", k, "--org", "127.0.0.1:1/lk", "--insecure-registry")
	if code != exitRegistryFault {
		t.Errorf("lkbuild matrix's skip check: exit %d, want %d", code, exitRegistryFault)
	}
}

// examplesDir holds the examples the README shows, generated from
// testdata/kernel by lkbuild matrix; the tests below make them again.
func examplesDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.Abs(filepath.Join("..", "..", "examples", "matrix"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// testdataCheckout is a git repository holding a copy of testdata/kernel
// at kernel/, as a LinuxKit clone holds its kernel directory; the test
// runs in it.
func testdataCheckout(t *testing.T) {
	t.Helper()
	testGit(t)
	repo := t.TempDir()
	src, err := filepath.Abs(filepath.Join("..", "..", "testdata", "kernel"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(repo, "kernel"), os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	command(t, repo, "git", "init", "-q", "-b", "main")
	command(t, repo, "git", "add", "-A")
	command(t, repo, "git", "commit", "-q", "-m", "kernel")
	t.Chdir(repo)
}

// compareExample compares got with the checked-in example, or writes it
// with LKBUILD_UPDATE_EXAMPLES=1.
func compareExample(t *testing.T, dir, name string, got []byte) {
	t.Helper()
	file := filepath.Join(dir, name)
	if os.Getenv("LKBUILD_UPDATE_EXAMPLES") == "1" {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("lkbuild matrix no longer prints %s (LKBUILD_UPDATE_EXAMPLES=1 go test ./cmd/lkbuild -run Example writes it):\ngot\n%s", file, got)
	}
}

func TestGitHubMatrixExample(t *testing.T) {
	examples := examplesDir(t)
	testdataCheckout(t)
	out := lkbuildOK(t, "matrix", "--all", "--kernel-dir", "kernel", "--org", "registry.example/linuxkit", "--format", "github")
	compareExample(t, examples, "github-matrix.json", []byte(out))

	// What the workflow reads from an entry (matrix.<key>), every entry has.
	flow, err := os.ReadFile(filepath.Join(examples, "github-workflow.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Include []map[string]any `json:"include"`
	}
	if err := json.Unmarshal([]byte(out), &m); err != nil || len(m.Include) != 6 {
		t.Fatalf("%v: %d entries, want 6 (one series, three arches, plain and debug)", err, len(m.Include))
	}
	var keys []string
	for _, expr := range regexp.MustCompile(`\$\{\{[^}]*\}\}`).FindAllString(string(flow), -1) {
		for _, k := range regexp.MustCompile(`\bmatrix\.([a-z]+)`).FindAllStringSubmatch(expr, -1) {
			keys = append(keys, k[1])
		}
	}
	if len(keys) == 0 {
		t.Fatal("the workflow reads nothing from the matrix")
	}
	for _, e := range m.Include {
		for _, k := range keys {
			if v, ok := e[k].(string); !ok || v == "" {
				t.Errorf("entry %v has no %s, which the workflow reads", e, k)
			}
		}
		if args := e["args"].(string); !strings.HasPrefix(args, "build --push --kernel-dir kernel --org registry.example/linuxkit --image kernel --series 6.12.x --arch ") {
			t.Errorf("entry %v: args %q", e, args)
		}
	}
	for _, cmd := range []string{"lkbuild matrix", "--format github", "fromJSON(", "lkbuild ${{ matrix.args }}"} {
		if !strings.Contains(string(flow), cmd) {
			t.Errorf("the workflow does not run %q", cmd)
		}
	}
}

func TestKubernetesJobExample(t *testing.T) {
	examples := examplesDir(t)
	testdataCheckout(t)
	out := lkbuildOK(t, "matrix", "--all", "--kernel-dir", "kernel", "--org", "registry.example/linuxkit", "--format", "k8s",
		"--job-image", "registry.example/lkbuild-kernel:1", "--job-secret", "registry-push")
	compareExample(t, examples, "k8s-job.json", []byte(out))
	checkBatchV1Job(t, []byte(out), 6)
}

func TestShellJoin(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"build", "--org", "ghcr.io/me", "--arch", "x86_64"}, "build --org ghcr.io/me --arch x86_64"},
		{[]string{"--kernel-dir", "my kernels"}, "--kernel-dir 'my kernels'"},
		{[]string{"--org", "$(touch pwned)"}, "--org '$(touch pwned)'"},
		{[]string{"it's"}, `'it'\''s'`},
		{[]string{""}, "''"},
	} {
		got := shellJoin(tc.args)
		if got != tc.want {
			t.Errorf("shellJoin(%q) = %s, want %s", tc.args, got, tc.want)
		}
		// sh makes the arguments of it again.
		cmd := exec.Command("sh", "-c", "set -- "+got+`; for a; do printf '%s\n' "$a"; done`)
		cmd.Dir = t.TempDir()
		out, err := cmd.Output()
		if err != nil || string(out) != strings.Join(tc.args, "\n")+"\n" {
			t.Errorf("sh read %q back as %q (%v)", got, out, err)
		}
	}
}

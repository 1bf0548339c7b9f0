package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// matrixTarget is an entry of lkbuild matrix --format json.
type matrixTarget struct {
	Index   int      `json:"index"`
	ID      string   `json:"id"`
	Arch    string   `json:"arch"`
	Variant string   `json:"variant"`
	Ref     string   `json:"ref"`
	Args    []string `json:"args"`
}

// TestMatrix runs a matrix the way a Kubernetes Indexed Job does, at small
// scale and on the skip path (no kernel is built): lkbuild matrix plans
// the six targets of the test kernel (three arches, plain and debug)
// against the real registry, then the Job's own command runs as six
// concurrent processes, each with its JOB_COMPLETION_INDEX, against
// registry state a killed job leaves: each target's single-arch image
// pushed under its first tag only, the rest of its tags and every index
// entry missing. They must end with every index holding every arch; a
// retried index changes nothing.
func TestMatrix(t *testing.T) {
	e := setup(t)
	org := e.registry + "/matrix"
	builderRef := e.registry + "/e2e/builder:mirror"
	e.skopeo(t, "copy", "--dest-tls-verify=false", "--dest-creds", e.creds(), e.mirrorBuilder, "docker://"+builderRef)
	e.builder, e.buildImage = "", builderRef
	kdir := e.checkout(t, nil)
	cache := filepath.Join(e.work, "cache")

	matrix := func(args ...string) result {
		t.Helper()
		r := e.lkbuild(t, nil, slices.Concat([]string{"--cache-dir", cache, "matrix", "--kernel-dir", kdir, "--org", org, "--insecure-registry"}, args)...)
		if r.code != 0 {
			t.Fatalf("lkbuild matrix %q: exit %d\n%s", args, r.code, r.stderr)
		}
		return r
	}
	targets := func(args ...string) []matrixTarget {
		t.Helper()
		var ts []matrixTarget
		if err := json.Unmarshal([]byte(matrix(args...).stdout), &ts); err != nil {
			t.Fatal(err)
		}
		return ts
	}
	all := targets("--all")
	var ids []string
	for _, tg := range all {
		ids = append(ids, tg.ID)
	}
	want := []string{"6.12.x/aarch64/plain", "6.12.x/aarch64/debug", "6.12.x/riscv64/plain", "6.12.x/riscv64/debug", "6.12.x/x86_64/plain", "6.12.x/x86_64/debug"}
	if !slices.Equal(ids, want) {
		t.Fatalf("matrix %q, want %q", ids, want)
	}
	if pending := targets(); len(pending) != len(all) {
		t.Fatalf("an empty registry lacks %d of %d targets", len(pending), len(all))
	}

	// Each target's image under its first tag, as a job killed right after
	// it leaves it: a small image of the target's platform.
	push := func(tg matrixTarget) {
		t.Helper()
		img, err := random.Image(512, 1)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = "linux", map[string]string{"x86_64": "amd64", "aarch64": "arm64", "riscv64": "riscv64"}[tg.Arch]
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			t.Fatal(err)
		}
		ref, err := name.ParseReference(tg.Ref, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: e.user, Password: e.password})); err != nil {
			t.Fatal(err)
		}
	}
	for _, tg := range all[:len(all)-1] {
		push(tg)
	}
	// The plan leaves out what the registry holds, in every format.
	last := all[len(all)-1]
	if pending := targets(); len(pending) != 1 || pending[0].ID != last.ID || pending[0].Index != last.Index {
		t.Fatalf("pending %+v, want only %s", pending, last.ID)
	}
	var gh struct{ Include []struct{ ID, Args string } }
	if err := json.Unmarshal([]byte(matrix("--format", "github").stdout), &gh); err != nil || len(gh.Include) != 1 || gh.Include[0].ID != last.ID {
		t.Fatalf("github matrix %+v (%v), want %s only", gh, err, last.ID)
	}
	push(last)
	if r := matrix("--format", "k8s", "--job-image", "registry.example/lkbuild:1"); r.stdout != "" || !strings.Contains(r.stderr, "no Job to run") {
		t.Errorf("a matrix with nothing to build printed a Job:\n%s\n%s", r.stdout, r.stderr)
	}

	// The Job of the whole matrix, and its pods' command.
	var job struct {
		Spec struct {
			Completions int
			Template    struct {
				Spec struct{ Containers []struct{ Args []string } }
			}
		}
	}
	out := matrix("--all", "--format", "k8s", "--job-image", "registry.example/lkbuild:1").stdout
	if err := json.Unmarshal([]byte(out), &job); err != nil || job.Spec.Completions != len(all) || len(job.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("job %+v (%v)", job.Spec, err)
	}
	podArgs := job.Spec.Template.Spec.Containers[0].Args
	pod := func(index int) result {
		t.Helper()
		// Each pod has its own empty cache and file system.
		dir := filepath.Join(e.work, "pod"+strconv.Itoa(index))
		args := slices.Concat([]string{"--cache-dir", filepath.Join(dir, "cache"), "--json"}, podArgs, []string{"--output", filepath.Join(dir, "oci")})
		return e.lkbuildWith(t, []string{"JOB_COMPLETION_INDEX=" + strconv.Itoa(index)}, nil, args...)
	}
	var wg sync.WaitGroup
	results := make([]result, len(all))
	began := time.Now()
	for i := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = pod(i)
		}()
	}
	wg.Wait()
	t.Logf("%d pods at once: %s", len(all), time.Since(began).Round(time.Millisecond))
	for i, r := range results {
		res := r.final()
		if r.code != 0 || !res.Skipped || res.Ref != all[i].Ref || len(res.Pushed) == 0 {
			t.Errorf("pod %d (%s): exit %d, %+v\n%s", i, all[i].ID, r.code, res, r.stderr)
		}
	}
	checkMatrixIndexes(t, e, all)

	// A retried pod finds everything in place.
	r := pod(4)
	if res := r.final(); r.code != 0 || !res.Skipped || len(res.Pushed) != 0 {
		t.Errorf("retried pod: exit %d, %+v\n%s", r.code, res, r.stderr)
	}
	checkMatrixIndexes(t, e, all)
}

// checkMatrixIndexes checks that every index tag of the matrix's targets
// lists each arch once, with the image of its single-arch tags.
func checkMatrixIndexes(t *testing.T, e *env, all []matrixTarget) {
	t.Helper()
	byIndex := map[string]map[string]string{} // index tag -> arch -> digest
	for _, tg := range all {
		d := e.digest(t, tg.Ref)
		repo, tag, _ := strings.Cut(tg.Ref, ":")
		oci := map[string]string{"x86_64": "amd64", "aarch64": "arm64", "riscv64": "riscv64"}[tg.Arch]
		base := strings.TrimSuffix(tag, "-"+oci) // V[-dbg]-H
		version, _, _ := strings.Cut(base, "-")
		rel := version
		if tg.Variant == "debug" {
			rel += "-dbg"
		}
		if got := e.digest(t, repo+":"+rel+"-"+oci); got != d {
			t.Errorf("%s:%s-%s is %q, want %s", repo, rel, oci, got, d)
		}
		for _, ix := range []string{repo + ":" + base, repo + ":" + rel} {
			if byIndex[ix] == nil {
				byIndex[ix] = map[string]string{}
			}
			byIndex[ix][oci] = d
		}
	}
	for ix, want := range byIndex {
		var idx struct {
			Manifests []struct {
				Digest   string
				Platform struct{ Architecture string }
			}
		}
		if err := json.Unmarshal([]byte(e.skopeo(t, "inspect", "--raw", e.tlsCreds(), "docker://"+ix)), &idx); err != nil {
			t.Fatalf("%s: %v", ix, err)
		}
		got := map[string]string{}
		for _, m := range idx.Manifests {
			if _, dup := got[m.Platform.Architecture]; dup {
				t.Errorf("%s lists %s twice", ix, m.Platform.Architecture)
			}
			got[m.Platform.Architecture] = m.Digest
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("index %s = %v, want %v", ix, got, want)
		}
	}
}

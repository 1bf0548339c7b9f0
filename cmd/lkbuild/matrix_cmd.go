package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/lkbuild/lkbuild/builder"
	"github.com/lkbuild/lkbuild/kernel"
)

const matrixDescription = `Plans a build matrix for the engines CI and clusters already run: every
kernel lkbuild list prints (the series that are not deprecated), for every
arch it has a config for, plain and debug, in an order fixed by the kernel
directory's commit; --series, --arch, --variant (plain, debug, perf) and
--extra narrow it down. Targets whose image the registry already holds
(the skip check of lkbuild build --push) are left out; --all keeps them
and asks no registry.

--format json prints the targets (index, id, series, version, arch,
variant, image, and the lkbuild build arguments that build it) for any
engine. --format github prints a GitHub Actions strategy.matrix ({"include":
[...]}: write it to $GITHUB_OUTPUT and use fromJSON). --format k8s prints a
Kubernetes batch/v1 Job (JSON, which kubectl apply -f takes) with
completionMode Indexed and one completion per target: every pod runs the
same lkbuild build --push --matrix-targets LIST, and Kubernetes' index
(JOB_COMPLETION_INDEX) picks its target from LIST, so a retried pod builds
its own target again even after others finished. The pod runs lkbuild
rootless: hostUsers: false and an unmasked /proc (procMount: Unmasked, for
the sandbox's own /proc), seccomp and AppArmor unconfined (their default
profiles refuse the user namespaces lkbuild makes; lkbuild doctor names
what a host refuses), no privilege escalation, every capability dropped.
--job-image is the image with lkbuild and the kernel directory's git
checkout (at --kernel-dir in it); --job-secret names a Secret holding a
docker config.json for the pushes.

Exit codes of lkbuild build, for a CI engine to decide what to retry: 0
built or already there, 3 a registry or network fault (retry), 130
interrupted, 1 anything else (a build failure: a retry fails the same
way).

Examples:
   lkbuild matrix --org registry.example/linuxkit --format github >> "$GITHUB_OUTPUT"
   lkbuild matrix --all --arch x86_64 --arch aarch64 --variant plain
   lkbuild matrix --org registry.example/linuxkit --format k8s \
       --job-image registry.example/lkbuild-kernel:1 --job-secret pushcreds | kubectl apply -f -`

func matrixCommand() *cli.Command {
	return &cli.Command{
		Name:        "matrix",
		Usage:       "plan the builds of every series × arch × variant as a CI matrix or a Kubernetes Indexed Job",
		Description: matrixDescription,
		Flags: append([]cli.Flag{
			kernelDirFlag(),
			hashCommitFlag(),
			&cli.StringSliceFlag{Name: "series", Usage: "keep this series folder (repeatable)"},
			&cli.StringSliceFlag{Name: "arch", Usage: "keep this arch (repeatable; x86_64 or amd64, aarch64 or arm64, riscv64)"},
			&cli.StringSliceFlag{Name: "variant", Usage: "keep this variant (repeatable): plain, debug, or a tool image (perf); default: plain and debug"},
			&cli.StringFlag{Name: "extra", Usage: "keep the series of this variant suffix (LinuxKit's EXTRA), e.g. -rt"},
			&cli.StringFlag{Name: "org", Usage: "registry org (LinuxKit's ORG)", Value: kernel.DefaultOrg},
			&cli.StringFlag{Name: "image", Usage: "image name (LinuxKit's IMAGE)", Value: kernel.DefaultImage},
			&cli.StringFlag{Name: "format", Usage: "json, github or k8s", Value: "json"},
			&cli.BoolFlag{Name: "all", Usage: "keep the targets the registry already holds, and ask no registry"},
			&cli.StringFlag{Name: "job-image", Usage: "--format k8s: the image holding lkbuild and the kernel directory's checkout"},
			&cli.StringFlag{Name: "job-secret", Usage: "--format k8s: a Secret holding config.json, the docker config with the registry's credentials"},
			&cli.StringFlag{Name: "job-name", Usage: "--format k8s: the Job's name", Value: "lkbuild-matrix"},
			&cli.IntFlag{Name: "parallelism", Usage: "--format k8s: pods at once (default: every target)"},
		}, registryFlags()...),
		Before: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("unexpected argument %q (see lkbuild matrix --help)", c.Args().First())
			}
			switch c.String("format") {
			case "json", "github":
			case "k8s":
				if c.String("job-image") == "" {
					return errors.New("--format k8s needs --job-image: the image its pods run, with lkbuild and the kernel directory's checkout")
				}
				if n := c.String("job-name"); !isDNSLabel(n) {
					return fmt.Errorf("--job-name %q: a Job's name is a DNS label: lowercase letters, digits and '-', 1 to 63, starting and ending with a letter or digit", n)
				}
			default:
				return fmt.Errorf("--format %q: want json, github or k8s", c.String("format"))
			}
			return nil
		},
		Action: matrixAction,
	}
}

// matrixRequest is the matrix the flags of lkbuild matrix name.
func matrixRequest(c *cli.Context) builder.MatrixRequest {
	return builder.MatrixRequest{
		KernelDir: c.String("kernel-dir"), HashCommit: c.String("hash-commit"),
		Series: c.StringSlice("series"), Arches: c.StringSlice("arch"), Variants: c.StringSlice("variant"),
		Extra: c.String("extra"), Org: c.String("org"), Image: c.String("image"),
	}
}

func matrixAction(c *cli.Context) error {
	m := matrixRequest(c)
	ts, err := builder.Matrix(m)
	if err != nil {
		return err
	}
	if !c.Bool("all") {
		reg, err := newRegistry(c)
		if err != nil {
			return err
		}
		if ts, err = builder.PendingTargets(c.Context, reg, ts); err != nil {
			return err
		}
	}
	w := c.App.Writer
	switch c.String("format") {
	case "github":
		return writeJSON(w, githubMatrix(m, ts))
	case "k8s":
		if len(ts) == 0 {
			// A Job with no completions would do nothing: print none.
			fmt.Fprintln(c.App.ErrWriter, "lkbuild: the registry holds every image of the matrix: no Job to run")
			return nil
		}
		return writeJSON(w, k8sJob(m, ts, jobOptions{
			Name: c.String("job-name"), Image: c.String("job-image"), Secret: c.String("job-secret"),
			Parallelism: c.Int("parallelism"), Insecure: c.Bool("insecure-registry"),
		}))
	}
	return writeJSON(w, matrixEntries(m, ts))
}

// matrixEntry is a target as lkbuild matrix prints it.
type matrixEntry struct {
	builder.MatrixTarget
	// Args are the arguments of lkbuild that build and push it.
	Args []string `json:"args"`
}

func matrixEntries(m builder.MatrixRequest, ts []builder.MatrixTarget) []matrixEntry {
	out := []matrixEntry{}
	for _, t := range ts {
		out = append(out, matrixEntry{MatrixTarget: t, Args: append([]string{"build", "--push"}, t.BuildArgs(m)...)})
	}
	return out
}

// githubEntry is an include entry of a GitHub Actions matrix: the
// target's fields, and its arguments as one string for a run step
// (lkbuild ${{ matrix.args }}).
type githubEntry struct {
	Index   int    `json:"index"`
	ID      string `json:"id"`
	Series  string `json:"series"`
	Version string `json:"version"`
	Arch    string `json:"arch"`
	Variant string `json:"variant"`
	Args    string `json:"args"`
}

func githubMatrix(m builder.MatrixRequest, ts []builder.MatrixTarget) map[string][]githubEntry {
	include := []githubEntry{}
	for _, e := range matrixEntries(m, ts) {
		include = append(include, githubEntry{Index: e.Index, ID: e.ID, Series: e.Series, Version: e.Version,
			Arch: e.Arch, Variant: e.Variant, Args: shellJoin(e.Args)})
	}
	return map[string][]githubEntry{"include": include}
}

// isDNSLabel reports whether s is an RFC 1123 label, as Kubernetes wants
// object names such as a Job's.
func isDNSLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// shellJoin joins args for a shell, quoting those that need it.
func shellJoin(args []string) string {
	var out []string
	for _, a := range args {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@+,", r))
		}) < 0 {
			out = append(out, a)
			continue
		}
		out = append(out, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
	}
	return strings.Join(out, " ")
}

func writeJSON(w io.Writer, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(data, '\n'))
	return err
}

// pickMatrixTarget is the matrix target build's --matrix-* flags name,
// and which one it is, for the user ("2 of 6 in --matrix-targets"); ok is
// false when they name none. The matrix is the kernel directory's whole
// one, computed as lkbuild matrix --all does; --matrix-targets, when set,
// is the list --matrix-index counts in, so that an index names the same
// target whatever was built meanwhile.
func pickMatrixTarget(c *cli.Context) (t builder.MatrixTarget, m builder.MatrixRequest, which string, ok bool, err error) {
	id, index := c.String("matrix-target"), c.IsSet("matrix-index")
	if id == "" && !index {
		if c.IsSet("matrix-targets") {
			return t, m, "", false, errors.New("--matrix-targets needs --matrix-index (or Kubernetes' JOB_COMPLETION_INDEX) to pick one")
		}
		return t, m, "", false, nil
	}
	if id != "" && index {
		return t, m, "", false, errors.New("--matrix-target and --matrix-index (or JOB_COMPLETION_INDEX) both name the target: give one")
	}
	for _, f := range []string{"series", "version", "extra", "debug", "tool", "arch", "with-debug", "with-tools"} {
		if c.IsSet(f) {
			return t, m, "", false, fmt.Errorf("--%s and the matrix target both name what to build: give one", f)
		}
	}
	m = builder.MatrixRequest{KernelDir: c.String("kernel-dir"), HashCommit: c.String("hash-commit"), Org: c.String("org"), Image: c.String("image")}
	if index {
		n := c.Int("matrix-index")
		if list := strings.Fields(c.String("matrix-targets")); len(list) > 0 {
			if n < 0 || n >= len(list) {
				return t, m, "", false, fmt.Errorf("matrix index %d: --matrix-targets lists %d targets (0 to %d)", n, len(list), len(list)-1)
			}
			id, which = list[n], fmt.Sprintf("%d of %d in --matrix-targets", n, len(list))
		} else {
			ts, err := builder.Matrix(m)
			if err != nil {
				return t, m, "", false, err
			}
			if n < 0 || n >= len(ts) {
				return t, m, "", false, fmt.Errorf("matrix index %d: the matrix has %d targets (0 to %d; lkbuild matrix --all lists them)", n, len(ts), len(ts)-1)
			}
			return ts[n], m, fmt.Sprintf("%d of %d", n, len(ts)), true, nil
		}
	}
	// Any variant may be named by id: the tools too.
	all := m
	all.Variants = append(builder.DefaultVariants(), kernel.SupportedTools()...)
	ts, err := builder.Matrix(all)
	if err != nil {
		return t, m, "", false, err
	}
	t, err = builder.MatrixTargetByID(ts, id)
	return t, m, which, err == nil, err
}

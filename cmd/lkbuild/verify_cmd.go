package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/lkbuild/lkbuild/builder"
	"github.com/lkbuild/lkbuild/internal/cachedir"
	"github.com/lkbuild/lkbuild/internal/imagediff"
	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/oci"
)

const verifyDescription = `Rebuilds a kernel image (or a tool image, such as kernel-perf) from the
inputs it records and compares the rebuild with it. The image (a registry reference, or oci:DIR:NAME for an
image in an OCI layout) records its inputs in its manifest annotations:
the source release and its SHA-256, the builder image by digest, the
config and patch hashes, the epoch, the arch and variant, the microcode
commit, the tool of a tool image, and in its labels the kernel
directory's commit. The rebuild
takes the kernel directory (--kernel-dir, checked out at that commit, no
uncommitted changes), the source, the builder and the microcode from the
usual places (--source-mirror, --ucode-repo, the registry, or --bundle /
--offline for an air-gapped host), and runs clean in an empty object tree.
The builder is pulled by its recorded digest; the source's SHA-256, the
microcode's commit and the builder's digest are checked against the
recorded ones before the build starts. Another cache, user, umask, time
zone, locale, host name, clone remote or --jobs gives the same image.

Identical: both digests are printed, exit 0. Different: the differing
manifest and config fields and the first differing files are named, per
layer and down into the tars in the image (kernel.tar, kernel-dev.tar,
kernel-headers.tar, src/linux.tar.xz): path, size and SHA-256 on both
sides, and a unified diff for .config and other text files; exit 1
(--json prints the whole comparison). A verify that cannot rebuild
(a missing or different input, the wrong commit, an image without
lkbuild's annotations or built from uncommitted changes, a bad flag)
exits 2, naming what is missing and how to provide it.

The provenance attached to the image (lkbuild sbom --provenance), when
there is one, is checked against what the image records and the verdict
printed; it does not change the exit status (the rebuild is the proof).

The rebuild goes to a temporary layout removed afterwards; --output DIR
keeps it (DIR must be new, or one an earlier verify made: any other
layout is refused), and a later verify of an image of the same inputs
with the same --output compares with the rebuild kept there instead of
building again.

Examples:
   lkbuild verify registry.example/linuxkit/kernel:6.6.71-0123abcd-amd64 --kernel-dir ./kernel
   lkbuild --offline verify oci:out:linuxkit/kernel:6.6.71-0123abcd-amd64 --bundle bundle.tar
   lkbuild verify REF --json > comparison.json`

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:        "verify",
		Usage:       "rebuild an image from the inputs it records and compare, member by member",
		ArgsUsage:   "REF",
		Description: verifyDescription,
		Flags: append([]cli.Flag{
			kernelDirFlag(),
			&cli.StringFlag{Name: "arch", Usage: "the arch to verify when REF is a multi-arch index in a registry (x86_64 or amd64, aarch64 or arm64, riscv64); an oci: REF names one image"},
			&cli.StringFlag{Name: "builder-image", Usage: "where to pull the builder from (registry reference or oci:DIR:NAME); default: the recorded builder, by its recorded digest"},
			&cli.StringFlag{Name: "source-mirror", Usage: "kernel.org-style mirror of the sources: URL or local directory", Value: kernel.DefaultSourceMirror, EnvVars: []string{"LKBUILD_SOURCE_MIRROR"}},
			&cli.StringFlag{Name: "keys", Usage: "PGP keys that sign the sources (default: <kernel-dir>/common/keys.asc)"},
			zfsMirrorFlag(),
			&cli.StringFlag{Name: "zfs-keys", Usage: "for a zfs-kmod image: PGP keys that sign the OpenZFS release (default: --keys's)"},
			&cli.StringFlag{Name: "ucode-repo", Usage: "git URL or local mirror of the Intel microcode (x86_64)", Value: kernel.UcodeRepo, EnvVars: []string{"LKBUILD_UCODE_REPO"}},
			&cli.StringFlag{Name: "output", Usage: "OCI layout to keep the rebuild in (default: a temporary one, removed)"},
			&cli.IntFlag{Name: "jobs", Usage: "make -j (default: the CPUs this process may use); it does not change the image"},
			&cli.BoolFlag{Name: "json", Usage: "print the result and the whole comparison as JSON on stdout"},
			&cli.IntFlag{Name: "show", Usage: "differing files to print per layer", Value: 20},
			&cli.StringFlag{Name: "bundle", Usage: "take the inputs from a bundle lkbuild fetch --bundle wrote (a directory or a tar of one), without any network"},
			qemuImageFlag(),
			&cli.StringFlag{Name: "cross-image", Usage: "for a foreign arch: the cross toolchain image of the fast path (see lkbuild build --help); the image is the same", EnvVars: []string{"LKBUILD_CROSS_IMAGE"}},
		}, registryFlags()...),
		Action: verifyAction,
		// Exit 1 means "different": a usage error is 2.
		OnUsageError: func(c *cli.Context, err error, _ bool) error { return cli.Exit(err.Error(), 2) },
	}
}

func verifyAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return cli.Exit("verify needs one image: lkbuild verify REF (see lkbuild verify --help)", 2)
	}
	v, err := runVerify(c, c.Args().First())
	if err != nil {
		// Exit 1 means "different"; a verify that could not finish is 2.
		return cli.Exit(err.Error(), 2)
	}
	if c.Bool("json") {
		jsonLine(c.App.Writer, v)
	} else {
		printVerify(c.App.Writer, v, c.Int("show"))
	}
	if !v.Identical {
		return cli.Exit("", 1)
	}
	return nil
}

// verifyOutput is what lkbuild verify prints, and with --json its shape.
type verifyOutput struct {
	Ref       string `json:"ref"`
	Identical bool   `json:"identical"`
	Image     string `json:"image"`
	Rebuilt   string `json:"rebuilt"`
	// Reused is true when --output held the rebuild already.
	Reused  bool    `json:"reused"`
	Seconds float64 `json:"seconds"`
	Layout  string  `json:"layout,omitempty"`
	Log     string  `json:"log,omitempty"`
	// Provenance says what the attached provenance is: "checked",
	// "none attached", or why it was refused.
	Provenance string            `json:"provenance"`
	Diff       *imagediff.Report `json:"diff,omitempty"`
}

// openSubject reads REF for verify and sbom: oci:DIR:NAME from the layout,
// else from the registry into the cache's blob store.
func openSubject(c *cli.Context, cache cachedir.Dir, reg *oci.Registry, ref string) (*builder.Subject, error) {
	p, err := builder.SubjectPlatform(c.String("arch"))
	if err != nil {
		return nil, err
	}
	blobs, err := cache.Blobs()
	if err != nil {
		return nil, err
	}
	return builder.OpenSubject(c.Context, reg, blobs, ref, p)
}

func runVerify(c *cli.Context, ref string) (*verifyOutput, error) {
	ctx := c.Context
	cache, err := cacheDir(c)
	if err != nil {
		return nil, err
	}
	reg, err := newRegistry(c)
	if err != nil {
		return nil, err
	}
	sub, err := openSubject(c, cache, reg, ref)
	if err != nil {
		return nil, err
	}
	rec, err := builder.ReadRecorded(sub.Image)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	out := &verifyOutput{Ref: ref, Provenance: builder.CheckAttachedProvenance(ctx, sub, rec)}
	t, err := builder.VerifyTarget(ctx, rec, builder.VerifyRequest{
		KernelDir: c.String("kernel-dir"), BuilderImage: c.String("builder-image"),
		Jobs: c.Int("jobs"), KeysFile: c.String("keys"), ZFSKeysFile: c.String("zfs-keys"),
	})
	if err != nil {
		return nil, err
	}
	bundle, remove, err := importBundle(c, cache, t.Arch, t.BuilderPull)
	if err != nil {
		return nil, err
	}
	defer remove()
	layoutDir := c.String("output")
	if layoutDir == "" {
		if err := os.MkdirAll(cache.Work(), 0o755); err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
		if layoutDir, err = os.MkdirTemp(cache.Work(), "verify-"); err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
		defer os.RemoveAll(layoutDir)
	} else {
		out.Layout = layoutDir
	}
	layout, err := builder.OpenVerifyLayout(layoutDir)
	if err != nil {
		return nil, err
	}
	emu, err := emulationFor(c, t.BuilderArch)
	if err != nil {
		return nil, err
	}
	env := buildEnv(c, reg, cache, layout, emu, bundle)
	if cross := c.String("cross-image"); cross != "" && emu != nil {
		env.CrossImage = cross
	}
	xz, err := rec.XZLevel()
	if err != nil {
		return nil, err
	}
	r := newRenderer(c)
	if !c.Bool("json") {
		r.printf("verifying %s: rebuilding %s for %s from commit %s in %s (make -j%d)\n",
			ref, rec.Version+rec.Provenance.Variant, t.Arch, shortHash(rec.Revision), t.BuilderPull, t.Plan.Jobs)
	}
	pol := builder.Policy{XZLevel: xz, Version: c.App.Version, Invocation: os.Args}
	if !c.Bool("json") {
		pol.Events = r.event
	}
	v, err := builder.Verify(ctx, sub.Image, t, env, pol)
	r.close()
	if err != nil {
		var me *builder.MissingError
		if errors.As(err, &me) {
			return nil, fmt.Errorf("%w\non a host with network, put it into a cache and bring that cache here:\n  %s", err, fetchHint(c, t))
		}
		return nil, err
	}
	out.Identical, out.Image, out.Rebuilt = v.Identical, v.Subject.String(), v.Rebuilt.String()
	out.Reused, out.Seconds, out.Log, out.Diff = v.Build.Skipped, v.Elapsed.Seconds(), v.Build.Log, v.Diff
	return out, nil
}

// shortHash is the first 12 characters of a commit hash.
func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// printVerify prints a verify result for people: the verdict, both
// digests, and for a difference the fields and the first show members of
// each layer that differ.
func printVerify(w io.Writer, v *verifyOutput, show int) {
	how := fmt.Sprintf("rebuilt in %.0f s", v.Seconds)
	if v.Reused {
		how = "the rebuild kept in " + v.Layout
	}
	fmt.Fprintf(w, "image    %s\nrebuilt  %s (%s)\nprovenance %s\n", v.Image, v.Rebuilt, how, printable(v.Provenance))
	if v.Identical {
		fmt.Fprintf(w, "identical: %s is the image its recorded inputs build\n", v.Ref)
		return
	}
	fmt.Fprintf(w, "DIFFERENT: the recorded inputs of %s build another image\n", v.Ref)
	d := v.Diff
	if d == nil {
		return
	}
	for _, f := range d.Manifest {
		fmt.Fprintf(w, "manifest %s:\n  image:   %s\n  rebuilt: %s\n", printable(f.Path), printable(f.A), printable(f.B))
	}
	for _, f := range d.Config {
		fmt.Fprintf(w, "config %s:\n  image:   %s\n  rebuilt: %s\n", printable(f.Path), printable(f.A), printable(f.B))
	}
	for _, l := range d.Layers {
		fmt.Fprintf(w, "layer %d: %d differing members (image %s, rebuilt %s)\n", l.Index, len(l.Members), layerString(l.A), layerString(l.B))
		for i, m := range l.Members {
			if i == show {
				fmt.Fprintf(w, "  ... %d more (--show, or --json for all)\n", len(l.Members)-show)
				break
			}
			path := m.Path
			if path == "" {
				path = "(the layer itself)"
			}
			fmt.Fprintf(w, "  %s\n    image:   %s\n    rebuilt: %s\n", printable(path), entryString(m.A), entryString(m.B))
			if m.Note != "" {
				fmt.Fprintf(w, "    note: %s\n", printable(m.Note))
			}
			if m.Diff != "" {
				for _, line := range strings.Split(strings.TrimRight(m.Diff, "\n"), "\n") {
					fmt.Fprintf(w, "    %s\n", printable(line))
				}
			}
		}
	}
}

// layerString names a layer by digest, or says it is absent.
func layerString(l *imagediff.LayerInfo) string {
	if l == nil {
		return "no such layer"
	}
	return l.Digest.String()
}

// entryString describes a member's entry on one side.
func entryString(e *imagediff.Entry) string {
	if e == nil {
		return "absent"
	}
	s := fmt.Sprintf("%s %04o %d:%d size %d", e.Type, e.Mode, e.UID, e.GID, e.Size)
	if e.SHA256 != "" {
		s += " sha256 " + e.SHA256
	}
	if e.Linkname != "" {
		s += " -> " + printable(e.Linkname)
	}
	return s + " mtime " + e.ModTime.UTC().Format(time.RFC3339)
}

// printable is s with control characters escaped (\x1b as \x1b): names,
// values and diffs come from the image, and must not drive the terminal.
func printable(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r != '\t' && (r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0)) {
			fmt.Fprintf(&b, "\\x%02x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

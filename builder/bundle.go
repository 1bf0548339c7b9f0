package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/lkbuild/lkbuild/internal/cachedir"
	"github.com/lkbuild/lkbuild/internal/gitfetch"
	"github.com/lkbuild/lkbuild/internal/kernelsrc"
	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/oci"
	"github.com/lkbuild/lkbuild/toolchain"
)

// A bundle is a directory that carries what builds take from the network
// to a host without one:
//
//	manifest.json  every piece, its digest and what it is for (written last)
//	images/        an OCI image layout: builder, cross and QEMU images
//	sources/       a kernel.org-style mirror tree (--source-mirror)
//	ucode.git/     the Intel microcode tag as a bare git repository
//
// lkbuild fetch --bundle writes one (BundleWriter); lkbuild build --bundle
// verifies every piece and imports it into the cache before anything is
// built (OpenBundle, Bundle.Import).
const (
	bundleManifest = "manifest.json"
	bundleImages   = "images"
	bundleSources  = "sources"
	bundleUcode    = "ucode.git"
	bundleFormat   = 1
)

// BundleManifest is a bundle's manifest.json.
type BundleManifest struct {
	Format int `json:"format"`
	// Arches are the arches (uname) the bundle builds.
	Arches []string      `json:"arches"`
	Pieces []BundlePiece `json:"pieces"`
}

// BundlePiece is one piece of a bundle.
type BundlePiece struct {
	// Kind is "image", "file" or "git".
	Kind string `json:"kind"`
	// For says what the piece is for, as errors name it.
	For string `json:"for"`
	// An image: its reference (canonical) and platform as a build pulls
	// it, its manifest digest and its name in images/.
	Ref      string `json:"ref,omitempty"`
	Platform string `json:"platform,omitempty"`
	Digest   string `json:"digest,omitempty"`
	Name     string `json:"name,omitempty"`
	// A file or git repository: its path in the bundle; a file's SHA-256,
	// a repository's tag and the commit it names.
	Path   string `json:"path,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	Tag    string `json:"tag,omitempty"`
	Commit string `json:"commit,omitempty"`
}

// BundleWriter writes a bundle.
type BundleWriter struct {
	dir    string
	images *oci.Store
	m      BundleManifest
}

// NewBundleWriter starts a bundle in dir, which must not exist or be
// empty.
func NewBundleWriter(dir string) (*BundleWriter, error) {
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("bundle %s: not empty", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	images, err := oci.OpenStore(filepath.Join(dir, bundleImages))
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	return &BundleWriter{dir: dir, images: images, m: BundleManifest{Format: bundleFormat}}, nil
}

// AddTarget adds what the build of t needs, which Fetch(t, env) put in
// env's cache: the source, the microcode, the builder and, with
// env.CrossImage, the cross image.
func (w *BundleWriter) AddTarget(ctx context.Context, t *Target, env Environment) error {
	if !slices.Contains(w.m.Arches, t.Arch.Uname) {
		w.m.Arches = append(w.m.Arches, t.Arch.Uname)
	}
	keys, err := (&build{t: t}).keyring()
	if err != nil {
		return err
	}
	src := fmt.Sprintf("the kernel %s source", t.Plan.Version)
	_, err = kernelsrc.WriteMirror(ctx, kernelsrc.Options{
		Mirror: env.SourceMirror, Dir: env.Cache.Sources(), Keyring: keys, Offline: env.Offline,
	}, t.Plan.Version, filepath.Join(w.dir, bundleSources))
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	files, err := kernel.SourceURLs(bundleSources, t.Plan.Version)
	if err != nil {
		return err
	}
	for _, f := range []struct{ path, what string }{
		{files.Sums, "sha256sums.asc"}, {files.Signature, "signature"}, {files.Tarball, "tarball"},
	} {
		if err := w.addFile(f.path, src+", "+f.what); err != nil {
			return err
		}
	}
	if u := t.Plan.Ucode; u != nil && !w.has("git", bundleUcode) {
		repo := u.Repo
		if env.UcodeRepo != "" {
			repo = env.UcodeRepo
		}
		// The commit Fetch put in the cache is the one to carry: a tag
		// that moved since is refused.
		c, err := gitfetch.Fetch(ctx, repo, u.Ref, env.Cache.Git(), gitfetch.Offline(true))
		if err != nil {
			return fmt.Errorf("bundle: the Intel microcode: %w", err)
		}
		commit, err := gitfetch.WriteRepo(ctx, repo, u.Ref, filepath.Join(w.dir, bundleUcode), gitfetch.Offline(env.Offline))
		if err != nil {
			return fmt.Errorf("bundle: the Intel microcode: %w", err)
		}
		if commit != c.Commit {
			return fmt.Errorf("bundle: the Intel microcode: tag %s of %s is commit %s now, %s when fetched", u.Ref, repo, commit, c.Commit)
		}
		w.m.Pieces = append(w.m.Pieces, BundlePiece{Kind: "git", For: "the Intel microcode", Path: bundleUcode, Tag: u.Ref, Commit: commit})
	}
	store, err := env.Cache.Blobs()
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if err := w.AddImage(ctx, store, t.BuilderPull, toolchain.Platform(t.BuilderArch), "the builder for "+t.BuilderArch.Uname); err != nil {
		return err
	}
	if env.CrossImage != "" {
		host, err := toolchain.HostArch()
		if err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
		if err := w.AddImage(ctx, store, env.CrossImage, toolchain.Platform(host), "the cross image for "+host.Uname); err != nil {
			return err
		}
	}
	return nil
}

func (w *BundleWriter) has(kind, key string) bool {
	return slices.ContainsFunc(w.m.Pieces, func(p BundlePiece) bool {
		return p.Kind == kind && (p.Path == key || p.Ref+" "+p.Platform == key)
	})
}

// addFile adds the file at rel (already in the bundle) with its digest.
func (w *BundleWriter) addFile(rel, what string) error {
	if w.has("file", rel) {
		return nil
	}
	root, err := os.OpenRoot(w.dir)
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	defer root.Close()
	sum, err := rootSHA256(root, rel)
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	w.m.Pieces = append(w.m.Pieces, BundlePiece{Kind: "file", For: what, Path: rel, SHA256: sum})
	return nil
}

// AddImage adds image ref for platform p, as an earlier pull recorded it
// in store, to the bundle's layout.
func (w *BundleWriter) AddImage(ctx context.Context, store *oci.Store, ref string, p v1.Platform, what string) error {
	if _, _, ok := toolchain.ParseLayoutRef(ref); ok {
		return fmt.Errorf("bundle: %s is %s, an OCI layout: give a registry reference, or copy the layout to the host yourself", what, ref)
	}
	canon, err := oci.RefName(ref)
	if err != nil {
		return fmt.Errorf("bundle: %s: %w", what, err)
	}
	if w.has("image", canon+" "+p.String()) {
		return nil
	}
	img, err := store.Resolved(canon, p)
	if err != nil {
		return fmt.Errorf("bundle: %s: %w", what, err)
	}
	d, err := img.Digest()
	if err != nil {
		return fmt.Errorf("bundle: %s: %w", what, err)
	}
	name := fmt.Sprintf("image-%d", len(w.m.Pieces)+1)
	if err := w.images.WriteLayout(ctx, img, p, name); err != nil {
		return fmt.Errorf("bundle: %s: %w", what, err)
	}
	w.m.Pieces = append(w.m.Pieces, BundlePiece{Kind: "image", For: what, Ref: canon, Platform: p.String(), Digest: d.String(), Name: name})
	return nil
}

// Close writes the manifest: the bundle is complete.
func (w *BundleWriter) Close() error {
	data, err := json.MarshalIndent(w.m, "", "  ")
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	tmp := filepath.Join(w.dir, bundleManifest+".tmp")
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("bundle: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(w.dir, bundleManifest)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("bundle: %w", err)
	}
	return nil
}

// Size is the bytes of the bundle's files.
func (w *BundleWriter) Size() (int64, error) {
	var n int64
	err := filepath.WalkDir(w.dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n += info.Size()
		return nil
	})
	return n, err
}

// Bundle is a bundle whose manifest was read.
type Bundle struct {
	dir string
	m   BundleManifest
}

// OpenBundle reads the manifest of the bundle at dir.
func OpenBundle(dir string) (*Bundle, error) {
	data, err := os.ReadFile(filepath.Join(dir, bundleManifest))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("bundle %s: no %s: not a bundle, or an incomplete one (lkbuild fetch --bundle writes it last)", dir, bundleManifest)
	}
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", dir, err)
	}
	b := &Bundle{dir: dir}
	if err := json.Unmarshal(data, &b.m); err != nil {
		return nil, fmt.Errorf("bundle %s: %s: %w", dir, bundleManifest, err)
	}
	if b.m.Format != bundleFormat {
		return nil, fmt.Errorf("bundle %s: format %d, this lkbuild reads %d", dir, b.m.Format, bundleFormat)
	}
	seen := map[string]bool{}
	for _, p := range b.m.Pieces {
		if p.Path != "" && !filepath.IsLocal(p.Path) {
			return nil, fmt.Errorf("bundle %s: piece %q (%s) is outside the bundle", dir, p.Path, p.For)
		}
		key := p.Kind + " " + p.Path + p.Ref + " " + p.Platform
		if seen[key] {
			return nil, fmt.Errorf("bundle %s: %s (%s%s) is listed twice", dir, p.For, p.Path, p.Ref)
		}
		seen[key] = true
	}
	// The parts are read in place: none may lead out of the bundle.
	for _, part := range []string{bundleImages, bundleSources, bundleUcode} {
		if fi, err := os.Lstat(filepath.Join(dir, part)); err == nil && !fi.IsDir() {
			return nil, fmt.Errorf("bundle %s: %s is not a directory", dir, part)
		}
	}
	return b, nil
}

// Manifest is what the bundle says it holds.
func (b *Bundle) Manifest() BundleManifest { return b.m }

// SourceMirror is the bundle's mirror tree, for Environment.SourceMirror.
func (b *Bundle) SourceMirror() string { return filepath.Join(b.dir, bundleSources) }

// UcodeRepo is the bundle's microcode repository, for
// Environment.UcodeRepo; "" when it has none.
func (b *Bundle) UcodeRepo() string {
	for _, p := range b.m.Pieces {
		if p.Kind == "git" {
			return filepath.Join(b.dir, p.Path)
		}
	}
	return ""
}

// Import verifies every piece of the bundle and puts its images and its
// microcode into cache, for an offline build of arch that pulls the images
// refs (the builder, and the cross and QEMU images when it uses them). A
// piece that is missing or whose digest does not match fails it, naming
// the piece (a *BundleError). Only the images of refs are recorded in the
// cache as what their references name, and only when every piece
// verified: a bundle names nothing else there. The microcode checkout is
// kept by its commit, which the bundle's manifest must name.
func (b *Bundle) Import(ctx context.Context, cache cachedir.Dir, arch kernel.Arch, refs ...string) error {
	if !slices.Contains(b.m.Arches, arch.Uname) {
		return fmt.Errorf("bundle %s is for %s, not %s: make one with lkbuild fetch --arch %s --bundle DIR", b.dir, strings.Join(b.m.Arches, ", "), arch.Uname, arch.Uname)
	}
	var wanted []string
	for _, r := range refs {
		if r == "" {
			continue
		}
		if _, _, ok := toolchain.ParseLayoutRef(r); ok {
			continue
		}
		canon, err := oci.RefName(r)
		if err != nil {
			return fmt.Errorf("bundle %s: %w", b.dir, err)
		}
		wanted = append(wanted, canon)
	}
	// Read in place, never made: a bundle is not written to.
	if _, err := os.Stat(filepath.Join(b.dir, bundleImages, "oci-layout")); err != nil {
		return &BundleError{Dir: b.dir, Piece: "the images", Path: bundleImages, Err: err}
	}
	images, err := oci.OpenStore(filepath.Join(b.dir, bundleImages))
	if err != nil {
		return &BundleError{Dir: b.dir, Piece: "the images", Path: bundleImages, Err: err}
	}
	root, err := os.OpenRoot(b.dir)
	if err != nil {
		return fmt.Errorf("bundle %s: %w", b.dir, err)
	}
	defer root.Close()
	store, err := cache.Blobs()
	if err != nil {
		return fmt.Errorf("bundle %s: %w", b.dir, err)
	}
	type pulled struct {
		ref string
		p   v1.Platform
		d   v1.Hash
	}
	var verified []pulled
	for _, p := range b.m.Pieces {
		bad := func(err error) error {
			return &BundleError{Dir: b.dir, Piece: p.For, Path: p.Path + p.Ref, Err: err}
		}
		switch p.Kind {
		case "file":
			sum, err := rootSHA256(root, p.Path)
			if err != nil {
				return bad(err)
			}
			if sum != p.SHA256 {
				return bad(fmt.Errorf("sha256 %s, the manifest says %s: %w", sum, p.SHA256, ErrBundleChanged))
			}
		case "git":
			c, err := gitfetch.Fetch(ctx, filepath.Join(b.dir, p.Path), p.Tag, cache.Git(), gitfetch.Offline(true))
			if err != nil {
				return bad(err)
			}
			if c.Commit != p.Commit {
				return bad(fmt.Errorf("tag %s is commit %s, the manifest says %s: %w", p.Tag, c.Commit, p.Commit, ErrBundleChanged))
			}
		case "image":
			want, err := v1.NewHash(p.Digest)
			if err != nil {
				return bad(fmt.Errorf("digest %q: %w", p.Digest, err))
			}
			plat, err := v1.ParsePlatform(p.Platform)
			if err != nil {
				return bad(fmt.Errorf("platform %q: %w", p.Platform, err))
			}
			img, d, err := images.ImageByName(p.Name)
			if err != nil {
				return bad(fmt.Errorf("missing from %s: %w", bundleImages, err))
			}
			if d.Digest != want {
				return bad(fmt.Errorf("is %s in the layout, the manifest says %s: %w", d.Digest, want, ErrBundleChanged))
			}
			// Every blob is hashed as it is copied: a changed byte fails.
			if err := store.WriteImage(ctx, img, nil); err != nil {
				return bad(fmt.Errorf("%w: %w", ErrBundleChanged, err))
			}
			if slices.Contains(wanted, p.Ref) {
				verified = append(verified, pulled{p.Ref, *plat, want})
			}
		default:
			return bad(fmt.Errorf("unknown kind %q", p.Kind))
		}
	}
	for _, v := range verified {
		store.RecordResolved(v.ref, v.p, v.d)
	}
	return nil
}

// ErrBundleChanged is wrapped by a *BundleError for a piece whose bytes
// are not the ones the manifest names.
var ErrBundleChanged = errors.New("changed since the bundle was written: refused")

// BundleError is a bundle piece that is missing or changed.
type BundleError struct {
	Dir, Piece, Path string
	Err              error
}

func (e *BundleError) Error() string {
	return fmt.Sprintf("bundle %s: %s (%s): %v", e.Dir, e.Piece, e.Path, e.Err)
}

func (e *BundleError) Unwrap() error { return e.Err }

// rootSHA256 hashes the file at rel under root, following no symlink out
// of it.
func rootSHA256(root *os.Root, rel string) (string, error) {
	f, err := root.Open(rel)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// OpenBundleArchive unpacks a bundle made into a tar file (plain, or
// compressed with gzip or zstd; the bundle's files at its top or under one directory)
// into a new directory under work with oci's safe extractor (no entry
// leaves it, no device or owner is kept), and opens it. remove deletes
// that directory; the caller calls it when the build is done.
func OpenBundleArchive(ctx context.Context, file, work string) (b *Bundle, remove func(), err error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, nil, fmt.Errorf("bundle %s: %w", file, err)
	}
	defer f.Close()
	if err := os.MkdirAll(work, 0o700); err != nil {
		return nil, nil, fmt.Errorf("bundle %s: %w", file, err)
	}
	dir, err := os.MkdirTemp(work, "bundle-")
	if err != nil {
		return nil, nil, fmt.Errorf("bundle %s: %w", file, err)
	}
	cleanup := func() { removeTree(dir) }
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	if _, err := oci.ExtractArchive(ctx, f, dir, oci.WithOwnership(false), oci.WithDevices(false)); err != nil {
		return nil, nil, fmt.Errorf("bundle %s: %w", file, err)
	}
	top := dir
	if ents, err := os.ReadDir(dir); err == nil && len(ents) == 1 && ents[0].IsDir() {
		top = filepath.Join(dir, ents[0].Name())
	}
	if b, err = OpenBundle(top); err != nil {
		return nil, nil, fmt.Errorf("%w (unpacked from %s)", err, file)
	}
	return b, cleanup, nil
}

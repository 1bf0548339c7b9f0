package oci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// How lkbuild names images in an OCI layout (index.json), so that three
// kinds of reader find them:
//
//   - LinuxKit's cache (~/.linuxkit/cache is an OCI layout) looks images
//     up by org.opencontainers.image.ref.name equal to the fully qualified
//     reference, docker.io/linuxkit/kernel:6.6.71, and `linuxkit cache
//     import` of a layout's tar registers the names it finds in
//     io.containerd.image.name. Publish writes that form in both.
//   - skopeo and the oci: transport of containers/image take
//     oci:DIR:NAME with NAME the ref name, usually the bare tag. Publish
//     adds an alias entry named by the bare tag for every tag that names
//     one image only (see withAliases).
//   - lkbuild itself, which also reads layouts written before it qualified
//     its names (linuxkit/kernel:6.6.71): findNamed compares qualified
//     forms when no ref name matches exactly.

// ContainerdNameAnnotation is the image's full name as containerd, docker
// save and `linuxkit cache import` read it.
const ContainerdNameAnnotation = "io.containerd.image.name"

// AliasAnnotation marks an index.json entry that Publish wrote under a bare
// tag and names the fully qualified name it stands for. Entries without it
// are never taken for aliases, so a name someone else gave is left alone.
const AliasAnnotation = "dev.lkbuild.alias-of"

// layoutLock is the file whose lock serializes changes to index.json: the
// one LinuxKit locks (with fcntl) in its cache, so that lkbuild writing
// into ~/.linuxkit/cache and linuxkit itself wait for each other.
const layoutLock = ".lock"

// dockerHub is the registry name LinuxKit's names carry for Docker Hub
// (go-containerregistry calls it index.docker.io).
const dockerHub = "docker.io"

// ErrIndex is returned by ImageByName for a name that is a multi-platform
// index: the caller has to say which platform it wants.
var ErrIndex = errors.New("is a multi-platform index")

// QualifiedName is ref (a tag reference) fully qualified the way LinuxKit
// and Docker spell it: registry, repository, tag, with Docker Hub as
// docker.io and its official images under library/. linuxkit/kernel:6.6
// is docker.io/linuxkit/kernel:6.6, alpine is docker.io/library/alpine:latest,
// registry.example:5000/k:1 stays as it is. (LinuxKit leaves a name of
// three parts with no registry, a/b/kernel:1, as it is; Docker Hub has no
// such repositories, and Docker's rule, docker.io/a/b/kernel:1, is kept.)
func QualifiedName(ref string) (string, error) {
	t, err := name.NewTag(ref)
	if err != nil {
		return "", fmt.Errorf("image name %q: %w", ref, err)
	}
	reg := t.RegistryStr()
	if reg == name.DefaultRegistry {
		reg = dockerHub
	}
	return reg + "/" + t.RepositoryStr() + ":" + t.TagStr(), nil
}

// LayoutEntry is an image to store in a layout with the names it gets.
type LayoutEntry struct {
	Image    v1.Image
	Platform v1.Platform
	// Tags name the image itself (single-platform names).
	Tags []string
	// Indexes are the multi-platform indexes that list the image for
	// Platform.
	Indexes []LayoutIndex
}

// LayoutIndex is a multi-platform index named in a layout.
type LayoutIndex struct {
	Name string
	// Gather names single-platform images the index lists too, when the
	// layout holds them: the index of a release lists every arch image of
	// that release in the layout, also ones written before the index was
	// (by an older lkbuild).
	Gather []string
}

// Publish stores each entry's image and names it in the layout, as a
// registry push of the same tags would: every name is fully qualified
// (QualifiedName) and written in both ref name annotations, and replaces
// what the name (in any spelling) pointed to. Each index is merged like a
// registry index (MergeIndex): the platforms it listed stay, the images
// named by Gather join, and the entry's image takes its platform's place.
// Aliases by bare tag follow (withAliases).
//
// The blobs are written first; index.json then changes once, under the
// layout's lock and by rename, so concurrent writers (other lkbuild
// processes, LinuxKit) lose none of each other's names and a reader
// sees all of one Publish or none.
func (s *Store) Publish(ctx context.Context, entries ...LayoutEntry) error {
	type prepared struct {
		desc    v1.Descriptor
		tags    []string
		indexes []LayoutIndex
	}
	var todo []prepared
	for _, e := range entries {
		if e.Image == nil {
			return errors.New("publish: no image")
		}
		if err := s.WriteImage(ctx, e.Image, nil); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		desc, err := platformDescriptor(e.Image, e.Platform)
		if err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		p := prepared{desc: desc}
		if p.tags, err = qualifiedNames(e.Tags); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		for _, ix := range e.Indexes {
			n, err := QualifiedName(ix.Name)
			if err != nil {
				return fmt.Errorf("publish: %w", err)
			}
			gather, err := qualifiedNames(ix.Gather)
			if err != nil {
				return fmt.Errorf("publish: %w", err)
			}
			p.indexes = append(p.indexes, LayoutIndex{Name: n, Gather: gather})
		}
		todo = append(todo, p)
	}
	err := s.updateIndex(ctx, func(ms []v1.Descriptor) ([]v1.Descriptor, error) {
		for _, p := range todo {
			for _, n := range p.tags {
				ms = setName(ms, n, p.desc)
			}
			for _, ix := range p.indexes {
				raw, err := s.mergedLayoutIndex(ms, ix, p.desc)
				if err != nil {
					return nil, fmt.Errorf("index %s: %w", ix.Name, err)
				}
				d := digestOf(raw)
				if err := s.writeBytes(d, raw); err != nil {
					return nil, fmt.Errorf("index %s: %w", ix.Name, err)
				}
				ms = setName(ms, ix.Name, v1.Descriptor{MediaType: types.OCIImageIndex, Size: int64(len(raw)), Digest: d})
			}
		}
		return ms, nil
	})
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	return nil
}

func qualifiedNames(ns []string) ([]string, error) {
	out := make([]string, 0, len(ns))
	for _, n := range ns {
		q, err := QualifiedName(n)
		if err != nil {
			return nil, err
		}
		out = append(out, q)
	}
	return out, nil
}

// setName points the fully qualified name n at desc: entries named n in
// any spelling go, and desc is appended with n in both annotations.
func setName(ms []v1.Descriptor, n string, desc v1.Descriptor) []v1.Descriptor {
	ms = slices.DeleteFunc(ms, func(d v1.Descriptor) bool {
		return !isAlias(d) && sameName(d.Annotations[RefNameAnnotation], n)
	})
	d := desc
	d.Annotations = map[string]string{RefNameAnnotation: n, ContainerdNameAnnotation: n}
	return append(ms, d)
}

// sameName reports whether the ref name have is the qualified name q,
// written so or in a shorter form.
func sameName(have, q string) bool {
	if have == q {
		return true
	}
	if have == "" || !strings.ContainsAny(have, ":/") {
		return false // a bare name is not a reference
	}
	hq, err := QualifiedName(have)
	return err == nil && hq == q
}

func isAlias(d v1.Descriptor) bool {
	_, ok := d.Annotations[AliasAnnotation]
	return ok
}

// mergedLayoutIndex is the index ix names after entry joins it: the
// platforms it lists now, then the images ix.Gather names, then entry,
// each replacing an earlier one of its platform, sorted by platform. Only
// images whose manifests are in the store, with a known platform, are
// listed: LinuxKit's cache reads the platform of every entry.
func (s *Store) mergedLayoutIndex(ms []v1.Descriptor, ix LayoutIndex, entry v1.Descriptor) ([]byte, error) {
	var entries []v1.Descriptor
	if cur, ok := findNamed(ms, ix.Name); ok {
		listed, err := s.listed(cur)
		if err != nil {
			return nil, err
		}
		entries = append(entries, listed...)
	}
	for _, g := range ix.Gather {
		if d, ok := findNamed(ms, g); ok && d.MediaType.IsImage() {
			entries = append(entries, d)
		}
	}
	entries = append(entries, entry)
	byPlatform := map[string]v1.Descriptor{}
	for _, e := range entries {
		d := v1.Descriptor{MediaType: e.MediaType, Size: e.Size, Digest: e.Digest, Platform: e.Platform}
		if !s.HasBlob(d.Digest, d.Size) {
			continue
		}
		if d.Platform == nil {
			p, ok := s.imagePlatform(d.Digest)
			if !ok {
				continue
			}
			d.Platform = &p
		}
		byPlatform[d.Platform.String()] = d
	}
	var out []v1.Descriptor
	for _, d := range byPlatform {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b v1.Descriptor) int { return strings.Compare(platformKey(a), platformKey(b)) })
	return json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: out})
}

// listed returns what the layout entry d lists: an index's manifests, or
// d itself for an image.
func (s *Store) listed(d v1.Descriptor) ([]v1.Descriptor, error) {
	if !d.MediaType.IsIndex() {
		return []v1.Descriptor{d}, nil
	}
	raw, err := s.readManifest(d)
	if err != nil {
		return nil, err
	}
	var im v1.IndexManifest
	if err := json.Unmarshal(raw, &im); err != nil {
		return nil, fmt.Errorf("parse index %s: %w", d.Digest, err)
	}
	return im.Manifests, nil
}

// imagePlatform reads the platform from the config of the image with
// manifest digest h.
func (s *Store) imagePlatform(h v1.Hash) (v1.Platform, bool) {
	img, ok := s.Image(h)
	if !ok {
		return v1.Platform{}, false
	}
	cf, err := img.ConfigFile()
	if err != nil || cf.OS == "" || cf.Architecture == "" {
		return v1.Platform{}, false
	}
	return v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}, true
}

// withAliases returns ms with the alias entries recomputed from the other
// entries, so that oci:DIR:TAG works (skopeo's usual form):
//
//   - a tag gets an alias when an entry named in full in both annotations
//     has it: what Publish writes (and, in a LinuxKit cache, what
//     `linuxkit cache import` registers);
//   - but not when the layout names another image with the same tag in
//     any repository (two --org builds of different images): then the tag
//     would not say which, and only full names work. The same image under
//     two repositories (one build pushed under two orgs) keeps its alias;
//   - nor when an entry not made by Publish already has the tag as its
//     name (lkbuild builder-image --tag builder, or any other tool's).
//
// The aliases depend only on the other entries, not on the order they came
// in, and come last, sorted by tag, each marked with AliasAnnotation.
func withAliases(ms []v1.Descriptor) []v1.Descriptor {
	out := slices.DeleteFunc(slices.Clone(ms), isAlias)
	taken := map[string]bool{}
	digests := map[string]map[v1.Hash]bool{}
	from := map[string]v1.Descriptor{}
	for _, d := range out {
		n := d.Annotations[RefNameAnnotation]
		if n == "" {
			continue
		}
		tag, ok := tagOf(n)
		if !ok {
			if !strings.ContainsAny(n, ":/@") {
				taken[n] = true
			}
			continue
		}
		if digests[tag] == nil {
			digests[tag] = map[v1.Hash]bool{}
		}
		digests[tag][d.Digest] = true
		if d.Annotations[ContainerdNameAnnotation] != n {
			continue
		}
		if f, ok := from[tag]; !ok || n < f.Annotations[RefNameAnnotation] {
			from[tag] = d
		}
	}
	var tags []string
	for tag := range from {
		if len(digests[tag]) == 1 && !taken[tag] {
			tags = append(tags, tag)
		}
	}
	slices.Sort(tags)
	for _, tag := range tags {
		f := from[tag]
		out = append(out, v1.Descriptor{
			MediaType: f.MediaType, Size: f.Size, Digest: f.Digest, Platform: f.Platform,
			Annotations: map[string]string{RefNameAnnotation: tag, AliasAnnotation: f.Annotations[RefNameAnnotation]},
		})
	}
	return out
}

// tagOf returns the tag of a ref name that is REPOSITORY:TAG.
func tagOf(n string) (string, bool) {
	if strings.Contains(n, "@") {
		return "", false
	}
	i := strings.LastIndex(n, ":")
	if i <= 0 || i == len(n)-1 || strings.Contains(n[i+1:], "/") {
		return "", false
	}
	return n[i+1:], true
}

// findNamed returns the entry of ms that n names: the one whose ref name
// is n, else one whose ref name is the same reference in another spelling
// (linuxkit/kernel:6.6 for docker.io/linuxkit/kernel:6.6, and the other
// way round: layouts written before lkbuild qualified its names hold the
// short form).
func findNamed(ms []v1.Descriptor, n string) (v1.Descriptor, bool) {
	for _, d := range ms {
		if d.Annotations[RefNameAnnotation] == n {
			return d, true
		}
	}
	if !strings.ContainsAny(n, ":/") {
		return v1.Descriptor{}, false
	}
	q, err := QualifiedName(n)
	if err != nil {
		return v1.Descriptor{}, false
	}
	for _, d := range ms {
		if !isAlias(d) && sameName(d.Annotations[RefNameAnnotation], q) {
			return d, true
		}
	}
	return v1.Descriptor{}, false
}

// namesWithTag lists, sorted, the ref names in ms whose tag is tag.
func namesWithTag(ms []v1.Descriptor, tag string) []string {
	var out []string
	for _, d := range ms {
		n := d.Annotations[RefNameAnnotation]
		if t, ok := tagOf(n); ok && t == tag && !isAlias(d) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// updateIndex changes index.json: change gets its entries and returns the
// new ones, whose aliases are then recomputed (withAliases). It holds the
// layout's lock throughout and replaces index.json by rename, so a reader
// without the lock sees the old or the new file, never a mix.
func (s *Store) updateIndex(ctx context.Context, change func([]v1.Descriptor) ([]v1.Descriptor, error)) error {
	unlock, err := lockLayout(ctx, filepath.Join(s.Dir(), layoutLock))
	if err != nil {
		return fmt.Errorf("lock the layout index: %w", err)
	}
	defer unlock()
	im, err := s.indexManifest()
	if err != nil {
		return err
	}
	ms, err := change(slices.Clone(im.Manifests))
	if err != nil {
		return err
	}
	im.Manifests = withAliases(ms)
	raw, err := json.MarshalIndent(im, "", "   ")
	if err != nil {
		return fmt.Errorf("write layout index: %w", err)
	}
	return writeFileAtomic(filepath.Join(s.Dir(), "index.json"), raw)
}

// writeFileAtomic writes data to a temporary file next to file and renames
// it over file.
func writeFileAtomic(file string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+"-")
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(file), err)
	}
	defer os.Remove(tmp.Name()) // after the rename: nothing there
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr, os.Chmod(tmp.Name(), 0o644)); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(file), err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(file), err)
	}
	return nil
}

// ImageForPlatform returns the image named n in the layout (findNamed):
// the image itself, or from an index the one image for platform p (an
// empty field of p matches any).
func (s *Store) ImageForPlatform(n string, p v1.Platform) (v1.Image, v1.Descriptor, error) {
	return s.imageByName(n, &p)
}

// ImageByName returns the image named n in the layout's index.json: by
// its exact ref name, else by the same reference in another spelling
// (linuxkit/kernel:6.6 finds docker.io/linuxkit/kernel:6.6, and the short
// names of layouts written before lkbuild qualified them are found by
// their full ones). A name of an index is ErrIndex: use ImageForPlatform.
func (s *Store) ImageByName(n string) (v1.Image, v1.Descriptor, error) {
	return s.imageByName(n, nil)
}

func (s *Store) imageByName(n string, p *v1.Platform) (v1.Image, v1.Descriptor, error) {
	im, err := s.indexManifest()
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	d, ok := findNamed(im.Manifests, n)
	if !ok {
		if full := namesWithTag(im.Manifests, n); len(full) > 1 {
			return nil, v1.Descriptor{}, fmt.Errorf("image %s in %s: %w: the tag names different images, give the full name: %s",
				n, s.Dir(), ErrNotFound, strings.Join(full, ", "))
		}
		return nil, v1.Descriptor{}, fmt.Errorf("image %s in %s: %w", n, s.Dir(), ErrNotFound)
	}
	if d.MediaType.IsIndex() {
		if p == nil {
			return nil, d, fmt.Errorf("image %s in %s %w: name one platform's image", n, s.Dir(), ErrIndex)
		}
		if d, err = s.platformOf(n, d, *p); err != nil {
			return nil, d, err
		}
	}
	img, ok := s.Image(d.Digest)
	if !ok {
		return nil, d, fmt.Errorf("image %s (%s) is incomplete in %s", n, d.Digest, s.Dir())
	}
	return img, d, nil
}

// platformOf picks the one image for p from the index idx that n names.
func (s *Store) platformOf(n string, idx v1.Descriptor, p v1.Platform) (v1.Descriptor, error) {
	listed, err := s.listed(idx)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("image %s in %s: %w", n, s.Dir(), err)
	}
	var found []v1.Descriptor
	var have []string
	for _, d := range listed {
		if d.Platform == nil || !d.MediaType.IsImage() {
			continue
		}
		have = append(have, d.Platform.String())
		if d.Platform.Satisfies(p) {
			found = append(found, d)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return v1.Descriptor{}, fmt.Errorf("image %s in %s: %w %s (index has %v)", n, s.Dir(), ErrNoPlatform, p.String(), have)
	}
	return v1.Descriptor{}, fmt.Errorf("image %s in %s is an index of %v: name the arch", n, s.Dir(), have)
}

// LinkImage stores img like WriteImage, hard-linking the blobs that one of
// from holds instead of copying them, where the file system allows it.
// Blobs are never changed in place, so a link is as good as a copy: a
// builder image kept in the cache costs no second copy in a layout on
// the same file system.
func (s *Store) LinkImage(ctx context.Context, img v1.Image, from ...*Store) error {
	var blobs []v1.Hash
	if d, err := img.Digest(); err == nil {
		blobs = append(blobs, d)
	}
	if d, err := img.ConfigName(); err == nil {
		blobs = append(blobs, d)
	}
	if ls, err := img.Layers(); err == nil {
		for _, l := range ls {
			if d, err := l.Digest(); err == nil {
				blobs = append(blobs, d)
			}
		}
	}
	for _, h := range blobs {
		if s.HasBlob(h, -1) {
			continue
		}
		for _, f := range from {
			if f != nil && f.Dir() != s.Dir() && f.HasBlob(h, -1) && os.Link(f.BlobPath(h), s.BlobPath(h)) == nil {
				break
			}
		}
	}
	// Whatever was not linked is copied; a linked blob is present.
	return s.WriteImage(ctx, img, nil)
}

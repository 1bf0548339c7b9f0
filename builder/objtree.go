package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/lkbuild/lkbuild/internal/objtree"
	"github.com/lkbuild/lkbuild/kernel"
)

// treeKey names the object tree a build can start from: everything that
// decides what the build writes into the source tree except the patches,
// which Reconcile compares file by file, and the epoch, whose variables
// kbuild tracks itself (a new commit of the kernel directory has a new
// one). The config is in it: after a config change kbuild leaves the old
// config's products in include/ and scripts/, which kernel-dev.tar ships.
func (b *build) treeKey() string {
	h := sha256.New()
	fmt.Fprintf(h, "lkbuild object tree\nversion %s\nsource %s\narch %s\nbuilder %s\nconfig %x\ncross %q\nemulated %v\n",
		b.plan.Version, b.src.SHA256, b.plan.Arch.Uname, b.builderID(), sha256.Sum256(b.plan.Config),
		b.plan.CrossCompile, b.env.Emulation != nil)
	if b.fast != nil {
		fmt.Fprintf(h, "fast path %s native %s\n", b.fast.digest, strings.Join(b.fast.native, " "))
	}
	fmt.Fprintf(h, "paths %+v\n", b.plan.Paths)
	for _, e := range b.plan.Env {
		if strings.HasPrefix(e, "SOURCE_DATE_EPOCH=") || strings.HasPrefix(e, "KBUILD_BUILD_TIMESTAMP=") {
			continue
		}
		fmt.Fprintf(h, "env %s\n", e)
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// openTree takes the target's kept object tree for this build and points
// the build's upper dir at it. Without it (another build of the target
// holds it) the build runs in its scratch dir, as a clean build.
func (b *build) openTree(d *sandboxDirs) error {
	if !kernel.BuildsKernel(b.plan.Tool) {
		// A tool builds in a minute or two, and kbuild's object tracking,
		// which makes a kept tree safe, is the kernel's, not tools/'.
		return nil
	}
	slot, err := objtree.Open(filepath.Join(b.env.Cache.Trees(), b.treeKey()))
	if errors.Is(err, objtree.ErrBusy) {
		b.emit(Event{Kind: EventNote, Message: "another build of this target is using its object tree: building clean in scratch space"})
		b.logf("object tree busy: clean build in %s", d.buildUpper)
		return nil
	}
	if err != nil {
		return err
	}
	b.tree = slot
	d.buildUpper = slot.Upper()
	if b.pol.Clean || !slot.Kept() {
		b.treeNote = "clean build (--clean)"
		if !slot.Kept() {
			b.treeNote = "clean build: no object tree is kept for this target"
		}
		return b.resetTree()
	}
	return nil
}

func (b *build) resetTree() error {
	if err := b.tree.Reset(removeTree); err != nil {
		return err
	}
	b.treeBegun = true
	return b.tree.Begin()
}

// reconcileTree, after the patches, decides between building on the kept
// tree and starting clean, and prepares the patched tree for the kept
// objects.
func (b *build) reconcileTree(d sandboxDirs) error {
	if b.tree == nil || b.treeBegun {
		if b.treeNote != "" {
			b.emit(Event{Kind: EventNote, Message: "object tree: " + b.treeNote})
		}
		return nil
	}
	plan, err := b.tree.Reconcile(d.patchUpper, b.src.Dir)
	if err != nil {
		return err
	}
	if plan.Refused != "" {
		b.treeNote = "clean build: " + plan.Refused
		b.emit(Event{Kind: EventNote, Message: "object tree: " + b.treeNote})
		return b.resetTree()
	}
	b.res.Incremental = true
	msg := fmt.Sprintf("object tree: building on the last build of this target; the patches changed %d files", len(plan.Changed))
	if n := len(plan.Changed); n > 0 && n <= 5 {
		msg += " (" + strings.Join(plan.Changed, ", ") + ")"
	}
	b.emit(Event{Kind: EventNote, Message: msg})
	b.logf("object tree %s: incremental, changed %v", b.tree.Dir(), plan.Changed)
	b.treeBegun = true
	return b.tree.Begin()
}

// closeTree keeps the object tree for the next build when the build left
// it consistent: it succeeded, or a command in it failed the ordinary way
// (kbuild deletes a target whose command fails). A cancelled or killed
// build, or one that failed before its patches were in, leaves the kept
// tree as it was or unusable.
func (b *build) closeTree(d sandboxDirs, stepsErr error) {
	if b.tree == nil {
		return
	}
	defer b.tree.Close()
	if !b.treeBegun {
		return
	}
	var se *StepError
	var cm *kernel.ConfigMismatchError
	consistent := stepsErr == nil || errors.As(stepsErr, &cm) || (errors.As(stepsErr, &se) && se.Code > 0)
	if !consistent {
		return
	}
	info := objtreeInfo(b)
	if err := b.tree.Commit(d.patchUpper, info, removeTree); err != nil {
		b.logf("object tree not kept: %v", err)
		b.emit(Event{Kind: EventNote, Message: "the object tree was not kept for the next build: " + err.Error()})
	}
}

func objtreeInfo(b *build) objtree.Info {
	target := b.plan.Version.String() + " " + b.plan.Arch.Uname
	if v := strings.TrimPrefix(b.plan.LocalVersion, "-linuxkit"); v != "" {
		target += " " + v
	}
	return objtree.Info{Target: target, Builder: b.plan.BuilderImage + "@" + b.rootfs.Digest.String()}
}

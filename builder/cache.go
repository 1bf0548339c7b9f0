package builder

import (
	"errors"

	"github.com/lkbuild/lkbuild/internal/cachedir"
)

// PruneResult is what PruneCache did.
type PruneResult struct {
	// Removed are the entries removed (with DryRun: that would be).
	Removed []cachedir.Entry
	// InUse are entries picked but held by a running build, left alone.
	InUse []cachedir.Entry
	// Kept is the size of what is left, in bytes.
	Kept int64
}

// PruneCache removes from the cache what o selects (cachedir.Select), the
// least recently used first, leaving alone whatever a running build holds:
// its builder rootfs, source, microcode, object tree, the blob store and
// scratch space. With dryRun it only says what it would remove. A build
// that takes an entry between the listing and its removal keeps it (it is
// then reported in use), and nothing else is picked in its place.
func PruneCache(dir cachedir.Dir, o cachedir.PruneOptions, dryRun bool) (PruneResult, error) {
	var res PruneResult
	entries, err := dir.Entries()
	if err != nil {
		return res, err
	}
	picked := map[string]bool{}
	for _, e := range entries {
		if e.InUse && e.Kind != cachedir.KindWork {
			res.InUse = append(res.InUse, e)
		}
	}
	for _, e := range cachedir.Select(entries, o) {
		if dryRun {
			res.Removed = append(res.Removed, e)
			picked[e.Paths[0]] = true
			continue
		}
		err := dir.Remove(e, removeTree)
		switch {
		case errors.Is(err, cachedir.ErrInUse):
			res.InUse = append(res.InUse, e)
		case err != nil:
			return res, err
		default:
			res.Removed = append(res.Removed, e)
			picked[e.Paths[0]] = true
		}
	}
	for _, e := range entries {
		if !picked[e.Paths[0]] {
			res.Kept += e.Size
		}
	}
	return res, nil
}

package kernelgit

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/lkbuild/lkbuild/internal/gitrepo"
	"github.com/lkbuild/lkbuild/kernel"
)

// Repo is a git work tree, read with go-git. It implements kernel.Revision.
type Repo struct {
	repo   *git.Repository
	root   string        // work tree root, absolute, symbolic links resolved
	commit plumbing.Hash // the commit LsTree lists
	// core.quotePath and core.fileMode, as git would read them.
	quotePath, fileMode bool
	// core.sparseCheckout and sparse.expectFilesOutsideOfPatterns: whether
	// git takes a skip-worktree file that is present as modified (Dirty).
	sparseCheckout, expectOutside bool
	// index.sparse: the index may hold folders, which go-git cannot read.
	sparseIndex bool
}

var _ kernel.Revision = (*Repo)(nil)

// OpenRepo opens the repository whose work tree holds dir, looking in dir
// and its parents for .git, as git does. rev picks the commit LsTree lists
// ("" is HEAD). A dir outside any repository gives an error that
// errors.Is matches with git.ErrRepositoryNotExists. Linked work trees
// (`git worktree add`), shallow clones and sparse checkouts open; a
// repository using an extension other than worktreeConfig does not (see
// package gitrepo).
func OpenRepo(dir, rev string) (*Repo, error) {
	repo, err := gitrepo.Discover(dir)
	if err != nil {
		return nil, fmt.Errorf("open git repository at %s: %w", dir, err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		return nil, fmt.Errorf("open git work tree at %s: %w", dir, err)
	}
	root, err := filepath.EvalSymlinks(wt.Filesystem.Root())
	if err != nil {
		return nil, fmt.Errorf("resolve work tree root: %w", err)
	}
	if rev == "" {
		rev = "HEAD"
	}
	h, err := repo.ResolveRevision(plumbing.Revision(rev))
	if err != nil {
		return nil, fmt.Errorf("resolve %s in %s: %w", rev, root, err)
	}
	commit, err := repo.CommitObject(*h)
	if err != nil {
		return nil, fmt.Errorf("%s in %s is not a commit: %w", rev, root, err)
	}
	r := &Repo{repo: repo, root: root, commit: commit.Hash}
	r.quotePath, r.fileMode = true, true
	if err := r.readConfig(); err != nil {
		return nil, err
	}
	return r, nil
}

// Root is the work tree root.
func (r *Repo) Root() string { return r.root }

// readConfig reads the settings Repo needs from the system, global and
// repository config (config.worktree included), the last one set winning,
// as in git.
func (r *Repo) readConfig() error {
	local, err := r.repo.Storer.Config()
	if err != nil {
		return fmt.Errorf("read git config: %w", err)
	}
	scopes := []config.Scope{config.SystemScope, config.GlobalScope}
	if v := os.Getenv("GIT_CONFIG_NOSYSTEM"); v != "" {
		if skip, ok := gitrepo.ParseBool(v); ok && skip {
			scopes = scopes[1:] // as git does
		}
	}
	layers := []*config.Config{}
	for _, scope := range scopes {
		c, err := config.LoadConfig(scope)
		if err != nil {
			return fmt.Errorf("read git config: %w", err)
		}
		layers = append(layers, c)
	}
	layers = append(layers, local)
	for _, c := range layers {
		if c == nil || c.Raw == nil {
			continue
		}
		for _, s := range []struct {
			section string
			keys    map[string]*bool // lowercased
		}{
			{"core", map[string]*bool{"quotepath": &r.quotePath, "filemode": &r.fileMode, "sparsecheckout": &r.sparseCheckout}},
			{"sparse", map[string]*bool{"expectfilesoutsideofpatterns": &r.expectOutside}},
			{"index", map[string]*bool{"sparse": &r.sparseIndex}},
		} {
			for _, o := range c.Raw.Section(s.section).Options {
				dst, ok := s.keys[strings.ToLower(o.Key)]
				if !ok {
					continue
				}
				if b, ok := gitrepo.ParseBool(o.Value); ok {
					*dst = b
				}
			}
		}
	}
	return nil
}

// LsTree returns what `git ls-tree [-r] --full-tree <commit> -- paths`
// prints, byte for byte: "<mode> <type> <hash>\t<path>\n" per entry in
// tree order, paths from the root and quoted as git quotes them. As in
// git, the paths are literal (no wildcards) and match whole path
// components: "k/5.11.x" does not match "k/5.11.x-rt". Without recursive
// a matching folder is listed as one tree entry; a folder on the way to a
// deeper path is entered, not listed. With recursive, folders are entered
// and only blobs and submodule commits are listed.
func (r *Repo) LsTree(recursive bool, paths ...string) ([]byte, error) {
	commit, err := r.repo.CommitObject(r.commit)
	if err != nil {
		return nil, fmt.Errorf("read commit %s: %w", r.commit, err)
	}
	tree, err := commit.Tree()
	if err != nil {
		return nil, fmt.Errorf("read tree of %s: %w", r.commit, err)
	}
	var out bytes.Buffer
	if err := r.lsTree(&out, tree, "", recursive, paths); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func (r *Repo) lsTree(out *bytes.Buffer, tree *object.Tree, prefix string, recursive bool, specs []string) error {
	for _, e := range tree.Entries {
		full := prefix + e.Name
		mode := canonMode(e.Mode)
		matched := matchesAny(full, specs)
		if mode == filemode.Dir && (matched && recursive || leadsToAny(full, specs)) {
			sub, err := r.repo.TreeObject(e.Hash)
			if err != nil {
				return fmt.Errorf("read tree %s (%s): %w", full, e.Hash, err)
			}
			if err := r.lsTree(out, sub, full+"/", recursive, specs); err != nil {
				return err
			}
			continue
		}
		if !matched {
			continue
		}
		fmt.Fprintf(out, "%06o %s %s\t%s\n", uint32(mode), objectType(mode), e.Hash, quotePath(full, r.quotePath))
	}
	return nil
}

// matchesAny reports whether a path is one of specs or lies under one.
func matchesAny(p string, specs []string) bool {
	if len(specs) == 0 {
		return true
	}
	for _, s := range specs {
		if under(p, s) {
			return true
		}
	}
	return false
}

// leadsToAny reports whether some spec lies strictly below folder p.
func leadsToAny(p string, specs []string) bool {
	for _, s := range specs {
		if strings.HasPrefix(s, p+"/") {
			return true
		}
	}
	return false
}

// under reports whether p is dir or inside it; every path is under "".
func under(p, dir string) bool {
	return dir == "" || p == dir || strings.HasPrefix(p, dir+"/")
}

// canonMode is git's canon_mode: what ls-tree prints for a tree entry's
// mode, so an old 100664 entry reads 100644.
func canonMode(m filemode.FileMode) filemode.FileMode {
	const typeMask = 0170000
	switch uint32(m) & typeMask {
	case 0100000:
		if uint32(m)&0111 != 0 {
			return filemode.Executable
		}
		return filemode.Regular
	case 0120000:
		return filemode.Symlink
	case 0040000:
		return filemode.Dir
	}
	return filemode.Submodule
}

func objectType(m filemode.FileMode) string {
	switch m {
	case filemode.Dir:
		return "tree"
	case filemode.Submodule:
		return "commit"
	}
	return "blob"
}

// quotePath quotes a path as git does for its text output (quote_c_style):
// unchanged when it holds no special byte, else in double quotes with C
// escapes: \a \b \t \n \v \f \r \" \\, other control bytes and DEL in
// octal, and bytes from 0x80 up in octal too when core.quotePath is on
// (the default).
func quotePath(p string, quoteHigh bool) string {
	must := func(c byte) bool {
		return c < 0x20 || c == '"' || c == '\\' || c == 0x7f || c >= 0x80 && quoteHigh
	}
	needs := false
	for i := 0; i < len(p); i++ {
		if must(p[i]) {
			needs = true
			break
		}
	}
	if !needs {
		return p
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !must(c) {
			b.WriteByte(c)
			continue
		}
		switch c {
		case '\a':
			b.WriteString(`\a`)
		case '\b':
			b.WriteString(`\b`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\v':
			b.WriteString(`\v`)
		case '\f':
			b.WriteString(`\f`)
		case '\r':
			b.WriteString(`\r`)
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		default:
			b.WriteString(`\`)
			o := strconv.FormatUint(uint64(c), 8)
			b.WriteString(strings.Repeat("0", 3-len(o)) + o)
		}
	}
	b.WriteByte('"')
	return b.String()
}

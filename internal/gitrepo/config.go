package gitrepo

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/storage/filesystem"

	format "github.com/go-git/go-git/v5/plumbing/format/config"
)

// ErrUnsupportedExtension is returned when opening a repository that uses
// a repository extension this package does not read.
var ErrUnsupportedExtension = errors.New("unsupported git repository extension")

// ErrReadOnlyConfig is returned by the storage's SetConfig.
var ErrReadOnlyConfig = errors.New("git config opened read-only")

// worktreeConfig is the extension `git sparse-checkout` and `git config
// --worktree` turn on, lowercased as go-git's config reader keys it.
const worktreeConfig = "worktreeconfig"

// supported are the extensions a repository may use: worktreeConfig, read
// here, and go-git's no-ops, which it checks itself.
var supported = map[string]bool{worktreeConfig: true, "noop": true, "noop-v1": true}

// storage is go-git's file system storage with git's reading of the
// config: the common config, and with extensions.worktreeConfig on,
// $GIT_DIR/config.worktree after it, so that its settings win.
type storage struct {
	*filesystem.Storage
	gitDir string // the work tree's own git dir, where config.worktree is
}

// Config returns the repository's config as git reads it. It fails, with
// ErrUnsupportedExtension, for a repository using another extension.
// go-git checks extensions on what Config returns, so worktreeConfig,
// handled here, is left out of it.
func (s *storage) Config() (*config.Config, error) {
	cfg, err := s.Storage.Config()
	if err != nil {
		return nil, err
	}
	if !cfg.Raw.HasSection("extensions") {
		return cfg, nil
	}
	perWorktree, err := checkExtensions(cfg.Raw)
	if err != nil {
		return nil, err
	}
	raw := cfg.Raw
	raw.Section("extensions").RemoveOption(worktreeConfig)
	if perWorktree {
		wt, err := readWorktreeConfig(filepath.Join(s.gitDir, "config.worktree"))
		if err != nil {
			return nil, err
		}
		merge(raw, wt)
	}
	return reparse(raw)
}

// SetConfig refuses to write: Config may be two files merged, and writing
// it back would copy the work tree's settings into the common config.
func (s *storage) SetConfig(*config.Config) error { return ErrReadOnlyConfig }

// checkExtensions returns an error naming the first extension of raw that
// is not supported, and whether worktreeConfig is on. git reads
// extensions from the common config only.
func checkExtensions(raw *format.Config) (worktreeConfigOn bool, err error) {
	for _, o := range raw.Section("extensions").Options {
		name := strings.ToLower(o.Key)
		if !supported[name] {
			return false, fmt.Errorf("%w: extensions.%s = %s", ErrUnsupportedExtension, o.Key, o.Value)
		}
		if name == worktreeConfig {
			on, ok := ParseBool(o.Value)
			if !ok {
				return false, fmt.Errorf("extensions.%s: bad boolean %q", o.Key, o.Value)
			}
			worktreeConfigOn = on // the last one wins
		}
	}
	return worktreeConfigOn, nil
}

// readWorktreeConfig reads a config.worktree; a missing one is empty.
func readWorktreeConfig(name string) (*format.Config, error) {
	data, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return format.New(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read worktree config: %w", err)
	}
	cfg := format.New()
	if err := format.NewDecoder(bytes.NewReader(data)).Decode(cfg); err != nil {
		return nil, fmt.Errorf("parse %s: %w", name, err)
	}
	return cfg, nil
}

// merge appends the options of src to dst, as if src were read after
// dst: for a single-valued key the last one wins. src's extensions
// section is left out, as git does.
func merge(dst, src *format.Config) {
	for _, sec := range src.Sections {
		if sec.IsName("extensions") {
			continue
		}
		d := dst.Section(sec.Name)
		d.Options = append(d.Options, sec.Options...)
		for _, sub := range sec.Subsections {
			ds := d.Subsection(sub.Name)
			ds.Options = append(ds.Options, sub.Options...)
		}
	}
}

// reparse makes a config.Config from raw, so that its typed fields
// (remotes, branches, core) say what raw says.
func reparse(raw *format.Config) (*config.Config, error) {
	var b bytes.Buffer
	if err := format.NewEncoder(&b).Encode(raw); err != nil {
		return nil, fmt.Errorf("encode git config: %w", err)
	}
	cfg := config.NewConfig()
	if err := cfg.Unmarshal(b.Bytes()); err != nil {
		return nil, fmt.Errorf("parse git config: %w", err)
	}
	return cfg, nil
}

// ParseBool reads a git config boolean: true, yes, on, 1 or a key with no
// value; false, no, off or 0. ok is false for anything else.
func ParseBool(s string) (v, ok bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "true", "yes", "on", "1":
		return true, true
	case "false", "no", "off", "0":
		return false, true
	}
	return false, false
}

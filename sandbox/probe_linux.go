package sandbox

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/lkbuild/lkbuild/internal/rmtree"
)

// Probe starts an init in new namespaces that tries one capability
// ("userns", "overlay" or "binfmt") and reports whether it worked.
func Probe(ctx context.Context, kind string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "lkbuild-probe-")
	if err != nil {
		return err
	}
	defer rmtree.RemoveAll(dir)
	cfg := initConfig{Probe: kind}
	for _, p := range []*string{&cfg.Lower, &cfg.Upper, &cfg.Work, &cfg.Root} {
		d, err := os.MkdirTemp(dir, "")
		if err != nil {
			return err
		}
		*p = d
	}
	if err := os.WriteFile(filepath.Join(cfg.Lower, "file"), []byte("lower"), 0o644); err != nil {
		return err
	}
	return runInitOnce(cfg)
}

// RemoveTree removes dir from inside a user namespace with the
// sandbox's id mapping, where files owned by subordinate ids are ours.
func RemoveTree(dir string) error {
	return runInitOnce(initConfig{Probe: "remove", Root: dir})
}

// runInitOnce runs an init that does one thing (cfg.Probe) and reports.
func runInitOnce(cfg initConfig) error {
	cmd, ids, err := newInit(false)
	if err != nil {
		return err
	}
	repR, err := launchInit(cmd, ids, cfg)
	if err != nil {
		return err
	}
	defer repR.Close()
	var failed error
	sc := bufio.NewScanner(repR)
	for sc.Scan() {
		var r initReport
		if json.Unmarshal(sc.Bytes(), &r) == nil && r.Error != "" {
			failed = r.cause()
		}
	}
	werr := cmd.Wait()
	if failed != nil {
		return failed
	}
	if werr != nil {
		return fmt.Errorf("%s: %w", cfg.Probe, werr)
	}
	return nil
}

// runProbe is the init's side of probe.
func runProbe(cfg *initConfig) error {
	switch cfg.Probe {
	case "userns":
		return nil
	case "remove":
		return os.RemoveAll(cfg.Root)
	case "overlay":
		opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s,userxattr", cfg.Lower, cfg.Upper, cfg.Work)
		if err := unix.Mount("overlay", cfg.Root, "overlay", 0, opts); err != nil {
			return &os.PathError{Op: "mount overlay", Path: cfg.Root, Err: err}
		}
		// Copy-up of a lower file and a whiteout are what builds need.
		if err := os.WriteFile(filepath.Join(cfg.Root, "file"), []byte("upper"), 0o644); err != nil {
			return fmt.Errorf("copy-up: %w", err)
		}
		if err := os.Remove(filepath.Join(cfg.Root, "file")); err != nil {
			return fmt.Errorf("whiteout: %w", err)
		}
		return nil
	case "binfmt":
		if err := unix.Mount("binfmt_misc", cfg.Root, "binfmt_misc", 0, ""); err != nil {
			return &os.PathError{Op: "mount binfmt_misc", Path: cfg.Root, Err: err}
		}
		if _, err := os.Stat(filepath.Join(cfg.Root, "register")); err != nil {
			return err
		}
		return nil
	}
	return fmt.Errorf("unknown probe %q", cfg.Probe)
}

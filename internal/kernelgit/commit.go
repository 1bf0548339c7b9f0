package kernelgit

import (
	"fmt"
	"time"
)

// Commit returns the hash and committer time of the commit the repository
// was opened at: a build's revision label and its default epoch, so that
// a commit always builds the same bits.
func (r *Repo) Commit() (string, time.Time, error) {
	c, err := r.repo.CommitObject(r.commit)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("read commit %s: %w", r.commit, err)
	}
	return c.Hash.String(), c.Committer.When.UTC(), nil
}

// RemoteURL returns the first URL of the remote "origin", or "".
func (r *Repo) RemoteURL() string {
	rem, err := r.repo.Remote("origin")
	if err != nil || len(rem.Config().URLs) == 0 {
		return ""
	}
	return rem.Config().URLs[0]
}

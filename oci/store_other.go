//go:build !linux

package oci

import (
	"context"
	"os"
	"time"
)

func lockTemp(*os.File) {}

// removeStaleTemps needs file locks to know a temp file is abandoned;
// elsewhere temp files stay until removed by hand.
func removeStaleTemps(string, time.Time) {}

// lockLayout takes no lock: elsewhere concurrent writers of one layout
// may lose each other's names, as before lkbuild locked it.
func lockLayout(context.Context, string) (func(), error) { return func() {}, nil }

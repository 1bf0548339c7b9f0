//go:build !linux

package oci

import (
	"os"
	"time"
)

func lockTemp(*os.File) {}

// removeStaleTemps needs file locks to know a temp file is abandoned;
// elsewhere temp files stay until removed by hand.
func removeStaleTemps(string, time.Time) {}

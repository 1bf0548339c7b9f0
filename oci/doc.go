// Package oci holds everything image-shaped in lkbuild, on top of
// go-containerregistry: pulling an image for a platform through a
// content-addressed blob cache, extracting a rootfs safely, writing
// deterministic layers, assembling images with labels and annotations,
// writing OCI layouts, pushing with retries, merging multi-arch indexes and
// copying tags registry-side.
//
// The package is silent: it reports progress through callbacks and returns
// errors; the CLI decides what to print.
package oci

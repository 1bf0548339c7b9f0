// Package builder is the kernel build pipeline: it ties the kernel plan
// (package kernel), the builder rootfs (toolchain), the sandbox (sandbox)
// and images (oci) together. Build runs a plan's steps, each in its own
// sandbox, and writes the image; Push sends one to a registry;
// BuildBuilderImage makes a builder image; Doctor checks the host.
//
// Plan steps that lkbuild does itself (file writes, deterministic tars,
// the config check) run inside the sandbox too, where the source overlay
// is: the pipeline re-executes lkbuild with StepArg, and main must call
// MaybeRunStep right after sandbox.MaybeInit.
package builder

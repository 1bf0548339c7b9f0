package main

import (
	"encoding/json"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/lkbuild/lkbuild/builder"
)

func sbomCommand() *cli.Command {
	return &cli.Command{
		Name:      "sbom",
		Usage:     "print the SBOM (or with --provenance the provenance) attached to a kernel image",
		ArgsUsage: "REF",
		Description: `Reads back what lkbuild build attached to an image, as OCI referrers
(artifacts whose subject is the image, found through the registry's
referrers API or the sha256-<digest> tag of registries without one, or in
an OCI layout): the SPDX 2.3 JSON SBOM (the kernel, its release and
config hash, its built-in and loadable modules, the source and patches,
the builder image and its packages), or with --provenance the in-toto
SLSA v1 provenance (the exact invocation and every resolved input by
digest). REF is a registry reference or oci:DIR:NAME.

Examples:
   lkbuild sbom registry.example/linuxkit/kernel:6.6.71-0123abcd-amd64 | jq .packages[0]
   lkbuild sbom --provenance oci:out:linuxkit/kernel:6.6.71-0123abcd-amd64`,
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "provenance", Usage: "print the provenance statement instead of the SBOM"},
			&cli.StringFlag{Name: "arch", Usage: "the arch to read when REF is a multi-arch index"},
		}, registryFlags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("sbom needs one image: lkbuild sbom REF")
			}
			ref := c.Args().First()
			cache, err := cacheDir(c)
			if err != nil {
				return err
			}
			reg, err := newRegistry(c)
			if err != nil {
				return err
			}
			sub, err := openSubject(c, cache, reg, ref)
			if err != nil {
				return err
			}
			kind, what := builder.ArtifactSBOM, "SBOM"
			if c.Bool("provenance") {
				kind, what = builder.ArtifactProvenance, "provenance"
			}
			data, err := sub.Attachment(c.Context, kind)
			if err != nil {
				return fmt.Errorf("%s of %s: %w", what, ref, err)
			}
			if data == nil {
				return fmt.Errorf("%s has no %s attached (%s): was it built by an lkbuild before attachments, or copied without its referrers?", ref, what, kind)
			}
			// The registry's bytes go to a terminal: JSON only.
			if !json.Valid(data) {
				return fmt.Errorf("the %s attached to %s is not JSON: not printed", what, ref)
			}
			_, err = c.App.Writer.Write(data)
			return err
		},
	}
}

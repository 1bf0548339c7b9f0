package builder

import (
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// layerMediaType matches a new gzip layer's media type to its image's
// manifest format: Docker manifests take Docker layers.
func layerMediaType(img v1.Image) types.MediaType {
	if mt, err := img.MediaType(); err == nil && mt == types.DockerManifestSchema2 {
		return types.DockerLayer
	}
	return types.OCILayer
}

package oci

import (
	"errors"
	"net"
	"net/http"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// IsRegistryFault reports whether err came from a registry that could not
// be reached or answered with a fault of its own (429 or a 5xx status), or
// from index writers that kept overwriting each other: what trying again
// later may mend, unlike a refused login or a missing image. Offline use is
// not a fault.
func IsRegistryFault(err error) bool {
	if err == nil || errors.Is(err, ErrOffline) {
		return false
	}
	if errors.Is(err, ErrIndexContended) || isConnectionDrop(err) {
		return true
	}
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode == http.StatusTooManyRequests || te.StatusCode >= 500 && te.StatusCode != http.StatusNotImplemented
	}
	var ne net.Error
	var oe *net.OpError
	var de *net.DNSError
	return errors.As(err, &ne) && ne.Timeout() || errors.As(err, &oe) || errors.As(err, &de)
}

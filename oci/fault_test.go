package oci

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

func TestIsRegistryFault(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"refused connection", fmt.Errorf("push: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), true},
		{"reset", fmt.Errorf("push: %w", syscall.ECONNRESET), true},
		{"cut short", fmt.Errorf("pull: %w", io.ErrUnexpectedEOF), true},
		{"no such host", &net.DNSError{Err: "no such host", Name: "registry.invalid"}, true},
		{"503", fmt.Errorf("head: %w", &transport.Error{StatusCode: http.StatusServiceUnavailable}), true},
		{"429", &transport.Error{StatusCode: http.StatusTooManyRequests}, true},
		{"401", fmt.Errorf("push: %w", &transport.Error{StatusCode: http.StatusUnauthorized}), false},
		{"404", &transport.Error{StatusCode: http.StatusNotFound}, false},
		{"501", &transport.Error{StatusCode: http.StatusNotImplemented}, false},
		{"contended index", fmt.Errorf("merge: %w", ErrIndexContended), true},
		{"offline", fmt.Errorf("head: %w", ErrOffline), false},
		{"a build failure", errors.New("step make: exit 2"), false},
	} {
		if got := IsRegistryFault(tc.err); got != tc.want {
			t.Errorf("%s: IsRegistryFault(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

package oci

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

// basicKeychain answers every registry with one user and password.
type basicKeychain struct{ user, pass string }

func (k basicKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return authn.FromConfig(authn.AuthConfig{Username: k.user, Password: k.pass}), nil
}

// TestCredentialsNotEchoed runs every registry call against a registry
// that puts the Authorization header it got, and what it decodes to, into
// its error answers: no error may carry them.
func TestCredentialsNotEchoed(t *testing.T) {
	const user, pass = "lkuser", "s3cret-pa55"
	basic := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		if auth == "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.URL.Path == "/v2/" {
			return
		}
		dec, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(auth, "Basic "))
		w.Header().Set("X-Echo", auth)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `{"errors":[{"code":"DENIED","message":"you sent %s (%s), password %s"}]}`, auth, dec, pass)
	}))
	defer srv.Close()
	reg, err := NewRegistry(WithKeychain(basicKeychain{user, pass}), WithRetry(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	ref := strings.TrimPrefix(srv.URL, "http://") + "/lk/kernel:1"
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	calls := map[string]func() error{
		"head": func() error { _, err := reg.Head(ctx, ref); return err },
		"pull": func() error {
			_, err := reg.Pull(ctx, ref, v1.Platform{OS: "linux", Architecture: "amd64"}, nil, nil)
			return err
		},
		"push": func() error { _, err := reg.Push(ctx, img, ref); return err },
		"copy": func() error { _, err := reg.Copy(ctx, ref, ref+"-copy"); return err },
	}
	for name, call := range calls {
		err := call()
		if err == nil {
			t.Errorf("%s: no error from a registry that refuses everything", name)
			continue
		}
		msg := err.Error()
		for _, secret := range []string{basic, user + ":" + pass, pass} {
			if strings.Contains(msg, secret) {
				t.Errorf("%s: the error shows the credential %q: %s", name, secret, msg)
			}
		}
		// HEAD answers have no body; the others carry the message.
		if (name == "pull" || name == "copy") && !strings.Contains(msg, redacted) {
			t.Errorf("%s: the registry's message is lost instead of redacted: %s", name, msg)
		}
	}
}

func TestCredentialSecrets(t *testing.T) {
	enc := base64.StdEncoding.EncodeToString([]byte("u:longpass"))
	short := base64.StdEncoding.EncodeToString([]byte("u:pw"))
	for auth, want := range map[string][]string{
		"":                  nil,
		"Basic":             nil,
		"Basic " + enc:      {enc, "u:longpass", "longpass"},
		"Basic " + short:    {short, "u:pw"},
		"Bearer tok.en.sig": {"tok.en.sig"},
		"Basic !!notb64":    {"!!notb64"},
	} {
		got := credentialSecrets(auth)
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("credentialSecrets(%q) = %q, want %q", auth, got, want)
		}
	}
}

// refusingTransport refuses every connection, counting the tries.
type refusingTransport struct{ tries *atomic.Int32 }

func (t refusingTransport) RoundTrip(*http.Request) (*http.Response, error) {
	t.tries.Add(1)
	return nil, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
}

// TestRefusedConnectionFailsFast: a registry address where nothing
// listens is tried a few times, not retried at every layer for minutes.
func TestRefusedConnectionFailsFast(t *testing.T) {
	var tries atomic.Int32
	reg, err := NewRegistry(WithTransport(refusingTransport{&tries}), WithRetry(6, time.Millisecond), WithKeychain(authn.NewMultiKeychain()))
	if err != nil {
		t.Fatal(err)
	}
	_, err = reg.Pull(context.Background(), "127.0.0.1:1/x:y", v1.Platform{OS: "linux", Architecture: "amd64"}, nil, nil)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("got %v, want ECONNREFUSED", err)
	}
	// go-containerregistry tries https, then http, for a local address.
	if n := tries.Load(); n > 2*refusedAttempts {
		t.Errorf("%d connection attempts, want at most %d", n, 2*refusedAttempts)
	}
}

package oci

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// redacted replaces a credential in what a registry sent back.
const redacted = "[redacted]"

// redactTransport keeps the credentials a request carried out of the
// answer to it: a registry (or a proxy in front of one) that echoes the
// Authorization header into an error body would otherwise have
// go-containerregistry put the base64 user:password into the error lkbuild
// prints. Only error answers (4xx, 5xx) are read and rewritten; their
// bodies are small.
type redactTransport struct{ base http.RoundTripper }

// maxErrorBody is how much of an error answer is kept.
const maxErrorBody = 1 << 20

func (t redactTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil || resp.StatusCode < 400 {
		return resp, err
	}
	secrets := credentialSecrets(req.Header.Get("Authorization"))
	if len(secrets) == 0 {
		return resp, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	body = []byte(scrub(string(body), secrets))
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	for k, vs := range resp.Header {
		for i, v := range vs {
			vs[i] = scrub(v, secrets)
		}
		resp.Header[k] = vs
	}
	return resp, nil
}

// credentialSecrets are the strings of an Authorization header value that
// must not be shown: the credential itself and, for Basic, what it
// decodes to and the password alone.
func credentialSecrets(auth string) []string {
	scheme, cred, ok := strings.Cut(strings.TrimSpace(auth), " ")
	cred = strings.TrimSpace(cred)
	if !ok || cred == "" {
		return nil
	}
	secrets := []string{cred}
	if strings.EqualFold(scheme, "basic") {
		if dec, err := base64.StdEncoding.DecodeString(cred); err == nil {
			secrets = append(secrets, string(dec))
			// A short password would match innocent text; the pair and
			// the encoding are caught whatever its length.
			if _, pass, ok := strings.Cut(string(dec), ":"); ok && len(pass) >= 4 {
				secrets = append(secrets, pass)
			}
		}
	}
	return secrets
}

// scrub replaces every secret in s, longest first (a password is part of
// the decoded pair).
func scrub(s string, secrets []string) string {
	for _, sec := range secrets {
		s = strings.ReplaceAll(s, sec, redacted)
	}
	return s
}

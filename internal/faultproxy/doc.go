// Package faultproxy is an HTTP reverse proxy for tests that sits in front of
// a registry and injects faults on a deterministic schedule: 503 answers, 429
// answers with a Retry-After header (in seconds or as an HTTP-date),
// connections dropped while the client is still sending the request, and
// connections dropped half way through the response body.
//
// A test picks which requests are eligible (methods and a path pattern), how
// often they fail (an explicit schedule, every Nth eligible request, or a
// seeded rate), which kinds of fault to inject and how many at most; Stats
// then tells how many faults of each kind really happened, so a test of retry
// logic can assert that its retries were exercised.
//
//	p, err := faultproxy.New(registryURL,
//		faultproxy.WithMethods(http.MethodPatch, http.MethodPut),
//		faultproxy.WithPath(faultproxy.BlobUploadPath),
//		faultproxy.WithEveryNth(3),
//		faultproxy.WithKinds(faultproxy.Status503, faultproxy.DropRequest),
//	)
//	addr, err := p.Start() // "127.0.0.1:PORT"
//	defer p.Close()
//
// The proxy listens on 127.0.0.1 only, speaks plain HTTP/1.1 and keeps the
// client's Host header, so a registry behind it builds Location URLs that
// point back at the proxy.
package faultproxy

// This file is long because it is the whole of source verification by
// signature (keyring parsing, clearsigned sums, detached tar signatures)
// and every failure gets its own error a user can act on.

package kernel

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// Keyring holds the public keys trusted to sign kernel sources: what
// LinuxKit keeps in kernel/common/keys.asc and imports with gpg before it
// verifies sha256sums.asc and the .tar.sign.
type Keyring struct {
	file     string // for messages
	entities openpgp.EntityList
	// now is the time keys and signatures are checked at; nil is the
	// current time. Tests set it.
	now func() time.Time
}

// ReadKeyring reads public keys from r: one or more ASCII-armored key
// blocks (as `gpg --export --armor` writes, possibly several concatenated),
// or binary key packets. file names r in messages. A keyring without any
// key is an error.
func ReadKeyring(file string, r io.Reader) (*Keyring, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: read keys: %w", file, err)
	}
	kr := &Keyring{file: file}
	const begin = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
	if !bytes.Contains(data, []byte(begin)) {
		kr.entities, err = openpgp.ReadKeyRing(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: read keys: %w", file, err)
		}
	}
	// armor.Decode reads one block; split the file at each block's start so
	// that every block is read.
	for rest := data; ; {
		i := bytes.Index(rest, []byte(begin))
		if i < 0 {
			break
		}
		rest = rest[i:]
		next := bytes.Index(rest[len(begin):], []byte(begin))
		block := rest
		if next >= 0 {
			block, rest = rest[:len(begin)+next], rest[len(begin)+next:]
		} else {
			rest = nil
		}
		el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(block))
		if err != nil {
			return nil, fmt.Errorf("%s: read keys: %w", file, err)
		}
		kr.entities = append(kr.entities, el...)
	}
	if len(kr.entities) == 0 {
		return nil, fmt.Errorf("%s: holds no public key", file)
	}
	return kr, nil
}

// Len is the number of keys (entities with their subkeys) in the keyring.
func (kr *Keyring) Len() int { return len(kr.entities) }

func (kr *Keyring) config() *packet.Config {
	return &packet.Config{Time: kr.now}
}

// Signer names the key that made a good signature.
type Signer struct {
	// KeyID is the 16-hex-digit ID of the primary key, as gpg prints it.
	KeyID string
	// Fingerprint is the primary key's fingerprint in upper-case hex.
	Fingerprint string
	// UserID is the primary identity, e.g. "Greg Kroah-Hartman <gregkh@...>".
	UserID string
}

func (s Signer) String() string {
	if s.UserID == "" {
		return s.Fingerprint
	}
	return fmt.Sprintf("%s (%s)", s.UserID, s.Fingerprint)
}

func signerOf(e *openpgp.Entity) Signer {
	s := Signer{
		KeyID:       e.PrimaryKey.KeyIdString(),
		Fingerprint: fmt.Sprintf("%X", e.PrimaryKey.Fingerprint),
	}
	if id := e.PrimaryIdentity(); id != nil {
		s.UserID = id.Name
	}
	return s
}

// VerifyClearSigned checks that data is a clear-signed message (RFC 9580
// section 7, what `gpg --clearsign` writes and what kernel.org's
// sha256sums.asc is) made by a key in the keyring, and returns the signed
// text with "\n" line ends. Text before the message and after its
// signature is not signed and is ignored. file names data in messages.
//
// The errors wrap ErrNotSigned, ErrUnknownKey or ErrBadSignature.
func (kr *Keyring) VerifyClearSigned(file string, data []byte) ([]byte, Signer, error) {
	msg, err := splitClearSigned(data)
	if err != nil {
		return nil, Signer{}, fmt.Errorf("%s: %w", file, err)
	}
	var (
		sig *packet.Signature
		e   *openpgp.Entity
	)
	if len(msg.hashes) > 0 {
		sig, e, err = openpgp.VerifyDetachedSignatureAndHash(kr.entities, bytes.NewReader(msg.signed), bytes.NewReader(msg.sig), msg.hashes, kr.config())
	} else {
		sig, e, err = openpgp.VerifyDetachedSignature(kr.entities, bytes.NewReader(msg.signed), bytes.NewReader(msg.sig), kr.config())
	}
	if err := kr.signatureError(file, msg.sig, sig, err); err != nil {
		return nil, Signer{}, err
	}
	return msg.plain, signerOf(e), nil
}

// signatureError turns what go-crypto's verification returned into nil or
// an error wrapping ErrUnknownKey or ErrBadSignature. Like `gpg --verify`,
// which LinuxKit runs, it accepts a good signature by a key that has
// expired since (kernel.org's signers extend their keys' expiry from time
// to time; a keys.asc can lag behind). A revoked key, or an expired
// signature, is refused.
func (kr *Keyring) signatureError(file string, sigData []byte, sig *packet.Signature, err error) error {
	if errors.Is(err, pgperrors.ErrKeyExpired) && sig != nil && !sig.SigExpired(kr.config().Now()) {
		return nil
	}
	if err == nil {
		return nil
	}
	if errors.Is(err, pgperrors.ErrUnknownIssuer) {
		return fmt.Errorf("%s: %w (signer %s): add its public key to %s if you trust it, or check the mirror",
			file, ErrUnknownKey, strings.Join(signatureIssuers(sigData), ", "), kr.file)
	}
	if errors.Is(err, pgperrors.ErrKeyRevoked) {
		return fmt.Errorf("%s: %w: %w: its key is revoked in %s; do not use this source", file, ErrBadSignature, err, kr.file)
	}
	return fmt.Errorf("%s: %w: %w: the file or its signature was changed, or the mirror is broken; fetch it again from kernel.org", file, ErrBadSignature, err)
}

// signatureIssuers lists the key IDs (or fingerprints) that the signature
// packets in sig name as their issuers, for messages.
func signatureIssuers(sig []byte) []string {
	var ids []string
	packets := packet.NewReader(bytes.NewReader(sig))
	for {
		p, err := packets.Next()
		if err != nil {
			break
		}
		s, ok := p.(*packet.Signature)
		if !ok {
			continue
		}
		switch {
		case s.IssuerFingerprint != nil:
			ids = append(ids, fmt.Sprintf("%X", s.IssuerFingerprint))
		case s.IssuerKeyId != nil:
			ids = append(ids, fmt.Sprintf("%016X", *s.IssuerKeyId))
		}
	}
	if len(ids) == 0 {
		return []string{"with no issuer"}
	}
	return ids
}

// clearSigned is a cleartext-signed message taken apart.
type clearSigned struct {
	signed []byte        // what the signature covers: lines joined by CRLF
	plain  []byte        // the same lines, each ended by "\n"
	hashes []crypto.Hash // from the Hash: headers; empty when there are none
	sig    []byte        // the signature packets, de-armored
}

const (
	clearBegin = "-----BEGIN PGP SIGNED MESSAGE-----"
	sigBegin   = "-----BEGIN PGP SIGNATURE-----"
)

// splitClearSigned takes apart the first cleartext-signed message in data,
// following RFC 9580 section 7: armor headers up to an empty line, then the
// dash-escaped text up to the signature's armor. The signed text is the
// text with "- " escapes removed, trailing spaces and tabs removed from
// every line, lines joined by CRLF, without the line end before the
// signature.
func splitClearSigned(data []byte) (*clearSigned, error) {
	lines := strings.SplitAfter(string(data), "\n")
	i := 0
	for i < len(lines) && trimLineEnd(lines[i]) != clearBegin {
		i++
	}
	if i == len(lines) {
		return nil, fmt.Errorf("%w: no %q line", ErrNotSigned, clearBegin)
	}
	msg := &clearSigned{}
	for i++; ; i++ {
		if i == len(lines) {
			return nil, fmt.Errorf("%w: the armor headers do not end", ErrNotSigned)
		}
		h := strings.TrimSpace(lines[i])
		if h == "" {
			break
		}
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			return nil, fmt.Errorf("%w: %q is not an armor header", ErrNotSigned, h)
		}
		if name != "Hash" {
			continue
		}
		for _, n := range strings.Split(value, ",") {
			hash, ok := clearSignHash(strings.TrimSpace(n))
			if !ok {
				return nil, fmt.Errorf("%w: unknown hash %q in the Hash header", ErrBadSignature, strings.TrimSpace(n))
			}
			msg.hashes = append(msg.hashes, hash)
		}
	}
	var text []string
	offset := 0
	for _, l := range lines[:i+1] {
		offset += len(l)
	}
	for i++; ; i++ {
		if i == len(lines) {
			return nil, fmt.Errorf("%w: no %q line", ErrNotSigned, sigBegin)
		}
		l := trimLineEnd(lines[i])
		if l == sigBegin {
			break
		}
		offset += len(lines[i])
		l = strings.TrimPrefix(l, "- ")
		text = append(text, strings.TrimRight(l, " \t"))
	}
	block, err := armor.Decode(bytes.NewReader(data[offset:]))
	if err != nil {
		return nil, fmt.Errorf("%w: read signature armor: %w", ErrBadSignature, err)
	}
	if block.Type != "PGP SIGNATURE" {
		return nil, fmt.Errorf("%w: armor holds %q, not a signature", ErrBadSignature, block.Type)
	}
	if msg.sig, err = io.ReadAll(block.Body); err != nil {
		return nil, fmt.Errorf("%w: read signature armor: %w", ErrBadSignature, err)
	}
	msg.signed = []byte(strings.Join(text, "\r\n"))
	if len(text) > 0 {
		msg.plain = []byte(strings.Join(text, "\n") + "\n")
	}
	return msg, nil
}

// trimLineEnd removes the line end and trailing blanks of a line.
func trimLineEnd(l string) string { return strings.TrimRight(l, " \t\r\n") }

// clearSignHash maps a name of RFC 9580's Hash armor header to its hash.
func clearSignHash(name string) (crypto.Hash, bool) {
	switch name {
	case "MD5":
		return crypto.MD5, true
	case "SHA1":
		return crypto.SHA1, true
	case "RIPEMD160":
		return crypto.RIPEMD160, true
	case "SHA224":
		return crypto.SHA224, true
	case "SHA256":
		return crypto.SHA256, true
	case "SHA384":
		return crypto.SHA384, true
	case "SHA512":
		return crypto.SHA512, true
	case "SHA3-256":
		return crypto.SHA3_256, true
	case "SHA3-512":
		return crypto.SHA3_512, true
	}
	return 0, false
}

// DetachedVerifier checks a detached signature over the bytes written to
// it, as they stream past: kernel.org's linux-<v>.tar.sign signs the
// decompressed .tar, 1.5 GB that never needs to be on disk or in memory.
// Write the whole signed data, then call Verify; call Close instead to give
// up. A DetachedVerifier is not safe for concurrent use.
type DetachedVerifier struct {
	kr   *Keyring
	file string
	sig  []byte

	data chan []byte   // Write hands its buffer to the verifying goroutine
	ack  chan struct{} // which gives it back
	stop chan struct{} // closed by the goroutine when it returns
	eof  bool

	// Set by the goroutine before it closes stop.
	err    error
	signer Signer
}

// NewDetachedVerifier starts checking sig, a detached signature (armored,
// as kernel.org's .tar.sign, or binary) by a key in the keyring. file names
// the signature in messages. It fails at once, wrapping ErrUnknownKey, when
// no key of the keyring made any of the signatures in sig, and wrapping
// ErrBadSignature when sig holds no signature.
func (kr *Keyring) NewDetachedVerifier(file string, sig []byte) (*DetachedVerifier, error) {
	if bytes.HasPrefix(bytes.TrimLeft(sig, " \t\r\n"), []byte("-----BEGIN PGP")) {
		block, err := armor.Decode(bytes.NewReader(sig))
		if err != nil {
			return nil, fmt.Errorf("%s: %w: read armor: %w", file, ErrBadSignature, err)
		}
		if sig, err = io.ReadAll(block.Body); err != nil {
			return nil, fmt.Errorf("%s: %w: read armor: %w", file, ErrBadSignature, err)
		}
	}
	known, found := false, false
	packets := packet.NewReader(bytes.NewReader(sig))
	for {
		p, err := packets.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w: %w", file, ErrBadSignature, err)
		}
		s, ok := p.(*packet.Signature)
		if !ok {
			return nil, fmt.Errorf("%s: %w: holds a %T packet, not a signature", file, ErrBadSignature, p)
		}
		found = true
		if s.IssuerKeyId != nil && len(kr.entities.KeysByIdUsage(*s.IssuerKeyId, packet.KeyFlagSign)) > 0 {
			known = true
		}
	}
	if !found {
		return nil, fmt.Errorf("%s: %w: holds no signature", file, ErrBadSignature)
	}
	if !known {
		return nil, kr.signatureError(file, sig, nil, pgperrors.ErrUnknownIssuer)
	}
	v := &DetachedVerifier{
		kr:   kr,
		file: file,
		sig:  sig,
		data: make(chan []byte),
		ack:  make(chan struct{}),
		stop: make(chan struct{}),
	}
	go v.run()
	return v, nil
}

func (v *DetachedVerifier) run() {
	defer close(v.stop)
	sig, e, err := openpgp.VerifyDetachedSignature(v.kr.entities, &handoffReader{v: v}, bytes.NewReader(v.sig), v.kr.config())
	if err = v.kr.signatureError(v.file, v.sig, sig, err); err != nil {
		v.err = err
		return
	}
	v.signer = signerOf(e)
}

// errVerifierDone is what Write returns once the verifier has stopped
// reading; Verify or Close then say why.
var errVerifierDone = errors.New("signature check ended early")

// Write passes p to the signature check. It returns when p has been
// hashed, so p can be reused at once.
func (v *DetachedVerifier) Write(p []byte) (int, error) {
	if v.eof {
		return 0, errors.New("write after Verify or Close")
	}
	if len(p) == 0 {
		return 0, nil
	}
	select {
	case v.data <- p:
	case <-v.stop:
		return 0, errVerifierDone
	}
	select {
	case <-v.ack:
		return len(p), nil
	case <-v.stop:
		return 0, errVerifierDone
	}
}

// Verify ends the signed data and reports whether the signature is good:
// nil and the signer, or an error wrapping ErrUnknownKey or
// ErrBadSignature that names the file.
func (v *DetachedVerifier) Verify() (Signer, error) {
	if !v.eof {
		v.eof = true
		close(v.data)
	}
	<-v.stop
	return v.signer, v.err
}

// Close gives up the check and waits for it to end. It is safe to call
// after Verify.
func (v *DetachedVerifier) Close() error {
	_, _ = v.Verify()
	return nil
}

// handoffReader is what go-crypto reads the signed data from: the buffers
// passed to Write, each acknowledged once consumed. WriteTo lets io.Copy
// hand each buffer to the hash whole, without copying it.
type handoffReader struct {
	v   *DetachedVerifier
	cur []byte // unread part of the buffer being read; nil when none
}

func (h *handoffReader) Read(p []byte) (int, error) {
	if h.cur == nil {
		b, ok := <-h.v.data
		if !ok {
			return 0, io.EOF
		}
		h.cur = b
	}
	n := copy(p, h.cur)
	h.cur = h.cur[n:]
	if len(h.cur) == 0 {
		h.cur = nil
		h.v.ack <- struct{}{}
	}
	return n, nil
}

func (h *handoffReader) WriteTo(w io.Writer) (int64, error) {
	var n int64
	if h.cur != nil {
		k, err := w.Write(h.cur)
		n += int64(k)
		h.cur = nil
		h.v.ack <- struct{}{}
		if err != nil {
			return n, err
		}
	}
	for p := range h.v.data {
		k, err := w.Write(p)
		n += int64(k)
		h.v.ack <- struct{}{}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Package pgptest makes OpenPGP keys and signatures for tests and
// benchmark fixtures: a keyring like LinuxKit's kernel/common/keys.asc, a
// clear-signed file like kernel.org's sha256sums.asc and a detached,
// armored signature like its linux-<version>.tar.sign. Keys are Ed25519:
// generating one takes microseconds.
package pgptest

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// Key is a signing key with its secret part.
type Key struct {
	// Entity is the key; tests may change it (revoke it, for example)
	// before exporting it with Public.
	Entity *openpgp.Entity
	cfg    *packet.Config
}

// NewKey makes an Ed25519 key for the user ID "name <email>". cfg, which
// may be nil, sets its creation time (Time) and lifetime (KeyLifetimeSecs)
// and is used again for every signature the key makes.
func NewKey(name, email string, cfg *packet.Config) (*Key, error) {
	c := packet.Config{}
	if cfg != nil {
		c = *cfg
	}
	c.Algorithm = packet.PubKeyAlgoEdDSA
	e, err := openpgp.NewEntity(name, "", email, &c)
	if err != nil {
		return nil, fmt.Errorf("new key: %w", err)
	}
	return &Key{Entity: e, cfg: &c}, nil
}

// Public is the key's public part, ASCII-armored, as keys.asc holds it.
func (k *Key) Public() ([]byte, error) {
	var b bytes.Buffer
	w, err := armor.Encode(&b, openpgp.PublicKeyType, nil)
	if err != nil {
		return nil, err
	}
	if err := k.Entity.Serialize(w); err != nil {
		return nil, fmt.Errorf("export key: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// Keyring is the armored public keys of keys, one block after another.
func Keyring(keys ...*Key) ([]byte, error) {
	var all []byte
	for _, k := range keys {
		b, err := k.Public()
		if err != nil {
			return nil, err
		}
		all = append(all, b...)
	}
	return all, nil
}

// ClearSign returns text clear-signed by the key, as `gpg --clearsign`
// writes it.
func (k *Key) ClearSign(text []byte) ([]byte, error) {
	var b bytes.Buffer
	w, err := clearsign.Encode(&b, k.Entity.PrivateKey, k.cfg)
	if err != nil {
		return nil, fmt.Errorf("clear-sign: %w", err)
	}
	if _, err := w.Write(text); err != nil {
		return nil, fmt.Errorf("clear-sign: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("clear-sign: %w", err)
	}
	return b.Bytes(), nil
}

// DetachSign returns an armored detached signature over what r holds, as
// `gpg --armor --detach-sign` writes it. r is streamed.
func (k *Key) DetachSign(r io.Reader) ([]byte, error) {
	var b bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&b, k.Entity, r, k.cfg); err != nil {
		return nil, fmt.Errorf("detach-sign: %w", err)
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// WriteKeyring makes a new test key and writes its armored public key to
// file, as a keys.asc.
func WriteKeyring(file string) (*Key, error) {
	k, err := NewKey("test", "test@lkbuild.invalid", nil)
	if err != nil {
		return nil, err
	}
	pub, err := k.Public()
	if err != nil {
		return nil, err
	}
	return k, os.WriteFile(file, pub, 0o644)
}

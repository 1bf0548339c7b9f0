package kernel

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/lkbuild/lkbuild/internal/pgptest"
)

func TestSourceURLs(t *testing.T) {
	for _, tc := range []struct {
		base string
		v    Version
		want SourceFiles
	}{
		{DefaultSourceMirror, Version{6, 6, 71}, SourceFiles{
			Version:     Version{6, 6, 71},
			Tarball:     "https://www.kernel.org/pub/linux/kernel/v6.x/linux-6.6.71.tar.xz",
			Signature:   "https://www.kernel.org/pub/linux/kernel/v6.x/linux-6.6.71.tar.sign",
			Sums:        "https://www.kernel.org/pub/linux/kernel/v6.x/sha256sums.asc",
			TarballName: "linux-6.6.71.tar.xz",
		}},
		{"/srv/mirror//", Version{5, 10, 104}, SourceFiles{
			Version:     Version{5, 10, 104},
			Tarball:     "/srv/mirror/v5.x/linux-5.10.104.tar.xz",
			Signature:   "/srv/mirror/v5.x/linux-5.10.104.tar.sign",
			Sums:        "/srv/mirror/v5.x/sha256sums.asc",
			TarballName: "linux-5.10.104.tar.xz",
		}},
		// kernel.org names x.y.0 by two numbers.
		{"file:///m", Version{6, 7, 0}, SourceFiles{
			Version:     Version{6, 7, 0},
			Tarball:     "file:///m/v6.x/linux-6.7.tar.xz",
			Signature:   "file:///m/v6.x/linux-6.7.tar.sign",
			Sums:        "file:///m/v6.x/sha256sums.asc",
			TarballName: "linux-6.7.tar.xz",
		}},
	} {
		got, err := SourceURLs(tc.base, tc.v)
		if err != nil {
			t.Errorf("SourceURLs(%q, %v): %v", tc.base, tc.v, err)
			continue
		}
		if got != tc.want {
			t.Errorf("SourceURLs(%q, %v) =\n%+v, want\n%+v", tc.base, tc.v, got, tc.want)
		}
	}
	for _, tc := range []struct {
		base string
		v    Version
	}{
		{DefaultSourceMirror, Version{}},
		{"", Version{6, 6, 1}},
		{"///", Version{6, 6, 1}},
		{DefaultSourceMirror, Version{6, -1, 1}},
	} {
		if _, err := SourceURLs(tc.base, tc.v); err == nil {
			t.Errorf("SourceURLs(%q, %+v) did not fail", tc.base, tc.v)
		}
	}
}

func TestParseSHA256Sums(t *testing.T) {
	a := strings.Repeat("ab", 32)
	b := strings.Repeat("0F", 32)
	text := a + "  linux-6.6.71.tar.xz\r\n" +
		"\n" +
		"# a comment\n" +
		b + " *linux-6.6.72.tar.xz  \n" +
		"zz" + a[2:] + "  not-hex.tar.xz\n" +
		a + "  linux-6.6.71.tar.xz\n" // the same again is fine
	sums, err := ParseSHA256Sums("sha256sums.asc", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if len(sums) != 2 {
		t.Errorf("got %d sums, want 2: %v", len(sums), sums)
	}
	for name, want := range map[string]string{"linux-6.6.71.tar.xz": a, "linux-6.6.72.tar.xz": strings.ToLower(b)} {
		got, err := sums.Lookup(name)
		if err != nil || hex.EncodeToString(got[:]) != want {
			t.Errorf("Lookup(%s) = %x, %v; want %s", name, got, err, want)
		}
	}
	if _, err := sums.Lookup("linux-6.6.73.tar.xz"); !errors.Is(err, ErrNotInSums) {
		t.Errorf("Lookup of a missing name: %v, want ErrNotInSums", err)
	}

	_, err = ParseSHA256Sums("sums", []byte(a+"  x\n"+b+"  x\n"))
	var fe *FileError
	if !errors.As(err, &fe) || fe.Line != 2 || fe.File != "sums" {
		t.Errorf("a name listed with two digests: %v, want a FileError for sums:2", err)
	}
}

// newTestKey makes a key or fails the test.
func newTestKey(t *testing.T, name string, cfg *packet.Config) *pgptest.Key {
	t.Helper()
	k, err := pgptest.NewKey(name, strings.ToLower(strings.Fields(name)[0])+"@lkbuild.invalid", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testKeyring(t *testing.T, keys ...*pgptest.Key) *Keyring {
	t.Helper()
	data, err := pgptest.Keyring(keys...)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := ReadKeyring("keys.asc", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func TestReadKeyring(t *testing.T) {
	k1, k2 := newTestKey(t, "Alice", nil), newTestKey(t, "Bob", nil)
	// Two armored blocks one after the other, with text around them, as a
	// hand-assembled keys.asc may have.
	kr := testKeyring(t, k1, k2)
	if kr.Len() != 2 {
		t.Errorf("keyring of two blocks has %d keys", kr.Len())
	}
	var bin bytes.Buffer
	if err := k1.Entity.Serialize(&bin); err != nil {
		t.Fatal(err)
	}
	if kr, err := ReadKeyring("keys.gpg", &bin); err != nil || kr.Len() != 1 {
		t.Errorf("binary keyring: %v", err)
	}
	for name, data := range map[string]string{
		"empty":   "",
		"garbage": "not a key\n",
		"bad armor": "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n" +
			"-----END PGP PUBLIC KEY BLOCK-----\n",
	} {
		if _, err := ReadKeyring("keys.asc", strings.NewReader(data)); err == nil {
			t.Errorf("%s keyring: no error", name)
		}
	}
}

func TestVerifyClearSigned(t *testing.T) {
	signer := newTestKey(t, "Autosigner", nil)
	other := newTestKey(t, "Mallory", nil)
	kr := testKeyring(t, signer)
	text := "" +
		strings.Repeat("ab", 32) + "  linux-6.6.71.tar.xz\n" +
		"-dash at the start of a line\n" +
		"- dash and space\n" +
		"trailing blanks  \t\n" +
		"\n" +
		"last line"
	// What the signature covers, and what comes back: trailing blanks go,
	// a line end is added.
	wantPlain := strings.Repeat("ab", 32) + "  linux-6.6.71.tar.xz\n" +
		"-dash at the start of a line\n" +
		"- dash and space\n" +
		"trailing blanks\n" +
		"\n" +
		"last line\n"
	signed, err := signer.ClearSign([]byte(text))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("good", func(t *testing.T) {
		// Unsigned text around the message is ignored.
		data := append([]byte("unsigned preamble\n"), signed...)
		data = append(data, "unsigned trailer\n"...)
		plain, who, err := kr.VerifyClearSigned("sha256sums.asc", data)
		if err != nil {
			t.Fatal(err)
		}
		if string(plain) != wantPlain {
			t.Errorf("plain text:\n%q\nwant\n%q", plain, wantPlain)
		}
		if !strings.Contains(who.UserID, "Autosigner") || len(who.Fingerprint) != 40 || len(who.KeyID) != 16 {
			t.Errorf("signer %+v", who)
		}
	})

	t.Run("changed text", func(t *testing.T) {
		data := bytes.Replace(signed, []byte("abab"), []byte("abac"), 1)
		_, _, err := kr.VerifyClearSigned("sha256sums.asc", data)
		if !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), "sha256sums.asc") {
			t.Errorf("got %v, want ErrBadSignature naming the file", err)
		}
	})

	t.Run("added line", func(t *testing.T) {
		data := bytes.Replace(signed, []byte("last line"), []byte("last line\nextra"), 1)
		if _, _, err := kr.VerifyClearSigned("sha256sums.asc", data); !errors.Is(err, ErrBadSignature) {
			t.Errorf("got %v, want ErrBadSignature", err)
		}
	})

	t.Run("hash header mismatch", func(t *testing.T) {
		data := bytes.Replace(signed, []byte("Hash: SHA256"), []byte("Hash: SHA512"), 1)
		if bytes.Equal(data, signed) {
			t.Fatal("go-crypto wrote no Hash: SHA256 header to tamper with")
		}
		if _, _, err := kr.VerifyClearSigned("sha256sums.asc", data); !errors.Is(err, ErrBadSignature) {
			t.Errorf("got %v, want ErrBadSignature", err)
		}
	})

	t.Run("unknown key", func(t *testing.T) {
		data, err := other.ClearSign([]byte(text))
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = kr.VerifyClearSigned("sha256sums.asc", data)
		if !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("got %v, want ErrUnknownKey", err)
		}
		fp := other.Entity.PrimaryKey.Fingerprint
		if !strings.Contains(err.Error(), strings.ToUpper(hex.EncodeToString(fp))) &&
			!strings.Contains(err.Error(), strings.ToUpper(hex.EncodeToString(fp[12:]))) {
			t.Errorf("error %q does not name the signing key", err)
		}
	})

	for name, data := range map[string]string{
		"plain text":      text,
		"no signature":    "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nhello\n",
		"no header end":   "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n",
		"bad header line": "-----BEGIN PGP SIGNED MESSAGE-----\nnot a header\n\nhello\n-----BEGIN PGP SIGNATURE-----\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := kr.VerifyClearSigned("sha256sums.asc", []byte(data)); !errors.Is(err, ErrNotSigned) {
				t.Errorf("got %v, want ErrNotSigned", err)
			}
		})
	}
	t.Run("bad armor", func(t *testing.T) {
		i := bytes.Index(signed, []byte(sigBegin))
		data := append(bytes.Clone(signed[:i]), sigBegin+"\n\n!!!!\n-----END PGP SIGNATURE-----\n"...)
		if _, _, err := kr.VerifyClearSigned("sha256sums.asc", data); !errors.Is(err, ErrBadSignature) {
			t.Errorf("got %v, want ErrBadSignature", err)
		}
	})
}

// TestKeyLifetime checks what LinuxKit's `gpg --verify` accepts: a good
// signature by a key that has expired since is accepted; one by a revoked
// key is not.
func TestKeyLifetime(t *testing.T) {
	then := time.Now().Add(-48 * time.Hour)
	expired := newTestKey(t, "Expired", &packet.Config{
		Time:            func() time.Time { return then },
		KeyLifetimeSecs: 24 * 3600,
	})
	data, err := expired.ClearSign([]byte("hello\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := testKeyring(t, expired).VerifyClearSigned("sums", data); err != nil {
		t.Errorf("signature by a key that expired later: %v", err)
	}

	revoked := newTestKey(t, "Revoked", nil)
	data, err = revoked.ClearSign([]byte("hello\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := revoked.Entity.RevokeKey(packet.KeyCompromised, "test", nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := testKeyring(t, revoked).VerifyClearSigned("sums", data); !errors.Is(err, ErrBadSignature) {
		t.Errorf("signature by a revoked key: %v, want ErrBadSignature", err)
	}
}

func TestDetachedVerifier(t *testing.T) {
	signer := newTestKey(t, "Greg", nil)
	other := newTestKey(t, "Mallory", nil)
	kr := testKeyring(t, signer)
	data := xzTestData(3<<20, 11)
	sig, err := signer.DetachSign(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}

	// write streams data into v in uneven pieces, as a tee does.
	write := func(t *testing.T, v *DetachedVerifier, data []byte) {
		t.Helper()
		for len(data) > 0 {
			n := min(len(data), 100000+len(data)%3333)
			if _, err := v.Write(data[:n]); err != nil {
				t.Fatal(err)
			}
			data = data[n:]
		}
	}

	t.Run("good", func(t *testing.T) {
		v, err := kr.NewDetachedVerifier("linux-6.6.71.tar.sign", sig)
		if err != nil {
			t.Fatal(err)
		}
		write(t, v, data)
		who, err := v.Verify()
		if err != nil || !strings.Contains(who.UserID, "Greg") {
			t.Fatalf("Verify: %+v, %v", who, err)
		}
		if err := v.Close(); err != nil {
			t.Errorf("Close after Verify: %v", err)
		}
		if _, err := v.Write([]byte("x")); err == nil {
			t.Error("Write after Verify did not fail")
		}
	})

	t.Run("binary signature", func(t *testing.T) {
		v, err := kr.NewDetachedVerifier("x.sig", dearmor(t, sig))
		if err != nil {
			t.Fatal(err)
		}
		write(t, v, data)
		if _, err := v.Verify(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("changed data", func(t *testing.T) {
		v, err := kr.NewDetachedVerifier("linux-6.6.71.tar.sign", sig)
		if err != nil {
			t.Fatal(err)
		}
		bad := bytes.Clone(data)
		bad[len(bad)/2] ^= 1
		write(t, v, bad)
		if _, err := v.Verify(); !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), "linux-6.6.71.tar.sign") {
			t.Errorf("got %v, want ErrBadSignature naming the file", err)
		}
	})

	t.Run("short data", func(t *testing.T) {
		v, err := kr.NewDetachedVerifier("linux-6.6.71.tar.sign", sig)
		if err != nil {
			t.Fatal(err)
		}
		write(t, v, data[:len(data)-1])
		if _, err := v.Verify(); !errors.Is(err, ErrBadSignature) {
			t.Errorf("got %v, want ErrBadSignature", err)
		}
	})

	t.Run("unknown key", func(t *testing.T) {
		osig, err := other.DetachSign(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kr.NewDetachedVerifier("linux-6.6.71.tar.sign", osig); !errors.Is(err, ErrUnknownKey) {
			t.Errorf("got %v, want ErrUnknownKey", err)
		}
	})

	for name, s := range map[string]string{
		"empty":     "",
		"garbage":   "garbage",
		"bad armor": "-----BEGIN PGP SIGNATURE-----\n\n!!\n-----END PGP SIGNATURE-----\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := kr.NewDetachedVerifier("x.sign", []byte(s)); !errors.Is(err, ErrBadSignature) {
				t.Errorf("got %v, want ErrBadSignature", err)
			}
		})
	}

	t.Run("close early", func(t *testing.T) {
		v, err := kr.NewDetachedVerifier("linux-6.6.71.tar.sign", sig)
		if err != nil {
			t.Fatal(err)
		}
		write(t, v, data[:1000])
		done := make(chan struct{})
		go func() { v.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Close did not return")
		}
	})

	t.Run("through io.Copy", func(t *testing.T) {
		v, err := kr.NewDetachedVerifier("linux-6.6.71.tar.sign", sig)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(v, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(); err != nil {
			t.Fatal(err)
		}
	})
}

// dearmor returns the binary packets of an armored block.
func dearmor(t *testing.T, data []byte) []byte {
	t.Helper()
	block, err := armor.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(block.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGPGFixtures verifies files that GnuPG made (testdata/pgp/README.md):
// an RSA clear-signature with dash-escaped and blank-ended lines, and an
// Ed25519 detached signature.
func TestGPGFixtures(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile("testdata/pgp/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	kr, err := ReadKeyring("keys.asc", bytes.NewReader(read("keys.asc")))
	if err != nil {
		t.Fatal(err)
	}
	plain, who, err := kr.VerifyClearSigned("sha256sums.asc", read("sha256sums.asc"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(who.UserID, "rsa@lkbuild.invalid") {
		t.Errorf("sums signed by %v", who)
	}
	if !bytes.HasSuffix(plain, []byte("\n-a line that starts with a dash, and trailing blanks\n")) {
		t.Errorf("plain text %q lost its dash-escaped line", plain)
	}
	sums, err := ParseSHA256Sums("sha256sums.asc", plain)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := sums.Lookup("linux-6.6.71.tar.xz")
	if err != nil || hex.EncodeToString(sum[:]) != strings.TrimSpace(string(read("linux-6.6.71.tar.xz.sha256"))) {
		t.Errorf("sum %x, %v", sum, err)
	}

	v, err := kr.NewDetachedVerifier("linux-6.6.71.tar.sign", read("linux-6.6.71.tar.sign"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Write(read("linux-6.6.71.tar")); err != nil {
		t.Fatal(err)
	}
	if who, err := v.Verify(); err != nil || !strings.Contains(who.UserID, "ed25519@lkbuild.invalid") {
		t.Errorf("tar signature: %v, %v", who, err)
	}
}

package ca

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
)

// kekSize is the size of a key-encryption key: AES-256.
const kekSize = 32

// KEK is the key-encryption key every node of a cluster is given out of band: the
// CA's signing keys are stored in etcd encrypted with it (AES-256-GCM), so a copy of
// etcd's data (a backup, a stolen disk) does not hold them. It never prints: String,
// slog and JSON show only its id.
type KEK struct {
	key []byte
}

// ParseKEK reads a key-encryption key from a file's content: 64 hex digits (blank
// space around them ignored) or 32 raw bytes.
func ParseKEK(data []byte) (KEK, error) {
	if t := bytes.TrimSpace(data); len(t) == 2*kekSize {
		if b, err := hex.DecodeString(string(t)); err == nil {
			return KEK{key: b}, nil
		}
	}
	if len(data) == kekSize {
		return KEK{key: bytes.Clone(data)}, nil
	}
	return KEK{}, fmt.Errorf("a CA key-encryption key must be 32 bytes, raw or as 64 hex digits; got %d bytes (create one with: head -c 32 /dev/urandom | xxd -p -c 64)", len(data))
}

// GenerateKEK makes a new random key-encryption key.
func GenerateKEK() KEK {
	b := make([]byte, kekSize)
	rand.Read(b)
	return KEK{key: b}
}

// Hex returns the key as 64 hex digits, the form ParseKEK reads, for writing it to a
// file. It is the only way to see the key.
func (k KEK) Hex() string { return hex.EncodeToString(k.key) }

// Valid reports whether k holds a key.
func (k KEK) Valid() bool { return len(k.key) == kekSize }

// ID names the key without revealing it: the first 8 bytes of a hash of it, which
// tells an operator whether two nodes were given the same key.
func (k KEK) ID() string {
	if !k.Valid() {
		return "none"
	}
	h := sha256.Sum256(append([]byte("navarch ca kek id\x00"), k.key...))
	return hex.EncodeToString(h[:8])
}

// String shows the key's id, never the key.
func (k KEK) String() string { return "KEK(" + k.ID() + ")" }

// GoString shows the key's id, never the key.
func (k KEK) GoString() string { return k.String() }

// LogValue shows the key's id in logs.
func (k KEK) LogValue() slog.Value { return slog.StringValue(k.String()) }

// MarshalJSON shows the key's id, never the key.
func (k KEK) MarshalJSON() ([]byte, error) { return []byte(`"` + k.String() + `"`), nil }

// errWrongKEK is returned when a sealed value does not open with this node's KEK.
var errWrongKEK = errors.New("the value does not decrypt with this node's key-encryption key (--ca-kek-file): every node must be given the same one")

// seal encrypts plaintext with AES-256-GCM under k. aad binds the ciphertext to where
// and what it is (it must be given again to open it). The result is
// base64(nonce || ciphertext).
func (k KEK) seal(plaintext, aad []byte) (string, error) {
	aead, err := k.aead()
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	out := aead.Seal(nonce, nonce, plaintext, aad)
	return base64.StdEncoding.EncodeToString(out), nil
}

// open decrypts what seal produced.
func (k KEK) open(sealed string, aad []byte) ([]byte, error) {
	aead, err := k.aead()
	if err != nil {
		return nil, err
	}
	b, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil || len(b) < aead.NonceSize()+aead.Overhead() {
		return nil, errors.New("the sealed value is malformed")
	}
	pt, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], aad)
	if err != nil {
		return nil, errWrongKEK
	}
	return pt, nil
}

func (k KEK) aead() (cipher.AEAD, error) {
	if !k.Valid() {
		return nil, errors.New("no key-encryption key (--ca-kek-file)")
	}
	block, err := aes.NewCipher(k.key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

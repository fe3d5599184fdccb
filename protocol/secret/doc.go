// Package secret is the only part of sandi that holds private key material:
// identity signing keys, pre-key private halves, epoch secrets and the
// per-sender ratchets. It signs, seals, opens, encrypts and decrypts the
// structures of package protocol. Clients import it; the server must not (a
// test enforces that).
//
// Like package protocol it is pure: no I/O, no logging, no clock. Randomness
// comes from crypto/rand only.
package secret

// Package protocol holds sandi's public protocol structures: identifiers,
// public keys, pre-key bundles, the signed membership chain, epoch key
// distributions, message envelopes and safety numbers. It encodes, decodes and
// verifies them; it never handles a private key, so the server may import it.
// Everything that signs, seals or decrypts lives in package
// sandi.dev/protocol/secret.
//
// The package is pure: no I/O, no logging, no clock (times are passed in), no
// mutable package state. It builds for GOOS=js GOARCH=wasm. Every layout is
// specified in docs/protocol.md; comments cite its sections as §N.
package protocol

// Version is the protocol version byte carried by every signed or sealed
// structure (§2). Decoders refuse any other value.
const Version = 1

// Labels separate every use of a key or hash (§3). Each is a distinct ASCII
// string; no label is a prefix of another.
const (
	LabelPreKey          = "sandi v1 prekey"
	LabelRecord          = "sandi v1 membership record"
	LabelRecordHash      = "sandi v1 membership hash"
	LabelRekeyCosign     = "sandi v1 rekey cosignature"
	LabelDistribution    = "sandi v1 distribution"
	LabelEpochKey        = "sandi v1 epoch key"
	LabelEpochCommitment = "sandi v1 epoch commitment"
	LabelSenderChain     = "sandi v1 sender chain"
	LabelMessageKey      = "sandi v1 message key"
	LabelChainStep       = "sandi v1 chain step"
	LabelEnvelopeAD      = "sandi v1 envelope data"
	LabelEnvelopeSig     = "sandi v1 envelope signature"
	LabelSafetyNumber    = "sandi v1 safety number"
	LabelLink            = "sandi v1 device link"
	LabelLinkRequest     = "sandi v1 link request"
	LabelDeviceList      = "sandi v1 device list record"
	LabelDeviceListHash  = "sandi v1 device list hash"
	LabelDeviceName      = "sandi v1 device name"
	LabelBlock           = "sandi v1 block statement"
	LabelStateKey        = "sandi v1 state key"
	LabelStateAD         = "sandi v1 state data"
	LabelStateSig        = "sandi v1 state signature"
	LabelAttachmentKey   = "sandi v1 attachment key"
	LabelAttachmentChunk = "sandi v1 attachment chunk"
	LabelTypingKey       = "sandi v1 typing key"
	LabelTypingAD        = "sandi v1 typing data"
	LabelTypingSig       = "sandi v1 typing signature"
)

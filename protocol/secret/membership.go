package secret

import "sandi.dev/protocol"

// SignRecord sets rec.Signature with the author's identity key. For an
// OpRekey record, id is the new identity key.
func SignRecord(id *IdentityPrivateKey, rec *protocol.Record) {
	rec.Signature = id.Sign(rec.SignedData())
}

// SignDeviceList sets l.Signature with the account's identity key (§12).
func SignDeviceList(id *IdentityPrivateKey, l *protocol.DeviceList) {
	l.Signature = id.Sign(l.SignedData())
}

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

// SignRekey makes rec a co-signed rekey (§6.1, §6.2): it sets rec.Op to
// OpRekeyCosigned and rec.Cosigner to old's public key, co-signs with old,
// then signs with newID, the key the record announces (rec.Members[0]).
// old is the author's current key (the role is kept) or the key the chain
// remembers from before a rekey the author did not co-sign (that role is
// restored); newID may equal old in the second case.
func SignRekey(newID, old *IdentityPrivateKey, rec *protocol.Record) {
	rec.Op = protocol.OpRekeyCosigned
	rec.Cosigner = old.Public()
	rec.Cosignature = old.Sign(rec.CosignedData())
	rec.Signature = newID.Sign(rec.SignedData())
}

// SignDeviceName sets n.Signature with the account's identity key (§12.5).
func SignDeviceName(id *IdentityPrivateKey, n *protocol.DeviceName) {
	n.Signature = id.Sign(n.SignedData())
}

// SignBlock sets b.Signature with the account's identity key (§16.2).
func SignBlock(id *IdentityPrivateKey, b *protocol.Block) {
	b.Signature = id.Sign(b.SignedData())
}

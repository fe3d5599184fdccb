package protocol_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"strings"
	"testing"

	"sandi.dev/protocol"
	"sandi.dev/protocol/internal/wire"
	"sandi.dev/protocol/secret"
)

func tList(id *secret.IdentityPrivateKey, user protocol.UserID, seq uint64, prev *protocol.DeviceList, devs ...protocol.DeviceID) *protocol.DeviceList {
	l := &protocol.DeviceList{User: user, Seq: seq, Time: fixNow*1000 + int64(seq), Devices: protocol.SortDevices(devs)}
	if prev != nil {
		l.Prev = prev.Hash()
	}
	secret.SignDeviceList(id, l)
	return l
}

func TestDeviceListEncoding(t *testing.T) {
	id := fixedIdentity(t, "alice")
	u := fixedUser("alice")
	l := tList(id, u, 1, nil, fixedDevice("b"), fixedDevice("a"), fixedDevice("c"))
	enc := l.Marshal()
	if want := 131 + 16*3; len(enc) != want {
		t.Fatalf("encoding is %d bytes, want %d", len(enc), want)
	}
	if sd := l.SignedData(); !bytes.HasPrefix(sd, []byte(protocol.LabelDeviceList)) || !bytes.Equal(sd[len(protocol.LabelDeviceList):], enc[:len(enc)-protocol.SignatureSize]) {
		t.Fatal("signed data is not the label followed by the encoding without the signature")
	}
	got, err := protocol.ParseDeviceList(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Marshal(), enc) || !got.Contains(fixedDevice("c")) || got.Contains(fixedDevice("d")) {
		t.Fatal("round trip or Contains broken")
	}

	// Every structural rule of §12.1, each a copy of enc with one change.
	devAt := func(i int) int { return 1 + 16 + 8 + 8 + 32 + 2 + 16*i }
	mut := map[string]func(b []byte) []byte{
		"version 2":       func(b []byte) []byte { b[0] = 2; return b },
		"zero user":       func(b []byte) []byte { clear(b[1:17]); return b },
		"seq 0":           func(b []byte) []byte { clear(b[17:25]); return b },
		"trailing byte":   func(b []byte) []byte { return append(b, 0) },
		"short":           func(b []byte) []byte { return b[:len(b)-1] },
		"zero device":     func(b []byte) []byte { clear(b[devAt(0) : devAt(0)+16]); return b },
		"repeated device": func(b []byte) []byte { copy(b[devAt(1):devAt(1)+16], b[devAt(0):devAt(0)+16]); return b },
		"unsorted devices": func(b []byte) []byte {
			d0 := bytes.Clone(b[devAt(0) : devAt(0)+16])
			copy(b[devAt(0):], b[devAt(1):devAt(1)+16])
			copy(b[devAt(1):], d0)
			return b
		},
		"count over cap": func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[devAt(0)-2:], protocol.MaxDevices+1)
			return b
		},
		"count over input": func(b []byte) []byte { binary.BigEndian.PutUint16(b[devAt(0)-2:], 90); return b },
	}
	for name, m := range mut {
		if _, err := protocol.ParseDeviceList(m(bytes.Clone(enc))); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("%s: got %v, want a malformed-encoding error", name, err)
		}
	}
}

func TestDeviceListVerify(t *testing.T) {
	id := fixedIdentity(t, "alice")
	u := fixedUser("alice")
	l1 := tList(id, u, 1, nil, fixedDevice("a"))
	if err := l1.Verify(u, id.Public()); err != nil {
		t.Fatal(err)
	}
	if err := l1.Verify(fixedUser("bob"), id.Public()); !errors.Is(err, protocol.ErrBadDeviceList) {
		t.Errorf("list of another user: %v", err)
	}
	if err := l1.Verify(u, fixedIdentity(t, "server").Public()); !errors.Is(err, protocol.ErrBadDeviceList) {
		t.Errorf("list checked under another key: %v", err)
	}
	forged := *l1
	forged.Devices = protocol.SortDevices(append(forged.Devices, fixedDevice("ghost")))
	if err := forged.Verify(u, id.Public()); !errors.Is(err, protocol.ErrBadDeviceList) {
		t.Errorf("a device added after signing: %v", err)
	}
	var unsigned protocol.DeviceList = *l1
	unsigned.Signature = [protocol.SignatureSize]byte{}
	if err := unsigned.Verify(u, id.Public()); !errors.Is(err, protocol.ErrBadDeviceList) {
		t.Errorf("unsigned list: %v", err)
	}

	l2 := tList(id, u, 2, l1, fixedDevice("a"), fixedDevice("b"))
	l3 := tList(id, u, 3, l2, fixedDevice("b"))
	if err := l2.Follows(l1); err != nil {
		t.Errorf("2 after 1: %v", err)
	}
	if err := l3.Follows(l1); err != nil {
		t.Errorf("3 after 1 (2 not seen): %v", err)
	}
	if err := l1.Follows(l1); err != nil {
		t.Errorf("the held list again: %v", err)
	}
	if err := l1.Follows(l3); !errors.Is(err, protocol.ErrDeviceListRollback) {
		t.Errorf("1 after 3: %v, want a rollback", err)
	}
	other := tList(id, u, 2, l1, fixedDevice("c"))
	if err := other.Follows(l2); !errors.Is(err, protocol.ErrBadDeviceList) {
		t.Errorf("another list with the held seq: %v", err)
	}
	fork := tList(id, u, 3, other, fixedDevice("b"))
	if err := fork.Follows(l2); !errors.Is(err, protocol.ErrBadDeviceList) {
		t.Errorf("a list naming another previous list: %v", err)
	}
	if err := l1.Follows(nil); err != nil {
		t.Errorf("first list: %v", err)
	}
}

// TestLabelsDistinct reads every Label constant of the package and checks
// that no label is a prefix of another (§3), so that no signed or hashed
// input of one kind parses as another.
func TestLabelsDistinct(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "doc.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		for i, name := range vs.Names {
			if !strings.HasPrefix(name.Name, "Label") || i >= len(vs.Values) {
				continue
			}
			lit, ok := vs.Values[i].(*ast.BasicLit)
			if !ok {
				t.Fatalf("%s is not a string literal", name.Name)
			}
			v, err := strconv.Unquote(lit.Value)
			if err != nil {
				t.Fatal(err)
			}
			labels[name.Name] = v
		}
		return true
	})
	if len(labels) < 15 || labels["LabelDeviceList"] != protocol.LabelDeviceList {
		t.Fatalf("found %d labels in doc.go: %v", len(labels), labels)
	}
	for a, va := range labels {
		for b, vb := range labels {
			if a != b && strings.HasPrefix(vb, va) {
				t.Errorf("%s (%q) is a prefix of %s (%q)", a, va, b, vb)
			}
		}
	}
}

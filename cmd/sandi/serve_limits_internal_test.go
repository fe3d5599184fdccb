package main

import (
	"errors"
	"io"
	"strings"
	"testing"
)

// The pre-key limit flags reach serveConfig, from flags or environment
// (flags win); a value that is not an integer is a usage error.
func TestServeKeyLimitFlags(t *testing.T) {
	t.Setenv("SANDI_MAX_ONETIME_KEYS", "50")
	t.Setenv("SANDI_UPLOAD_RATE", "7")
	c, err := parseServe([]string{"--claim-rate", "30", "--claim-onetime-per-hour", "4", "--target-onetime-per-hour", "9", "--upload-rate", "8"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.claimRate != 30 || c.claimOneTime != 4 || c.targetOneTime != 9 || c.maxOneTime != 50 || c.uploadRate != 8 {
		t.Fatalf("parsed %+v", c)
	}
	t.Setenv("SANDI_CLAIM_RATE", "many")
	if _, err := parseServe(nil, io.Discard); err == nil {
		t.Fatal("SANDI_CLAIM_RATE=many accepted")
	}
	t.Setenv("SANDI_CLAIM_RATE", "")
	if _, err := parseServe([]string{"--max-onetime-keys", "x"}, io.Discard); err == nil {
		t.Fatal("--max-onetime-keys x accepted")
	}
}

// --nats (SANDI_NATS) joins a cluster, whose nodes share a PostgreSQL
// database: with a SQLite database it is a usage error.
func TestServeNATSFlag(t *testing.T) {
	c, err := parseServe([]string{"--db", "postgres://sandi@127.0.0.1/sandi", "--nats", "nats://127.0.0.1:4222"}, io.Discard)
	if err != nil || c.nats != "nats://127.0.0.1:4222" {
		t.Fatalf("parsed %q, %v", c.nats, err)
	}
	t.Setenv("SANDI_NATS", "nats://10.0.0.5:4222")
	_, err = parseServe([]string{"--data", t.TempDir()}, io.Discard)
	var ue usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "PostgreSQL") {
		t.Fatalf("SANDI_NATS with SQLite: %v", err)
	}
}

// --max-blocks (SANDI_MAX_BLOCKS) reaches the server's Config; the flag
// wins over the environment, and 0 leaves the server's default.
func TestServeMaxBlocksFlag(t *testing.T) {
	t.Setenv("SANDI_MAX_BLOCKS", "500")
	c, err := parseServe(nil, io.Discard)
	if err != nil || c.limits.MaxBlocks != 500 {
		t.Fatalf("from the environment: %d, %v", c.limits.MaxBlocks, err)
	}
	if c, err = parseServe([]string{"--max-blocks", "-1"}, io.Discard); err != nil || c.limits.MaxBlocks != -1 {
		t.Fatalf("from the flag: %d, %v", c.limits.MaxBlocks, err)
	}
	if _, err := parseServe([]string{"--max-blocks", "many"}, io.Discard); err == nil {
		t.Fatal("--max-blocks many accepted")
	}
}

// --max-devices (SANDI_MAX_DEVICES) reaches the server's Config; the flag
// wins over the environment, and 0 leaves the server's default.
func TestServeMaxDevicesFlag(t *testing.T) {
	t.Setenv("SANDI_MAX_DEVICES", "20")
	c, err := parseServe(nil, io.Discard)
	if err != nil || c.limits.MaxDevices != 20 {
		t.Fatalf("from the environment: %d, %v", c.limits.MaxDevices, err)
	}
	if c, err = parseServe([]string{"--max-devices", "-1"}, io.Discard); err != nil || c.limits.MaxDevices != -1 {
		t.Fatalf("from the flag: %d, %v", c.limits.MaxDevices, err)
	}
	if _, err := parseServe([]string{"--max-devices", "many"}, io.Discard); err == nil {
		t.Fatal("--max-devices many accepted")
	}
}

// --settings-rate and --conversation-rate (SANDI_SETTINGS_RATE,
// SANDI_CONVERSATION_RATE) reach the server's Config; the flag wins over
// the environment, and 0 leaves the server's default.
func TestServeRateFlags(t *testing.T) {
	t.Setenv("SANDI_SETTINGS_RATE", "30")
	t.Setenv("SANDI_CONVERSATION_RATE", "120")
	c, err := parseServe(nil, io.Discard)
	if err != nil || c.limits.SettingsPerMinute != 30 || c.limits.ConversationsPerMinute != 120 {
		t.Fatalf("from the environment: %d %d, %v", c.limits.SettingsPerMinute, c.limits.ConversationsPerMinute, err)
	}
	c, err = parseServe([]string{"--settings-rate", "-1", "--conversation-rate", "5"}, io.Discard)
	if err != nil || c.limits.SettingsPerMinute != -1 || c.limits.ConversationsPerMinute != 5 {
		t.Fatalf("from the flags: %d %d, %v", c.limits.SettingsPerMinute, c.limits.ConversationsPerMinute, err)
	}
	if _, err := parseServe([]string{"--conversation-rate", "many"}, io.Discard); err == nil {
		t.Fatal("--conversation-rate many accepted")
	}
}

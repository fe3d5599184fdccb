package sqlstore

import (
	"testing"

	"sandi.dev/internal/store"
	"sandi.dev/internal/store/storetest"
	"sandi.dev/internal/testpg"
)

func TestMain(m *testing.M) { testpg.Main(m) }

// postgresOpener opens a store on a fresh database of the test cluster.
var postgresOpener = storetest.PerTest(
	func(t *testing.T) string { return testpg.URL(t) },
	func(t *testing.T, url string, fault func(string) error) store.Store {
		return openTestStore(t, url, fault)
	})

// TestPostgres runs the conformance suite on PostgreSQL.
func TestPostgres(t *testing.T) {
	storetest.Run(t, postgresOpener)
}

func testpgURL(tb testing.TB) string { return testpg.URL(tb) }

// TestPostgresSchema checks the schema's own guarantees on PostgreSQL.
func TestPostgresSchema(t *testing.T) {
	testSchema(t, openTestStore(t, testpg.URL(t), nil))
}

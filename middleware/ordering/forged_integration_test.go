//go:build integration

package ordering_test

// The forged-stamp tests run on the shared stores too.
func init() { forgedStores = append(forgedStores, "redis", "postgres") }

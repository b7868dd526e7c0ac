// Package urlparamtest holds the test helper every adapter uses to check the README's URL
// parameter table against the table its ConfigFromURL parses.
package urlparamtest

import (
	"os"
	"testing"
)

// CheckREADME reads the repository's README.md (two levels above an adapter's package) and
// fails t with check's error: check is the adapter's Table.CheckDoc for its README section.
func CheckREADME(t testing.TB, check func(doc string) error) {
	t.Helper()
	doc, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if err := check(string(doc)); err != nil {
		t.Error(err)
	}
}

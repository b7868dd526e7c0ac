package sqs

import (
	"os"
	"testing"
)

// TestREADMEParameters: the README's parameter table for this adapter is the one
// ConfigFromURL parses (every row with its default, and no other row).
func TestREADMEParameters(t *testing.T) {
	doc, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if err := urlParams.CheckDoc(string(doc), "sqs"); err != nil {
		t.Error(err)
	}
}

package sqs

import (
	"testing"

	"github.com/courierhq/courier/internal/urlparam/urlparamtest"
)

// TestREADMEParameters: the README's parameter table for this adapter is the one
// ConfigFromURL parses (every row with its default, and no other row).
func TestREADMEParameters(t *testing.T) {
	urlparamtest.CheckREADME(t, func(doc string) error { return urlParams.CheckDoc(doc, "sqs") })
}

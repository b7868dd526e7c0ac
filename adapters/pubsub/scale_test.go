//go:build !integration

package pubsub_test

// conformanceScale keeps the untagged run quick: pstest is slow (see TestConformance).
const conformanceScale = 0.2
